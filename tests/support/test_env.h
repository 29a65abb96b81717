// Addresses of the throwaway servers that scripts/test starts for the integration tests.
// A missing variable is a failed test, never a skipped one.
#pragma once

#include <chrono>
#include <string>
#include <thread>

namespace allot::testing {

// The value of an environment variable that must be set; fails the current test (and returns
// an empty string) when it is not.
std::string requiredEnv(const char* name);

inline std::string redisUrl() { return requiredEnv("ALLOT_TEST_REDIS_URL"); }
inline std::string redisClusterUrl() { return requiredEnv("ALLOT_TEST_REDIS_CLUSTER_URL"); }
inline std::string mysqlUrl() { return requiredEnv("ALLOT_TEST_MYSQL_URL"); }

// A string unique to this process and call, usable as a dept_no or order_no prefix so
// tests sharing one server never see each other's records.
std::string uniqueName(const std::string& prefix);

// Waits until `condition` holds or the deadline passes, polling every 10 ms; the result says
// which (no sleep-and-hope: the caller asserts on it).
template <typename Condition>
bool waitFor(Condition condition, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

}  // namespace allot::testing
