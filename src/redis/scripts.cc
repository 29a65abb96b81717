#include "redis/scripts.h"

#include <cstdlib>
#include <vector>

#include "allot_redis_lua.h"
#include "core/assert.h"

namespace allot::redis {

const Script& embeddedScript(std::string_view name) {
  static const std::vector<Script> kScripts = [] {
    std::vector<Script> scripts;
    for (const auto& file : lua::files()) {
      scripts.emplace_back(std::string(file.name), std::string(file.text));
    }
    return scripts;
  }();
  for (const auto& script : kScripts) {
    if (script.name() == name) return script;
  }
  ALLOT_ASSERT(false && "a script that is not embedded was named");
  std::abort();
}

}  // namespace allot::redis
