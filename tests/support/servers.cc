#include "support/servers.h"

#include <gtest/gtest.h>

#include "mysql/url.h"
#include "support/test_env.h"

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

}  // namespace allot::testing
