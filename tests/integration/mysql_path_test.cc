// The MySQL path (mysql/mysql_path.h) against a real MariaDB (ALLOT_TEST_MYSQL_URL): every
// operation's answers and refusals, what each leaves in the rows it shares with the
// write-back, and no oversell under concurrency. Every test works on a dept_no of its own,
// and every test ends by checking the stored invariant of its dept: a record's preallocated
// and shortage are the sums over its held order lines.
#include "mysql/mysql_path.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <future>
#include <iostream>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "core/limits.h"
#include "mysql/mysql_ledger.h"
#include "mysql/route_table.h"
#include "mysql/url.h"
#include "support/test_env.h"

namespace allot::mysql {
namespace {

constexpr int kUnavailableRetriesMax = 20;

MysqlOptions testOptions() {
  auto options = parseMysqlUrl(testing::mysqlUrl());
  EXPECT_TRUE(options) << "ALLOT_TEST_MYSQL_URL: " << options.error().message;
  return options ? *options : MysqlOptions{};
}

std::string describe(const Error& error) {
  return std::string(errorCodeName(error.code)) + ": " + error.message;
}

class MysqlPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ledger = MysqlLedger::open(testOptions());
    ASSERT_TRUE(ledger) << ledger.error().message;
    ledger_ = std::move(*ledger);
    path_ = std::make_unique<MysqlPath>(ledger_->pool());
    dept_ = testing::uniqueName("d");
  }

  void TearDown() override {
    if (ledger_) expectHeldLinesMatchStock();
  }

  RecordKey key(const std::string& goods_no) const { return RecordKey{dept_, goods_no, "WH-1"}; }

  RecordKey seeded(const std::string& goods_no, std::int64_t on_hand) {
    const RecordKey record = key(goods_no);
    // A count, not a delta: a delta of 0 would not create the record.
    auto done =
        path_->adjust(setRequest(record, testing::uniqueName("ref"), on_hand), "seed-" + goods_no);
    EXPECT_TRUE(done) << describe(done.error());
    return record;
  }

  static AdjustRequest deltaRequest(const RecordKey& record, const std::string& ref,
                                    std::int64_t delta) {
    return AdjustRequest{record, ref, delta, std::nullopt};
  }
  static AdjustRequest setRequest(const RecordKey& record, const std::string& ref,
                                  std::int64_t on_hand) {
    return AdjustRequest{record, ref, std::nullopt, on_hand};
  }

  PreallocateRequest order(const std::string& order_no, std::vector<LineRequest> lines,
                           bool allow_shortage = false) const {
    return PreallocateRequest{dept_, order_no, std::move(lines), allow_shortage};
  }

  // The quantities of a record, or {-1, -1, -1} when it cannot be read.
  Quantities stock(const RecordKey& record) {
    auto found = path_->readRecord(record);
    EXPECT_TRUE(found) << record.index() << ": " << describe(found.error());
    return found ? *found : Quantities{-1, -1, -1};
  }

  // A preallocation that must be answered 200; its answer.
  OrderAnswer allocated(const PreallocateRequest& request) {
    auto outcome = path_->preallocate(request);
    EXPECT_TRUE(outcome) << describe(outcome.error());
    if (!outcome) return {};
    EXPECT_TRUE(std::holds_alternative<OrderAnswer>(*outcome)) << "refused " << request.order_no;
    return std::holds_alternative<OrderAnswer>(*outcome) ? std::get<OrderAnswer>(*outcome)
                                                         : OrderAnswer{};
  }

  std::vector<std::string> sqlColumn(std::string_view sql, std::initializer_list<Param> params) {
    auto lease = ledger_->pool().acquire();
    EXPECT_TRUE(lease) << describe(lease.error());
    if (!lease) return {};
    auto rows = (*lease)->query(sql, params);
    EXPECT_TRUE(rows) << describe(rows.error());
    std::vector<std::string> values;
    if (rows) {
      for (const auto& row : *rows) values.emplace_back(row.text(0));
    }
    return values;
  }
  std::vector<std::string> lineStates(const std::string& order_no) {
    return sqlColumn(
        "SELECT state FROM order_lines WHERE dept_no = ? AND order_no = ? "
        "ORDER BY line_no",
        {dept_, order_no});
  }
  std::vector<std::string> orderStatus(const std::string& order_no) {
    return sqlColumn("SELECT status FROM orders WHERE dept_no = ? AND order_no = ?",
                     {dept_, order_no});
  }

  // The invariant the write-back relies on: preallocated and shortage of every record of the
  // dept are the sums of allocated and shortage over its held lines.
  void expectHeldLinesMatchStock() {
    auto lease = ledger_->pool().acquire();
    ASSERT_TRUE(lease) << describe(lease.error());
    auto rows = (*lease)->query(
        "SELECT s.goods_no, s.preallocated, s.shortage, COALESCE(SUM(l.allocated), 0), "
        "COALESCE(SUM(l.shortage), 0), s.on_hand FROM stock s LEFT JOIN order_lines l ON "
        "l.dept_no = s.dept_no AND l.goods_no = s.goods_no AND l.warehouse_no = s.warehouse_no "
        "AND l.stock_status = s.stock_status AND l.stock_type = s.stock_type AND "
        "l.goods_level = s.goods_level AND l.state = 'held' WHERE s.dept_no = ? "
        "GROUP BY s.goods_no, s.warehouse_no, s.stock_status, s.stock_type, s.goods_level, "
        "s.preallocated, s.shortage, s.on_hand",
        {dept_});
    ASSERT_TRUE(rows) << describe(rows.error());
    for (const auto& row : *rows) {
      SCOPED_TRACE(std::string(row.text(0)));
      EXPECT_EQ(row.text(1), row.text(3)) << "preallocated vs held allocated";
      EXPECT_EQ(row.text(2), row.text(4)) << "shortage vs held shortage";
      EXPECT_LE(*row.integer(1), *row.integer(5)) << "preallocated above on_hand";
    }
  }

  std::unique_ptr<MysqlLedger> ledger_;
  std::unique_ptr<MysqlPath> path_;
  std::string dept_;
};

// ---- adjust and readRecord ----

TEST_F(MysqlPathTest, AdjustStepsOnOneRecord) {
  const RecordKey record = key("SKU-1");
  const RecordKey other = seeded("SKU-2", 4);
  const std::string first_ref = testing::uniqueName("ref");
  struct Step {
    const char* name;
    AdjustRequest request;
    std::string digest;
    std::optional<ErrorCode> error;
    Quantities answer;  // when no error
    Quantities after;
  };
  const Step steps[] = {
      {"increase creates", deltaRequest(record, first_ref, 10), "d10", {}, {10, 0, 0}, {10, 0, 0}},
      {"decrease", deltaRequest(record, "r2", -3), "d-3", {}, {7, 0, 0}, {7, 0, 0}},
      {"set", setRequest(record, "r3", 25), "s25", {}, {25, 0, 0}, {25, 0, 0}},
      {"replay answers the first answer",
       deltaRequest(record, first_ref, 10),
       "d10",
       {},
       {10, 0, 0},
       {25, 0, 0}},
      {"same ref, other body",
       deltaRequest(record, first_ref, 11),
       "d11",
       ErrorCode::kIdempotencyConflict,
       {},
       {25, 0, 0}},
      {"same ref, other record",
       deltaRequest(other, first_ref, 10),
       "d10",
       ErrorCode::kIdempotencyConflict,
       {},
       {25, 0, 0}},
      {"below zero",
       deltaRequest(record, "r4", -26),
       "d-26",
       ErrorCode::kInsufficientStock,
       {},
       {25, 0, 0}},
      {"set above the limit",
       setRequest(record, "r5", limits::kOnHandMax + 1),
       "s-big",
       ErrorCode::kInvalidRequest,
       {},
       {25, 0, 0}},
      {"delta above the limit",
       deltaRequest(record, "r6", limits::kOnHandMax),
       "d-big",
       ErrorCode::kInvalidRequest,
       {},
       {25, 0, 0}},
      {"a refused ref is free again",
       deltaRequest(record, "r4", -25),
       "d-25",
       {},
       {0, 0, 0},
       {0, 0, 0}},
      {"set to the limit",
       setRequest(record, "r7", limits::kOnHandMax),
       "s-max",
       {},
       {limits::kOnHandMax, 0, 0},
       {limits::kOnHandMax, 0, 0}},
  };
  for (const auto& step : steps) {
    SCOPED_TRACE(step.name);
    auto answer = path_->adjust(step.request, step.digest);
    if (step.error) {
      ASSERT_FALSE(answer) << "answered on_hand " << answer->on_hand;
      EXPECT_EQ(answer.error().code, *step.error) << describe(answer.error());
    } else {
      ASSERT_TRUE(answer) << describe(answer.error());
      EXPECT_EQ(*answer, step.answer);
    }
    EXPECT_EQ(stock(record), step.after);
    EXPECT_EQ(stock(other), (Quantities{4, 0, 0}));
  }
}

TEST_F(MysqlPathTest, AdjustNeverMakesAvailableNegative) {
  const RecordKey record = seeded("SKU-1", 10);
  allocated(order("o1", {{record, 8}}));
  struct Case {
    const char* name;
    AdjustRequest request;
  };
  const Case refused[] = {
      {"delta below the hold", deltaRequest(record, "a1", -3)},
      {"delta below zero", deltaRequest(record, "a2", -11)},
      {"set below the hold", setRequest(record, "a3", 7)},
      {"set to zero under a hold", setRequest(record, "a4", 0)},
  };
  for (const auto& c : refused) {
    SCOPED_TRACE(c.name);
    auto answer = path_->adjust(c.request, c.name);
    ASSERT_FALSE(answer);
    EXPECT_EQ(answer.error().code, ErrorCode::kInsufficientStock) << describe(answer.error());
    EXPECT_EQ(stock(record), (Quantities{10, 8, 0}));
  }
  auto down = path_->adjust(deltaRequest(record, "a5", -2), "d-2");
  ASSERT_TRUE(down) << describe(down.error());
  EXPECT_EQ(*down, (Quantities{8, 8, 0}));
  auto set = path_->adjust(setRequest(record, "a6", 8), "s8");
  ASSERT_TRUE(set) << describe(set.error());
  EXPECT_EQ(*set, (Quantities{8, 8, 0}));
}

// A delta of 0 makes nothing negative, so it creates the record at zero as a count of 0 does.
TEST_F(MysqlPathTest, EverythingButADecreaseCreatesARecord) {
  struct Case {
    const char* name;
    AdjustRequest request;
    bool creates;
    Quantities after;
  };
  const Case cases[] = {
      {"decrease", deltaRequest(key("A"), "c1", -1), false, {}},
      {"zero delta", deltaRequest(key("B"), "c2", 0), true, {0, 0, 0}},
      {"increase", deltaRequest(key("C"), "c3", 3), true, {3, 0, 0}},
      {"count of zero", setRequest(key("D"), "c4", 0), true, {0, 0, 0}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto answer = path_->adjust(c.request, c.name);
    auto read = path_->readRecord(c.request.key);
    if (c.creates) {
      ASSERT_TRUE(answer) << describe(answer.error());
      EXPECT_EQ(*answer, c.after);
      ASSERT_TRUE(read) << describe(read.error());
      EXPECT_EQ(*read, c.after);
    } else {
      ASSERT_FALSE(answer);
      EXPECT_EQ(answer.error().code, ErrorCode::kInsufficientStock) << describe(answer.error());
      ASSERT_FALSE(read);
      EXPECT_EQ(read.error().code, ErrorCode::kNotFound);
    }
  }
}

// A ref row left by another writer: a claim that never finished (pending), or a change the
// write-back applied without a body (applied, digest NULL). The path resumes or adopts it
// and never applies a change twice.
TEST_F(MysqlPathTest, AdjustResumesRefsLeftByOthers) {
  struct Case {
    const char* name;
    const char* state;
    std::optional<std::string> stored_digest;
    std::int64_t delta;
    std::optional<ErrorCode> error;
    Quantities after;
    const char* state_after;  // "absent": the row is gone
  };
  const Case cases[] = {
      {"pending claim is resumed", "pending", "d5", 5, std::nullopt, {15, 0, 0}, "complete"},
      {"applied change is not applied twice",
       "applied",
       std::nullopt,
       5,
       std::nullopt,
       {10, 0, 0},
       "complete"},
      {"refused pending claim is dropped",
       "pending",
       "d-50",
       -50,
       ErrorCode::kInsufficientStock,
       {10, 0, 0},
       "absent"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const RecordKey record = seeded(testing::uniqueName("g"), 10);
    const std::string ref = testing::uniqueName("ref");
    const std::string digest = "d" + std::to_string(c.delta);
    {
      auto lease = ledger_->pool().acquire();
      ASSERT_TRUE(lease) << describe(lease.error());
      Param stored = nullptr;
      if (c.stored_digest) stored = std::string_view(*c.stored_digest);
      auto inserted = (*lease)->execute(
          "INSERT INTO stock_adjustments (dept_no, ref, goods_no, warehouse_no, stock_status, "
          "stock_type, goods_level, body_digest, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
          {record.dept_no, ref, record.goods_no, record.warehouse_no, record.stock_status,
           record.stock_type, record.goods_level, stored, c.state});
      ASSERT_TRUE(inserted) << describe(inserted.error());
    }
    auto answer = path_->adjust(deltaRequest(record, ref, c.delta), digest);
    if (c.error) {
      ASSERT_FALSE(answer);
      EXPECT_EQ(answer.error().code, *c.error) << describe(answer.error());
    } else {
      ASSERT_TRUE(answer) << describe(answer.error());
      EXPECT_EQ(*answer, c.after);
    }
    EXPECT_EQ(stock(record), c.after);
    const auto state = sqlColumn(
        "SELECT state FROM stock_adjustments WHERE dept_no = ? AND ref = ?", {dept_, ref});
    EXPECT_EQ(state.empty() ? "absent" : state[0], c.state_after);
  }
}

TEST_F(MysqlPathTest, ReadinessAnswers) {
  auto ready = path_->checkReady();
  EXPECT_TRUE(ready) << describe(ready.error());
}

// ---- preallocate ----

// One preallocation case: the records (seeded or never seen), the request, and what the
// answer and the records must be afterwards.
struct OutcomeLine {
  std::string goods_no;
  std::int64_t on_hand;  // -1: a record never seen
  std::int64_t qty;
  // Expected: allocated and shortage of the line (or, for a refusal, whether it is named
  // short), and the record's quantities after.
  std::int64_t allocated;
  std::int64_t shortage;
  bool named_short;
  std::optional<Quantities> after;  // nullopt: the record still does not exist
};

struct OutcomeCase {
  const char* name;
  bool allow_shortage;
  std::optional<OrderStatus> status;  // nullopt: refused
  std::vector<OutcomeLine> lines;
};

class MysqlPathOutcomeTest : public MysqlPathTest {
 protected:
  void expectAnswer(const OutcomeCase& c, const std::vector<LineRequest>& lines,
                    const std::string& order_no, const OrderAnswer& answer) {
    EXPECT_EQ(answer.order_no, order_no);
    EXPECT_EQ(answer.status, *c.status);
    EXPECT_FALSE(answer.replayed);
    ASSERT_EQ(answer.lines.size(), c.lines.size());
    for (std::size_t i = 0; i < c.lines.size(); ++i) {
      EXPECT_EQ(answer.lines[i].key, lines[i].key) << "line " << i;
      EXPECT_EQ(answer.lines[i].qty, c.lines[i].qty) << "line " << i;
      EXPECT_EQ(answer.lines[i].allocated, c.lines[i].allocated) << "line " << i;
      EXPECT_EQ(answer.lines[i].shortage, c.lines[i].shortage) << "line " << i;
    }
    EXPECT_EQ(orderStatus(order_no),
              std::vector<std::string>{std::string(orderStatusName(*c.status))});
    EXPECT_EQ(lineStates(order_no), std::vector<std::string>(c.lines.size(), "held"));
  }

  void expectRefusal(const OutcomeCase& c, const std::vector<LineRequest>& lines,
                     const std::string& order_no, const PreallocateRefusal& refusal) {
    std::vector<ShortLine> expected;
    for (std::size_t i = 0; i < c.lines.size(); ++i) {
      if (!c.lines[i].named_short) continue;
      expected.push_back(
          {lines[i].key, c.lines[i].qty, std::max<std::int64_t>(c.lines[i].on_hand, 0)});
    }
    ASSERT_EQ(refusal.short_lines.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(refusal.short_lines[i].key, expected[i].key);
      EXPECT_EQ(refusal.short_lines[i].qty, expected[i].qty);
      EXPECT_EQ(refusal.short_lines[i].available, expected[i].available);
    }
    // Nothing of a refused order is left behind, so its order_no can be used again.
    EXPECT_TRUE(orderStatus(order_no).empty());
    EXPECT_TRUE(lineStates(order_no).empty());
  }

  void expectRecords(const OutcomeCase& c, const std::vector<LineRequest>& lines) {
    for (std::size_t i = 0; i < c.lines.size(); ++i) {
      SCOPED_TRACE("record of line " + std::to_string(i));
      auto read = path_->readRecord(lines[i].key);
      if (c.lines[i].after) {
        ASSERT_TRUE(read) << describe(read.error());
        EXPECT_EQ(*read, *c.lines[i].after);
      } else {
        ASSERT_FALSE(read);
        EXPECT_EQ(read.error().code, ErrorCode::kNotFound);
      }
    }
  }
};

TEST_F(MysqlPathOutcomeTest, PreallocateOutcomes) {
  const OutcomeCase cases[] = {
      {"every line held",
       false,
       OrderStatus::kAllocated,
       {{"A", 10, 3, 3, 0, false, Quantities{10, 3, 0}},
        {"B", 20, 20, 20, 0, false, Quantities{20, 20, 0}}}},
      {"one short line refuses all",
       false,
       std::nullopt,
       {{"A", 10, 5, 0, 0, false, Quantities{10, 0, 0}},
        {"B", 2, 3, 0, 0, true, Quantities{2, 0, 0}},
        {"C", 10, 5, 0, 0, false, Quantities{10, 0, 0}}}},
      {"every short line is named",
       false,
       std::nullopt,
       {{"C", 1, 2, 0, 0, true, Quantities{1, 0, 0}},
        {"A", 10, 5, 0, 0, false, Quantities{10, 0, 0}},
        {"B", 0, 1, 0, 0, true, Quantities{0, 0, 0}}}},
      {"an unknown record has nothing",
       false,
       std::nullopt,
       {{"A", 10, 1, 0, 0, false, Quantities{10, 0, 0}}, {"B", -1, 1, 0, 0, true, std::nullopt}}},
      {"shortage takes what is there",
       true,
       OrderStatus::kShortage,
       {{"A", 5, 8, 5, 3, false, Quantities{5, 5, 3}},
        {"B", 10, 4, 4, 0, false, Quantities{10, 4, 0}}}},
      {"shortage on an unknown record creates it",
       true,
       OrderStatus::kShortage,
       {{"A", -1, 2, 0, 2, false, Quantities{0, 0, 2}}}},
      {"allow_shortage with enough is allocated",
       true,
       OrderStatus::kAllocated,
       {{"A", 5, 5, 5, 0, false, Quantities{5, 5, 0}}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string prefix = testing::uniqueName("g");
    std::vector<LineRequest> lines;
    for (const auto& line : c.lines) {
      const RecordKey record = line.on_hand >= 0 ? seeded(prefix + line.goods_no, line.on_hand)
                                                 : key(prefix + line.goods_no);
      lines.push_back({record, line.qty});
    }
    const std::string order_no = testing::uniqueName("o");
    auto outcome = path_->preallocate(order(order_no, lines, c.allow_shortage));
    ASSERT_TRUE(outcome) << describe(outcome.error());
    ASSERT_EQ(std::holds_alternative<OrderAnswer>(*outcome), c.status.has_value());
    if (c.status) {
      expectAnswer(c, lines, order_no, std::get<OrderAnswer>(*outcome));
    } else {
      expectRefusal(c, lines, order_no, std::get<PreallocateRefusal>(*outcome));
    }
    expectRecords(c, lines);
  }
}

TEST_F(MysqlPathTest, ARefusedOrderMayBeRetriedLater) {
  const RecordKey record = seeded("SKU-1", 2);
  auto refused = path_->preallocate(order("o1", {{record, 3}}));
  ASSERT_TRUE(refused) << describe(refused.error());
  ASSERT_TRUE(std::holds_alternative<PreallocateRefusal>(*refused));
  ASSERT_TRUE(path_->adjust(deltaRequest(record, "more", 1), "d1"));
  const OrderAnswer answer = allocated(order("o1", {{record, 3}}));
  EXPECT_EQ(answer.status, OrderStatus::kAllocated);
  EXPECT_FALSE(answer.replayed);
  EXPECT_EQ(stock(record), (Quantities{3, 3, 0}));
}

TEST_F(MysqlPathTest, RetriesReplayOrConflict) {
  const RecordKey a = seeded("A", 10);
  const RecordKey b = seeded("B", 10);
  const RecordKey c = seeded("C", 10);
  const OrderAnswer first = allocated(order("o1", {{a, 3}, {b, 4}}));
  ASSERT_EQ(first.status, OrderStatus::kAllocated);
  struct Retry {
    const char* name;
    std::vector<LineRequest> lines;
    bool allow_shortage;
    std::optional<ErrorCode> error;  // nullopt: a replay
  };
  const Retry retries[] = {
      {"identical", {{a, 3}, {b, 4}}, false, std::nullopt},
      {"lines reversed", {{b, 4}, {a, 3}}, false, std::nullopt},
      {"with allow_shortage", {{a, 3}, {b, 4}}, true, std::nullopt},
      {"another qty", {{a, 3}, {b, 5}}, false, ErrorCode::kIdempotencyConflict},
      {"a line fewer", {{a, 3}}, false, ErrorCode::kIdempotencyConflict},
      {"a line more", {{a, 3}, {b, 4}, {c, 1}}, false, ErrorCode::kIdempotencyConflict},
      {"another record", {{a, 3}, {c, 4}}, false, ErrorCode::kIdempotencyConflict},
  };
  for (const auto& retry : retries) {
    SCOPED_TRACE(retry.name);
    auto outcome = path_->preallocate(order("o1", retry.lines, retry.allow_shortage));
    if (retry.error) {
      ASSERT_FALSE(outcome);
      EXPECT_EQ(outcome.error().code, *retry.error) << describe(outcome.error());
    } else {
      ASSERT_TRUE(outcome) << describe(outcome.error());
      ASSERT_TRUE(std::holds_alternative<OrderAnswer>(*outcome));
      const auto& replay = std::get<OrderAnswer>(*outcome);
      EXPECT_TRUE(replay.replayed);
      EXPECT_EQ(replay.status, OrderStatus::kAllocated);
      ASSERT_EQ(replay.lines.size(), 2u);
      // The first answer's lines, in the first request's order.
      EXPECT_EQ(replay.lines[0].key, a);
      EXPECT_EQ(replay.lines[0].allocated, 3);
      EXPECT_EQ(replay.lines[1].key, b);
      EXPECT_EQ(replay.lines[1].allocated, 4);
    }
    EXPECT_EQ(stock(a), (Quantities{10, 3, 0}));
    EXPECT_EQ(stock(b), (Quantities{10, 4, 0}));
    EXPECT_EQ(stock(c), (Quantities{10, 0, 0}));
  }
}

// After a deduct, a retry still replays the first answer, allocated or shortage.
TEST_F(MysqlPathTest, ReplayAfterDeductAnswersTheFirstStatus) {
  const RecordKey record = seeded("SKU-1", 5);
  for (const auto& [qty, status] :
       {std::pair{2, OrderStatus::kAllocated}, std::pair{9, OrderStatus::kShortage}}) {
    SCOPED_TRACE(std::string(orderStatusName(status)));
    const std::string order_no = testing::uniqueName("o");
    const auto request = order(order_no, {{record, qty}}, true);
    ASSERT_EQ(allocated(request).status, status);
    auto deducted = path_->deduct({dept_, order_no});
    ASSERT_TRUE(deducted) << describe(deducted.error());
    const OrderAnswer replay = allocated(request);
    EXPECT_TRUE(replay.replayed);
    EXPECT_EQ(replay.status, status);
  }
}

// ---- rollback, deduct, findOrder ----

TEST_F(MysqlPathTest, RollbackReleasesAndLeavesATombstone) {
  const RecordKey record = seeded("SKU-1", 5);
  const RecordKey plenty = seeded("SKU-2", 10);
  allocated(order("o1", {{record, 8}, {plenty, 4}}, true));
  allocated(order("o2", {{record, 2}}, true));
  ASSERT_EQ(stock(record), (Quantities{5, 5, 5}));

  auto first = path_->rollback({dept_, "o1"});
  ASSERT_TRUE(first) << describe(first.error());
  EXPECT_EQ(first->order_no, "o1");
  EXPECT_EQ(first->status, OrderStatus::kRolledBack);
  EXPECT_FALSE(first->replayed);
  EXPECT_EQ(stock(record), (Quantities{5, 0, 2}));
  EXPECT_EQ(stock(plenty), (Quantities{10, 0, 0}));
  EXPECT_EQ(lineStates("o1"), (std::vector<std::string>{"released", "released"}));
  EXPECT_EQ(orderStatus("o1"), std::vector<std::string>{"rolled_back"});

  auto again = path_->rollback({dept_, "o1"});
  ASSERT_TRUE(again) << describe(again.error());
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(stock(record), (Quantities{5, 0, 2}));

  // The view keeps the first answer's lines under the final status.
  auto view = path_->findOrder({dept_, "o1"});
  ASSERT_TRUE(view) << describe(view.error());
  EXPECT_EQ(view->status, OrderStatus::kRolledBack);
  ASSERT_EQ(view->lines.size(), 2u);
  EXPECT_EQ(view->lines[0].qty, 8);
  EXPECT_EQ(view->lines[0].shortage, 3);
}

TEST_F(MysqlPathTest, WhatARolledBackOrderRefuses) {
  const RecordKey record = seeded("SKU-1", 10);
  allocated(order("held", {{record, 4}}));
  ASSERT_TRUE(path_->rollback({dept_, "held"}));
  auto tombstone = path_->rollback({dept_, "never-seen"});
  ASSERT_TRUE(tombstone) << describe(tombstone.error());
  EXPECT_EQ(tombstone->status, OrderStatus::kRolledBack);
  EXPECT_EQ(orderStatus("never-seen"), std::vector<std::string>{"rolled_back"});

  for (const char* order_no : {"held", "never-seen"}) {
    SCOPED_TRACE(order_no);
    for (const auto& [qty, allow_shortage] :
         {std::pair{4, false}, std::pair{2, false}, std::pair{1, true}}) {
      auto late = path_->preallocate(order(order_no, {{record, qty}}, allow_shortage));
      ASSERT_FALSE(late);
      EXPECT_EQ(late.error().code, ErrorCode::kOrderRolledBack) << describe(late.error());
    }
    auto deduct = path_->deduct({dept_, order_no});
    ASSERT_FALSE(deduct);
    EXPECT_EQ(deduct.error().code, ErrorCode::kOrderRolledBack) << describe(deduct.error());
    auto view = path_->findOrder({dept_, order_no});
    ASSERT_TRUE(view) << describe(view.error());
    EXPECT_EQ(view->status, OrderStatus::kRolledBack);
  }
  auto bare = path_->findOrder({dept_, "never-seen"});
  ASSERT_TRUE(bare);
  EXPECT_TRUE(bare->lines.empty());
  EXPECT_EQ(stock(record), (Quantities{10, 0, 0}));
}

TEST_F(MysqlPathTest, DeductShipsTheHoldAndClosesTheShortage) {
  const RecordKey scarce = seeded("SKU-1", 5);
  const RecordKey plenty = seeded("SKU-2", 10);
  allocated(order("o1", {{scarce, 8}, {plenty, 3}}, true));
  allocated(order("o2", {{scarce, 1}, {plenty, 4}}, true));
  ASSERT_EQ(stock(scarce), (Quantities{5, 5, 4}));

  auto deducted = path_->deduct({dept_, "o1"});
  ASSERT_TRUE(deducted) << describe(deducted.error());
  EXPECT_EQ(deducted->status, OrderStatus::kDeducted);
  EXPECT_FALSE(deducted->replayed);
  EXPECT_EQ(stock(scarce), (Quantities{0, 0, 1}));
  EXPECT_EQ(stock(plenty), (Quantities{7, 4, 0}));
  EXPECT_EQ(lineStates("o1"), (std::vector<std::string>{"deducted", "deducted"}));
  EXPECT_EQ(orderStatus("o1"), std::vector<std::string>{"deducted"});

  auto again = path_->deduct({dept_, "o1"});
  ASSERT_TRUE(again) << describe(again.error());
  EXPECT_TRUE(again->replayed);
  auto rollback = path_->rollback({dept_, "o1"});
  ASSERT_FALSE(rollback);
  EXPECT_EQ(rollback.error().code, ErrorCode::kOrderDeducted) << describe(rollback.error());
  EXPECT_EQ(stock(scarce), (Quantities{0, 0, 1}));
  EXPECT_EQ(stock(plenty), (Quantities{7, 4, 0}));

  auto view = path_->findOrder({dept_, "o1"});
  ASSERT_TRUE(view) << describe(view.error());
  EXPECT_EQ(view->status, OrderStatus::kDeducted);
  ASSERT_EQ(view->lines.size(), 2u);
  EXPECT_EQ(view->lines[0].allocated, 5);
  EXPECT_EQ(view->lines[0].shortage, 3);
  EXPECT_EQ(view->lines[1].allocated, 3);
}

TEST_F(MysqlPathTest, UnknownOrdersAreNotFoundAndLeaveNothing) {
  auto deduct = path_->deduct({dept_, "nobody"});
  ASSERT_FALSE(deduct);
  EXPECT_EQ(deduct.error().code, ErrorCode::kNotFound) << describe(deduct.error());
  auto view = path_->findOrder({dept_, "nobody"});
  ASSERT_FALSE(view);
  EXPECT_EQ(view.error().code, ErrorCode::kNotFound) << describe(view.error());
  EXPECT_TRUE(orderStatus("nobody").empty());
  auto record = path_->readRecord(key("nothing"));
  ASSERT_FALSE(record);
  EXPECT_EQ(record.error().code, ErrorCode::kNotFound);
}

// ---- concurrency ----

// A preallocation retried while it answers kUnavailable (safe: the order_no is the
// idempotency key). retries counts the retries.
Result<PreallocateOutcome> preallocateRetrying(MysqlPath& path, const PreallocateRequest& request,
                                               std::atomic<int>& retries) {
  for (int attempt = 1;; ++attempt) {
    auto outcome = path.preallocate(request);
    if (outcome || outcome.error().code != ErrorCode::kUnavailable ||
        attempt >= kUnavailableRetriesMax) {
      return outcome;
    }
    ++retries;
  }
}

TEST_F(MysqlPathTest, ManyThreadsNeverOversell) {
  constexpr int kThreads = 32;
  constexpr int kOrdersPerThread = 50;
  constexpr std::int64_t kStock = 500;
  const RecordKey record = seeded("SKU-1", kStock);
  std::atomic<int> held{0};
  std::atomic<int> refused{0};
  std::atomic<int> failed{0};
  std::atomic<int> retries{0};
  {
    std::latch start(kThreads);
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kOrdersPerThread; ++i) {
          const auto request =
              order("o-" + std::to_string(t) + "-" + std::to_string(i), {{record, 1}});
          auto outcome = preallocateRetrying(*path_, request, retries);
          if (!outcome) {
            ++failed;
          } else if (std::holds_alternative<OrderAnswer>(*outcome)) {
            const auto& answer = std::get<OrderAnswer>(*outcome);
            const bool whole = answer.status == OrderStatus::kAllocated && !answer.replayed &&
                               answer.lines.size() == 1 && answer.lines[0].allocated == 1;
            ++(whole ? held : failed);
          } else {
            ++refused;
          }
        }
      });
    }
  }
  std::cout << "[   INFO   ] " << held << " held, " << refused << " refused, " << retries
            << " retries of unavailable\n";
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(held.load(), kStock);
  EXPECT_EQ(refused.load(), kThreads * kOrdersPerThread - kStock);
  EXPECT_EQ(stock(record), (Quantities{kStock, kStock, 0}));
  EXPECT_EQ(sqlColumn("SELECT COUNT(*) FROM orders WHERE dept_no = ?", {dept_}),
            std::vector<std::string>{std::to_string(kStock)});
}

// Every order is sent by two threads at the same moment: both get the same lines, exactly
// one of them holds, the other replays.
TEST_F(MysqlPathTest, TheSameOrderSentTwiceAtOnceHoldsOnce) {
  constexpr int kPairs = 16;
  constexpr int kOrders = 400;
  constexpr std::int64_t kStock = 150;
  const RecordKey record = seeded("SKU-1", kStock);
  std::vector<std::array<Result<PreallocateOutcome>, 2>> outcomes(
      kOrders, {fail(ErrorCode::kInternal, "not run"), fail(ErrorCode::kInternal, "not run")});
  std::atomic<int> retries{0};
  {
    std::vector<std::unique_ptr<std::barrier<>>> barriers;
    for (int p = 0; p < kPairs; ++p) barriers.push_back(std::make_unique<std::barrier<>>(2));
    std::vector<std::jthread> threads;
    for (int t = 0; t < 2 * kPairs; ++t) {
      threads.emplace_back([&, t] {
        const int pair = t / 2;
        for (int i = pair; i < kOrders; i += kPairs) {
          barriers[pair]->arrive_and_wait();
          outcomes[i][t % 2] =
              preallocateRetrying(*path_, order("o-" + std::to_string(i), {{record, 1}}), retries);
        }
      });
    }
  }
  int held = 0;
  for (int i = 0; i < kOrders; ++i) {
    SCOPED_TRACE("order " + std::to_string(i));
    const auto& first = outcomes[i][0];
    const auto& second = outcomes[i][1];
    ASSERT_TRUE(first) << describe(first.error());
    ASSERT_TRUE(second) << describe(second.error());
    ASSERT_EQ(first->index(), second->index()) << "one held, the other was refused";
    if (std::holds_alternative<PreallocateRefusal>(*first)) continue;
    const auto& a = std::get<OrderAnswer>(*first);
    const auto& b = std::get<OrderAnswer>(*second);
    EXPECT_EQ(a.replayed + b.replayed, 1);
    ASSERT_EQ(a.lines.size(), 1u);
    ASSERT_EQ(b.lines.size(), 1u);
    EXPECT_EQ(a.lines[0].allocated, 1);
    EXPECT_EQ(b.lines[0].allocated, 1);
    ++held;
  }
  EXPECT_EQ(held, kStock);
  EXPECT_EQ(stock(record), (Quantities{kStock, kStock, 0}));
}

// Two-line orders whose lines come in both orders: the transactions lock stock rows in key
// order, so they do not deadlock (a deadlock would be retried, but it must not be needed),
// and neither record is oversold.
TEST_F(MysqlPathTest, TwoLineOrdersInBothOrdersNeverOversell) {
  constexpr int kThreads = 16;
  constexpr int kOrdersPerThread = 30;
  const RecordKey a = seeded("A", 300);  // qty 2: room for 150
  const RecordKey b = seeded("B", 200);  // qty 1: room for 200
  std::atomic<int> held{0};
  std::atomic<int> failed{0};
  std::atomic<int> retries{0};
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kOrdersPerThread; ++i) {
          std::vector<LineRequest> lines = {{a, 2}, {b, 1}};
          if ((t + i) % 2 == 1) std::swap(lines[0], lines[1]);
          auto outcome = preallocateRetrying(
              *path_, order("o-" + std::to_string(t) + "-" + std::to_string(i), lines), retries);
          if (!outcome) {
            ++failed;
          } else if (std::holds_alternative<OrderAnswer>(*outcome)) {
            ++held;
          }
        }
      });
    }
  }
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(retries.load(), 0) << "transactions had to be retried";
  EXPECT_EQ(held.load(), 150);
  EXPECT_EQ(stock(a), (Quantities{300, 300, 0}));
  EXPECT_EQ(stock(b), (Quantities{200, 150, 0}));
}

// ---- the fence against a route switch ----

// A switch of the merchant (the route saved as switching) waits for a MySQL-path call already
// in its transaction, here held up on a stock row another connection has locked; once the
// switch has begun, every writing call refuses with 503, and once the merchant is on the
// Redis route, so does every call of a process that still takes it for a MySQL merchant.
TEST_F(MysqlPathTest, ASwitchWaitsForTheCallsInTheirTransactionAndLaterCallsAreRefused) {
  const RecordKey record = seeded("G-fence", 10);
  auto blocker = ledger_->pool().acquire();
  ASSERT_TRUE(blocker) << describe(blocker.error());
  ASSERT_TRUE((*blocker)->begin().has_value());
  ASSERT_TRUE((*blocker)
                  ->query("SELECT on_hand FROM stock WHERE dept_no = ? AND goods_no = ? FOR UPDATE",
                          {dept_, record.goods_no})
                  .has_value());
  auto running = std::async(std::launch::async, [&] {
    return path_->preallocate(order("o-1", {{record, 3}}));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // in its transaction, waiting
  MysqlRouteTable table(ledger_->pool());
  auto switching = std::async(std::launch::async, [&] {
    return table.saveRoute(dept_, StoredRoute{Route::kMysql, /*switching=*/true});
  });
  const bool switched_meanwhile =
      switching.wait_for(std::chrono::milliseconds(500)) == std::future_status::ready;
  ASSERT_TRUE((*blocker)->commit().has_value());
  auto answered = running.get();
  ASSERT_TRUE(answered) << describe(answered.error());
  EXPECT_TRUE(std::holds_alternative<OrderAnswer>(*answered));
  auto saved = switching.get();
  ASSERT_TRUE(saved) << describe(saved.error());
  EXPECT_FALSE(switched_meanwhile) << "the switch did not wait for the call in its transaction";

  auto refused = path_->preallocate(order("o-2", {{record, 1}}));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable) << describe(refused.error());
  auto rollback = path_->rollback({dept_, "o-1"});
  ASSERT_FALSE(rollback.has_value());
  EXPECT_EQ(rollback.error().code, ErrorCode::kUnavailable);
  ASSERT_TRUE(table.saveRoute(dept_, StoredRoute{Route::kRedis, false}).has_value());
  auto deduct = path_->deduct({dept_, "o-1"});
  ASSERT_FALSE(deduct.has_value());
  EXPECT_EQ(deduct.error().code, ErrorCode::kUnavailable) << describe(deduct.error());
  auto adjust = path_->adjust(deltaRequest(record, testing::uniqueName("ref"), 5), "late");
  ASSERT_FALSE(adjust.has_value());
  EXPECT_EQ(adjust.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(stock(record), (Quantities{10, 3, 0}));  // nothing of the refused calls landed
  EXPECT_EQ(orderStatus("o-2"), std::vector<std::string>{});
}

// A merchant without a merchant_routes row is on the default route: a process whose default
// is Redis refuses it on the MySQL path; one whose default is MySQL serves it.
TEST_F(MysqlPathTest, AMerchantWithoutARouteRowIsServedOnlyWhenTheDefaultIsMysql) {
  const RecordKey record = seeded("G-default", 4);
  MysqlPath redis_default(ledger_->pool(), Route::kRedis);
  auto refused = redis_default.preallocate(order("o-1", {{record, 1}}));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable) << describe(refused.error());
  EXPECT_EQ(allocated(order("o-2", {{record, 1}})).status, OrderStatus::kAllocated);
  EXPECT_EQ(stock(record), (Quantities{4, 1, 0}));
}

}  // namespace
}  // namespace allot::mysql
