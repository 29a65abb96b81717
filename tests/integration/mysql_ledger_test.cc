// The MariaDB Ledger, its pool and its connection against a real server
// (ALLOT_TEST_MYSQL_URL). Every test works on records of a dept_no of its own
// (testing::uniqueName), so tests sharing the server never see each other's rows.
#include "mysql/mysql_ledger.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <thread>
#include <vector>

#include "mysql/connection.h"
#include "mysql/pool.h"
#include "mysql/url.h"
#include "support/test_env.h"

namespace allot::mysql {
namespace {

using namespace std::chrono_literals;
using allot::testing::waitFor;
using Kind = AdjustmentClaim::Kind;

MysqlOptions testOptions() {
  auto options = parseMysqlUrl(testing::mysqlUrl());
  EXPECT_TRUE(options) << "ALLOT_TEST_MYSQL_URL: " << options.error().message;
  return options ? *options : MysqlOptions{};
}

RecordKey recordOf(const std::string& dept_no, const std::string& goods_no = "SKU-1") {
  return RecordKey{dept_no, goods_no, "WH-1", "1", "1", "A"};
}

class MysqlLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ledger = MysqlLedger::open(testOptions());
    ASSERT_TRUE(ledger) << ledger.error().message;
    ledger_ = std::move(*ledger);
    dept_ = testing::uniqueName("dept");
  }

  Quantities quantities(const RecordKey& key) {
    auto found = ledger_->findRecord(key);
    EXPECT_TRUE(found) << found.error().message;
    EXPECT_TRUE(found && found->has_value()) << "no record " << key.index();
    return found && found->has_value() ? **found : Quantities{-1, -1, -1};
  }

  // The state column of an adjustment row, or "absent".
  std::string adjustmentState(const std::string& ref) {
    auto lease = ledger_->pool().acquire();
    EXPECT_TRUE(lease);
    if (!lease) return "error";
    auto rows = (*lease)->query("SELECT state FROM stock_adjustments WHERE dept_no = ? AND ref = ?",
                                {dept_, ref});
    EXPECT_TRUE(rows) << rows.error().message;
    if (!rows || rows->empty()) return "absent";
    return std::string((*rows)[0].text(0));
  }

  std::unique_ptr<MysqlLedger> ledger_;
  std::string dept_;
};

// ---- Records ----

TEST_F(MysqlLedgerTest, FindRecordIsEmptyUntilEnsured) {
  const auto key = recordOf(dept_);
  auto missing = ledger_->findRecord(key);
  ASSERT_TRUE(missing) << missing.error().message;
  EXPECT_FALSE(missing->has_value());

  ASSERT_TRUE(ledger_->ensureRecord(key));
  EXPECT_EQ(quantities(key), (Quantities{0, 0, 0}));
  ASSERT_TRUE(ledger_->applyAdjustment(key, "r1", 5));
  ASSERT_TRUE(ledger_->ensureRecord(key));  // never resets an existing record
  EXPECT_EQ(quantities(key), (Quantities{5, 0, 0}));
}

TEST_F(MysqlLedgerTest, KeysAreExactAndCaseSensitive) {
  const auto lower = recordOf(dept_, "sku-a");
  const auto upper = recordOf(dept_, "SKU-A");
  auto other_level = lower;
  other_level.goods_level = "B";
  ASSERT_TRUE(ledger_->applyAdjustment(lower, "r1", 7));
  for (const auto& key : {upper, other_level}) {
    auto found = ledger_->findRecord(key);
    ASSERT_TRUE(found);
    EXPECT_FALSE(found->has_value()) << key.index();
  }
  EXPECT_EQ(quantities(lower).on_hand, 7);
}

// Many records in one call, more than one statement's worth: each answer is its key's, a key
// asked twice gets its row twice, and a missing or differently cased record has none.
TEST_F(MysqlLedgerTest, FindRecordsAnswersEachKeyInItsPlace) {
  std::vector<RecordKey> keys;
  for (int i = 0; i < 230; ++i) {
    keys.push_back(recordOf(dept_, "SKU-" + std::to_string(i)));
    if (i % 3 == 0) {
      ASSERT_TRUE(ledger_->applyAdjustment(keys.back(), "r" + std::to_string(i), i));
    }
  }
  keys.push_back(keys[3]);
  keys.push_back(recordOf(dept_, "sku-3"));
  auto found = ledger_->findRecords(keys);
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_EQ(found->size(), keys.size());
  for (int i = 0; i < 230; ++i) {
    if (i % 3 == 0) {
      EXPECT_EQ((*found)[i], (Quantities{i, 0, 0})) << keys[i].index();
    } else {
      EXPECT_FALSE((*found)[i].has_value()) << keys[i].index();
    }
  }
  EXPECT_EQ((*found)[230], (Quantities{3, 0, 0}));
  EXPECT_FALSE((*found)[231].has_value());
  auto none = ledger_->findRecords({});
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->empty());
}

// ---- Adjustment claims ----

TEST_F(MysqlLedgerTest, ClaimAdjustmentFollowsTheRefsState) {
  const auto key = recordOf(dept_);
  auto other_record = recordOf(dept_, "SKU-2");
  const std::string digest = "delta=5";
  struct Step {
    std::string what;
    std::function<Result<void>()> before;  // a state change before the claim
    RecordKey key;
    std::string digest;
    Kind expected;
  };
  auto nothing = [] { return Result<void>{}; };
  const Step steps[] = {
      {"first claim", nothing, key, digest, Kind::kNew},
      {"retry while pending", nothing, key, digest, Kind::kResume},
      {"another body", nothing, key, "delta=6", Kind::kConflict},
      {"another record", nothing, other_record, digest, Kind::kConflict},
      {"retry once applied", [&] { return ledger_->applyAdjustment(key, "r1", 5); }, key, digest,
       Kind::kResume},
      {"retry once complete",
       [&]() -> Result<void> {
         auto answer = ledger_->completeAdjustment(dept_, "r1", Quantities{5, 0, 0});
         if (!answer) return std::unexpected(answer.error());
         return {};
       },
       key, digest, Kind::kReplay},
      {"another body once complete", nothing, key, "delta=6", Kind::kConflict},
  };
  for (const auto& step : steps) {
    SCOPED_TRACE(step.what);
    ASSERT_TRUE(step.before());
    auto claim = ledger_->claimAdjustment(step.key, "r1", step.digest);
    ASSERT_TRUE(claim) << claim.error().message;
    EXPECT_EQ(claim->kind, step.expected);
    if (step.expected == Kind::kReplay) {
      EXPECT_EQ(claim->answer, (Quantities{5, 0, 0}));
    } else {
      EXPECT_FALSE(claim->answer.has_value());
    }
  }
  // The same ref under another dept_no is another ref.
  auto elsewhere = ledger_->claimAdjustment(recordOf(dept_ + "x"), "r1", digest);
  ASSERT_TRUE(elsewhere);
  EXPECT_EQ(elsewhere->kind, Kind::kNew);
}

TEST_F(MysqlLedgerTest, DigestsAreComparedAsExactBytes) {
  const auto key = recordOf(dept_);
  // Quotes, backslashes, NUL, non-ASCII and a value longer than the inline fetch buffer:
  // they must travel as parameters and come back byte for byte.
  std::string hostile = "x'); DROP TABLE stock; -- \\ \" ";
  hostile.push_back('\0');
  hostile += "\xC3\xA4\xFF";
  hostile += std::string(450 - hostile.size(), 'z');
  ASSERT_EQ(hostile.size(), 450u);
  auto first = ledger_->claimAdjustment(key, "r1", hostile);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->kind, Kind::kNew);
  auto again = ledger_->claimAdjustment(key, "r1", hostile);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->kind, Kind::kResume);
  std::string almost = hostile;
  almost.back() = 'y';
  auto other = ledger_->claimAdjustment(key, "r1", almost);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->kind, Kind::kConflict);
  auto other_case = ledger_->claimAdjustment(key, "R1", hostile);  // refs are case-sensitive
  ASSERT_TRUE(other_case);
  EXPECT_EQ(other_case->kind, Kind::kNew);
}

TEST_F(MysqlLedgerTest, DropOnlyReleasesAPendingClaim) {
  const auto key = recordOf(dept_);
  ASSERT_EQ(ledger_->claimAdjustment(key, "r1", "a")->kind, Kind::kNew);
  ASSERT_TRUE(ledger_->dropAdjustmentClaim(dept_, "r1"));
  EXPECT_EQ(adjustmentState("r1"), "absent");
  // Free again, even for another body.
  EXPECT_EQ(ledger_->claimAdjustment(key, "r1", "b")->kind, Kind::kNew);

  ASSERT_TRUE(ledger_->applyAdjustment(key, "r1", 3));
  ASSERT_TRUE(ledger_->dropAdjustmentClaim(dept_, "r1"));  // applied: stays
  EXPECT_EQ(adjustmentState("r1"), "applied");
  EXPECT_EQ(ledger_->claimAdjustment(key, "r1", "b")->kind, Kind::kResume);
  ASSERT_TRUE(ledger_->dropAdjustmentClaim(dept_, "never-claimed"));  // harmless
}

// ---- Applying adjustments ----

TEST_F(MysqlLedgerTest, ApplyAdjustmentTwiceAppliesOnce) {
  const auto key = recordOf(dept_);
  ASSERT_EQ(ledger_->claimAdjustment(key, "in-1", "d")->kind, Kind::kNew);
  ASSERT_TRUE(ledger_->applyAdjustment(key, "in-1", 10));  // creates the record
  ASSERT_TRUE(ledger_->applyAdjustment(key, "in-1", 10));
  EXPECT_EQ(quantities(key), (Quantities{10, 0, 0}));
  EXPECT_EQ(adjustmentState("in-1"), "applied");

  ASSERT_TRUE(ledger_->applyAdjustment(key, "out-1", -4));
  ASSERT_TRUE(ledger_->applyAdjustment(key, "out-1", -4));
  EXPECT_EQ(quantities(key), (Quantities{6, 0, 0}));
  ASSERT_TRUE(ledger_->applyAdjustment(key, "zero", 0));
  EXPECT_EQ(quantities(key), (Quantities{6, 0, 0}));
}

TEST_F(MysqlLedgerTest, NegativeDeltaBelowZeroChangesNothing) {
  const auto key = recordOf(dept_);
  ASSERT_TRUE(ledger_->applyAdjustment(key, "in", 5));
  struct Case {
    std::string ref;
    bool claimed_first;
    std::int64_t delta;
  };
  const Case cases[] = {{"claimed", true, -6}, {"unclaimed", false, -6}, {"far", true, -1'000'000}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.ref);
    if (c.claimed_first) {
      ASSERT_EQ(ledger_->claimAdjustment(key, c.ref, "d")->kind, Kind::kNew);
    }
    auto applied = ledger_->applyAdjustment(key, c.ref, c.delta);
    ASSERT_FALSE(applied);
    EXPECT_EQ(applied.error().code, ErrorCode::kInsufficientStock);
    EXPECT_EQ(quantities(key), (Quantities{5, 0, 0}));
    // A refused adjust leaves its claim as it was (pending, or no row at all).
    EXPECT_EQ(adjustmentState(c.ref), c.claimed_first ? "pending" : "absent");
  }
  // Exactly down to zero is allowed.
  ASSERT_TRUE(ledger_->applyAdjustment(key, "all", -5));
  EXPECT_EQ(quantities(key), (Quantities{0, 0, 0}));

  // An unknown record has nothing on hand, and a refusal does not create it.
  const auto unknown = recordOf(dept_, "SKU-none");
  auto refused = ledger_->applyAdjustment(unknown, "u1", -1);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInsufficientStock);
  auto found = ledger_->findRecord(unknown);
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
}

TEST_F(MysqlLedgerTest, ApplyWithoutAClaimRecordsTheRefForLaterClaims) {
  const auto key = recordOf(dept_);
  // The write-back replaying an adjust whose claim row is missing.
  ASSERT_TRUE(ledger_->applyAdjustment(key, "wb-1", 8));
  EXPECT_EQ(adjustmentState("wb-1"), "applied");
  EXPECT_EQ(quantities(key).on_hand, 8);
  // A client retry of that adjust adopts the row and resumes; applying again is a no-op.
  EXPECT_EQ(ledger_->claimAdjustment(key, "wb-1", "delta=8")->kind, Kind::kResume);
  ASSERT_TRUE(ledger_->applyAdjustment(key, "wb-1", 8));
  EXPECT_EQ(quantities(key).on_hand, 8);
  EXPECT_EQ(ledger_->claimAdjustment(key, "wb-1", "delta=9")->kind, Kind::kConflict);
}

TEST_F(MysqlLedgerTest, ApplyWithTheRefOfAnotherRecordIsAConflict) {
  const auto key = recordOf(dept_);
  ASSERT_TRUE(ledger_->applyAdjustment(key, "r1", 4));
  auto other = ledger_->applyAdjustment(recordOf(dept_, "SKU-2"), "r1", 4);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::kIdempotencyConflict);
  auto found = ledger_->findRecord(recordOf(dept_, "SKU-2"));
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
}

TEST_F(MysqlLedgerTest, CompleteAdjustmentKeepsTheFirstAnswer) {
  const auto key = recordOf(dept_);
  ASSERT_EQ(ledger_->claimAdjustment(key, "r1", "d")->kind, Kind::kNew);
  ASSERT_TRUE(ledger_->applyAdjustment(key, "r1", 9));
  auto first = ledger_->completeAdjustment(dept_, "r1", Quantities{9, 2, 1});
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, (Quantities{9, 2, 1}));
  // A concurrent duplicate that finished second is told the first answer.
  auto second = ledger_->completeAdjustment(dept_, "r1", Quantities{100, 0, 0});
  ASSERT_TRUE(second);
  EXPECT_EQ(*second, (Quantities{9, 2, 1}));
  auto replay = ledger_->claimAdjustment(key, "r1", "d");
  ASSERT_TRUE(replay);
  EXPECT_EQ(replay->kind, Kind::kReplay);
  EXPECT_EQ(replay->answer, (Quantities{9, 2, 1}));

  auto unknown = ledger_->completeAdjustment(dept_, "never", Quantities{});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
}

TEST_F(MysqlLedgerTest, ConcurrentAppliesNeverLoseOrDoubleAChange) {
  const auto key = recordOf(dept_);
  constexpr int kThreads = 8;
  constexpr int kRefsPerThread = 10;
  std::latch start(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kRefsPerThread; ++i) {
        // Every thread also applies one shared ref: it must count once in total.
        if (!ledger_->applyAdjustment(key, "shared", 1000)) failures.fetch_add(1);
        const auto ref = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!ledger_->applyAdjustment(key, ref, 1)) failures.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(quantities(key).on_hand, 1000 + kThreads * kRefsPerThread);
}

TEST_F(MysqlLedgerTest, ConcurrentWithdrawalsStopAtZero) {
  const auto key = recordOf(dept_);
  ASSERT_TRUE(ledger_->applyAdjustment(key, "in", 10));
  constexpr int kThreads = 20;
  std::latch start(kThreads);
  std::atomic<int> applied{0};
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      auto done = ledger_->applyAdjustment(key, "out-" + std::to_string(t), -1);
      if (done) {
        applied.fetch_add(1);
      } else if (done.error().code == ErrorCode::kInsufficientStock) {
        refused.fetch_add(1);
      } else {
        other.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(applied.load(), 10);
  EXPECT_EQ(refused.load(), 10);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(quantities(key).on_hand, 0);
}

// ---- Compensation, ping ----

TEST_F(MysqlLedgerTest, RecordCompensationQueuesAPendingTask) {
  const auto key = recordOf(dept_);
  std::string reason = "redis timeout \xC3\xA4\n";
  reason += std::string(1000, 'r');
  ASSERT_TRUE(ledger_->recordCompensation(CompensationTask{"release_undo", key, "ord-1", reason}));
  ASSERT_TRUE(ledger_->recordCompensation(CompensationTask{"adjust_redis", key, "ref-1", ""}));

  auto lease = ledger_->pool().acquire();
  ASSERT_TRUE(lease);
  auto rows = (*lease)->query(
      "SELECT kind, goods_no, warehouse_no, goods_level, order_no, reason, state, attempts,"
      " next_attempt_at <= CURRENT_TIMESTAMP(6) FROM compensation_tasks WHERE dept_no = ?"
      " ORDER BY id",
      {dept_});
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 2u);
  const Row& first = (*rows)[0];
  EXPECT_EQ(first.text(0), "release_undo");
  EXPECT_EQ(first.text(1), key.goods_no);
  EXPECT_EQ(first.text(2), key.warehouse_no);
  EXPECT_EQ(first.text(3), key.goods_level);
  EXPECT_EQ(first.text(4), "ord-1");
  EXPECT_EQ(first.text(5).size(), kCompensationReasonLengthMax);
  EXPECT_TRUE(first.text(5).starts_with("redis timeout ???r"));
  EXPECT_EQ(first.text(6), "pending");
  EXPECT_EQ(*first.integer(7), 0);
  EXPECT_EQ(*first.integer(8), 1);  // due now
  EXPECT_EQ((*rows)[1].text(0), "adjust_redis");

  for (const std::string& kind : {std::string(), std::string(33, 'k')}) {
    auto refused = ledger_->recordCompensation(CompensationTask{kind, key, "o", "r"});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, ErrorCode::kInvalidRequest);
  }
}

TEST_F(MysqlLedgerTest, Ping) { EXPECT_TRUE(ledger_->ping()); }

// ---- Connection ----

class MysqlConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto connection = Connection::open(testOptions());
    ASSERT_TRUE(connection) << connection.error().message;
    connection_ = std::move(*connection);
  }
  std::unique_ptr<Connection> connection_;
};

TEST_F(MysqlConnectionTest, ParametersRoundTripExactly) {
  std::string with_nul = "a'b\\c\"d";
  with_nul.push_back('\0');
  with_nul += "e";
  const std::string values[] = {"",
                                "plain",
                                with_nul,
                                "\xF0\x9F\x93\xA6 utf8mb4",
                                std::string(255, 'x'),
                                std::string(256, 'y'),
                                std::string(5000, 'z')};
  for (const auto& value : values) {
    SCOPED_TRACE(value.size());
    auto rows = connection_->query("SELECT CAST(? AS BINARY), LENGTH(?)", {value, value});
    ASSERT_TRUE(rows) << rows.error().message;
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ((*rows)[0].text(0), value);
    EXPECT_EQ(*(*rows)[0].integer(1), static_cast<std::int64_t>(value.size()));
  }
  auto numbers = connection_->query(
      "SELECT ?, ?, ?, ? IS NULL",
      {std::int64_t{INT64_MIN}, std::int64_t{INT64_MAX}, std::int64_t{0}, nullptr});
  ASSERT_TRUE(numbers) << numbers.error().message;
  EXPECT_EQ(*(*numbers)[0].integer(0), INT64_MIN);
  EXPECT_EQ(*(*numbers)[0].integer(1), INT64_MAX);
  EXPECT_EQ(*(*numbers)[0].integer(2), 0);
  EXPECT_EQ(*(*numbers)[0].integer(3), 1);
  auto nulls = connection_->query("SELECT NULL, 'x'");
  ASSERT_TRUE(nulls);
  EXPECT_TRUE((*nulls)[0].isNull(0));
  EXPECT_FALSE((*(*nulls)[0].optionalInteger(0)).has_value());
  EXPECT_FALSE((*nulls)[0].integer(0));
  EXPECT_FALSE((*nulls)[0].integer(1));  // 'x' is not a number
  EXPECT_FALSE((*nulls)[0].integer(9));  // no such column
}

TEST_F(MysqlConnectionTest, StatementErrorsAreInternalAndKeepTheConnection) {
  struct Case {
    std::string sql;
    std::size_t params;
    std::string message_part;
  };
  const Case cases[] = {
      {"SELEC 1", 0, "1064"},
      {"SELECT * FROM no_such_table_here", 0, "1146"},
      {"SELECT ?", 0, "parameters"},
      {"SELECT 1", 1, "parameters"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.sql);
    const std::vector<Param> params(c.params, Param{std::int64_t{1}});
    auto rows = connection_->query(c.sql, std::span<const Param>(params));
    ASSERT_FALSE(rows);
    EXPECT_EQ(rows.error().code, ErrorCode::kInternal);
    EXPECT_NE(rows.error().message.find(c.message_part), std::string::npos) << rows.error().message;
    EXPECT_FALSE(connection_->broken());
    EXPECT_FALSE(connection_->lastFailureRetryable());
    ASSERT_TRUE(connection_->query("SELECT 1"));  // still usable
  }
  // Strict mode: an over-long key is an error, never a silent truncation.
  auto too_long = connection_->execute(
      "INSERT INTO stock (dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level)"
      " VALUES (?, 'g', 'w', '1', '1', 'A')",
      {std::string(65, 'd')});
  ASSERT_FALSE(too_long);
  EXPECT_EQ(connection_->lastErrorNumber(), 1406u) << too_long.error().message;
}

TEST(MysqlConnection, CannotConnectIsUnavailable) {
  auto options = testOptions();
  options.port = 1;  // nothing listens there
  auto connection = Connection::open(options);
  ASSERT_FALSE(connection);
  EXPECT_EQ(connection.error().code, ErrorCode::kUnavailable) << connection.error().message;
  EXPECT_EQ(connection.error().message.find(options.password), std::string::npos);

  auto pool = Pool::create(options);
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().code, ErrorCode::kUnavailable);
}

TEST(MysqlConnection, WrongPasswordIsNotRetryable) {
  auto options = testOptions();
  options.password += "-wrong";
  auto connection = Connection::open(options);
  ASSERT_FALSE(connection);
  EXPECT_EQ(connection.error().code, ErrorCode::kInternal) << connection.error().message;
}

// ---- Pool ----

// Joins a thread however the test leaves its scope (a failed ASSERT returns early).
struct JoinOnExit {
  std::thread& thread;
  ~JoinOnExit() {
    if (thread.joinable()) thread.join();
  }
};

std::unique_ptr<Pool> makePool(std::size_t size, std::int64_t checkout_timeout_ms,
                               std::int64_t idle_check_after_ms = 600'000) {
  auto options = testOptions();
  options.pool_size = size;
  options.checkout_timeout_ms = checkout_timeout_ms;
  options.idle_check_after_ms = idle_check_after_ms;
  auto pool = Pool::create(options);
  EXPECT_TRUE(pool) << pool.error().message;
  return pool ? std::move(*pool) : nullptr;
}

TEST(MysqlPool, ExhaustionFailsByTheDeadline) {
  auto pool = makePool(2, 300);
  ASSERT_TRUE(pool);
  auto first = pool->acquire();
  auto second = pool->acquire();
  ASSERT_TRUE(first && second);
  EXPECT_NE((*first)->serverThreadId(), (*second)->serverThreadId());

  const auto started = std::chrono::steady_clock::now();
  auto third = pool->acquire();
  const auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, ErrorCode::kUnavailable);
  EXPECT_GE(waited, 300ms);
  EXPECT_LT(waited, 3s);
  EXPECT_EQ(pool->stats().checkout_timeouts, 1u);
  EXPECT_EQ(pool->stats().open, 2u);

  // A waiter is served as soon as a lease comes back.
  Result<Lease> waiter = fail(ErrorCode::kInternal, "not run");
  std::thread thread([&] { waiter = pool->acquire(10s); });
  JoinOnExit join{thread};
  { auto returned = std::move(*first); }
  thread.join();
  ASSERT_TRUE(waiter) << waiter.error().message;
  EXPECT_EQ(pool->stats().open, 2u);
}

TEST(MysqlPool, ReusesConnectionsAndRollsBackWhatALeaseLeftOpen) {
  auto pool = makePool(1, 1000);
  ASSERT_TRUE(pool);
  const std::string dept = testing::uniqueName("dept");
  std::uint64_t id = 0;
  {
    auto lease = pool->acquire();
    ASSERT_TRUE(lease);
    id = (*lease)->serverThreadId();
    ASSERT_TRUE((*lease)->begin());
    ASSERT_TRUE((*lease)->execute(
        "INSERT INTO stock (dept_no, goods_no, warehouse_no, stock_status, stock_type, "
        "goods_level) VALUES (?, 'g', 'w', '1', '1', 'A')",
        {dept}));
    EXPECT_TRUE((*lease)->inTransaction());
  }  // returned with the transaction open
  auto lease = pool->acquire();
  ASSERT_TRUE(lease);
  EXPECT_EQ((*lease)->serverThreadId(), id);
  EXPECT_FALSE((*lease)->inTransaction());
  auto rows = (*lease)->query("SELECT COUNT(*) FROM stock WHERE dept_no = ?", {dept});
  ASSERT_TRUE(rows);
  EXPECT_EQ((*rows)[0].text(0), "0");
}

TEST(MysqlPool, WithTransactionCommitsOrRollsBack) {
  auto pool = makePool(2, 1000);
  ASSERT_TRUE(pool);
  const std::string dept = testing::uniqueName("dept");
  auto insert = [&](Connection& connection, const std::string& goods) {
    return connection.execute(
        "INSERT INTO stock (dept_no, goods_no, warehouse_no, stock_status, stock_type, "
        "goods_level, on_hand) VALUES (?, ?, 'w', '1', '1', 'A', 1)",
        {dept, goods});
  };
  auto committed = pool->withTransaction([&](Connection& c) -> Result<int> {
    ALLOT_TRY_VOID(insert(c, "kept"));
    return 42;
  });
  ASSERT_TRUE(committed) << committed.error().message;
  EXPECT_EQ(*committed, 42);

  auto refused = pool->withTransaction([&](Connection& c) -> Result<void> {
    ALLOT_TRY_VOID(insert(c, "dropped"));
    return fail(ErrorCode::kInsufficientStock, "business refusal");
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInsufficientStock);

  auto lease = pool->acquire();
  ASSERT_TRUE(lease);
  auto rows = (*lease)->query("SELECT goods_no FROM stock WHERE dept_no = ?", {dept});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].text(0), "kept");
}

// Stock rows of one dept_no used as lock targets.
class LockRows {
 public:
  LockRows() : dept_(testing::uniqueName("dept")) {}
  Result<void> create(Connection& connection, int count) {
    for (int i = 0; i < count; ++i) {
      ALLOT_TRY_VOID(connection.execute(
          "INSERT INTO stock (dept_no, goods_no, warehouse_no, stock_status, stock_type, "
          "goods_level) VALUES (?, ?, 'w', '1', '1', 'A')",
          {dept_, "g" + std::to_string(i)}));
    }
    return {};
  }
  Result<Rows> lock(Connection& connection, int row) {
    return connection.query(
        "SELECT on_hand FROM stock WHERE dept_no = ? AND goods_no = ? FOR UPDATE",
        {dept_, "g" + std::to_string(row)});
  }
  Result<std::uint64_t> bump(Connection& connection, int row) {
    return connection.execute(
        "UPDATE stock SET on_hand = on_hand + 1 WHERE dept_no = ? AND goods_no = ?",
        {dept_, "g" + std::to_string(row)});
  }

 private:
  std::string dept_;
};

TEST(MysqlPool, WithTransactionRetriesADeadlockVictim) {
  auto pool = makePool(1, 1000);
  ASSERT_TRUE(pool);
  auto other = Connection::open(testOptions());
  ASSERT_TRUE(other);
  LockRows rows;
  ASSERT_TRUE(rows.create(**other, 8));

  // `other` modifies several rows first, so InnoDB picks the lighter pool transaction (it
  // only holds locks) as the deadlock victim, whichever of the two closes the cycle.
  ASSERT_TRUE((*other)->begin());
  for (int row = 1; row < 8; ++row) ASSERT_TRUE(rows.bump(**other, row));

  std::atomic<int> attempts{0};
  std::atomic<bool> holds_row_0{false};
  Result<void> outcome = fail(ErrorCode::kInternal, "not run");
  std::thread thread([&] {
    outcome = pool->withTransaction([&](Connection& c) -> Result<void> {
      attempts.fetch_add(1);
      ALLOT_TRY_VOID(rows.lock(c, 0));
      holds_row_0.store(true);
      ALLOT_TRY_VOID(rows.lock(c, 1));  // waits for `other` in the first attempt
      return {};
    });
  });
  JoinOnExit join{thread};
  // If this failed, the rollback below would unblock the thread.
  EXPECT_TRUE(waitFor([&] { return holds_row_0.load(); }));
  // Closes the cycle: `other` waits for row 0, which the pool transaction holds. It returns
  // once the victim has rolled back.
  auto bumped = rows.bump(**other, 0);
  EXPECT_TRUE(bumped) << bumped.error().message;
  ASSERT_TRUE((*other)->commit());
  thread.join();
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_EQ(attempts.load(), 2);
}

TEST(MysqlPool, WithTransactionGivesUpOnALockThatIsNeverReleased) {
  auto options = testOptions();
  options.lock_wait_timeout_s = 1;
  auto pool = Pool::create(options);
  auto other = Connection::open(testOptions());
  ASSERT_TRUE(pool && other);
  LockRows rows;
  ASSERT_TRUE(rows.create(**other, 1));
  ASSERT_TRUE((*other)->begin());
  ASSERT_TRUE(rows.bump(**other, 0));

  int attempts = 0;
  auto outcome = (*pool)->withTransaction([&](Connection& c) -> Result<void> {
    ++attempts;
    ALLOT_TRY_VOID(rows.lock(c, 0));
    return {};
  });
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(outcome.error().message.find("1205"), std::string::npos) << outcome.error().message;
  EXPECT_EQ(attempts, kTransactionAttemptsMax);
  ASSERT_TRUE((*other)->rollback());
}

// ---- A connection killed server-side ----

Result<void> killConnection(std::uint64_t id) {
  ALLOT_TRY(killer, Connection::open(testOptions()));
  // A number from the server, not input: safe to put in the text.
  ALLOT_TRY_VOID(killer->executeText("KILL CONNECTION " + std::to_string(id)));
  const bool gone = waitFor([&] {
    auto rows = killer->query("SELECT COUNT(*) FROM information_schema.processlist WHERE id = ?",
                              {static_cast<std::int64_t>(id)});
    return rows && (*rows)[0].text(0) == "0";
  });
  if (!gone) return fail(ErrorCode::kInternal, "the killed connection never went away");
  return {};
}

TEST(MysqlKilledConnection, LedgerCallFailsUnavailableThenRecovers) {
  auto options = testOptions();
  options.pool_size = 1;
  options.idle_check_after_ms = 600'000;  // no idle ping: the next call meets the dead socket
  auto ledger = MysqlLedger::open(options);
  ASSERT_TRUE(ledger) << ledger.error().message;
  std::uint64_t id = 0;
  {
    auto lease = (*ledger)->pool().acquire();
    ASSERT_TRUE(lease);
    id = (*lease)->serverThreadId();
  }
  ASSERT_TRUE(killConnection(id));

  const auto key = recordOf(testing::uniqueName("dept"));
  auto failed = (*ledger)->findRecord(key);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kUnavailable) << failed.error().message;
  EXPECT_EQ((*ledger)->pool().stats().connections_dropped, 1u);

  // The broken connection was dropped; the next call opens a new one.
  auto recovered = (*ledger)->findRecord(key);
  ASSERT_TRUE(recovered) << recovered.error().message;
  EXPECT_TRUE((*ledger)->ping());
  auto lease = (*ledger)->pool().acquire();
  ASSERT_TRUE(lease);
  EXPECT_NE((*lease)->serverThreadId(), id);
}

TEST(MysqlKilledConnection, InsideATransactionFailsUnavailable) {
  auto pool = makePool(1, 1000);
  ASSERT_TRUE(pool);
  auto outcome = pool->withTransaction([&](Connection& c) -> Result<void> {
    ALLOT_TRY_VOID(killConnection(c.serverThreadId()));
    ALLOT_TRY_VOID(c.query("SELECT 1"));
    return {};
  });
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().code, ErrorCode::kUnavailable) << outcome.error().message;
  auto again = pool->withTransaction([](Connection& c) -> Result<void> {
    ALLOT_TRY_VOID(c.query("SELECT 1"));
    return {};
  });
  EXPECT_TRUE(again) << again.error().message;
}

TEST(MysqlKilledConnection, IdleCheckReplacesADeadIdleConnection) {
  auto pool = makePool(1, 1000, /*idle_check_after_ms=*/0);
  ASSERT_TRUE(pool);
  std::uint64_t id = 0;
  {
    auto lease = pool->acquire();
    ASSERT_TRUE(lease);
    id = (*lease)->serverThreadId();
  }
  ASSERT_TRUE(killConnection(id));
  auto lease = pool->acquire();
  ASSERT_TRUE(lease) << lease.error().message;
  EXPECT_NE((*lease)->serverThreadId(), id);
  EXPECT_TRUE((*lease)->query("SELECT 1"));  // no failed call at all
  EXPECT_EQ(pool->stats().connections_dropped, 1u);
}

}  // namespace
}  // namespace allot::mysql
