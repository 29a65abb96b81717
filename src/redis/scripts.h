// The Lua scripts of src/redis/lua, embedded into the binary at build time (cmake/embed.cmake),
// by file name.
#pragma once

#include <string_view>

#include "redis/client.h"

namespace allot::redis {

// The embedded script of that file name (e.g. "hold.lua"); a name that is not embedded is a
// programmer error.
[[nodiscard]] const Script& embeddedScript(std::string_view name);

}  // namespace allot::redis
