// Clients of the throwaway servers for integration tests. Each fails the current test (and
// returns nullptr) when the server cannot be reached, so callers ASSERT_NE(..., nullptr).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "mysql/mysql_ledger.h"
#include "redis/client.h"

namespace allot::testing {

// A Redis client for a redis:// URL (standalone or cluster seeds).
[[nodiscard]] std::unique_ptr<redis::Client> connectRedis(const std::string& url);
// The ledger on ALLOT_TEST_MYSQL_URL, migrated.
[[nodiscard]] std::unique_ptr<mysql::MysqlLedger> openLedger();

// A standalone redis-server of the test's own, on a free port of 127.0.0.1, without
// persistence, in a temporary directory; stopped and removed when this is destroyed. For a
// test that reads the outbox streams exactly as a script left them: on the shared server,
// another suite's allotd may write back and trim them at any moment.
class PrivateRedis {
 public:
  // Starts it and waits until it answers; fails the current test and leaves url() empty when
  // it cannot.
  PrivateRedis();
  ~PrivateRedis();
  PrivateRedis(const PrivateRedis&) = delete;
  PrivateRedis& operator=(const PrivateRedis&) = delete;

  [[nodiscard]] const std::string& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  std::string dir_;
  std::string url_;
};

}  // namespace allot::testing
