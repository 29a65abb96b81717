// The admin API (API.md 7) through a real allotd: the admin token rule and
// POST /v1/admin/reconcile finding and repairing injected drift.
#include <gtest/gtest.h>

#include "redis/client.h"
#include "redis/keys.h"
#include "support/allotd_process.h"
#include "support/api_client.h"
#include "support/servers.h"
#include "support/test_env.h"

namespace allot::testing {
namespace {

static auto* const kAllotd = ::testing::AddGlobalTestEnvironment(new SharedAllotd(allotdOptions()));

std::vector<std::pair<std::string, std::string>> bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

TEST(AdminTest, ReconcileNeedsTheAdminTokenAndValidInput) {
  auto* allotd = SharedAllotd::get();
  ASSERT_NE(allotd, nullptr);
  ApiClient client(allotd->endpoint());
  const std::string body = R"({"dept_no":")" + uniqueName("adm") + R"("})";
  EXPECT_TRUE(isError(client.call("POST", "/v1/admin/reconcile", body), 401, "unauthorized"));
  EXPECT_TRUE(isError(client.call("POST", "/v1/admin/reconcile", body, bearer("wrong")), 401,
                      "unauthorized"));
  const auto admin = bearer(allotd->adminToken());
  const std::vector<std::string> bad_bodies = {R"({"dept_no":"D{1"})", R"({"dept_no":5})", R"([1])",
                                               "not json", R"({"dept_no":""})"};
  for (const auto& bad : bad_bodies) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(
        isError(client.call("POST", "/v1/admin/reconcile", bad, admin), 400, "invalid_request"));
  }
  auto clean = client.call("POST", "/v1/admin/reconcile", body, admin);
  ASSERT_TRUE(isOk(clean)) << clean.describe();
  EXPECT_EQ(clean.integer("checked"), 0);
  EXPECT_EQ(clean.integer("mismatched"), 0);
  EXPECT_EQ(clean.integer("repaired"), 0);
  EXPECT_EQ(clean.integer("failed"), 0);
  EXPECT_EQ(client.call("GET", "/v1/admin/reconcile", "", admin).status, 405);
}

TEST(AdminTest, ReconcileRepairsAStrayChangeInRedis) {
  auto* allotd = SharedAllotd::get();
  ASSERT_NE(allotd, nullptr);
  ApiClient client(allotd->endpoint());
  const auto dept = uniqueName("adm");
  const auto key = makeKey(dept, "G1", "W1");
  ASSERT_TRUE(hasQuantities(client.adjustDelta(key, "r1", 10), Quantities{10, 0, 0}));
  ASSERT_TRUE(isOk(client.preallocate(dept, "O1", {{key, 3}})));
  // A stray DECRBY, as the issue injects it: Redis now offers 2 units fewer than it has.
  auto options = redis::parseRedisUrl(redisUrl());
  ASSERT_TRUE(options.has_value());
  auto redis_client = redis::Client::connect(*options);
  ASSERT_TRUE(redis_client.has_value());
  const auto usable = redis::keys::usable(key);
  ASSERT_TRUE((*redis_client)->command(usable, {"DECRBY", usable, "2"}).has_value());
  ASSERT_TRUE(hasQuantities(client.stock(key), Quantities{8, 3, 0}));

  const std::string body = R"({"dept_no":")" + dept + R"("})";
  auto report = client.call("POST", "/v1/admin/reconcile", body, bearer(allotd->adminToken()));
  ASSERT_TRUE(isOk(report)) << report.describe();
  EXPECT_EQ(report.integer("checked"), 1);
  EXPECT_EQ(report.integer("mismatched"), 1);
  EXPECT_EQ(report.integer("repaired"), 1);
  // The database of record wins for on_hand; the live hold is kept.
  EXPECT_TRUE(hasQuantities(client.stock(key), Quantities{10, 3, 0}));
  auto again = client.call("POST", "/v1/admin/reconcile", body, bearer(allotd->adminToken()));
  EXPECT_EQ(again.integer("mismatched"), 0);
}

// With Redis down nothing can be compared: the run stops at the first record and answers 503
// (safe to retry), never a report of zero records checked that reads as "all is well".
TEST(AdminTest, ReconcileWithRedisDownIsUnavailable) {
  auto redis = std::make_unique<PrivateRedis>();
  ASSERT_FALSE(redis->url().empty());
  auto options = allotdOptions();
  options.extra_env.emplace_back("ALLOT_REDIS_URL", redis->url());
  auto allotd = AllotdProcess::start(options);
  ASSERT_TRUE(allotd.has_value()) << allotd.error().message;
  ApiClient client((*allotd)->endpoint());
  const auto admin = bearer((*allotd)->adminToken());
  const auto dept = uniqueName("adm");
  const auto key = makeKey(dept, "G1", "W1");
  ASSERT_TRUE(hasQuantities(client.adjustDelta(key, "r1", 10), Quantities{10, 0, 0}));
  const std::string body = R"({"dept_no":")" + dept + R"("})";
  auto up = client.call("POST", "/v1/admin/reconcile", body, admin);
  ASSERT_TRUE(isOk(up)) << up.describe();
  EXPECT_EQ(up.integer("checked"), 1);

  redis.reset();  // stopped
  auto down = client.call("POST", "/v1/admin/reconcile", body, admin);
  EXPECT_TRUE(isError(down, 503, "unavailable"));
  EXPECT_NE(down.body.find(key.index()), std::string::npos) << down.body;
  EXPECT_GE(client.metric("allot_reconcile_run_failures_total"), 1.0);
}

}  // namespace
}  // namespace allot::testing
