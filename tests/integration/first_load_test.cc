// The first load of a record from the database into Redis happens once, however many
// requests need it at the same moment (the seed's WATCH-based initialisation). A record is
// stocked through allotd, then its Redis keys are deleted, so that it exists only in MariaDB;
// then many concurrent preallocations race to load it. allot_record_loads_total in /metrics
// must rise by exactly 1, and the quantities must be those of the database plus the holds.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mysql/connection.h"
#include "mysql/url.h"
#include "redis/client.h"
#include "redis/keys.h"
#include "support/allotd_process.h"
#include "support/api_client.h"
#include "support/test_env.h"

namespace allot::testing {
namespace {

[[maybe_unused]] auto* const kAllotd =
    ::testing::AddGlobalTestEnvironment(new SharedAllotd(allotdOptions()));

constexpr int kConcurrentFirstRequests = 32;
constexpr std::int64_t kOnHand = 100;
constexpr std::chrono::seconds kDatabaseDeadline{20};
constexpr std::chrono::milliseconds kDatabasePollInterval{50};
constexpr const char* kLoadsMetric = "allot_record_loads_total";

class FirstLoadTest : public AllotdTest {
 protected:
  void SetUp() override {
    AllotdTest::SetUp();
    if (HasFatalFailure()) return;
    auto redis_options = redis::parseRedisUrl(redisUrl());
    ASSERT_TRUE(redis_options.has_value()) << redis_options.error().message;
    auto redis_client = redis::Client::connect(*redis_options);
    ASSERT_TRUE(redis_client.has_value()) << redis_client.error().message;
    redis_ = std::move(*redis_client);
    auto mysql_options = mysql::parseMysqlUrl(mysqlUrl());
    ASSERT_TRUE(mysql_options.has_value()) << mysql_options.error().message;
    auto connection = mysql::Connection::open(*mysql_options);
    ASSERT_TRUE(connection.has_value()) << connection.error().message;
    mysql_ = std::move(*connection);
  }

  // The record's on_hand in the database of record, or nullopt while it has no row.
  std::optional<std::int64_t> databaseOnHand(const RecordKey& key) {
    auto rows = mysql_->query(
        "SELECT on_hand FROM stock WHERE dept_no = ? AND goods_no = ? AND warehouse_no = ? "
        "AND stock_status = ? AND stock_type = ? AND goods_level = ?",
        {key.dept_no, key.goods_no, key.warehouse_no, key.stock_status, key.stock_type,
         key.goods_level});
    EXPECT_TRUE(rows.has_value()) << rows.error().message;
    if (!rows || rows->empty()) return std::nullopt;
    auto on_hand = rows->front().integer(0);
    EXPECT_TRUE(on_hand.has_value()) << on_hand.error().message;
    return on_hand ? std::optional(*on_hand) : std::nullopt;
  }

  // Waits until the database holds the record with `on_hand` (the adjust may reach it
  // through the write-back rather than at once).
  ::testing::AssertionResult databaseReaches(const RecordKey& key, std::int64_t on_hand) {
    const auto deadline = std::chrono::steady_clock::now() + kDatabaseDeadline;
    std::optional<std::int64_t> seen;
    while (std::chrono::steady_clock::now() < deadline) {
      seen = databaseOnHand(key);
      if (seen == on_hand) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(kDatabasePollInterval);
    }
    return ::testing::AssertionFailure()
           << "the stock row of " << key.index() << " did not reach on_hand " << on_hand
           << " within " << kDatabaseDeadline.count()
           << " s (last seen: " << (seen ? std::to_string(*seen) : "no row") << ")";
  }

  // Deletes every Redis key of the record's counters, so that it exists only in MariaDB.
  void evictFromRedis(const RecordKey& key) {
    const std::string usable = redis::keys::usable(key);
    auto deleted =
        redis_->command(usable, {"DEL", usable, redis::keys::subtracted(key),
                                 redis::keys::ullage(key), redis::keys::deductionRecord(key)});
    ASSERT_TRUE(deleted.has_value()) << deleted.error().message;
    ASSERT_TRUE(deleted->isInteger()) << "DEL answered " << deleted->str;
    ASSERT_GE(deleted->integer, 1)
        << "no key of " << key.index() << " existed: the key layout of redis/keys.h is not in use";
    auto exists = redis_->command(usable, {"EXISTS", usable});
    ASSERT_TRUE(exists.has_value() && exists->isInteger() && exists->integer == 0);
  }

  std::unique_ptr<redis::Client> redis_;
  std::unique_ptr<mysql::Connection> mysql_;
};

TEST_F(FirstLoadTest, ConcurrentFirstRequestsLoadTheRecordOnce) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, kOnHand);
  ASSERT_TRUE(databaseReaches(key, kOnHand));
  ASSERT_NO_FATAL_FAILURE(evictFromRedis(key));

  const std::optional<double> loads_before = api().metric(kLoadsMetric);
  ASSERT_TRUE(loads_before.has_value()) << kLoadsMetric << " is not in /metrics";
  // A read does not load: GET /v1/stock is served without writing to Redis.
  const ApiResponse read = api().stock(key);
  EXPECT_TRUE(read.status == 200 || read.status == 404) << read.describe();
  EXPECT_EQ(api().metric(kLoadsMetric), loads_before) << "GET /v1/stock loaded the record";

  const std::string prefix = uniqueName("o");
  std::latch start(kConcurrentFirstRequests);
  std::mutex mutex;
  std::vector<std::string> failures;
  {
    std::vector<std::jthread> clients;
    for (int i = 0; i < kConcurrentFirstRequests; ++i) {
      clients.emplace_back([&, i] {
        ApiClient client(allotd().endpoint(), allotd().apiToken());
        start.arrive_and_wait();
        const ApiResponse answer =
            client.preallocate(dept, prefix + "-" + std::to_string(i), {{key, 1}});
        if (answer.status != 200 || answer.string("status") != "allocated" ||
            !hasLine(answer, key, 1, 1, 0)) {
          std::lock_guard lock(mutex);
          failures.push_back(answer.describe());
        }
      });
    }
  }
  EXPECT_TRUE(failures.empty()) << failures.size() << " first requests failed, e.g. "
                                << failures.front();

  const std::optional<double> loads_after = api().metric(kLoadsMetric);
  ASSERT_TRUE(loads_after.has_value());
  EXPECT_EQ(*loads_after - *loads_before, 1.0)
      << kLoadsMetric << " went from " << *loads_before << " to " << *loads_after;
  const ApiResponse stock = api().stock(key);
  EXPECT_TRUE(hasQuantities(stock, Quantities{kOnHand, kConcurrentFirstRequests, 0}));
  EXPECT_EQ(stock.string("route"), "redis") << stock.describe();
}

}  // namespace
}  // namespace allot::testing
