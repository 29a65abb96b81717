// Unit tests of the group commit of holds (HoldCoalescer) against the in-memory HotStore:
// holds that arrive while a call for their record is in flight go together in the next call,
// each with the answer a sequence of single holds would have given it.
#include "domain/hold_coalescer.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "fakes/fake_ports.h"

namespace allot {
namespace {

using fakes::FakeHotStore;

RecordKey record(const std::string& goods) { return RecordKey{"D1", goods, "W1"}; }

// The queueing tests allow one call in flight, so that every hold after the first queues.
constexpr std::size_t kOneCall = 1;

// Blocks the first batch call until `queued` more holds wait behind it, so the test knows
// exactly what the second call carries (no sleep: it waits on the coalescer's own count).
class CoalescerTest : public ::testing::Test {
 protected:
  void stock(const std::string& goods, std::int64_t usable) {
    hot_.records[record(goods).index()] = FakeHotStore::Counters{usable, 0, 0};
  }
  void holdFirstBatchUntilQueued(HoldCoalescer& coalescer, const RecordKey& key,
                                 std::size_t queued) {
    hot_.before_batch = [&coalescer, key, queued, this](const RecordKey&,
                                                        const std::vector<HoldRequest>& requests) {
      batch_sizes_.push_back(requests.size());
      if (batch_sizes_.size() == 1) coalescer.waitUntilQueued(key, queued);
    };
  }
  // Runs holds on threads, queued in the order given; outcomes[i] belongs to requests[i].
  std::vector<Result<HoldOutcome>> holdConcurrently(HoldCoalescer& coalescer, const RecordKey& key,
                                                    const std::vector<HoldRequest>& requests) {
    std::vector<Result<HoldOutcome>> outcomes(requests.size(),
                                              fail(ErrorCode::kInternal, "not run"));
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      threads.emplace_back([&, i] { outcomes[i] = coalescer.hold(key, requests[i]); });
      if (i == 0) {
        coalescer.waitUntilInFlight(key);  // the first call leads alone
      } else if (i + 1 < requests.size()) {
        // The others queue behind it in order. Not after the last one: the first call then
        // returns (holdFirstBatchUntilQueued) and the queue starts to drain.
        coalescer.waitUntilQueued(key, i);
      }
    }
    for (auto& thread : threads) thread.join();
    return outcomes;
  }

  FakeHotStore hot_;
  ServiceCounters counters_;
  std::vector<std::size_t> batch_sizes_;
};

TEST_F(CoalescerTest, ALoneHoldIsABatchOfOne) {
  stock("G1", 10);
  HoldCoalescer coalescer(hot_, counters_);
  auto outcome = coalescer.hold(record("G1"), {"O1", 3, false});
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->kind, HoldOutcome::Kind::kHeld);
  EXPECT_EQ(outcome->allocated, 3);
  EXPECT_EQ(outcome->available, 7);
  EXPECT_EQ(hot_.hold_batches, 1);
  EXPECT_EQ(counters_.holds_batched.load(), 1u);
}

TEST_F(CoalescerTest, HoldsQueuedBehindACallGoTogetherEachWithItsOwnAnswer) {
  stock("G1", 5);
  HoldCoalescer coalescer(hot_, counters_, limits::kHoldBatchMax, kOneCall);
  const auto key = record("G1");
  holdFirstBatchUntilQueued(coalescer, key, 8);
  std::vector<HoldRequest> requests;
  for (int i = 0; i < 9; ++i) requests.push_back({"O" + std::to_string(i), 1, false});
  const auto outcomes = holdConcurrently(coalescer, key, requests);

  EXPECT_EQ(batch_sizes_, (std::vector<std::size_t>{1, 8}));
  int held = 0, refused = 0;
  for (const auto& outcome : outcomes) {
    ASSERT_TRUE(outcome.has_value());
    if (outcome->kind == HoldOutcome::Kind::kHeld) ++held;
    if (outcome->kind == HoldOutcome::Kind::kInsufficient) {
      ++refused;
      EXPECT_EQ(outcome->available, 0);
    }
  }
  EXPECT_EQ(held, 5);  // exactly the stock: no oversell, none lost
  EXPECT_EQ(refused, 4);
  EXPECT_EQ(hot_.records[key.index()].usable, 0);
  EXPECT_EQ(hot_.records[key.index()].subtracted, 5);
  EXPECT_EQ(hot_.holds.size(), 5u);
}

TEST_F(CoalescerTest, EachHoldKeepsItsOwnRules) {
  stock("G1", 4);
  const auto key = record("G1");
  hot_.tombstones.insert({key.index(), "rolled"});
  hot_.holds[{key.index(), "earlier"}] = FakeHotStore::Hold{2, 1, false};
  HoldCoalescer coalescer(hot_, counters_, limits::kHoldBatchMax, kOneCall);
  holdFirstBatchUntilQueued(coalescer, key, 5);
  // Applied in queue order: "first" takes 1 of 4, then the others in turn.
  const std::vector<HoldRequest> requests{{"first", 1, false},   {"rolled", 1, false},
                                          {"earlier", 3, false}, {"big", 9, false},
                                          {"short", 5, true},    {"first", 1, false}};
  const auto outcomes = holdConcurrently(coalescer, key, requests);

  struct Expected {
    HoldOutcome::Kind kind;
    std::int64_t allocated, shortage;
  };
  const std::vector<Expected> expected{
      {HoldOutcome::Kind::kHeld, 1, 0},        {HoldOutcome::Kind::kRolledBack, 0, 0},
      {HoldOutcome::Kind::kAlreadyHeld, 2, 1}, {HoldOutcome::Kind::kInsufficient, 0, 0},
      {HoldOutcome::Kind::kHeld, 3, 2},        {HoldOutcome::Kind::kAlreadyHeld, 1, 0}};
  ASSERT_EQ(outcomes.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(requests[i].order_no);
    ASSERT_TRUE(outcomes[i].has_value());
    EXPECT_EQ(outcomes[i]->kind, expected[i].kind);
    EXPECT_EQ(outcomes[i]->allocated, expected[i].allocated);
    EXPECT_EQ(outcomes[i]->shortage, expected[i].shortage);
  }
  EXPECT_EQ(hot_.records[key.index()].usable, 0);
  EXPECT_EQ(hot_.records[key.index()].ullage, 2);
}

TEST_F(CoalescerTest, AFailedCallFailsEveryHoldInIt) {
  stock("G1", 10);
  HoldCoalescer coalescer(hot_, counters_, limits::kHoldBatchMax, kOneCall);
  const auto key = record("G1");
  holdFirstBatchUntilQueued(coalescer, key, 3);
  int calls = 0;
  hot_.fail_hook = [&calls](const std::string& method, const std::string&) {
    // The first batch (of one) succeeds; the second fails on its first hold.
    return method == "hold" && ++calls == 2 ? std::string("timeout") : std::string();
  };
  const auto outcomes = holdConcurrently(
      coalescer, key, {{"A", 1, false}, {"B", 1, false}, {"C", 1, false}, {"D", 1, false}});
  ASSERT_TRUE(outcomes[0].has_value());
  for (std::size_t i = 1; i < outcomes.size(); ++i) {
    ASSERT_FALSE(outcomes[i].has_value());
    EXPECT_EQ(outcomes[i].error().code, ErrorCode::kUnavailable);
  }
}

TEST_F(CoalescerTest, ABatchNeverExceedsItsLimit) {
  stock("G1", 100);
  HoldCoalescer coalescer(hot_, counters_, /*batch_max=*/3, /*calls_in_flight_max=*/1);
  const auto key = record("G1");
  holdFirstBatchUntilQueued(coalescer, key, 7);
  std::vector<HoldRequest> requests;
  for (int i = 0; i < 8; ++i) requests.push_back({"O" + std::to_string(i), 1, false});
  const auto outcomes = holdConcurrently(coalescer, key, requests);
  for (const auto& outcome : outcomes) {
    ASSERT_TRUE(outcome.has_value());
    EXPECT_EQ(outcome->kind, HoldOutcome::Kind::kHeld);
  }
  EXPECT_EQ(batch_sizes_, (std::vector<std::size_t>{1, 3, 3, 1}));
  EXPECT_EQ(counters_.hold_batches.load(), 4u);
  EXPECT_EQ(counters_.holds_batched.load(), 8u);
}

TEST_F(CoalescerTest, ASecondCallGoesOutWhileTheFirstIsInFlight) {
  stock("G1", 10);
  HoldCoalescer coalescer(hot_, counters_, limits::kHoldBatchMax, /*calls_in_flight_max=*/2);
  const auto key = record("G1");
  std::mutex mutex;
  std::condition_variable changed;
  bool second_answered = false;
  hot_.before_batch = [&](const RecordKey&, const std::vector<HoldRequest>& requests) {
    std::unique_lock lock(mutex);
    batch_sizes_.push_back(requests.size());
    if (requests.front().order_no != "A") return;
    // With one call in flight at most, this would wait forever.
    changed.wait(lock, [&] { return second_answered; });
  };
  Result<HoldOutcome> first = fail(ErrorCode::kInternal, "not run");
  std::thread thread([&] { first = coalescer.hold(key, {"A", 1, false}); });
  coalescer.waitUntilInFlight(key);
  auto second = coalescer.hold(key, {"B", 2, false});
  {
    std::lock_guard lock(mutex);
    second_answered = true;
  }
  changed.notify_all();
  thread.join();
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(second->kind, HoldOutcome::Kind::kHeld);
  EXPECT_EQ(second->available, 8);  // B went first: A's call was held back
  EXPECT_EQ(first->kind, HoldOutcome::Kind::kHeld);
  EXPECT_EQ(first->available, 7);
  EXPECT_EQ(batch_sizes_.size(), 2u);
}

}  // namespace
}  // namespace allot
