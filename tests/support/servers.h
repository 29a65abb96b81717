// Clients of the throwaway servers for integration tests. Each fails the current test (and
// returns nullptr) when the server cannot be reached, so callers ASSERT_NE(..., nullptr).
#pragma once

#include <memory>
#include <string>

#include "mysql/mysql_ledger.h"
#include "redis/client.h"

namespace allot::testing {

// A Redis client for a redis:// URL (standalone or cluster seeds).
[[nodiscard]] std::unique_ptr<redis::Client> connectRedis(const std::string& url);
// The ledger on ALLOT_TEST_MYSQL_URL, migrated.
[[nodiscard]] std::unique_ptr<mysql::MysqlLedger> openLedger();

}  // namespace allot::testing
