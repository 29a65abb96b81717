// The allotd child process of the integration tests. fork/exec rather than posix_spawn because
// the child must ask for PR_SET_PDEATHSIG before exec: a test binary that crashes or is killed
// by a timeout then takes its server with it instead of leaving it bound to a port.
#include "support/allotd_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "support/test_env.h"

extern char** environ;

namespace allot::testing {
namespace {

constexpr std::chrono::milliseconds kExitPollInterval{10};
constexpr std::size_t kLogTailBytesMax = 64 * 1024;

std::string randomToken() {
  std::random_device device;
  std::mt19937_64 engine(device());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (int i = 0; i < 32; ++i) token.push_back(kHex[engine() % 16]);
  return token;
}

std::string errnoText(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

std::string describeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

// The parent's environment without its ALLOT_* settings (a developer's shell may carry an
// API token or a listen address that would change what the tests see), plus ours. The
// ALLOT_TEST_* addresses stay: they configure nothing in allotd.
std::vector<std::string> childEnvironment(
    const std::vector<std::pair<std::string, std::string>>& settings) {
  std::vector<std::string> result;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (text.starts_with("ALLOT_") && !text.starts_with("ALLOT_TEST_")) continue;
    result.emplace_back(text);
  }
  for (const auto& [name, value] : settings) {
    const std::string prefix = name + "=";
    std::erase_if(result, [&](const std::string& e) { return e.starts_with(prefix); });
    result.push_back(prefix + value);
  }
  return result;
}

}  // namespace

Result<std::uint16_t> pickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(ErrorCode::kUnavailable, errnoText("socket"));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  const std::string error = ok ? std::string() : errnoText("bind/getsockname");
  ::close(fd);
  if (!ok) return fail(ErrorCode::kUnavailable, error);
  return ntohs(address.sin_port);
}

Result<std::unique_ptr<AllotdProcess>> AllotdProcess::start(AllotdOptions options) {
  if (options.binary_path.empty()) {
    return fail(ErrorCode::kInvalidRequest, "AllotdOptions::binary_path is empty");
  }
  std::unique_ptr<AllotdProcess> process(new AllotdProcess());
  process->options_ = std::move(options);
  process->admin_token_ = randomToken();
  ALLOT_TRY(port, pickFreePort());
  process->endpoint_ = cli::Endpoint{"127.0.0.1", port};

  std::string dir_template =
      (std::filesystem::temp_directory_path() / "allotd-test-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) {
    return fail(ErrorCode::kUnavailable, errnoText("mkdtemp"));
  }
  process->temp_dir_ = dir_template;
  process->log_path_ = process->temp_dir_ / "allotd.log";
  ALLOT_TRY_VOID(process->spawn());
  ALLOT_TRY_VOID(process->waitReady());
  return process;
}

Result<void> AllotdProcess::spawn() {
  // ctest runs some suites a second time with allotd on the Redis Cluster (tests/CMakeLists.txt).
  const char* on_cluster = std::getenv("ALLOT_TEST_ALLOTD_ON_CLUSTER");
  const bool cluster = on_cluster != nullptr && std::string_view(on_cluster) == "1";
  const std::string redis_url = cluster ? redisClusterUrl() : redisUrl();
  const std::string mysql_url = mysqlUrl();
  if (redis_url.empty() || mysql_url.empty()) {
    return fail(ErrorCode::kInvalidRequest, "ALLOT_TEST_REDIS_URL / ALLOT_TEST_MYSQL_URL unset");
  }
  std::vector<std::pair<std::string, std::string>> settings = {
      {"ALLOT_LISTEN", endpoint_.host + ":" + std::to_string(endpoint_.port)},
      {"ALLOT_REDIS_URL", redis_url},
      {"ALLOT_MYSQL_URL", mysql_url},
      {"ALLOT_ADMIN_TOKEN", admin_token_},
  };
  if (!options_.api_token.empty()) settings.emplace_back("ALLOT_API_TOKEN", options_.api_token);
  // ctest runs some suites a third time with every merchant on the MySQL path.
  if (const char* route = std::getenv("ALLOT_TEST_ALLOTD_ROUTE"); route != nullptr) {
    settings.emplace_back("ALLOT_DEFAULT_ROUTE", route);
  }
  settings.insert(settings.end(), options_.extra_env.begin(), options_.extra_env.end());

  // Everything the child needs is built before fork: after fork only async-signal-safe
  // calls are allowed, because the test process may have other threads.
  std::vector<std::string> env_strings = childEnvironment(settings);
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::string path = options_.binary_path;
  std::vector<char*> argv = {path.data(), nullptr};

  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return fail(ErrorCode::kUnavailable, errnoText("open " + log_path_.string()));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    ::close(log_fd);
    return fail(ErrorCode::kUnavailable, errnoText("open /dev/null"));
  }
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execve(path.c_str(), argv.data(), envp.data());
    static constexpr char kExecFailed[] = "allotd test harness: execve failed\n";
    [[maybe_unused]] const auto written =
        ::write(STDERR_FILENO, kExecFailed, sizeof(kExecFailed) - 1);
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(log_fd);
  ::close(null_fd);
  if (child < 0) {
    errno = fork_errno;
    return fail(ErrorCode::kUnavailable, errnoText("fork"));
  }
  pid_ = child;
  return {};
}

Result<void> AllotdProcess::waitReady() {
  const auto deadline = std::chrono::steady_clock::now() + options_.ready_deadline;
  std::string last_answer = "no answer yet";
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t waited = ::waitpid(pid_, &status, WNOHANG);
    if (waited == pid_) {
      pid_ = -1;
      return fail(ErrorCode::kUnavailable, "allotd " + describeWaitStatus(status) +
                                               " before it was ready; log " + log_path_.string() +
                                               ":\n" + logTail());
    }
    cli::HttpClient probe(endpoint_, {}, std::chrono::milliseconds(1000));
    auto answer = probe.get("/readyz");
    if (answer && answer->status == 200) return {};
    last_answer = answer ? "HTTP " + std::to_string(answer->status) + " " + answer->body
                         : answer.error().message;
    std::this_thread::sleep_for(options_.ready_poll_interval);
  }
  const std::string tail = logTail();
  (void)stop(std::chrono::seconds(2));
  return fail(ErrorCode::kUnavailable, "allotd was not ready within " +
                                           std::to_string(options_.ready_deadline.count()) +
                                           " ms (last /readyz: " + last_answer + "); log " +
                                           log_path_.string() + ":\n" + tail);
}

bool AllotdProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

cli::HttpClient AllotdProcess::client() const {
  return cli::HttpClient(endpoint_, options_.api_token);
}

Result<int> AllotdProcess::waitExit(std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (true) {
    int status = 0;
    const pid_t waited = ::waitpid(pid_, &status, WNOHANG);
    if (waited == pid_) {
      pid_ = -1;
      return status;
    }
    if (waited < 0) {
      pid_ = -1;
      return fail(ErrorCode::kInternal, errnoText("waitpid"));
    }
    if (std::chrono::steady_clock::now() >= until) {
      return fail(ErrorCode::kUnavailable, "allotd still running after the deadline");
    }
    std::this_thread::sleep_for(kExitPollInterval);
  }
}

Result<int> AllotdProcess::stop(std::chrono::milliseconds deadline) {
  if (pid_ <= 0) return fail(ErrorCode::kNotFound, "allotd is not running");
  ::kill(pid_, SIGTERM);
  auto exited = waitExit(deadline);
  if (exited) return exited;
  return kill9();
}

Result<int> AllotdProcess::kill9() {
  if (pid_ <= 0) return fail(ErrorCode::kNotFound, "allotd is not running");
  ::kill(pid_, SIGKILL);
  int status = 0;
  const pid_t waited = ::waitpid(pid_, &status, 0);
  pid_ = -1;
  if (waited < 0) return fail(ErrorCode::kInternal, errnoText("waitpid"));
  return status;
}

Result<void> AllotdProcess::restart() {
  if (running()) return fail(ErrorCode::kInvalidRequest, "allotd is still running");
  ALLOT_TRY_VOID(spawn());
  return waitReady();
}

std::string AllotdProcess::logTail(std::size_t lines) const {
  std::ifstream file(log_path_, std::ios::binary);
  if (!file) return "(no log at " + log_path_.string() + ")";
  file.seekg(0, std::ios::end);
  const auto size = static_cast<std::size_t>(file.tellg());
  const std::size_t start = size > kLogTailBytesMax ? size - kLogTailBytesMax : 0;
  file.seekg(static_cast<std::streamoff>(start));
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::size_t position = text.size();
  for (std::size_t seen = 0; position > 0; --position) {
    if (text[position - 1] == '\n' && position != text.size() && ++seen == lines) break;
  }
  return text.substr(position);
}

AllotdProcess::~AllotdProcess() {
  if (pid_ > 0) (void)stop(std::chrono::seconds(5));
  // Keep the log of a failed run for the post-mortem; a passing run leaves nothing behind.
  const bool failed =
      ::testing::Test::HasFailure() || ::testing::UnitTest::GetInstance()->failed_test_count() > 0;
  if (failed) {
    std::cerr << "allotd log kept at " << log_path_ << "\n";
  } else if (!temp_dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(temp_dir_, ignored);
  }
}

namespace {
std::unique_ptr<AllotdProcess>& sharedSlot() {
  static std::unique_ptr<AllotdProcess> slot;
  return slot;
}
std::string& sharedStartError() {
  static std::string error;
  return error;
}
}  // namespace

// A failure here is not asserted: gtest would then skip every test (and ctest, matching
// "[  SKIPPED ]", would report them skipped). Instead each test fails in get() with the reason.
void SharedAllotd::SetUp() {
  auto started = AllotdProcess::start(options_);
  if (!started) {
    sharedStartError() = "could not start allotd: " + started.error().message;
    return;
  }
  sharedSlot() = std::move(*started);
}

void SharedAllotd::TearDown() {
  auto& slot = sharedSlot();
  if (!slot) return;
  if (::testing::UnitTest::GetInstance()->failed_test_count() > 0) {
    std::cerr << "---- tail of the shared allotd log (" << slot->logPath() << ") ----\n"
              << slot->logTail() << "\n----\n";
  }
  slot.reset();
}

AllotdProcess* SharedAllotd::get() {
  AllotdProcess* process = sharedSlot().get();
  if (process == nullptr) {
    ADD_FAILURE() << (sharedStartError().empty() ? "the shared allotd is not running"
                                                 : sharedStartError());
  }
  return process;
}

}  // namespace allot::testing
