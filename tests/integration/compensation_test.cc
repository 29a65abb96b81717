// The compensation chain's second stage against real servers: a reverse that failed inline is
// recorded in compensation_tasks, and the compensation worker applies it exactly once.
#include "domain/compensation.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "mysql/compensation_queue.h"
#include "mysql/mysql_ledger.h"
#include "mysql/pending_order_scan.h"
#include "mysql/url.h"
#include "mysql/write_back_store.h"
#include "redis/client.h"
#include "redis/redis_stock_store.h"
#include "support/servers.h"
#include "support/test_env.h"
#include "workers/write_back.h"

namespace allot {
namespace {

class CompensationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = testing::connectRedis(testing::redisUrl());
    ASSERT_NE(client_, nullptr);
    store_ = std::make_unique<redis::RedisStockStore>(*client_, redis::StoreOptions{3600, 30'000});
    ledger_ = testing::openLedger();
    ASSERT_NE(ledger_, nullptr);
    queue_ = std::make_unique<mysql::MysqlCompensationQueue>(ledger_->pool());
    // Tasks of other tests share the table: each test takes only its merchant's
    // (runOnce(dept_)), and leaves every other test's alone.
    dept_ = testing::uniqueName("comp");
  }

  // How many of the merchant's due tasks one run took; a run that failed fails the test with
  // its error, rather than reading as a run that took none.
  std::size_t runOnce(CompensationProcessor& processor) {
    auto taken = processor.runOnce(dept_);
    EXPECT_TRUE(taken.has_value()) << taken.error().message;
    return taken.value_or(0);
  }
  Quantities read(const RecordKey& key) {
    auto q = store_->readRecord(key);
    EXPECT_TRUE(q.has_value() && q->has_value());
    return q && *q ? **q : Quantities{};
  }

  // A record in both stores, as a load from the database leaves it.
  void stock(const RecordKey& key, std::int64_t on_hand) {
    ASSERT_TRUE(store_->loadRecord(key, Quantities{on_hand, 0, 0}).has_value());
    auto lease = ledger_->pool().acquire();
    ASSERT_TRUE(lease.has_value());
    ASSERT_TRUE((*lease)
                    ->execute("INSERT INTO stock (dept_no, goods_no, warehouse_no, stock_status, "
                              "stock_type, goods_level, on_hand) VALUES (?, ?, ?, ?, ?, ?, ?)",
                              {key.dept_no, key.goods_no, key.warehouse_no, key.stock_status,
                               key.stock_type, key.goods_level, on_hand})
                    .has_value());
  }

  // Every outbox event so far, in the database.
  void writeBack() {
    mysql::WriteBackStore sink(ledger_->pool());
    workers::WriteBack write_back(*client_, sink);
    auto drained = write_back.drainOnce();
    ASSERT_TRUE(drained.has_value()) << drained.error().message;
  }

  std::int64_t pendingRows() {
    auto lease = ledger_->pool().acquire();
    auto rows = (*lease)->query("SELECT COUNT(*) FROM pending_orders WHERE dept_no = ?", {dept_});
    EXPECT_TRUE(rows.has_value());
    return rows ? *(*rows)[0].integer(0) : -1;
  }

  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<redis::RedisStockStore> store_;
  std::unique_ptr<mysql::MysqlLedger> ledger_;
  std::unique_ptr<mysql::MysqlCompensationQueue> queue_;
  ServiceCounters counters_;
  std::string dept_;
};

TEST_F(CompensationTest, ARecordedReverseIsAppliedOnceByTheWorker) {
  const RecordKey key{dept_, "G1", "W1"};
  ASSERT_TRUE(store_->loadRecord(key, Quantities{10, 0, 0}).has_value());
  // (An undo looks at its order first: the tests below.)
  const std::vector<std::pair<std::string, ReleaseKind>> holds = {
      {"O-rollback", ReleaseKind::kRollback}, {"O-deduct", ReleaseKind::kDeduct}};
  for (const auto& [order, kind] : holds) {
    ASSERT_EQ(store_->hold(key, order, 2, false)->kind, HoldOutcome::Kind::kHeld);
  }
  ASSERT_EQ(read(key), (Quantities{10, 4, 0}));
  // The inline reverses "failed": the service recorded them as tasks.
  for (const auto& [order, kind] : holds) {
    const char* name = kind == ReleaseKind::kUndo       ? "release_undo"
                       : kind == ReleaseKind::kRollback ? "release_rollback"
                                                        : "release_deduct";
    ASSERT_TRUE(ledger_->recordCompensation({name, key, order, "injected"}).has_value());
  }
  CompensationProcessor processor(*store_, *queue_, counters_);
  auto taken = processor.runOnce(dept_);
  ASSERT_TRUE(taken.has_value()) << taken.error().message;
  EXPECT_EQ(*taken, 2u);
  EXPECT_EQ(counters_.compensations_applied.load(), 2u);
  // rollback returned 2 to available; deduct took 2 out of on_hand.
  EXPECT_EQ(read(key), (Quantities{8, 0, 0}));
  // Done tasks are not taken again, and a second application would change nothing anyway.
  EXPECT_EQ(processor.runOnce(dept_).value_or(99), 0u);
  EXPECT_EQ(read(key), (Quantities{8, 0, 0}));
  EXPECT_EQ(store_->hold(key, "O-rollback", 2, false)->kind, HoldOutcome::Kind::kRolledBack);
}

// An undo recorded for a refused call, whose order a retry then took over and committed with
// the same hold (a hold is one per order and record): the hold is that order's now, and the
// undo must leave it, or its stock would be offered twice.
TEST_F(CompensationTest, AnUndoLeavesAHoldThatACommittedOrderTookOver) {
  const RecordKey key{dept_, "G3", "W1"};
  ASSERT_TRUE(store_->loadRecord(key, Quantities{10, 0, 0}).has_value());
  const OrderRef order{dept_, "O1"};
  const std::vector<LineRequest> lines{{key, 3}};
  ASSERT_EQ(store_->claimOrder(order, encodeLineRequests(lines), linesDigest(lines), "a", 0)->kind,
            ClaimOutcome::Kind::kClaimed);
  ASSERT_EQ(store_->hold(key, "O1", 3, false)->kind, HoldOutcome::Kind::kHeld);
  ASSERT_TRUE(ledger_->recordCompensation({"release_undo", key, "O1", "injected"}).has_value());
  // The retry: the same claim, the hold found there, the order committed.
  ASSERT_EQ(store_
                ->commitOrder(order, OrderStatus::kAllocated,
                              encodeLineOutcomes({LineOutcome{key, 3, 3, 0}}), "a")
                .value(),
            CommitOutcome::kCommitted);
  CompensationProcessor processor(*store_, *queue_, counters_);
  EXPECT_EQ(runOnce(processor), 1u);
  EXPECT_EQ(counters_.compensations_applied.load(), 1u);
  EXPECT_EQ(read(key), (Quantities{10, 3, 0}));
  auto stored = store_->readOrder(order);
  ASSERT_TRUE(stored.has_value() && stored->has_value());
  EXPECT_EQ((*stored)->status, OrderStatus::kAllocated);
}

// An undo whose order has no claim any more: whoever forgot the claim released its lines, and
// the hold now there may be a new claim's, about to be committed. The undo leaves it.
TEST_F(CompensationTest, AnUndoOfAnOrderWithoutAClaimLeavesTheHold) {
  const RecordKey key{dept_, "G6", "W1"};
  ASSERT_TRUE(store_->loadRecord(key, Quantities{10, 0, 0}).has_value());
  ASSERT_EQ(store_->hold(key, "O3", 4, false)->kind, HoldOutcome::Kind::kHeld);
  ASSERT_TRUE(ledger_->recordCompensation({"release_undo", key, "O3", "injected"}).has_value());
  CompensationProcessor processor(*store_, *queue_, counters_);
  EXPECT_EQ(runOnce(processor), 1u);
  EXPECT_EQ(counters_.compensations_applied.load(), 1u);
  EXPECT_EQ(read(key), (Quantities{10, 4, 0}));
}

// An undo of an order whose claim was left pending by the failed call: while the claim's lease
// runs the task waits (a live call decides); then it takes the claim over, releases every line
// of it and forgets it, so the order is unknown again instead of "being allocated" for ever.
TEST_F(CompensationTest, AnUndoTakesADeadClaimOverReleasesItsLinesAndForgetsIt) {
  redis::RedisStockStore short_leases(*client_, redis::StoreOptions{3600, 300});
  const RecordKey first{dept_, "G4", "W1"};
  const RecordKey second{dept_, "G5", "W1"};
  for (const auto& key : {first, second}) {
    ASSERT_TRUE(short_leases.loadRecord(key, Quantities{10, 0, 0}).has_value());
  }
  const OrderRef order{dept_, "O2"};
  const std::vector<LineRequest> lines{{first, 2}, {second, 1}};
  ASSERT_EQ(
      short_leases.claimOrder(order, encodeLineRequests(lines), linesDigest(lines), "dead", 0)
          ->kind,
      ClaimOutcome::Kind::kClaimed);
  ASSERT_EQ(short_leases.hold(first, "O2", 2, false)->kind, HoldOutcome::Kind::kHeld);
  ASSERT_EQ(short_leases.hold(second, "O2", 1, false)->kind, HoldOutcome::Kind::kHeld);
  // Only the first line's release failed inline.
  ASSERT_TRUE(ledger_->recordCompensation({"release_undo", first, "O2", "injected"}).has_value());
  CompensationProcessor processor(short_leases, *queue_, counters_, {10, 30'000, 0, 0, 5});
  EXPECT_EQ(runOnce(processor), 1u);  // the lease runs: retried later
  EXPECT_EQ(counters_.compensations_applied.load(), 0u);
  EXPECT_EQ(read(first), (Quantities{10, 2, 0}));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(runOnce(processor), 1u);
  EXPECT_EQ(counters_.compensations_applied.load(), 1u);
  EXPECT_EQ(read(first), (Quantities{10, 0, 0}));
  EXPECT_EQ(read(second), (Quantities{10, 0, 0}));
  auto stored = short_leases.readOrder(order);
  ASSERT_TRUE(stored.has_value());
  EXPECT_FALSE(stored->has_value());
}

// Compensation's third stage. A call that ends without answering (its allotd killed mid-call)
// leaves its order pending with lines held, and no task: the write-back notes the order, the
// scan turns it into an undo task once the claim's lease has passed, and the worker releases
// its lines and forgets it. The row of an order answered meanwhile is deleted by the
// write-back (or, when a hold came after the answer, dropped by the scan); that of an order
// whose lines were undone is dropped too.
TEST_F(CompensationTest, AnOrderLeftPendingByADeadCallIsFoundAndUndone) {
  redis::RedisStockStore short_leases(*client_, redis::StoreOptions{3600, 300});
  const RecordKey first{dept_, "G7", "W1"};
  const RecordKey second{dept_, "G8", "W1"};
  stock(first, 10);
  stock(second, 10);
  auto claim = [&](const std::string& order_no, const std::vector<LineRequest>& lines,
                   const std::string& token) {
    return short_leases
        .claimOrder({dept_, order_no}, encodeLineRequests(lines), linesDigest(lines), token, 0)
        ->kind;
  };
  // The dead call: claimed, both lines held, never answered.
  ASSERT_EQ(claim("O-dead", {{first, 2}, {second, 1}}, "dead"), ClaimOutcome::Kind::kClaimed);
  ASSERT_EQ(short_leases.hold(first, "O-dead", 2, false)->kind, HoldOutcome::Kind::kHeld);
  ASSERT_EQ(short_leases.hold(second, "O-dead", 1, false)->kind, HoldOutcome::Kind::kHeld);
  // A call that answered, and a refused one whose undo ran, both after the write-back had
  // seen their holds.
  ASSERT_EQ(claim("O-done", {{first, 3}}, "done"), ClaimOutcome::Kind::kClaimed);
  ASSERT_EQ(short_leases.hold(first, "O-done", 3, false)->kind, HoldOutcome::Kind::kHeld);
  ASSERT_EQ(claim("O-undone", {{second, 4}}, "undone"), ClaimOutcome::Kind::kClaimed);
  ASSERT_EQ(short_leases.hold(second, "O-undone", 4, false)->kind, HoldOutcome::Kind::kHeld);
  writeBack();
  EXPECT_EQ(pendingRows(), 3);
  ASSERT_EQ(short_leases
                .commitOrder({dept_, "O-done"}, OrderStatus::kAllocated,
                             encodeLineOutcomes({LineOutcome{first, 3, 3, 0}}), "done")
                .value(),
            CommitOutcome::kCommitted);
  ASSERT_TRUE(short_leases.release(second, "O-undone", ReleaseKind::kUndo).has_value());
  ASSERT_TRUE(short_leases.abortOrder({dept_, "O-undone"}, "undone").has_value());
  writeBack();
  EXPECT_EQ(pendingRows(), 2) << "the answered order's row stayed";
  // The row a hold adds back when it is applied after its order's answer (another stream).
  {
    auto lease = ledger_->pool().acquire();
    ASSERT_TRUE(lease.has_value());
    ASSERT_TRUE((*lease)
                    ->execute("INSERT INTO pending_orders (dept_no, order_no) VALUES (?, ?)",
                              {dept_, std::string("O-done")})
                    .has_value());
  }

  mysql::PendingOrderScan scan(ledger_->pool());
  // Within the lease nothing is taken: a live call may still own the claims.
  auto early = scan.runOnce({60'000, 100, dept_});
  ASSERT_TRUE(early.has_value()) << early.error().message;
  EXPECT_EQ(early->taken, 0u);
  EXPECT_EQ(pendingRows(), 3);
  // The dead claim's lease ends; the task is then taken at once, before the worker of an
  // allotd sharing this database (its leases are 30 s) can find the claim busy and put the
  // task off.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  auto late = scan.runOnce({0, 100, dept_});
  ASSERT_TRUE(late.has_value()) << late.error().message;
  EXPECT_EQ(late->taken, 3u);
  EXPECT_EQ(late->answered, 1u);
  EXPECT_EQ(late->compensated, 1u);
  EXPECT_EQ(late->released, 1u);
  EXPECT_EQ(pendingRows(), 0);
  auto again = scan.runOnce({0, 100, dept_});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->taken, 0u);

  CompensationProcessor processor(short_leases, *queue_, counters_, {10, 30'000, 0, 0, 5});
  EXPECT_EQ(runOnce(processor), 1u);
  EXPECT_EQ(counters_.compensations_applied.load(), 1u);
  EXPECT_EQ(read(first), (Quantities{10, 3, 0}));  // O-done's hold stays
  EXPECT_EQ(read(second), (Quantities{10, 0, 0}));
  auto dead = short_leases.readOrder({dept_, "O-dead"});
  ASSERT_TRUE(dead.has_value());
  EXPECT_FALSE(dead->has_value());
  auto done = short_leases.readOrder({dept_, "O-done"});
  ASSERT_TRUE(done.has_value() && done->has_value());
  EXPECT_EQ((*done)->status, OrderStatus::kAllocated);
}

TEST_F(CompensationTest, AFailingTaskBacksOffAndIsGivenUpAfterItsBound) {
  ASSERT_TRUE(ledger_->recordCompensation({"no_such_kind", {dept_, "G1", "W1"}, "O1", "injected"})
                  .has_value());
  CompensationProcessor processor(*store_, *queue_, counters_, {10, 30'000, 0, 0, 2});
  EXPECT_EQ(runOnce(processor), 1u);  // attempt 1 fails, retried at once
  EXPECT_EQ(runOnce(processor), 1u);  // attempt 2 fails: given up
  EXPECT_EQ(processor.runOnce(dept_).value_or(99), 0u);
  EXPECT_EQ(counters_.compensation_attempts_failed.load(), 2u);
  EXPECT_EQ(counters_.compensations_given_up.load(), 1u);
}

// A route switch applies its merchant's tasks only: another merchant's backlog is the
// worker's, and must neither delay the switch nor be taken by it.
TEST_F(CompensationTest, AMerchantsDueTasksCanBeTakenWithoutAnyOtherMerchants) {
  const std::string other = dept_ + "-other";
  ASSERT_TRUE(ledger_->recordCompensation({"release_undo", {other, "G3", "W1"}, "O1", "injected"})
                  .has_value());
  ASSERT_TRUE(ledger_->recordCompensation({"release_undo", {dept_, "G3", "W1"}, "O2", "injected"})
                  .has_value());
  auto mine = queue_->takeDue(10, 60'000, dept_);
  ASSERT_TRUE(mine.has_value()) << mine.error().message;
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ(mine->front().task.order_no, "O2");
  EXPECT_EQ(mine->front().task.key.dept_no, dept_);
  auto theirs = queue_->takeDue(10, 60'000, other);
  ASSERT_TRUE(theirs.has_value()) << theirs.error().message;
  ASSERT_EQ(theirs->size(), 1u);
  EXPECT_EQ(theirs->front().task.order_no, "O1");
  ASSERT_TRUE(queue_->complete(mine->front().id).has_value());
  ASSERT_TRUE(queue_->complete(theirs->front().id).has_value());
}

TEST_F(CompensationTest, ATakenTaskIsHiddenFromOtherWorkersUntilItsLeaseEnds) {
  const RecordKey key{dept_, "G2", "W1"};
  ASSERT_TRUE(ledger_->recordCompensation({"release_undo", key, "O1", "injected"}).has_value());
  auto first = queue_->takeDue(10, 60'000, dept_);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->size(), 1u);
  auto second = queue_->takeDue(10, 60'000, dept_);
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(second->empty());
  ASSERT_TRUE(queue_->complete(first->front().id).has_value());
}

}  // namespace
}  // namespace allot
