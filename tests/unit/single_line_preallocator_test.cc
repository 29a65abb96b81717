// Unit tests of the single-line fast path's batching and answers (SingleLinePreallocator),
// against a store whose calls the test answers by hand and an event loop it turns by hand.
// The script behind the real store is tested against Redis in redis_async_store_test.cc.
#include "domain/single_line_preallocator.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <set>

namespace allot {
namespace {

RecordKey record(const std::string& goods) { return RecordKey{"D1", goods, "W1"}; }

PreallocateRequest single(const std::string& order_no, const std::string& goods = "G1",
                          std::int64_t qty = 1) {
  return PreallocateRequest{"D1", order_no, {LineRequest{record(goods), qty}}, false};
}

// A store whose calls wait until the test answers them; defer() queues on a hand-turned loop.
class ScriptedStore final : public AsyncHotStore {
 public:
  struct Call {
    RecordKey key;
    std::vector<LineOrder> orders;
    BatchDone done;
  };

  void preallocateLines(const RecordKey& key, const std::vector<LineOrder>& orders,
                        BatchDone done) override {
    calls.push_back({key, orders, std::move(done)});
  }
  void defer(std::function<void()> fn) override { loop.push_back(std::move(fn)); }

  // Runs what was deferred, as the event loop would at the end of its turn.
  void turn() {
    auto ready = std::move(loop);
    loop.clear();
    for (auto& fn : ready) fn();
  }
  // Answers the oldest call.
  void answer(Result<std::vector<LineOrderOutcome>> outcomes) {
    ASSERT_FALSE(calls.empty());
    auto call = std::move(calls.front());
    calls.pop_front();
    call.done(std::move(outcomes));
  }

  std::deque<Call> calls;
  std::deque<std::function<void()>> loop;
};

class CountingGate final : public RouteGate {
 public:
  bool tryAdmitRedis(const std::string& dept_no) override {
    if (refused.contains(dept_no)) return false;
    ++in_flight;
    return true;
  }
  void leave(const std::string&) override { --in_flight; }

  std::set<std::string> refused;
  int in_flight = 0;
};

LineOrderOutcome held(std::int64_t allocated, std::int64_t shortage = 0) {
  LineOrderOutcome outcome;
  outcome.kind = LineOrderOutcome::Kind::kHeld;
  outcome.status = shortage > 0 ? OrderStatus::kShortage : OrderStatus::kAllocated;
  outcome.allocated = allocated;
  outcome.shortage = shortage;
  return outcome;
}

LineOrderOutcome ofKind(LineOrderOutcome::Kind kind) {
  LineOrderOutcome outcome;
  outcome.kind = kind;
  return outcome;
}

class SingleLineTest : public ::testing::Test {
 protected:
  SingleLineTest() {
    auto owned = std::make_unique<ScriptedStore>();
    store_ = owned.get();
    fast_ = std::make_unique<SingleLinePreallocator>(std::move(owned), gate_, counters_, 4, 2);
  }

  // Submits a request; its answer lands in answers_[order_no] (nullopt inside: fall back).
  bool submit(PreallocateRequest request) {
    const std::string order_no = request.order_no;
    return fast_->preallocate(std::move(request),
                              [this, order_no](std::optional<Result<PreallocateOutcome>> result) {
                                EXPECT_FALSE(answers_.contains(order_no)) << "answered twice";
                                answers_.emplace(order_no, std::move(result));
                              });
  }

  const OrderAnswer& orderAnswer(const std::string& order_no) {
    const auto& result = answers_.at(order_no);
    EXPECT_TRUE(result.has_value() && result->has_value());
    return std::get<OrderAnswer>(**result);
  }

  ScriptedStore* store_ = nullptr;
  CountingGate gate_;
  ServiceCounters counters_;
  std::unique_ptr<SingleLinePreallocator> fast_;
  std::map<std::string, std::optional<Result<PreallocateOutcome>>> answers_;
};

TEST_F(SingleLineTest, OrdersOfOneTurnGoInOneCallEachWithItsOwnAnswer) {
  ASSERT_TRUE(submit(single("O1")));
  ASSERT_TRUE(submit(single("O2")));
  ASSERT_TRUE(submit(single("O3", "G1", 5)));
  EXPECT_TRUE(store_->calls.empty()) << "nothing is sent before the turn ends";
  store_->turn();
  ASSERT_EQ(store_->calls.size(), 1u);
  const auto& call = store_->calls.front();
  EXPECT_EQ(call.key, record("G1"));
  ASSERT_EQ(call.orders.size(), 3u);
  EXPECT_EQ(call.orders[0].order_no, "O1");
  EXPECT_EQ(call.orders[2].qty, 5);

  LineOrderOutcome refused = ofKind(LineOrderOutcome::Kind::kInsufficient);
  refused.available = 2;
  store_->answer(std::vector<LineOrderOutcome>{held(1), held(0, 1), refused});

  EXPECT_EQ(orderAnswer("O1").status, OrderStatus::kAllocated);
  EXPECT_FALSE(orderAnswer("O1").replayed);
  ASSERT_EQ(orderAnswer("O1").lines.size(), 1u);
  EXPECT_EQ(orderAnswer("O1").lines[0].allocated, 1);
  EXPECT_EQ(orderAnswer("O2").status, OrderStatus::kShortage);
  EXPECT_EQ(orderAnswer("O2").lines[0].shortage, 1);
  const auto& refusal = std::get<PreallocateRefusal>(*answers_.at("O3").value());
  ASSERT_EQ(refusal.short_lines.size(), 1u);
  EXPECT_EQ(refusal.short_lines[0].qty, 5);
  EXPECT_EQ(refusal.short_lines[0].available, 2);
  EXPECT_EQ(gate_.in_flight, 0);
  EXPECT_EQ(counters_.fast_batches.load(), 1u);
  EXPECT_EQ(counters_.fast_orders.load(), 3u);
  EXPECT_EQ(counters_.orders_allocated.load(), 2u);
  EXPECT_EQ(counters_.orders_refused.load(), 1u);
}

TEST_F(SingleLineTest, OrdersQueueBehindTheCallsInFlightAndGoTogetherAfterAReply) {
  // Two calls in flight at most (the fixture's setting).
  ASSERT_TRUE(submit(single("O1")));
  store_->turn();
  ASSERT_TRUE(submit(single("O2")));
  store_->turn();
  ASSERT_EQ(store_->calls.size(), 2u);
  for (const char* order : {"O3", "O4", "O5", "O6", "O7"}) ASSERT_TRUE(submit(single(order)));
  store_->turn();
  EXPECT_EQ(store_->calls.size(), 2u) << "no third call while two are in flight";
  store_->answer(std::vector<LineOrderOutcome>{held(1)});
  ASSERT_EQ(store_->calls.size(), 2u);
  // The queue went at once, in order, cut at the batch bound (4).
  const auto& next = store_->calls.back();
  ASSERT_EQ(next.orders.size(), 4u);
  EXPECT_EQ(next.orders.front().order_no, "O3");
  EXPECT_EQ(next.orders.back().order_no, "O6");
  store_->answer(std::vector<LineOrderOutcome>{held(1)});
  ASSERT_EQ(store_->calls.size(), 2u);
  EXPECT_EQ(store_->calls.back().orders.front().order_no, "O7");
  store_->answer(std::vector<LineOrderOutcome>(4, held(1)));
  store_->answer(std::vector<LineOrderOutcome>{held(1)});
  store_->turn();
  EXPECT_EQ(answers_.size(), 7u);
  EXPECT_EQ(gate_.in_flight, 0);
}

TEST_F(SingleLineTest, RecordsHaveLanesOfTheirOwn) {
  ASSERT_TRUE(submit(single("O1", "G1")));
  ASSERT_TRUE(submit(single("O2", "G2")));
  store_->turn();
  ASSERT_EQ(store_->calls.size(), 2u);
  EXPECT_EQ(store_->calls[0].orders.size(), 1u);
  EXPECT_EQ(store_->calls[1].orders.size(), 1u);
  EXPECT_NE(store_->calls[0].key, store_->calls[1].key);
}

TEST_F(SingleLineTest, ReplaysConflictsAndTombstonesAnswerAsTheMultiStepProtocolDoes) {
  for (const char* order : {"R1", "R2", "C1", "T1"}) ASSERT_TRUE(submit(single(order)));
  store_->turn();
  LineOrderOutcome replay = ofKind(LineOrderOutcome::Kind::kReplay);
  replay.status = OrderStatus::kAllocated;
  replay.answer_blob = "G1|W1|1|1|A|1|1|0";
  LineOrderOutcome deducted = replay;  // a deducted order replays its first answer
  deducted.status = OrderStatus::kDeducted;
  deducted.answer_blob = "G1|W1|1|1|A|1|0|1";
  store_->answer(std::vector<LineOrderOutcome>{replay, deducted,
                                               ofKind(LineOrderOutcome::Kind::kConflict),
                                               ofKind(LineOrderOutcome::Kind::kRolledBack)});
  store_->turn();
  EXPECT_TRUE(orderAnswer("R1").replayed);
  EXPECT_EQ(orderAnswer("R1").status, OrderStatus::kAllocated);
  EXPECT_EQ(orderAnswer("R2").status, OrderStatus::kShortage);
  EXPECT_EQ(orderAnswer("R2").lines[0].shortage, 1);
  EXPECT_EQ(answers_.at("C1")->error().code, ErrorCode::kIdempotencyConflict);
  EXPECT_EQ(answers_.at("C1")->error().message, orderConflict("C1").message);
  EXPECT_EQ(answers_.at("T1")->error().code, ErrorCode::kOrderRolledBack);
  EXPECT_EQ(counters_.orders_replayed.load(), 2u);
}

TEST_F(SingleLineTest, WhatTheScriptCannotFinishGoesBackToTheOrdinaryPath) {
  ASSERT_TRUE(submit(single("S1")));
  ASSERT_TRUE(submit(single("S2")));
  store_->turn();
  LineOrderOutcome slow = ofKind(LineOrderOutcome::Kind::kSlow);
  slow.reason = "unloaded";
  store_->answer(std::vector<LineOrderOutcome>{slow, held(1)});
  store_->turn();
  EXPECT_FALSE(answers_.at("S1").has_value());
  EXPECT_TRUE(answers_.at("S2").has_value());
  EXPECT_EQ(counters_.fast_fallbacks.load(), 1u);
  EXPECT_EQ(gate_.in_flight, 0) << "a handed-back order leaves the gate: the other path admits it";
}

TEST_F(SingleLineTest, AFailedCallHandsEveryOrderBack) {
  ASSERT_TRUE(submit(single("F1")));
  ASSERT_TRUE(submit(single("F2")));
  store_->turn();
  store_->answer(fail(ErrorCode::kUnavailable, "connection reset"));
  store_->turn();
  EXPECT_FALSE(answers_.at("F1").has_value());
  EXPECT_FALSE(answers_.at("F2").has_value());
  EXPECT_EQ(counters_.fast_fallbacks.load(), 2u);
  EXPECT_EQ(gate_.in_flight, 0);
}

TEST_F(SingleLineTest, AnAnswerOfTheWrongCountHandsEveryOrderBack) {
  ASSERT_TRUE(submit(single("W1")));
  ASSERT_TRUE(submit(single("W2")));
  store_->turn();
  store_->answer(std::vector<LineOrderOutcome>{held(1)});
  store_->turn();
  EXPECT_FALSE(answers_.at("W1").has_value());
  EXPECT_FALSE(answers_.at("W2").has_value());
}

TEST_F(SingleLineTest, RefusesWhatIsNotForIt) {
  PreallocateRequest two = single("M1");
  two.lines.push_back(LineRequest{record("G2"), 1});
  EXPECT_FALSE(submit(two)) << "multi-line orders take the multi-step protocol";
  gate_.refused.insert("D1");
  EXPECT_FALSE(submit(single("M2"))) << "a merchant the gate does not admit";
  store_->turn();
  EXPECT_TRUE(store_->calls.empty());
  EXPECT_TRUE(answers_.empty());
  EXPECT_EQ(gate_.in_flight, 0);
}

}  // namespace
}  // namespace allot
