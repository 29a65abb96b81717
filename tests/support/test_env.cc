#include "support/test_env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>

namespace allot::testing {

std::string requiredEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    ADD_FAILURE() << name << " is not set: run the tests through scripts/test, which starts "
                  << "the servers and exports their addresses";
    return {};
  }
  return value;
}

std::string uniqueName(const std::string& prefix) {
  static std::atomic<unsigned> counter{0};
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(now % 1000000007) +
         "-" + std::to_string(counter.fetch_add(1));
}

}  // namespace allot::testing
