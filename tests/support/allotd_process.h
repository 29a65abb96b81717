// Runs a real allotd as a child process for the integration tests: on a free loopback port,
// against the test servers named by ALLOT_TEST_REDIS_URL and ALLOT_TEST_MYSQL_URL, with its
// output in a log file whose tail is printed when a test fails. The child is killed when the
// test process dies (PR_SET_PDEATHSIG), so a crashed test never leaves a server behind.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli/http_client.h"
#include "core/result.h"

namespace allot::testing {

struct AllotdOptions {
  // The allotd binary. The integration tests know it from the compile definition
  // ALLOT_ALLOTD_PATH (see allotdOptions() below); this library is compiled without it.
  std::string binary_path;
  // ALLOT_API_TOKEN when not empty: every /v1 call then needs this bearer token.
  std::string api_token;
  // Extra environment for the child, applied after the defaults (and able to replace them).
  std::vector<std::pair<std::string, std::string>> extra_env;
  std::chrono::milliseconds ready_deadline{30'000};
  std::chrono::milliseconds ready_poll_interval{50};
};

class AllotdProcess {
 public:
  // Picks a free port, starts options.binary_path and waits until GET /readyz answers
  // 200. On failure the error message carries the tail of the child's log.
  [[nodiscard]] static Result<std::unique_ptr<AllotdProcess>> start(AllotdOptions options = {});

  ~AllotdProcess();
  AllotdProcess(const AllotdProcess&) = delete;
  AllotdProcess& operator=(const AllotdProcess&) = delete;

  [[nodiscard]] const cli::Endpoint& endpoint() const { return endpoint_; }
  [[nodiscard]] const std::string& adminToken() const { return admin_token_; }
  [[nodiscard]] const std::string& apiToken() const { return options_.api_token; }
  [[nodiscard]] const std::filesystem::path& logPath() const { return log_path_; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] bool running();

  // A client that sends the API token (when one is configured).
  [[nodiscard]] cli::HttpClient client() const;

  // SIGTERM, then SIGKILL once `deadline` has passed. Returns the wait status (as waitpid
  // reports it), or an error when no child was running.
  [[nodiscard]] Result<int> stop(std::chrono::milliseconds deadline = std::chrono::seconds(15));
  // SIGKILL without warning, for crash tests. Returns the wait status.
  [[nodiscard]] Result<int> kill9();
  // Starts the binary again on the same port with the same tokens and waits for readiness.
  [[nodiscard]] Result<void> restart();

  // The last `lines` lines of the child's log.
  [[nodiscard]] std::string logTail(std::size_t lines = 60) const;

 private:
  AllotdProcess() = default;
  [[nodiscard]] Result<void> spawn();
  [[nodiscard]] Result<void> waitReady();
  [[nodiscard]] Result<int> waitExit(std::chrono::milliseconds deadline);

  AllotdOptions options_;
  cli::Endpoint endpoint_;
  std::string admin_token_;
  std::filesystem::path temp_dir_;
  std::filesystem::path log_path_;
  pid_t pid_ = -1;
};

#ifdef ALLOT_ALLOTD_PATH
// Options naming the allotd that CMake built next to the test. Defined only where the
// compile definition exists (the integration tests), so every definition is the same.
inline AllotdOptions allotdOptions(std::string api_token = {}) {
  AllotdOptions options;
  options.binary_path = ALLOT_ALLOTD_PATH;
  options.api_token = std::move(api_token);
  return options;
}
#endif

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, closed).
[[nodiscard]] Result<std::uint16_t> pickFreePort();

// One allotd shared by every test of a binary. Register it once per test file:
//   static auto* const kAllotd =
//       ::testing::AddGlobalTestEnvironment(new SharedAllotd(allotdOptions()));
// Tests isolate themselves by unique dept_no.
class SharedAllotd : public ::testing::Environment {
 public:
  explicit SharedAllotd(AllotdOptions options) : options_(std::move(options)) {}
  void SetUp() override;
  void TearDown() override;

  // The running process; fails the current test when SetUp did not start one.
  [[nodiscard]] static AllotdProcess* get();

 private:
  AllotdOptions options_;
};

}  // namespace allot::testing
