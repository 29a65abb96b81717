// Merchant routes (API.md 7) through a real allotd: the admin endpoints, a round trip of one
// merchant redis -> mysql -> redis with every kind of order, and switching back and forth
// while clients keep pre-allocating, rolling back and deducting, which must lose and double
// nothing.
#include "workers/route_switch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "mysql/mysql_ledger.h"
#include "mysql/url.h"
#include "redis/keys.h"
#include "redis/redis_stock_store.h"
#include "support/allotd_process.h"
#include "support/api_client.h"
#include "support/servers.h"
#include "support/test_env.h"

namespace allot::testing {
namespace {

AllotdOptions routeOptions() {
  auto options = allotdOptions();
  // One allotd: the settle wait for other processes can be short.
  options.extra_env.emplace_back("ALLOT_ROUTE_SETTLE_MS", "100");
  return options;
}

static auto* const kAllotd = ::testing::AddGlobalTestEnvironment(new SharedAllotd(routeOptions()));

using Headers = std::vector<std::pair<std::string, std::string>>;

Headers bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

class RouteSwitchTest : public AllotdTest {
 protected:
  ApiResponse putRoute(const std::string& dept, std::string_view route) {
    return api().call("PUT", "/v1/admin/merchants/" + dept,
                      R"({"route":")" + std::string(route) + R"("})",
                      bearer(allotd().adminToken()));
  }
  ApiResponse getRoute(const std::string& dept) {
    return api().call("GET", "/v1/admin/merchants/" + dept, "", bearer(allotd().adminToken()));
  }
  // Claims `order` in Redis through the store itself, as a pre-allocation still running (or
  // one whose process died) leaves it; store_ is then open for more of its steps.
  ::testing::AssertionResult claimAsASlowCall(const OrderRef& order,
                                              const std::vector<LineRequest>& lines) {
    if (store_ == nullptr) {
      redis_ = connectRedis(redisUrl());
      if (redis_ == nullptr) return ::testing::AssertionFailure() << "no Redis";
      store_ = std::make_unique<redis::RedisStockStore>(*redis_, redis::StoreOptions{});
    }
    auto claimed =
        store_->claimOrder(order, encodeLineRequests(lines), linesDigest(lines), "slow", 0);
    if (!claimed) return ::testing::AssertionFailure() << claimed.error().message;
    if (claimed->kind != ClaimOutcome::Kind::kClaimed) {
      return ::testing::AssertionFailure() << "not claimed";
    }
    return ::testing::AssertionSuccess();
  }
  // Dates the order's claim back to the epoch, as the claim of a call that died longer ago
  // than a lease leaves it.
  ::testing::AssertionResult ageClaimPastItsLease(const OrderRef& order) {
    const auto key = redis::keys::order(order);
    auto set = redis_->command(key, {"HSET", key, "ts", "0"});
    if (!set) return ::testing::AssertionFailure() << set.error().message;
    return ::testing::AssertionSuccess();
  }
  // Waits until the database row of every record equals what Redis answers (the write-back
  // drained), and returns whether it did.
  bool databaseConverges(const std::vector<RecordKey>& keys) {
    auto ledger = openLedger();
    if (!ledger) return false;
    return waitFor(
        [&] {
          for (const auto& key : keys) {
            auto stock = quantitiesOf(api().stock(key));
            auto row = ledger->findRecord(key);
            if (!stock || !row || !*row || **row != *stock) return false;
          }
          return true;
        },
        std::chrono::seconds(20));
  }

  // What a straggler leaves: its claim in Redis (its call long dead, unless `alive`), its holds
  // as the write-back applied them (lines, stock and the pending_orders row, dated by the
  // holds), and its entries in the records' live holds, which the eviction leaves.
  void leaveAStraggler(const OrderRef& order, const RecordKey& a, const RecordKey& b,
                       bool alive = false) {
    auto ledger = openLedger();
    ASSERT_NE(ledger, nullptr);
    ASSERT_TRUE(claimAsASlowCall(order, {{a, 2}, {b, 3}}));
    if (!alive) {
      ASSERT_TRUE(ageClaimPastItsLease(order));
    }
    auto lease = ledger->pool().acquire();
    ASSERT_TRUE(lease.has_value());
    for (const auto& [key, qty] : std::vector<std::pair<RecordKey, std::int64_t>>{{a, 2}, {b, 3}}) {
      ASSERT_TRUE(
          (*lease)
              ->execute("INSERT INTO order_lines (dept_no, goods_no, warehouse_no, "
                        "stock_status, stock_type, goods_level, order_no, line_no, qty, "
                        "allocated, shortage, state) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, "
                        "0, 'held')",
                        {std::string_view(key.dept_no), std::string_view(key.goods_no),
                         std::string_view(key.warehouse_no), std::string_view(key.stock_status),
                         std::string_view(key.stock_type), std::string_view(key.goods_level),
                         std::string_view(order.order_no), qty, qty})
              .has_value());
      ASSERT_TRUE(
          (*lease)
              ->execute("UPDATE stock SET preallocated = preallocated + ? WHERE dept_no = "
                        "? AND goods_no = ?",
                        {qty, std::string_view(key.dept_no), std::string_view(key.goods_no)})
              .has_value());
      const std::string entry = std::to_string(qty) + ":0";
      ASSERT_TRUE(redis_
                      ->command(redis::keys::holds(key),
                                {"HSET", redis::keys::holds(key), order.order_no, entry})
                      .has_value());
    }
    ASSERT_TRUE((*lease)
                    ->execute("INSERT INTO pending_orders (dept_no, order_no, seen_at) VALUES "
                              "(?, ?, CURRENT_TIMESTAMP(6) - INTERVAL ? SECOND)",
                              {std::string_view(order.dept_no), std::string_view(order.order_no),
                               std::int64_t{alive ? 0 : 60}})
                    .has_value());
  }

  struct Straggler {
    std::string dept;
    RecordKey a;
    RecordKey b;
    OrderRef order;
  };
  // A merchant moved to MySQL with two records of 10, and a straggler left holding 2 of one
  // and 3 of the other.
  void leaveAStragglerOnMysql(Straggler& s) {
    s.dept = newDept();
    s.a = newRecord(s.dept, 10);
    s.b = newRecord(s.dept, 10);
    auto moved = putRoute(s.dept, "mysql");
    ASSERT_TRUE(isOk(moved)) << moved.describe();
    s.order = OrderRef{s.dept, uniqueName("straggler")};
    ASSERT_NO_FATAL_FAILURE(leaveAStraggler(s.order, s.a, s.b));
    ASSERT_TRUE(hasQuantities(api().stock(s.a), Quantities{10, 2, 0}));
  }

  // Records the undo task of each order (the pending-order scan would, after the lease), waits
  // for the allotd's compensation worker to apply every task of the merchant, and expects both
  // records free of holds then.
  void undoAndWait(const std::vector<OrderRef>& orders, const RecordKey& a, const RecordKey& b) {
    auto ledger = openLedger();
    ASSERT_NE(ledger, nullptr);
    for (const auto& order : orders) {
      ASSERT_TRUE(
          ledger->recordCompensation({"release_undo", a, order.order_no, "a straggler's hold"})
              .has_value());
    }
    EXPECT_TRUE(waitFor([&] {
      auto lease = ledger->pool().acquire();
      if (!lease) return false;
      auto rows = (*lease)->query(
          "SELECT COUNT(*) FROM compensation_tasks WHERE dept_no = ? AND state = 'pending'",
          {std::string_view(a.dept_no)});
      return rows && !rows->empty() && (*rows)[0].integer(0).value_or(-1) == 0;
    })) << "undo tasks of "
        << a.dept_no << " still pending";
    EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{10, 0, 0})) << api().stock(a).describe();
    EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{10, 0, 0})) << api().stock(b).describe();
  }

  std::unique_ptr<redis::Client> redis_;
  std::unique_ptr<redis::RedisStockStore> store_;
};

TEST_F(RouteSwitchTest, AdminEndpointsNeedTheTokenAndValidInput) {
  const auto dept = newDept();
  const auto key = newRecord(dept, 5);
  const std::string path = "/v1/admin/merchants/" + dept;
  EXPECT_TRUE(isError(api().call("GET", path), 401, "unauthorized"));
  EXPECT_TRUE(isError(api().call("PUT", path, R"({"route":"mysql"})", bearer("wrong")), 401,
                      "unauthorized"));

  auto fresh = getRoute(dept);
  ASSERT_TRUE(isOk(fresh)) << fresh.describe();
  EXPECT_EQ(fresh.string("dept_no"), dept);
  EXPECT_EQ(fresh.string("route"), "redis");
  EXPECT_EQ(fresh.boolean("configured"), false);
  EXPECT_EQ(fresh.boolean("switching"), false);

  const auto admin = bearer(allotd().adminToken());
  for (const std::string bad : {R"({"route":"memcached"})", R"({"route":1})", R"({})",
                                R"(["mysql"])", "not json", R"({"route":"MYSQL"})"}) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(isError(api().call("PUT", path, bad, admin), 400, "invalid_request"));
  }
  for (const std::string& bad_dept :
       {std::string("D%7B1"), std::string(65, 'd'), std::string("a:b")}) {
    SCOPED_TRACE(bad_dept);
    EXPECT_TRUE(isError(api().call("GET", "/v1/admin/merchants/" + bad_dept, "", admin), 400,
                        "invalid_request"));
  }
  EXPECT_EQ(api().call("POST", path, R"({"route":"mysql"})", admin).status, 405);
  // Nothing above changed the route.
  EXPECT_EQ(getRoute(dept).boolean("configured"), false);
  EXPECT_EQ(api().stock(key).string("route"), "redis");

  auto moved = putRoute(dept, "mysql");
  ASSERT_TRUE(isOk(moved)) << moved.describe();
  EXPECT_EQ(moved.string("route"), "mysql");
  EXPECT_EQ(moved.boolean("configured"), true);
  EXPECT_EQ(moved.boolean("switching"), false);
  EXPECT_EQ(api().stock(key).string("route"), "mysql");
  EXPECT_TRUE(hasQuantities(api().stock(key), Quantities{5, 0, 0}));
  auto again = putRoute(dept, "mysql");  // a no-op
  ASSERT_TRUE(isOk(again)) << again.describe();
  EXPECT_EQ(again.string("route"), "mysql");
}

TEST_F(RouteSwitchTest, EveryKindOfOrderSurvivesARoundTrip) {
  const auto dept = newDept();
  const auto a = newRecord(dept, 50);
  const auto b = newRecord(dept, 50);
  // On Redis: a live two-line order, a rolled-back one, a deducted one, a shortage, and a
  // tombstone of an order never seen.
  ASSERT_TRUE(isOk(api().preallocate(dept, "live", {{a, 3}, {b, 4}})));
  ASSERT_TRUE(isOk(api().preallocate(dept, "back", {{a, 5}})));
  ASSERT_TRUE(isOk(api().rollback(dept, "back")));
  ASSERT_TRUE(isOk(api().preallocate(dept, "shipped", {{b, 6}})));
  ASSERT_TRUE(isOk(api().deduct(dept, "shipped")));
  ASSERT_TRUE(isOk(api().rollback(dept, "ghost")));

  auto to_mysql = putRoute(dept, "mysql");
  ASSERT_TRUE(isOk(to_mysql)) << to_mysql.describe();
  // The MySQL path answers for what Redis held.
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{50, 3, 0}));
  EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{44, 4, 0}));
  auto replay = api().preallocate(dept, "live", {{a, 3}, {b, 4}});
  ASSERT_TRUE(isOk(replay)) << replay.describe();
  EXPECT_EQ(replay.boolean("replayed"), true);
  EXPECT_TRUE(isError(api().preallocate(dept, "back", {{a, 5}}), 409, "order_rolled_back"));
  EXPECT_TRUE(isError(api().preallocate(dept, "ghost", {{a, 1}}), 409, "order_rolled_back"));
  EXPECT_TRUE(isError(api().rollback(dept, "shipped"), 409, "order_deducted"));
  // New work on the MySQL path.
  ASSERT_TRUE(isOk(api().preallocate(dept, "cold", {{a, 7}})));
  ASSERT_TRUE(isOk(api().preallocate(dept, "cold-back", {{b, 2}})));
  ASSERT_TRUE(isOk(api().rollback(dept, "cold-back")));
  ASSERT_TRUE(isOk(api().rollback(dept, "live")));

  auto to_redis = putRoute(dept, "redis");
  ASSERT_TRUE(isOk(to_redis)) << to_redis.describe();
  EXPECT_EQ(api().stock(a).string("route"), "redis");
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{50, 7, 0}));
  EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{44, 0, 0}));
  // Redis knows every order as the database had it.
  auto cold = api().preallocate(dept, "cold", {{a, 7}});
  ASSERT_TRUE(isOk(cold)) << cold.describe();
  EXPECT_EQ(cold.boolean("replayed"), true);
  EXPECT_TRUE(isError(api().preallocate(dept, "cold", {{a, 8}}), 409, "idempotency_conflict"));
  EXPECT_TRUE(isError(api().preallocate(dept, "live", {{a, 3}, {b, 4}}), 409, "order_rolled_back"));
  EXPECT_TRUE(isError(api().preallocate(dept, "cold-back", {{b, 2}}), 409, "order_rolled_back"));
  EXPECT_TRUE(isError(api().preallocate(dept, "ghost", {{a, 1}}), 409, "order_rolled_back"));
  EXPECT_TRUE(isError(api().rollback(dept, "shipped"), 409, "order_deducted"));
  auto shipped = api().order(dept, "shipped");
  EXPECT_EQ(shipped.string("status"), "deducted") << shipped.describe();
  ASSERT_TRUE(isOk(api().deduct(dept, "cold")));
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{43, 0, 0}));
  EXPECT_TRUE(databaseConverges({a, b}));
}

// An order refused because a record was never seen holds nothing there, so its refusal must
// leave nothing to compensate: a task for it could never be applied (the record is not in
// Redis) and would stop the merchant's switch to MySQL.
TEST_F(RouteSwitchTest, ARefusalOnANeverSeenRecordLeavesNothingToCompensate) {
  const auto dept = newDept();
  const auto known = newRecord(dept, 5);
  const RecordKey unknown = makeKey(dept, uniqueName("g"), "W1");
  const auto tasks_recorded = [&] {
    return api().metric("allot_compensation_tasks_recorded_total");
  };
  const auto tasks_before = tasks_recorded();
  ASSERT_TRUE(tasks_before.has_value());
  EXPECT_TRUE(
      isError(api().preallocate(dept, uniqueName("o"), {{unknown, 1}}), 409, "insufficient_stock"));
  // The known line is held first and undone; the unknown one is refused.
  EXPECT_TRUE(isError(api().preallocate(dept, uniqueName("o"), {{known, 2}, {unknown, 1}}), 409,
                      "insufficient_stock"));
  EXPECT_TRUE(isError(api().preallocate(dept, uniqueName("o"), {{unknown, 1}, {known, 2}}), 409,
                      "insufficient_stock"));
  EXPECT_TRUE(hasQuantities(api().stock(known), Quantities{5, 0, 0}));
  EXPECT_TRUE(isError(api().stock(unknown), 404, "not_found"));
  // A rollback that lands while such an order is still being allocated (its claim taken
  // here, as a slow pre-allocation would have left it) releases its lines as claimed: it too
  // has nothing to release on the record never seen, and answers 200.
  const OrderRef slow{dept, uniqueName("slow")};
  ASSERT_TRUE(claimAsASlowCall(slow, {{known, 2}, {unknown, 1}}));
  auto rolled_back = api().rollback(dept, slow.order_no);
  ASSERT_TRUE(isOk(rolled_back)) << rolled_back.describe();
  EXPECT_EQ(rolled_back.string("status"), "rolled_back");
  EXPECT_TRUE(isError(api().preallocate(dept, slow.order_no, {{known, 2}, {unknown, 1}}), 409,
                      "order_rolled_back"));
  EXPECT_TRUE(hasQuantities(api().stock(known), Quantities{5, 0, 0}));
  EXPECT_EQ(tasks_recorded(), tasks_before);

  auto moved = putRoute(dept, "mysql");
  ASSERT_TRUE(isOk(moved)) << moved.describe();
  EXPECT_EQ(moved.string("route"), "mysql");
  EXPECT_TRUE(hasQuantities(api().stock(known), Quantities{5, 0, 0}));
}

// An order rolled back while it was being allocated never had an answer: every route shows it
// rolled back with no lines, though the write-back recorded its holds and their releases.
TEST_F(RouteSwitchTest, AnOrderRolledBackBeforeItsAnswerShowsNoLinesOnEitherRoute) {
  const auto dept = newDept();
  const auto a = newRecord(dept, 5);
  const auto b = newRecord(dept, 5);
  // A slow pre-allocation's state when the rollback lands: claimed, the first line held.
  const OrderRef slow{dept, uniqueName("slow")};
  ASSERT_TRUE(claimAsASlowCall(slow, {{a, 2}, {b, 3}}));
  auto held = store_->hold(a, slow.order_no, 2, false);
  ASSERT_TRUE(held.has_value()) << held.error().message;
  ASSERT_EQ(held->kind, HoldOutcome::Kind::kHeld);
  ASSERT_TRUE(isOk(api().rollback(dept, slow.order_no)));

  const auto showsNoLines = [&](const char* when) {
    SCOPED_TRACE(when);
    const ApiResponse order = api().order(dept, slow.order_no);
    ASSERT_TRUE(isOk(order)) << order.describe();
    EXPECT_EQ(order.string("status"), "rolled_back");
    const auto* body = order.object();
    ASSERT_NE(body, nullptr);
    const auto* answer_lines = body->if_contains("lines");
    ASSERT_TRUE(answer_lines != nullptr && answer_lines->is_array()) << order.describe();
    EXPECT_TRUE(answer_lines->as_array().empty()) << order.describe();
    EXPECT_TRUE(isError(api().preallocate(dept, slow.order_no, {{a, 2}, {b, 3}}), 409,
                        "order_rolled_back"));
    EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{5, 0, 0}));
    EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{5, 0, 0}));
  };
  showsNoLines("on redis");
  auto to_mysql = putRoute(dept, "mysql");
  ASSERT_TRUE(isOk(to_mysql)) << to_mysql.describe();
  showsNoLines("on mysql");
  auto to_redis = putRoute(dept, "redis");
  ASSERT_TRUE(isOk(to_redis)) << to_redis.describe();
  showsNoLines("on redis again");
}

// What one client saw: the final answer of each order it sent.
struct Ledger {
  std::mutex mutex;
  std::map<std::string, std::int64_t> live;  // order -> qty held on the one record
  std::int64_t deducted = 0;
  std::vector<std::string> problems;
};

// Sends until a final answer arrives (anything but 503 or no answer), or gives up.
ApiResponse untilFinal(const std::function<ApiResponse()>& send) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (true) {
    auto response = send();
    if ((response.status != 0 && response.status != 503) ||
        std::chrono::steady_clock::now() > deadline) {
      return response;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A call killed mid-way leaves its order pending in Redis with lines held and no answer. A
// switch to MySQL undoes such an order while its records are still in Redis, as the
// pending-order scan would: otherwise its lines stay held in the database, which the MySQL
// path cannot release (it knows no order without an answer), and a retry fails on them.
TEST_F(RouteSwitchTest, AnOrderLeftPendingByADeadCallIsUndoneBeforeTheMerchantMovesToMysql) {
  const auto dept = newDept();
  const auto a = newRecord(dept, 10);
  const auto b = newRecord(dept, 10);
  const OrderRef dead{dept, uniqueName("dead")};
  ASSERT_TRUE(claimAsASlowCall(dead, {{a, 2}, {b, 3}}));
  ASSERT_EQ(store_->hold(a, dead.order_no, 2, false).value().kind, HoldOutcome::Kind::kHeld);
  ASSERT_EQ(store_->hold(b, dead.order_no, 3, false).value().kind, HoldOutcome::Kind::kHeld);
  ASSERT_TRUE(ageClaimPastItsLease(dead));  // its call died long ago
  ASSERT_TRUE(hasQuantities(api().stock(a), Quantities{10, 2, 0}));

  auto moved = putRoute(dept, "mysql");
  ASSERT_TRUE(isOk(moved)) << moved.describe();
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{10, 0, 0}));
  EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{10, 0, 0}));
  EXPECT_TRUE(isError(api().order(dept, dead.order_no), 404, "not_found"));
  // Unknown to every path, it is a new order when its caller retries it.
  auto retried = api().preallocate(dept, dead.order_no, {{a, 2}, {b, 3}});
  ASSERT_TRUE(isOk(retried)) << retried.describe();
  EXPECT_EQ(retried.boolean("replayed"), false);
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{10, 2, 0}));
  ASSERT_TRUE(isOk(api().rollback(dept, dead.order_no)));
  EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{10, 0, 0}));
}

// A straggler (a call of another allotd still running during the switch) can hold a line
// after the switch undid the pending orders and before it evicted the records: the order is
// then left in the database with a line held and no answer, its claim pending in Redis. Its
// undo task (the pending-order scan makes one; here it is recorded directly) takes the claim
// over once its lease has passed and, the records being out of Redis, releases the lines in
// the database, where they are: the order is unknown again and its stock free. So is the
// stock of one its caller rolled back on the MySQL path meanwhile (a tombstone there, with its
// lines still held). Back on Redis, neither is held already.
TEST_F(RouteSwitchTest, AStragglersHoldLeftInTheDatabaseIsReleasedThereByItsUndo) {
  const auto dept = newDept();
  const auto a = newRecord(dept, 10);
  const auto b = newRecord(dept, 10);
  auto moved = putRoute(dept, "mysql");
  ASSERT_TRUE(isOk(moved)) << moved.describe();
  auto ledger = openLedger();
  ASSERT_NE(ledger, nullptr);
  const OrderRef straggler{dept, uniqueName("straggler")};
  const OrderRef rolled_back{dept, uniqueName("rolled-back")};
  leaveAStraggler(straggler, a, b);
  leaveAStraggler(rolled_back, a, b);
  ASSERT_TRUE(hasQuantities(api().stock(b), Quantities{10, 6, 0}));
  ASSERT_TRUE(isOk(api().rollback(dept, rolled_back.order_no)));     // a tombstone on MySQL
  EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{10, 3, 0}));  // its lines given back
  undoAndWait({straggler, rolled_back}, a, b);
  EXPECT_TRUE(isError(api().order(dept, straggler.order_no), 404, "not_found"));
  EXPECT_EQ(api().order(dept, rolled_back.order_no).string("status"), "rolled_back");
  for (const auto& order : {straggler, rolled_back}) {
    auto claim = store_->readOrder(order);
    ASSERT_TRUE(claim.has_value());
    EXPECT_FALSE(claim->has_value()) << order.order_no << ": the claim stayed in Redis";
  }
  {
    auto lease = ledger->pool().acquire();
    ASSERT_TRUE(lease.has_value());
    auto rows = (*lease)->query("SELECT COUNT(*) FROM pending_orders WHERE dept_no = ?",
                                {std::string_view(dept)});
    ASSERT_TRUE(rows.has_value());
    EXPECT_EQ((*rows)[0].integer(0).value_or(-1), 0);
  }

  // Back on Redis, the straggler's order is new: it takes its stock (the switch back drops the
  // live-hold entries the eviction left and loads those the database has, so no stale entry
  // answers it as held already).
  auto back = putRoute(dept, "redis");
  ASSERT_TRUE(isOk(back)) << back.describe();
  auto retried = api().preallocate(dept, straggler.order_no, {{a, 2}, {b, 3}});
  ASSERT_TRUE(isOk(retried)) << retried.describe();
  EXPECT_EQ(retried.boolean("replayed"), false);
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{10, 2, 0}));
  EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{10, 3, 0}));
  EXPECT_TRUE(isError(api().preallocate(dept, rolled_back.order_no, {{a, 2}, {b, 3}}), 409,
                      "order_rolled_back"));
  EXPECT_TRUE(databaseConverges({a, b}));
}

// Switched back to Redis before a straggler's undo ran, the merchant's live holds are loaded
// from the database, the straggler's (no answer) with them: its undo then releases them in
// Redis, as for any dead claim, and the database follows.
TEST_F(RouteSwitchTest, AStragglersHoldIsUndoneInRedisWhenTheMerchantIsBackFirst) {
  Straggler s;
  ASSERT_NO_FATAL_FAILURE(leaveAStragglerOnMysql(s));
  const auto& [dept, a, b, straggler] = s;
  auto back = putRoute(dept, "redis");
  ASSERT_TRUE(isOk(back)) << back.describe();
  ASSERT_TRUE(hasQuantities(api().stock(a), Quantities{10, 2, 0}));
  undoAndWait({straggler}, a, b);
  EXPECT_TRUE(isError(api().order(dept, straggler.order_no), 404, "not_found"));
  EXPECT_TRUE(databaseConverges({a, b}));
}

// A straggler's order its caller rolls back on the MySQL path gets its lines back there and
// then, once the straggler is dead (its holds older than a lease), so a switch back to Redis
// before its undo ran finds nothing of it held: the order is loaded as rolled back, with no
// hold, and its undo has nothing left to do. A straggler that may still be alive (it could
// commit in Redis yet) keeps its lines for its undo to decide.
TEST_F(RouteSwitchTest, AStragglersOrderRolledBackOnMysqlHoldsNothingAfterTheSwitchBack) {
  Straggler s;
  ASSERT_NO_FATAL_FAILURE(leaveAStragglerOnMysql(s));
  const auto& [dept, a, b, straggler] = s;
  const OrderRef alive{dept, uniqueName("alive")};
  ASSERT_NO_FATAL_FAILURE(leaveAStraggler(alive, a, b, /*alive=*/true));
  ASSERT_TRUE(isOk(api().rollback(dept, alive.order_no)));
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{10, 4, 0}));  // both still held
  auto rolled_back = api().rollback(dept, straggler.order_no);
  ASSERT_TRUE(isOk(rolled_back)) << rolled_back.describe();
  EXPECT_EQ(rolled_back.string("status"), "rolled_back");
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{10, 2, 0}));
  EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{10, 3, 0}));
  // The live one's undo, once it has found it dead, gives its lines back in the database.
  ASSERT_TRUE(ageClaimPastItsLease(alive));
  undoAndWait({alive}, a, b);

  auto back = putRoute(dept, "redis");
  ASSERT_TRUE(isOk(back)) << back.describe();
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{10, 0, 0}));
  EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{10, 0, 0}));
  EXPECT_EQ(api().order(dept, straggler.order_no).string("status"), "rolled_back");
  EXPECT_TRUE(isError(api().preallocate(dept, straggler.order_no, {{a, 2}, {b, 3}}), 409,
                      "order_rolled_back"));
  // Its undo (the pending-order scan would make it) ends it without a change.
  undoAndWait({straggler}, a, b);
  EXPECT_EQ(api().order(dept, straggler.order_no).string("status"), "rolled_back");
  EXPECT_TRUE(databaseConverges({a, b}));
}

// An order whose claim is still within its lease may belong to a live call (of another
// allotd): nothing can be moved under it, so the switch is put off before any data moves and
// the merchant is put back as it was, served on Redis, unless it was already switching (an
// earlier switch failed half-way: its data may be half moved).
TEST_F(RouteSwitchTest, AnOrderStillBeingAllocatedPutsTheSwitchOffAndTheMerchantBackAsItWas) {
  const auto dept = newDept();
  const auto a = newRecord(dept, 10);
  const auto b = newRecord(dept, 10);
  const OrderRef slow{dept, uniqueName("slow")};
  ASSERT_TRUE(claimAsASlowCall(slow, {{a, 2}, {b, 3}}));
  ASSERT_EQ(store_->hold(a, slow.order_no, 2, false).value().kind, HoldOutcome::Kind::kHeld);

  auto refused = putRoute(dept, "mysql");
  EXPECT_TRUE(isError(refused, 503, "unavailable")) << refused.describe();
  EXPECT_NE(refused.string("message").value_or("").find(slow.order_no), std::string::npos)
      << refused.describe();
  auto route = getRoute(dept);
  EXPECT_EQ(route.string("route"), "redis") << route.describe();
  EXPECT_EQ(route.boolean("switching"), false) << route.describe();
  EXPECT_EQ(route.boolean("configured"), false) << route.describe();  // no row, as before
  auto other = api().preallocate(dept, uniqueName("o"), {{b, 1}});
  ASSERT_TRUE(isOk(other)) << other.describe();
  EXPECT_EQ(api().stock(b).string("route"), "redis");

  auto ledger = openLedger();
  ASSERT_NE(ledger, nullptr);
  {
    auto lease = ledger->pool().acquire();
    ASSERT_TRUE(lease.has_value());
    ASSERT_TRUE((*lease)
                    ->execute("INSERT INTO merchant_routes (dept_no, route, switching) VALUES "
                              "(?, 'redis', 1)",
                              {std::string_view(dept)})
                    .has_value());
  }
  auto still_refused = putRoute(dept, "mysql");
  EXPECT_TRUE(isError(still_refused, 503, "unavailable")) << still_refused.describe();
  EXPECT_NE(still_refused.string("message").value_or("").find(slow.order_no), std::string::npos)
      << still_refused.describe();
  EXPECT_EQ(getRoute(dept).boolean("switching"), true) << "a half-moved merchant was let go";

  // Once the slow call answers, the switch goes through and keeps its order.
  ASSERT_EQ(store_->hold(b, slow.order_no, 3, false).value().kind, HoldOutcome::Kind::kHeld);
  ASSERT_EQ(store_
                ->commitOrder(
                    slow, OrderStatus::kAllocated,
                    encodeLineOutcomes({LineOutcome{a, 2, 2, 0}, LineOutcome{b, 3, 3, 0}}), "slow")
                .value(),
            CommitOutcome::kCommitted);
  auto moved = untilFinal([&] { return putRoute(dept, "mysql"); });
  ASSERT_TRUE(isOk(moved)) << moved.describe();
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{10, 2, 0}));
  EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{10, 4, 0}));
  EXPECT_EQ(api().order(dept, slow.order_no).string("status"), "allocated");
}

// While another allotd switches a merchant (it holds the merchant's switch lock in the
// database), a switch here does nothing and answers 503.
TEST_F(RouteSwitchTest, ASwitchRunningInAnotherProcessIsNotJoined) {
  const auto dept = newDept();
  const auto key = newRecord(dept, 10);
  auto ledger = openLedger();
  ASSERT_NE(ledger, nullptr);
  auto other_process = ledger->pool().acquire();
  ASSERT_TRUE(other_process.has_value());
  auto database = mysql::parseMysqlUrl(mysqlUrl());
  ASSERT_TRUE(database.has_value());
  const std::string lock_name = workers::routeSwitchLockName(database->database, dept);
  auto locked = (*other_process)->query("SELECT GET_LOCK(?, 0)", {std::string_view(lock_name)});
  ASSERT_TRUE(locked.has_value() && locked->size() == 1);
  ASSERT_EQ((*locked)[0].integer(0).value_or(0), 1);

  auto refused = putRoute(dept, "mysql");
  EXPECT_TRUE(isError(refused, 503, "unavailable")) << refused.describe();
  auto route = getRoute(dept);
  EXPECT_EQ(route.string("route"), "redis") << route.describe();
  EXPECT_EQ(route.boolean("configured"), false) << route.describe();
  EXPECT_EQ(route.boolean("switching"), false) << route.describe();
  EXPECT_EQ(api().stock(key).string("route"), "redis");

  ASSERT_TRUE(
      (*other_process)->query("SELECT RELEASE_LOCK(?)", {std::string_view(lock_name)}).has_value());
  auto moved = putRoute(dept, "mysql");
  ASSERT_TRUE(isOk(moved)) << moved.describe();
  EXPECT_TRUE(hasQuantities(api().stock(key), Quantities{10, 0, 0}));
  EXPECT_EQ(api().stock(key).string("route"), "mysql");
  // The switch let its lock go.
  auto free = (*other_process)->query("SELECT IS_FREE_LOCK(?)", {std::string_view(lock_name)});
  ASSERT_TRUE(free.has_value() && free->size() == 1);
  EXPECT_EQ((*free)[0].integer(0).value_or(0), 1);
}

// A PUT of the route a merchant takes by default (it has no row) records it and moves nothing:
// the protocol would evict the live counters and load them again from rows the write-back
// may not have caught up with, losing the holds in between.
TEST_F(RouteSwitchTest, APutOfTheDefaultRouteRecordsItAndMovesNothing) {
  const auto dept = newDept();
  const auto key = newRecord(dept, 10);
  ASSERT_TRUE(isOk(api().preallocate(dept, uniqueName("o"), {{key, 3}})));
  const auto evicted = api().metric("allot_route_switch_records_evicted_total");
  const auto loaded = api().metric("allot_route_switch_records_loaded_total");
  const auto switches = api().metric("allot_route_switches_total");
  ASSERT_TRUE(evicted.has_value() && loaded.has_value() && switches.has_value());

  auto recorded = putRoute(dept, "redis");
  ASSERT_TRUE(isOk(recorded)) << recorded.describe();
  EXPECT_EQ(recorded.string("route"), "redis");
  EXPECT_EQ(recorded.boolean("configured"), true);
  EXPECT_EQ(recorded.boolean("switching"), false);
  EXPECT_EQ(api().metric("allot_route_switch_records_evicted_total"), evicted);
  EXPECT_EQ(api().metric("allot_route_switch_records_loaded_total"), loaded);
  EXPECT_EQ(api().metric("allot_route_switches_total"), switches);
  EXPECT_TRUE(hasQuantities(api().stock(key), Quantities{10, 3, 0}));
}

TEST_F(RouteSwitchTest, SwitchingBackAndForthUnderLoadLosesAndDoublesNothing) {
  constexpr int kClients = 6;
  constexpr int kSwitches = 6;
  constexpr std::int64_t kStock = 100'000;
  constexpr int kBystanders = 2;  // clients of another merchant, never switched, never paused
  const auto dept = newDept();
  const auto key = newRecord(dept, kStock);
  const auto bystander_dept = newDept();
  const auto bystander_key = newRecord(bystander_dept, kStock);
  Ledger switched;
  Ledger bystanders;
  std::atomic<bool> stop{false};
  std::atomic<int> orders{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients + kBystanders; ++c) {
    const bool bystander = c >= kClients;
    clients.emplace_back([&, c, bystander, dept = bystander ? bystander_dept : dept,
                          key = bystander ? bystander_key : key] {
      Ledger& ledger = bystander ? bystanders : switched;
      ApiClient client(allotd().endpoint(), allotd().apiToken());
      std::mt19937 random(static_cast<unsigned>(c) * 7919U + 1U);
      for (int n = 0; !stop.load(); ++n) {
        // Paced below what the write-back applies on this machine (a few thousand events a
        // second, shared by every test): a switch drains the merchant's events, and an
        // unpaced load would measure the write-back's backlog instead of the switch.
        std::this_thread::sleep_for(std::chrono::milliseconds(15));
        const std::string order = "c" + std::to_string(c) + "-" + std::to_string(n);
        const std::int64_t qty = 1 + static_cast<std::int64_t>(random() % 3);
        auto held = untilFinal([&] { return client.preallocate(dept, order, {{key, qty}}); });
        if (!bystander) orders.fetch_add(1);
        if (held.status != 200) {
          std::lock_guard lock(ledger.mutex);
          ledger.problems.push_back("preallocate " + order + ": " + held.describe());
          continue;
        }
        const auto fate = random() % 3;  // keep, roll back or deduct
        if (fate != 0) {
          auto ended = untilFinal([&] {
            return fate == 1 ? client.rollback(dept, order) : client.deduct(dept, order);
          });
          if (ended.status != 200) {
            std::lock_guard lock(ledger.mutex);
            ledger.problems.push_back("end " + order + ": " + ended.describe());
            ledger.live[order] = qty;  // what it holds is unknown; the check will say
            continue;
          }
        }
        std::lock_guard lock(ledger.mutex);
        if (fate == 0) ledger.live[order] = qty;
        if (fate == 2) ledger.deducted += qty;
      }
    });
  }
  std::vector<std::string> switch_problems;
  for (int s = 0; s < kSwitches; ++s) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    const std::string_view to = s % 2 == 0 ? "mysql" : "redis";
    auto answer = untilFinal([&] { return putRoute(dept, to); });
    if (!isOk(answer) || answer.string("route") != to) {
      switch_problems.push_back(std::string(to) + ": " + answer.describe());
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  stop = true;
  for (auto& client : clients) client.join();

  EXPECT_TRUE(switch_problems.empty()) << switch_problems.front();
  EXPECT_TRUE(bystanders.problems.empty()) << bystanders.problems.front();
  EXPECT_TRUE(switched.problems.empty())
      << switched.problems.size() << " problems, first " << switched.problems.front();
  EXPECT_GT(orders.load(), kSwitches * 10) << "the load barely ran";
  std::int64_t live = 0;
  for (const auto& [order, qty] : switched.live) {
    live += qty;
    auto view = api().order(dept, order);
    EXPECT_EQ(view.string("status"), "allocated") << order << ": " << view.describe();
  }
  EXPECT_TRUE(hasQuantities(api().stock(key), Quantities{kStock - switched.deducted, live, 0}))
      << orders.load() << " orders, " << switched.live.size() << " live";
  EXPECT_EQ(api().stock(key).string("route"), "redis");
  EXPECT_TRUE(databaseConverges({key}));
  ::testing::Test::RecordProperty("orders", orders.load());
}

}  // namespace
}  // namespace allot::testing
