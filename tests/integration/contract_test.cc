// The HTTP contract of API.md (endpoints 1-6, /healthz, /readyz and the bearer-token rule),
// checked against a real allotd on real Redis and MariaDB. Every answer is checked for its
// status, its error code and its body, and every refusal for leaving the quantities as they
// were: a refused call that changed something would be worse than a wrong status.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "support/allotd_process.h"
#include "support/api_client.h"
#include "support/servers.h"
#include "support/test_env.h"

namespace allot::testing {
namespace {

namespace json = boost::json;

[[maybe_unused]] auto* const kAllotd =
    ::testing::AddGlobalTestEnvironment(new SharedAllotd(allotdOptions()));

class ContractTest : public AllotdTest {
 protected:
  ::testing::AssertionResult stockIs(const RecordKey& key, Quantities expected) {
    return hasQuantities(api().stock(key), expected);
  }
  // A 200 preallocation with status "allocated"; the caller checks the lines.
  void allocate(const std::string& dept, const std::string& order, const std::vector<Line>& lines) {
    const ApiResponse answer = api().preallocate(dept, order, lines);
    ASSERT_TRUE(isOk(answer));
    ASSERT_EQ(answer.string("status"), "allocated") << answer.describe();
  }
};

// ---- /healthz and /readyz ----------------------------------------------------------------

TEST_F(ContractTest, HealthAndReadinessAnswer200) {
  for (const char* target : {"/healthz", "/readyz"}) {
    SCOPED_TRACE(target);
    EXPECT_EQ(api().call("GET", target).status, 200);
  }
}

// HEAD, which health checkers use, answers as GET without the body: here the HEAD's answer
// (its Content-Length that of GET's body) is followed at once by the next answer on the
// connection, so no body came in between.
TEST_F(ContractTest, HeadAnswersAsGetWithoutTheBody) {
  for (const char* target : {"/healthz", "/readyz"}) {
    SCOPED_TRACE(target);
    const ApiResponse get = api().call("GET", target);
    ASSERT_EQ(get.status, 200);
    const std::string answers =
        rawExchange(allotd().endpoint(),
                    std::string("HEAD ") + target + " HTTP/1.1\r\nHost: allot\r\n\r\n" + "GET " +
                        target + " HTTP/1.1\r\nHost: allot\r\nConnection: close\r\n\r\n");
    const auto end_of_head = answers.find("\r\n\r\n");
    ASSERT_NE(end_of_head, std::string::npos) << answers;
    const std::string head = answers.substr(0, end_of_head);
    EXPECT_TRUE(head.starts_with("HTTP/1.1 200 ")) << head;
    EXPECT_NE(head.find("Content-Length: " + std::to_string(get.body.size())), std::string::npos)
        << head;
    const std::string rest = answers.substr(end_of_head + 4);
    EXPECT_TRUE(rest.starts_with("HTTP/1.1 200 ")) << rest;
    EXPECT_TRUE(rest.ends_with(get.body)) << rest;
  }
  // GET /v1/preallocations too (here its 404).
  const std::string order =
      rawExchange(allotd().endpoint(), "HEAD /v1/preallocations?dept_no=" + uniqueName("d") +
                                           "&order_no=" + uniqueName("o") +
                                           " HTTP/1.1\r\nHost: allot\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(order.starts_with("HTTP/1.1 404 ")) << order;
  EXPECT_TRUE(order.ends_with("\r\n\r\n")) << order;
  // A path that takes only POST refuses HEAD, and still sends no body.
  const std::string refused = rawExchange(
      allotd().endpoint(),
      "HEAD /v1/preallocations/rollback HTTP/1.1\r\nHost: allot\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(refused.starts_with("HTTP/1.1 405 ")) << refused;
  EXPECT_TRUE(refused.ends_with("\r\n\r\n")) << refused;
}

// ---- 1. POST /v1/stock/adjust ------------------------------------------------------------

TEST_F(ContractTest, AdjustByDeltaAddsAndRemovesStock) {
  const RecordKey key = newRecord(newDept(), 0);
  struct Step {
    std::int64_t delta;
    std::int64_t on_hand;
  };
  const Step steps[] = {{10, 10}, {-3, 7}, {1'000'000, 1'000'007}, {-1'000'007, 0}, {1, 1}};
  for (const auto& step : steps) {
    SCOPED_TRACE("delta " + std::to_string(step.delta));
    EXPECT_TRUE(hasQuantities(api().adjustDelta(key, uniqueName("ref"), step.delta),
                              Quantities{step.on_hand, 0, 0}));
    EXPECT_TRUE(stockIs(key, Quantities{step.on_hand, 0, 0}));
  }
}

TEST_F(ContractTest, AdjustByOnHandSetsTheCount) {
  const RecordKey key = newRecord(newDept(), 0);
  for (const std::int64_t on_hand : {25, 5, 0, 1'000'000'000}) {
    SCOPED_TRACE("on_hand " + std::to_string(on_hand));
    EXPECT_TRUE(hasQuantities(api().adjustOnHand(key, uniqueName("ref"), on_hand),
                              Quantities{on_hand, 0, 0}));
    EXPECT_TRUE(stockIs(key, Quantities{on_hand, 0, 0}));
  }
}

TEST_F(ContractTest, AdjustWithTheSameRefReplaysTheFirstAnswer) {
  const RecordKey key = newRecord(newDept(), 0);
  const std::string ref = uniqueName("ref");
  const ApiResponse first = api().adjustDelta(key, ref, 5);
  ASSERT_TRUE(hasQuantities(first, Quantities{5, 0, 0}));
  ASSERT_TRUE(hasQuantities(api().adjustDelta(key, uniqueName("ref"), 2), Quantities{7, 0, 0}));

  // The replay answers what the first call answered (on_hand 5), not the current state, and
  // applies nothing a second time.
  const ApiResponse replay = api().adjustDelta(key, ref, 5);
  EXPECT_TRUE(hasQuantities(replay, Quantities{5, 0, 0}));
  EXPECT_TRUE(stockIs(key, Quantities{7, 0, 0}));

  const std::string on_hand_ref = uniqueName("ref");
  ASSERT_TRUE(hasQuantities(api().adjustOnHand(key, on_hand_ref, 3), Quantities{3, 0, 0}));
  ASSERT_TRUE(hasQuantities(api().adjustDelta(key, uniqueName("ref"), 4), Quantities{7, 0, 0}));
  EXPECT_TRUE(hasQuantities(api().adjustOnHand(key, on_hand_ref, 3), Quantities{3, 0, 0}));
  EXPECT_TRUE(stockIs(key, Quantities{7, 0, 0}));
}

TEST_F(ContractTest, AdjustRefReusedWithAnotherBodyIsAConflict) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 0);
  const RecordKey other = newRecord(dept, 4);
  const std::string ref = uniqueName("ref");
  ASSERT_TRUE(hasQuantities(api().adjustDelta(key, ref, 5), Quantities{5, 0, 0}));

  struct Case {
    const char* name;
    std::string body;
  };
  const Case cases[] = {
      {"another delta", adjustDeltaBody(key, ref, 6)},
      {"on_hand instead of delta", adjustOnHandBody(key, ref, 5)},
      {"another record of the dept", adjustDeltaBody(other, ref, 5)},
      {"a negative delta", adjustDeltaBody(key, ref, -5)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(
        isError(api().call("POST", "/v1/stock/adjust", c.body), 409, "idempotency_conflict"));
    EXPECT_TRUE(stockIs(key, Quantities{5, 0, 0}));
    EXPECT_TRUE(stockIs(other, Quantities{4, 0, 0}));
  }
}

TEST_F(ContractTest, AdjustRefIsUniquePerDeptOnly) {
  const RecordKey first = newRecord(newDept(), 0);
  const RecordKey second = newRecord(newDept(), 0);
  const std::string ref = uniqueName("ref");
  EXPECT_TRUE(hasQuantities(api().adjustDelta(first, ref, 5), Quantities{5, 0, 0}));
  EXPECT_TRUE(hasQuantities(api().adjustDelta(second, ref, 9), Quantities{9, 0, 0}));
}

TEST_F(ContractTest, AdjustThatWouldMakeAvailableNegativeIsRefused) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 10);
  allocate(dept, uniqueName("o"), {{key, 8}});
  const Quantities held{10, 8, 0};

  struct Case {
    const char* name;
    std::string body;
  };
  const Case cases[] = {
      {"delta below the hold", adjustDeltaBody(key, uniqueName("ref"), -3)},
      {"delta below zero on_hand", adjustDeltaBody(key, uniqueName("ref"), -11)},
      {"on_hand below the hold", adjustOnHandBody(key, uniqueName("ref"), 7)},
      {"on_hand zero under a hold", adjustOnHandBody(key, uniqueName("ref"), 0)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(isError(api().call("POST", "/v1/stock/adjust", c.body), 409, "insufficient_stock"));
    EXPECT_TRUE(stockIs(key, held));
  }
  // Exactly down to the hold is allowed: available becomes 0, not negative.
  EXPECT_TRUE(hasQuantities(api().adjustDelta(key, uniqueName("ref"), -2), Quantities{8, 8, 0}));
  EXPECT_TRUE(hasQuantities(api().adjustOnHand(key, uniqueName("ref"), 8), Quantities{8, 8, 0}));
}

TEST_F(ContractTest, NegativeAdjustOfANeverSeenRecordIsRefused) {
  const RecordKey key = newRecord(newDept(), 0);
  EXPECT_TRUE(isError(api().adjustDelta(key, uniqueName("ref"), -1), 409, "insufficient_stock"));
  const ApiResponse stock = api().stock(key);
  if (stock.status == 200) {
    EXPECT_TRUE(hasQuantities(stock, Quantities{0, 0, 0}));
  } else {
    EXPECT_TRUE(isError(stock, 404, "not_found"));
  }
}

// A delta of 0 makes nothing negative: like a count of 0, it creates the record at zero.
TEST_F(ContractTest, ZeroDeltaOfANeverSeenRecordCreatesItAtZero) {
  const RecordKey key = makeKey(newDept(), uniqueName("g"), "W1");
  EXPECT_TRUE(hasQuantities(api().adjustDelta(key, uniqueName("ref"), 0), Quantities{0, 0, 0}));
  EXPECT_TRUE(hasQuantities(api().stock(key), Quantities{0, 0, 0}));
}

// ---- 2. GET /v1/stock ----------------------------------------------------------------------

TEST_F(ContractTest, StockAnswersEveryField) {
  const std::string dept = newDept();
  RecordKey key = makeKey(dept, uniqueName("g"), "WH-2");
  key.stock_status = "2";
  key.stock_type = "7";
  key.goods_level = "B";
  ASSERT_TRUE(hasQuantities(api().adjustDelta(key, uniqueName("ref"), 12), Quantities{12, 0, 0}));
  allocate(dept, uniqueName("o"), {{key, 5}});

  const ApiResponse stock = api().stock(key);
  ASSERT_TRUE(isOk(stock));
  EXPECT_TRUE(stock.content_type.starts_with("application/json")) << stock.content_type;
  for (const auto& [name, value] : recordJson(key)) {
    const json::value* actual = stock.object()->if_contains(name);
    EXPECT_TRUE(actual != nullptr && *actual == value) << name << " in " << stock.describe();
  }
  EXPECT_TRUE(hasQuantities(stock, Quantities{12, 5, 0}));
  // The route allotd was started with (the mysql_route run sets it; see tests/CMakeLists.txt).
  const char* route = std::getenv("ALLOT_TEST_ALLOTD_ROUTE");
  EXPECT_EQ(stock.string("route"), route == nullptr ? "redis" : route) << stock.describe();
}

TEST_F(ContractTest, StockOptionalFieldsTakeTheirDefaults) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 6);  // stock_status 1, stock_type 1, goods_level A
  RecordKey other_status = key;
  other_status.stock_status = "2";
  ASSERT_TRUE(
      hasQuantities(api().adjustDelta(other_status, uniqueName("ref"), 3), Quantities{3, 0, 0}));

  const std::string short_target = "/v1/stock?dept_no=" + key.dept_no +
                                   "&goods_no=" + key.goods_no +
                                   "&warehouse_no=" + key.warehouse_no;
  const ApiResponse stock = api().call("GET", short_target);
  EXPECT_TRUE(hasQuantities(stock, Quantities{6, 0, 0}));
  EXPECT_EQ(stock.string("stock_status"), "1") << stock.describe();
  EXPECT_EQ(stock.string("stock_type"), "1") << stock.describe();
  EXPECT_EQ(stock.string("goods_level"), "A") << stock.describe();
  EXPECT_TRUE(stockIs(other_status, Quantities{3, 0, 0}));
}

TEST_F(ContractTest, StockOfANeverSeenRecordIsNotFound) {
  const RecordKey key = makeKey(newDept(), uniqueName("g"), "W1");
  EXPECT_TRUE(isError(api().stock(key), 404, "not_found"));
}

// ---- 3. POST /v1/preallocations ------------------------------------------------------------

TEST_F(ContractTest, PreallocateHoldsEveryLine) {
  const std::string dept = newDept();
  const RecordKey first = newRecord(dept, 10);
  const RecordKey second = newRecord(dept, 20);
  const std::string order = uniqueName("o");
  const ApiResponse answer = api().preallocate(dept, order, {{first, 3}, {second, 4}});
  ASSERT_TRUE(isOk(answer));
  EXPECT_EQ(answer.string("order_no"), order);
  EXPECT_EQ(answer.string("status"), "allocated");
  EXPECT_EQ(answer.boolean("replayed"), false);
  EXPECT_TRUE(hasLine(answer, first, 3, 3, 0));
  EXPECT_TRUE(hasLine(answer, second, 4, 4, 0));
  EXPECT_TRUE(stockIs(first, Quantities{10, 3, 0}));
  EXPECT_TRUE(stockIs(second, Quantities{20, 4, 0}));
}

TEST_F(ContractTest, LaterOrdersSeeEarlierHolds) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 10);
  allocate(dept, uniqueName("o"), {{key, 7}});
  EXPECT_TRUE(
      isError(api().preallocate(dept, uniqueName("o"), {{key, 4}}), 409, "insufficient_stock"));
  allocate(dept, uniqueName("o"), {{key, 3}});
  EXPECT_TRUE(stockIs(key, Quantities{10, 10, 0}));
  EXPECT_TRUE(
      isError(api().preallocate(dept, uniqueName("o"), {{key, 1}}), 409, "insufficient_stock"));
}

TEST_F(ContractTest, PreallocateRetryWithTheSameLinesReplays) {
  const std::string dept = newDept();
  const RecordKey first = newRecord(dept, 10);
  const RecordKey second = newRecord(dept, 10);
  const std::string order = uniqueName("o");
  const ApiResponse original = api().preallocate(dept, order, {{first, 3}, {second, 4}});
  ASSERT_TRUE(isOk(original));

  // The same lines, sent as they were, in another order, and with the optional record
  // fields left to their defaults: all the same order.
  json::object omitted_defaults{{"dept_no", dept}, {"order_no", order}};
  omitted_defaults["lines"] = json::array{
      json::object{{"goods_no", first.goods_no}, {"warehouse_no", first.warehouse_no}, {"qty", 3}},
      json::object{
          {"goods_no", second.goods_no}, {"warehouse_no", second.warehouse_no}, {"qty", 4}}};
  const std::pair<const char*, std::string> retries[] = {
      {"identical", preallocateBody(dept, order, {{first, 3}, {second, 4}})},
      {"lines reversed", preallocateBody(dept, order, {{second, 4}, {first, 3}})},
      {"defaults omitted", json::serialize(omitted_defaults)},
  };
  for (const auto& [name, body] : retries) {
    SCOPED_TRACE(name);
    const ApiResponse replay = api().call("POST", "/v1/preallocations", body);
    ASSERT_TRUE(isOk(replay));
    EXPECT_EQ(replay.boolean("replayed"), true) << replay.describe();
    EXPECT_EQ(replay.string("status"), "allocated");
    EXPECT_EQ(replay.string("order_no"), order);
    EXPECT_TRUE(hasLine(replay, first, 3, 3, 0));
    EXPECT_TRUE(hasLine(replay, second, 4, 4, 0));
    EXPECT_TRUE(stockIs(first, Quantities{10, 3, 0}));
    EXPECT_TRUE(stockIs(second, Quantities{10, 4, 0}));
  }
}

// A refusal names the lines that are short, and only those: a later line whose record the
// database has but Redis has not loaded yet has what its row says.
TEST_F(ContractTest, ARefusalNamesOnlyTheShortLines) {
  const std::string dept = newDept();
  const RecordKey scarce = newRecord(dept, 1);
  const RecordKey stored = makeKey(dept, uniqueName("g"), "W1");
  auto ledger = openLedger();
  ASSERT_NE(ledger, nullptr);
  ASSERT_TRUE(ledger->ensureRecord(stored).has_value());
  ASSERT_TRUE(ledger->applyAdjustment(stored, uniqueName("ref"), 5).has_value());
  const RecordKey unknown = makeKey(dept, uniqueName("g"), "W1");
  const ApiResponse refused =
      api().preallocate(dept, uniqueName("o"), {{scarce, 100}, {stored, 1}, {unknown, 1}});
  ASSERT_TRUE(isError(refused, 409, "insufficient_stock"));
  const auto* body = refused.object();
  ASSERT_NE(body, nullptr);
  const auto* lines = body->if_contains("lines");
  ASSERT_TRUE(lines != nullptr && lines->is_array()) << refused.describe();
  ASSERT_EQ(lines->as_array().size(), 2u) << refused.describe();
  EXPECT_EQ(lines->as_array()[0].as_object().at("goods_no").as_string(), scarce.goods_no);
  EXPECT_EQ(lines->as_array()[1].as_object().at("goods_no").as_string(), unknown.goods_no);
  EXPECT_EQ(refused.body.find(stored.goods_no), std::string::npos) << refused.describe();
  EXPECT_TRUE(stockIs(stored, Quantities{5, 0, 0}));
}

// However many: a long order on records Redis has not loaded names each short one, from the
// database's row or, for a record never seen, with nothing available.
TEST_F(ContractTest, ARefusalNamesEveryShortLineOfALongOrder) {
  const std::string dept = newDept();
  auto ledger = openLedger();
  ASSERT_NE(ledger, nullptr);
  std::vector<Line> lines{{newRecord(dept, 1), 100}};
  std::vector<std::string> expected{lines[0].key.goods_no};
  for (int i = 0; i < 12; ++i) {
    const RecordKey stored = makeKey(dept, uniqueName("stored"), "W1");
    ASSERT_TRUE(ledger->ensureRecord(stored).has_value());
    ASSERT_TRUE(ledger->applyAdjustment(stored, uniqueName("ref"), 2).has_value());
    const bool short_of_it = i % 2 == 0;
    lines.push_back({stored, short_of_it ? 3 : 2});
    if (short_of_it) expected.push_back(stored.goods_no);
    const RecordKey unknown = makeKey(dept, uniqueName("unknown"), "W1");
    lines.push_back({unknown, 1});
    expected.push_back(unknown.goods_no);
  }
  const ApiResponse refused = api().preallocate(dept, uniqueName("o"), lines);
  ASSERT_TRUE(isError(refused, 409, "insufficient_stock"));
  const auto* body = refused.object();
  ASSERT_NE(body, nullptr);
  const auto* named = body->if_contains("lines");
  ASSERT_TRUE(named != nullptr && named->is_array()) << refused.describe();
  std::vector<std::string> goods;
  for (const auto& line : named->as_array()) {
    goods.emplace_back(line.as_object().at("goods_no").as_string());
  }
  EXPECT_EQ(goods, expected) << refused.describe();
}

TEST_F(ContractTest, PreallocateRetryWithOtherLinesIsAConflict) {
  const std::string dept = newDept();
  const RecordKey first = newRecord(dept, 10);
  const RecordKey second = newRecord(dept, 10);
  const RecordKey third = newRecord(dept, 10);
  const std::string order = uniqueName("o");
  allocate(dept, order, {{first, 3}, {second, 4}});

  const std::pair<const char*, std::vector<Line>> others[] = {
      {"another qty", {{first, 3}, {second, 5}}},
      {"a line fewer", {{first, 3}}},
      {"a line more", {{first, 3}, {second, 4}, {third, 1}}},
      {"another record", {{first, 3}, {third, 4}}},
  };
  for (const auto& [name, lines] : others) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(isError(api().preallocate(dept, order, lines), 409, "idempotency_conflict"));
    EXPECT_TRUE(stockIs(first, Quantities{10, 3, 0}));
    EXPECT_TRUE(stockIs(second, Quantities{10, 4, 0}));
    EXPECT_TRUE(stockIs(third, Quantities{10, 0, 0}));
  }
  const ApiResponse view = api().order(dept, order);
  EXPECT_TRUE(hasLine(view, first, 3, 3, 0));
  EXPECT_TRUE(hasLine(view, second, 4, 4, 0));
}

// One short line among five, at each position: the order is refused, the answer names the
// short line, and no line of it stays held on any record.
TEST_F(ContractTest, PreallocateShortOfStockHoldsNothing) {
  const std::string dept = newDept();
  for (std::size_t short_index = 0; short_index < 5; ++short_index) {
    SCOPED_TRACE("short line at " + std::to_string(short_index));
    std::vector<Line> lines;
    for (std::size_t i = 0; i < 5; ++i) {
      lines.push_back({newRecord(dept, i == short_index ? 2 : 10), i == short_index ? 3 : 5});
    }
    const ApiResponse answer = api().preallocate(dept, uniqueName("o"), lines);
    EXPECT_TRUE(isError(answer, 409, "insufficient_stock"));
    EXPECT_NE(answer.body.find(lines[short_index].key.goods_no), std::string::npos)
        << "the refusal does not name the short line: " << answer.describe();
    for (std::size_t i = 0; i < 5; ++i) {
      EXPECT_TRUE(stockIs(lines[i].key, Quantities{i == short_index ? 2 : 10, 0, 0}));
    }
  }
}

TEST_F(ContractTest, AllowShortageTakesWhatIsAvailable) {
  const std::string dept = newDept();
  const RecordKey scarce = newRecord(dept, 5);
  const RecordKey plenty = newRecord(dept, 10);
  const std::string order = uniqueName("o");
  const ApiResponse answer = api().preallocate(dept, order, {{scarce, 8}, {plenty, 4}}, true);
  ASSERT_TRUE(isOk(answer));
  EXPECT_EQ(answer.string("status"), "shortage");
  EXPECT_EQ(answer.boolean("replayed"), false);
  EXPECT_TRUE(hasLine(answer, scarce, 8, 5, 3));
  EXPECT_TRUE(hasLine(answer, plenty, 4, 4, 0));
  EXPECT_TRUE(stockIs(scarce, Quantities{5, 5, 3}));
  EXPECT_TRUE(stockIs(plenty, Quantities{10, 4, 0}));
}

TEST_F(ContractTest, AllowShortageWithEnoughStockIsAllocated) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 5);
  const ApiResponse answer = api().preallocate(dept, uniqueName("o"), {{key, 5}}, true);
  ASSERT_TRUE(isOk(answer));
  EXPECT_EQ(answer.string("status"), "allocated");
  EXPECT_TRUE(hasLine(answer, key, 5, 5, 0));
  EXPECT_TRUE(stockIs(key, Quantities{5, 5, 0}));
}

TEST_F(ContractTest, AnUnknownRecordHasNothingAvailable) {
  const std::string dept = newDept();
  const RecordKey unknown = makeKey(dept, uniqueName("g"), "W1");
  EXPECT_TRUE(
      isError(api().preallocate(dept, uniqueName("o"), {{unknown, 1}}), 409, "insufficient_stock"));
  const ApiResponse answer = api().preallocate(dept, uniqueName("o"), {{unknown, 2}}, true);
  ASSERT_TRUE(isOk(answer));
  EXPECT_EQ(answer.string("status"), "shortage");
  EXPECT_TRUE(hasLine(answer, unknown, 2, 0, 2));
}

// ---- 4. POST /v1/preallocations/rollback ---------------------------------------------------

TEST_F(ContractTest, RollbackReturnsTheHoldAndIsIdempotent) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 10);
  const std::string order = uniqueName("o");
  allocate(dept, order, {{key, 6}});
  allocate(dept, uniqueName("o"), {{key, 1}});

  const ApiResponse first = api().rollback(dept, order);
  ASSERT_TRUE(isOk(first));
  EXPECT_EQ(first.string("order_no"), order);
  EXPECT_EQ(first.string("status"), "rolled_back");
  EXPECT_EQ(first.boolean("replayed"), false);
  EXPECT_TRUE(stockIs(key, Quantities{10, 1, 0}));

  const ApiResponse again = api().rollback(dept, order);
  ASSERT_TRUE(isOk(again));
  EXPECT_EQ(again.string("status"), "rolled_back");
  EXPECT_EQ(again.boolean("replayed"), true);
  EXPECT_TRUE(stockIs(key, Quantities{10, 1, 0}));
}

TEST_F(ContractTest, RollbackDropsTheOrdersShortage) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 5);
  const std::string order = uniqueName("o");
  ASSERT_TRUE(isOk(api().preallocate(dept, order, {{key, 8}}, true)));
  ASSERT_TRUE(isOk(api().preallocate(dept, uniqueName("o"), {{key, 2}}, true)));
  ASSERT_TRUE(stockIs(key, Quantities{5, 5, 5}));
  ASSERT_TRUE(isOk(api().rollback(dept, order)));
  EXPECT_TRUE(stockIs(key, Quantities{5, 0, 2}));
}

TEST_F(ContractTest, RollbackOfANeverSeenOrderLeavesATombstone) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 10);
  const std::string order = uniqueName("o");
  const ApiResponse rollback = api().rollback(dept, order);
  ASSERT_TRUE(isOk(rollback));
  EXPECT_EQ(rollback.string("status"), "rolled_back");
  EXPECT_TRUE(rollback.boolean("replayed").has_value()) << rollback.describe();

  // The late preallocation is refused, with and without allow_shortage, and holds nothing.
  EXPECT_TRUE(isError(api().preallocate(dept, order, {{key, 1}}), 409, "order_rolled_back"));
  EXPECT_TRUE(isError(api().preallocate(dept, order, {{key, 1}}, true), 409, "order_rolled_back"));
  EXPECT_TRUE(stockIs(key, Quantities{10, 0, 0}));
  const ApiResponse view = api().order(dept, order);
  ASSERT_TRUE(isOk(view));
  EXPECT_EQ(view.string("status"), "rolled_back");
}

TEST_F(ContractTest, PreallocateAfterRollbackIsRefused) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 10);
  const std::string order = uniqueName("o");
  allocate(dept, order, {{key, 4}});
  ASSERT_TRUE(isOk(api().rollback(dept, order)));
  EXPECT_TRUE(isError(api().preallocate(dept, order, {{key, 4}}), 409, "order_rolled_back"));
  EXPECT_TRUE(isError(api().preallocate(dept, order, {{key, 2}}), 409, "order_rolled_back"));
  EXPECT_TRUE(stockIs(key, Quantities{10, 0, 0}));
}

TEST_F(ContractTest, RollbackAfterDeductIsRefused) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 10);
  const std::string order = uniqueName("o");
  allocate(dept, order, {{key, 4}});
  ASSERT_TRUE(isOk(api().deduct(dept, order)));
  EXPECT_TRUE(isError(api().rollback(dept, order), 409, "order_deducted"));
  EXPECT_TRUE(stockIs(key, Quantities{6, 0, 0}));
}

// ---- 5. POST /v1/preallocations/deduct -----------------------------------------------------

TEST_F(ContractTest, DeductShipsTheHoldAndIsIdempotent) {
  const std::string dept = newDept();
  const RecordKey first = newRecord(dept, 10);
  const RecordKey second = newRecord(dept, 10);
  const std::string order = uniqueName("o");
  allocate(dept, order, {{first, 3}, {second, 2}});
  allocate(dept, uniqueName("o"), {{first, 4}});

  const ApiResponse deduct = api().deduct(dept, order);
  ASSERT_TRUE(isOk(deduct));
  EXPECT_EQ(deduct.string("order_no"), order);
  EXPECT_EQ(deduct.string("status"), "deducted");
  EXPECT_EQ(deduct.boolean("replayed"), false);
  EXPECT_TRUE(stockIs(first, Quantities{7, 4, 0}));
  EXPECT_TRUE(stockIs(second, Quantities{8, 0, 0}));

  const ApiResponse again = api().deduct(dept, order);
  ASSERT_TRUE(isOk(again));
  EXPECT_EQ(again.string("status"), "deducted");
  EXPECT_EQ(again.boolean("replayed"), true);
  EXPECT_TRUE(stockIs(first, Quantities{7, 4, 0}));
  EXPECT_TRUE(stockIs(second, Quantities{8, 0, 0}));
}

TEST_F(ContractTest, DeductClosesTheOrdersShortage) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 5);
  const std::string order = uniqueName("o");
  ASSERT_TRUE(isOk(api().preallocate(dept, order, {{key, 8}}, true)));
  ASSERT_TRUE(isOk(api().preallocate(dept, uniqueName("o"), {{key, 1}}, true)));
  ASSERT_TRUE(stockIs(key, Quantities{5, 5, 4}));
  ASSERT_TRUE(isOk(api().deduct(dept, order)));
  EXPECT_TRUE(stockIs(key, Quantities{0, 0, 1}));
}

TEST_F(ContractTest, DeductOfAnUnknownOrderIsNotFound) {
  EXPECT_TRUE(isError(api().deduct(newDept(), uniqueName("o")), 404, "not_found"));
}

TEST_F(ContractTest, DeductAfterRollbackIsRefused) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 10);
  const std::string order = uniqueName("o");
  allocate(dept, order, {{key, 4}});
  ASSERT_TRUE(isOk(api().rollback(dept, order)));
  EXPECT_TRUE(isError(api().deduct(dept, order), 409, "order_rolled_back"));
  EXPECT_TRUE(stockIs(key, Quantities{10, 0, 0}));

  const std::string tombstone = uniqueName("o");
  ASSERT_TRUE(isOk(api().rollback(dept, tombstone)));
  EXPECT_TRUE(isError(api().deduct(dept, tombstone), 409, "order_rolled_back"));
}

// ---- 6. GET /v1/preallocations -------------------------------------------------------------

TEST_F(ContractTest, OrderViewShowsEveryState) {
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, 10);
  // What allocated means for a released hold is not the contract's business: a rolled-back
  // order's view is checked for its status and its line's qty only.
  struct Case {
    const char* status;
    std::int64_t qty;
    std::int64_t allocated;
    std::int64_t shortage;
    bool outcome_checked;
  };
  const Case cases[] = {
      {"allocated", 2, 2, 0, true},  // holds 2
      {"rolled_back", 1, 1, 0, false},
      {"deducted", 3, 3, 0, true},  // on_hand 7
      {"shortage", 9, 5, 4, true},  // takes the 5 still available
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.status);
    const std::string order = uniqueName("o");
    ASSERT_TRUE(isOk(api().preallocate(dept, order, {{key, c.qty}}, true)));
    if (std::string_view(c.status) == "rolled_back") {
      ASSERT_TRUE(isOk(api().rollback(dept, order)));
    }
    if (std::string_view(c.status) == "deducted") {
      ASSERT_TRUE(isOk(api().deduct(dept, order)));
    }
    const ApiResponse view = api().order(dept, order);
    ASSERT_TRUE(isOk(view));
    EXPECT_EQ(view.string("order_no"), order);
    EXPECT_EQ(view.string("status"), c.status);
    if (c.outcome_checked) {
      EXPECT_TRUE(hasLine(view, key, c.qty, c.allocated, c.shortage));
    } else {
      const json::object* line = findLine(view, key);
      ASSERT_NE(line, nullptr) << view.describe();
      EXPECT_TRUE(line->contains("qty") && line->at("qty") == json::value(c.qty))
          << view.describe();
    }
  }
  EXPECT_TRUE(stockIs(key, Quantities{7, 7, 4}));
}

TEST_F(ContractTest, OrderViewOfAnUnknownOrderIsNotFound) {
  EXPECT_TRUE(isError(api().order(newDept(), uniqueName("o")), 404, "not_found"));
}

// ---- The bearer token ----------------------------------------------------------------------

// A second allotd with ALLOT_API_TOKEN: every /v1 call without the exact token is refused
// before it does anything; /healthz and /readyz need no token.
TEST(ContractAuthTest, ApiTokenGuardsEveryV1Call) {
  const std::string token = "t0ken-" + uniqueName("api");
  auto started = AllotdProcess::start(allotdOptions(token));
  ASSERT_TRUE(started.has_value()) << started.error().message;
  AllotdProcess& allotd = **started;

  const std::string dept = uniqueName("d");
  const RecordKey key = makeKey(dept, uniqueName("g"), "W1");
  const std::string order = uniqueName("o");
  struct Request {
    const char* method;
    std::string target;
    std::string body;
  };
  const Request requests[] = {
      {"POST", "/v1/stock/adjust", adjustDeltaBody(key, uniqueName("ref"), 5)},
      {"GET", stockTarget(key), ""},
      {"POST", "/v1/preallocations", preallocateBody(dept, order, {{key, 1}})},
      {"POST", "/v1/preallocations/rollback", orderRefBody(dept, order)},
      {"POST", "/v1/preallocations/deduct", orderRefBody(dept, order)},
      {"GET", orderTarget(dept, order), ""},
  };
  const std::pair<const char*, std::vector<std::pair<std::string, std::string>>> credentials[] = {
      {"no header", {}},
      {"wrong token", {{"Authorization", "Bearer wrong-" + token}}},
      {"token with a suffix", {{"Authorization", "Bearer " + token + "x"}}},
      {"empty bearer", {{"Authorization", "Bearer "}}},
      {"another scheme", {{"Authorization", "Basic " + token}}},
      {"admin token", {{"Authorization", "Bearer " + allotd.adminToken()}}},
  };
  ApiClient anonymous(allotd.endpoint());
  for (const auto& request : requests) {
    for (const auto& [name, headers] : credentials) {
      SCOPED_TRACE(std::string(request.method) + " " + request.target + " with " + name);
      EXPECT_TRUE(isError(anonymous.call(request.method, request.target, request.body, headers),
                          401, "unauthorized"));
    }
  }
  // Nothing of the refused calls happened.
  ApiClient authorized(allotd.endpoint(), token);
  EXPECT_TRUE(isError(authorized.stock(key), 404, "not_found"));
  EXPECT_TRUE(isError(authorized.order(dept, order), 404, "not_found"));
  EXPECT_TRUE(
      hasQuantities(authorized.adjustDelta(key, uniqueName("ref"), 5), Quantities{5, 0, 0}));
  EXPECT_TRUE(isOk(authorized.preallocate(dept, order, {{key, 1}})));
  // The scheme's name is case-insensitive (RFC 7235), and more than one space may follow it.
  for (const std::string& header : {"bearer " + token, "BEARER " + token, "Bearer  " + token}) {
    SCOPED_TRACE(header);
    EXPECT_TRUE(isOk(anonymous.call("GET", stockTarget(key), "", {{"Authorization", header}})));
  }
  EXPECT_TRUE(
      isError(anonymous.call("GET", stockTarget(key), "", {{"Authorization", "Bearer" + token}}),
              401, "unauthorized"));

  for (const char* target : {"/healthz", "/readyz"}) {
    EXPECT_EQ(anonymous.call("GET", target).status, 200) << target;
  }
  if (::testing::Test::HasFailure()) std::cerr << allotd.logTail(40) << "\n";
}

// A service under a supervisor is stopped with SIGTERM: it should exit by itself, with 0.
TEST(ContractLifecycleTest, ExitsCleanlyOnSigterm) {
  auto started = AllotdProcess::start(allotdOptions());
  ASSERT_TRUE(started.has_value()) << started.error().message;
  auto stopped = (*started)->stop(std::chrono::seconds(15));
  ASSERT_TRUE(stopped.has_value()) << stopped.error().message;
  EXPECT_TRUE(WIFEXITED(*stopped) && WEXITSTATUS(*stopped) == 0)
      << "wait status " << *stopped << "\n"
      << (*started)->logTail(40);
}

}  // namespace
}  // namespace allot::testing
