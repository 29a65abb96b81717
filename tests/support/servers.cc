#include "support/servers.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "mysql/url.h"
#include "support/allotd_process.h"
#include "support/test_env.h"

extern char** environ;

namespace allot::testing {

std::unique_ptr<redis::Client> connectRedis(const std::string& url) {
  if (url.empty()) return nullptr;  // requiredEnv already failed the test
  auto options = redis::parseRedisUrl(url);
  EXPECT_TRUE(options.has_value()) << (options ? "" : options.error().message);
  if (!options) return nullptr;
  auto client = redis::Client::connect(*options);
  EXPECT_TRUE(client.has_value()) << (client ? "" : client.error().message);
  return client ? std::move(*client) : nullptr;
}

std::unique_ptr<mysql::MysqlLedger> openLedger() {
  const auto url = mysqlUrl();
  if (url.empty()) return nullptr;
  auto options = mysql::parseMysqlUrl(url);
  EXPECT_TRUE(options.has_value()) << (options ? "" : options.error().message);
  if (!options) return nullptr;
  auto ledger = mysql::MysqlLedger::open(*options);
  EXPECT_TRUE(ledger.has_value()) << (ledger ? "" : ledger.error().message);
  return ledger ? std::move(*ledger) : nullptr;
}

PrivateRedis::PrivateRedis() {
  const auto port = pickFreePort();
  if (!port) {
    ADD_FAILURE() << "no free port for a private redis-server: " << port.error().message;
    return;
  }
  std::string pattern =
      (std::filesystem::temp_directory_path() / "allot-private-redis-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed for a private redis-server";
    return;
  }
  dir_ = pattern;
  const std::string port_text = std::to_string(*port);
  std::vector<std::string> args{"redis-server", "--port",       port_text, "--bind",
                                "127.0.0.1",    "--dir",        dir_,      "--save",
                                "",             "--appendonly", "no",      "--logfile",
                                dir_ + "/redis.log"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  if (::posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) {
    pid_ = -1;
    ADD_FAILURE() << "cannot start redis-server (is it installed?)";
    return;
  }
  const std::string url = "redis://127.0.0.1:" + port_text;
  const auto options = redis::parseRedisUrl(url);
  if (!options) {
    ADD_FAILURE() << url << ": " << options.error().message;
    return;
  }
  // Ready once a server answers on the port and it is ours (its process id), not another one
  // that took the port between pickFreePort and the bind, which would make ours exit.
  const std::string our_pid = "process_id:" + std::to_string(pid_) + "\r\n";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ADD_FAILURE() << "the private redis-server exited at start (its log: " << dir_
                    << "/redis.log)";
      return;
    }
    if (auto client = redis::Client::connect(*options); client) {
      const auto info = (*client)->command("", {"INFO", "server"});
      if (info && info->str.find(our_pid) != std::string::npos) {
        url_ = url;
        return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "the private redis-server on " << port_text << " did not answer in 10 s";
}

PrivateRedis::~PrivateRedis() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

}  // namespace allot::testing
