// Unit tests of the business rules (PreallocationService) against in-memory fakes: the
// multi-line protocol, idempotency, tombstones, the compensation stages and the adjust
// ordering. The same rules are checked end to end against real servers in tests/integration.
#include "domain/preallocation_service.h"

#include <gtest/gtest.h>

#include "fakes/fake_ports.h"

namespace allot {
namespace {

using fakes::FakeClock;
using fakes::FakeHotStore;
using fakes::FakeLedger;

RecordKey record(const std::string& goods) { return RecordKey{"D1", goods, "W1"}; }

class ServiceTest : public ::testing::Test {
 protected:
  ServiceTest() : service_(hot_, ledger_, clock_, counters_) {}

  void stock(const std::string& goods, std::int64_t on_hand) {
    ledger_.records[record(goods).index()] = Quantities{on_hand, 0, 0};
  }
  Quantities quantities(const std::string& goods) {
    auto q = service_.readRecord(record(goods));
    EXPECT_TRUE(q.has_value());
    return q.value_or(Quantities{});
  }
  PreallocateRequest order(const std::string& order_no,
                           std::vector<std::pair<std::string, std::int64_t>> lines,
                           bool allow_shortage = false) {
    PreallocateRequest request{"D1", order_no, {}, allow_shortage};
    for (const auto& [goods, qty] : lines) request.lines.push_back({record(goods), qty});
    return request;
  }
  OrderAnswer allocate(const PreallocateRequest& request) {
    auto outcome = service_.preallocate(request);
    EXPECT_TRUE(outcome.has_value()) << (outcome ? "" : outcome.error().message);
    EXPECT_TRUE(outcome && std::holds_alternative<OrderAnswer>(*outcome));
    return outcome && std::holds_alternative<OrderAnswer>(*outcome)
               ? std::get<OrderAnswer>(*outcome)
               : OrderAnswer{};
  }
  ErrorCode errorOf(const Result<PreallocateOutcome>& outcome) {
    EXPECT_FALSE(outcome.has_value());
    return outcome ? ErrorCode::kInternal : outcome.error().code;
  }

  FakeHotStore hot_;
  FakeLedger ledger_;
  FakeClock clock_;
  ServiceCounters counters_;
  PreallocationService service_;
};

TEST_F(ServiceTest, AllocatesAndLoadsTheRecordOnce) {
  stock("G1", 10);
  const auto answer = allocate(order("O1", {{"G1", 3}}));
  EXPECT_EQ(answer.status, OrderStatus::kAllocated);
  EXPECT_FALSE(answer.replayed);
  ASSERT_EQ(answer.lines.size(), 1u);
  EXPECT_EQ(answer.lines[0].allocated, 3);
  EXPECT_EQ(quantities("G1"), (Quantities{10, 3, 0}));
  allocate(order("O2", {{"G1", 1}}));
  EXPECT_EQ(hot_.loads, 1);
  EXPECT_EQ(counters_.record_loads.load(), 1u);
}

TEST_F(ServiceTest, ReplaysTheSameLinesInAnyOrderAndChangesNothing) {
  stock("G1", 10);
  stock("G2", 10);
  allocate(order("O1", {{"G1", 2}, {"G2", 3}}));
  const auto replay = allocate(order("O1", {{"G2", 3}, {"G1", 2}}));
  EXPECT_TRUE(replay.replayed);
  EXPECT_EQ(replay.lines.size(), 2u);
  EXPECT_EQ(quantities("G1").preallocated, 2);
  EXPECT_EQ(quantities("G2").preallocated, 3);
}

TEST_F(ServiceTest, RefusesOtherLinesForTheSameOrder) {
  stock("G1", 10);
  allocate(order("O1", {{"G1", 2}}));
  const std::vector<PreallocateRequest> conflicting = {
      order("O1", {{"G1", 3}}), order("O1", {{"G2", 2}}), order("O1", {{"G1", 2}, {"G2", 1}})};
  for (const auto& request : conflicting) {
    EXPECT_EQ(errorOf(service_.preallocate(request)), ErrorCode::kIdempotencyConflict);
  }
  EXPECT_EQ(quantities("G1").preallocated, 2);
}

TEST_F(ServiceTest, AllOrNothingReversesHeldLinesAndNamesTheShortOnes) {
  stock("G1", 10);
  stock("G2", 1);
  stock("G3", 0);
  auto outcome = service_.preallocate(order("O1", {{"G1", 5}, {"G2", 2}, {"G3", 1}}));
  ASSERT_TRUE(outcome.has_value());
  ASSERT_TRUE(std::holds_alternative<PreallocateRefusal>(*outcome));
  const auto& refusal = std::get<PreallocateRefusal>(*outcome);
  ASSERT_EQ(refusal.short_lines.size(), 2u);
  EXPECT_EQ(refusal.short_lines[0].key.goods_no, "G2");
  EXPECT_EQ(refusal.short_lines[0].available, 1);
  EXPECT_EQ(refusal.short_lines[1].key.goods_no, "G3");
  EXPECT_EQ(quantities("G1"), (Quantities{10, 0, 0}));
  EXPECT_EQ(quantities("G2"), (Quantities{1, 0, 0}));
  EXPECT_TRUE(hot_.holds.empty());
  // The refused order is forgotten: once stock arrives the same order_no succeeds.
  hot_.records[record("G2").index()].usable = 5;
  hot_.records[record("G3").index()].usable = 5;
  EXPECT_EQ(allocate(order("O1", {{"G1", 5}, {"G2", 2}, {"G3", 1}})).status,
            OrderStatus::kAllocated);
}

TEST_F(ServiceTest, ShortageTakesWhatIsAvailableAndRecordsTheRest) {
  stock("G1", 4);
  const auto answer = allocate(order("O1", {{"G1", 10}, {"G9", 2}}, /*allow_shortage=*/true));
  EXPECT_EQ(answer.status, OrderStatus::kShortage);
  EXPECT_EQ(answer.lines[0].allocated, 4);
  EXPECT_EQ(answer.lines[0].shortage, 6);
  EXPECT_EQ(answer.lines[1].allocated, 0);  // an unknown record has nothing available
  EXPECT_EQ(answer.lines[1].shortage, 2);
  EXPECT_EQ(quantities("G1"), (Quantities{4, 4, 6}));
  EXPECT_EQ(quantities("G9"), (Quantities{0, 0, 2}));
}

TEST_F(ServiceTest, UnknownRecordWithoutShortageIsRefusedAndNotCreated) {
  auto outcome = service_.preallocate(order("O1", {{"G9", 1}}));
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(std::holds_alternative<PreallocateRefusal>(*outcome));
  EXPECT_EQ(service_.readRecord(record("G9")).error().code, ErrorCode::kNotFound);
}

TEST_F(ServiceTest, RollbackReturnsStockDropsShortageAndReplays) {
  stock("G1", 4);
  allocate(order("O1", {{"G1", 6}}, true));
  auto first = service_.rollback({"D1", "O1"});
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status, OrderStatus::kRolledBack);
  EXPECT_FALSE(first->replayed);
  EXPECT_EQ(quantities("G1"), (Quantities{4, 0, 0}));
  auto again = service_.rollback({"D1", "O1"});
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(errorOf(service_.preallocate(order("O1", {{"G1", 6}}, true))),
            ErrorCode::kOrderRolledBack);
}

TEST_F(ServiceTest, RollbackOfAnUnknownOrderLeavesATombstone) {
  stock("G1", 4);
  ASSERT_TRUE(service_.rollback({"D1", "O7"}).has_value());
  EXPECT_EQ(errorOf(service_.preallocate(order("O7", {{"G1", 1}}))), ErrorCode::kOrderRolledBack);
  EXPECT_EQ(quantities("G1").preallocated, 0);
}

TEST_F(ServiceTest, DeductConsumesTheHoldAndClosesShortage) {
  stock("G1", 4);
  allocate(order("O1", {{"G1", 6}}, true));
  auto deducted = service_.deduct({"D1", "O1"});
  ASSERT_TRUE(deducted.has_value());
  EXPECT_EQ(deducted->status, OrderStatus::kDeducted);
  EXPECT_EQ(quantities("G1"), (Quantities{0, 0, 0}));
  EXPECT_TRUE(service_.deduct({"D1", "O1"})->replayed);
  EXPECT_EQ(service_.rollback({"D1", "O1"}).error().code, ErrorCode::kOrderDeducted);
}

TEST_F(ServiceTest, EndStateErrorsTable) {
  stock("G1", 4);
  allocate(order("RB", {{"G1", 1}}));
  ASSERT_TRUE(service_.rollback({"D1", "RB"}).has_value());
  struct Case {
    const char* name;
    std::function<Result<EndAnswer>()> call;
    ErrorCode expected;
  };
  const std::vector<Case> cases = {
      {"deduct unknown",
       [&] {
         return service_.deduct({"D1", "NOPE"});
       },
       ErrorCode::kNotFound},
      {"deduct after rollback",
       [&] {
         return service_.deduct({"D1", "RB"});
       },
       ErrorCode::kOrderRolledBack},
  };
  for (const auto& c : cases) {
    auto result = c.call();
    ASSERT_FALSE(result.has_value()) << c.name;
    EXPECT_EQ(result.error().code, c.expected) << c.name;
  }
  EXPECT_EQ(service_.findOrder({"D1", "NOPE"}).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(service_.findOrder({"D1", "RB"})->status, OrderStatus::kRolledBack);
}

TEST_F(ServiceTest, AHoldErrorMidOrderReversesEverything) {
  stock("G1", 10);
  stock("G2", 10);
  hot_.fail_hook = [](const std::string& method, const std::string& subject) {
    return method == "hold" && subject.find("G2") != std::string::npos ? "redis down" : "";
  };
  auto outcome = service_.preallocate(order("O1", {{"G1", 3}, {"G2", 3}}));
  EXPECT_EQ(errorOf(outcome), ErrorCode::kUnavailable);
  hot_.fail_hook = nullptr;
  EXPECT_EQ(quantities("G1"), (Quantities{10, 0, 0}));
  EXPECT_TRUE(hot_.orders.empty());  // the claim was released: a retry starts afresh
  EXPECT_EQ(allocate(order("O1", {{"G1", 3}, {"G2", 3}})).status, OrderStatus::kAllocated);
}

TEST_F(ServiceTest, AFailingReverseIsRetriedThenRecordedAsACompensationTask) {
  stock("G1", 10);
  stock("G2", 0);
  int release_failures = 0;
  hot_.fail_hook = [&](const std::string& method, const std::string&) -> std::string {
    if (method != "release") return "";
    ++release_failures;
    return "timeout";
  };
  auto outcome = service_.preallocate(order("O1", {{"G1", 3}, {"G2", 1}}));
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(std::holds_alternative<PreallocateRefusal>(*outcome));
  // Two lines touched, each tried kReverseAttemptsMax times, then recorded durably.
  EXPECT_EQ(release_failures, 2 * limits::kReverseAttemptsMax);
  ASSERT_EQ(ledger_.compensations.size(), 2u);
  EXPECT_EQ(ledger_.compensations[0].kind, "release_undo");
  EXPECT_EQ(ledger_.compensations[0].order_no, "O1");
  EXPECT_EQ(counters_.compensations_recorded.load(), 2u);
}

// A release that fails only after a timeout (Redis stalled) is not tried again, and the
// lines still left after the inline budget (4 s) are not tried at all: each would wait out the
// same timeout before the answer. Every line gets its task.
TEST_F(ServiceTest, AStalledReleaseIsNotRetriedAndTheLinesPastTheBudgetGetTheirTasksUntried) {
  stock("G1", 10);
  stock("G2", 10);
  stock("G3", 10);
  stock("G4", 0);
  int release_calls = 0;
  hot_.fail_hook = [&](const std::string& method, const std::string&) -> std::string {
    if (method != "release") return "";
    ++release_calls;
    clock_.now_ms += 2'000;  // the command timeout
    return "timeout";
  };
  const std::int64_t started = clock_.now_ms;
  auto outcome = service_.preallocate(order("O1", {{"G1", 3}, {"G2", 1}, {"G3", 1}, {"G4", 1}}));
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(std::holds_alternative<PreallocateRefusal>(*outcome));
  EXPECT_EQ(release_calls, 2);
  EXPECT_LE(clock_.now_ms - started, 4'100);
  ASSERT_EQ(ledger_.compensations.size(), 4u);
  for (const auto& task : ledger_.compensations) {
    EXPECT_EQ(task.kind, "release_undo");
    EXPECT_EQ(task.order_no, "O1");
  }
  EXPECT_EQ(ledger_.compensations[1].reason, "timeout");
  EXPECT_NE(ledger_.compensations[2].reason.find("not tried"), std::string::npos);
}

// A claim Redis timed out on may still be made (a stalled server runs the command later);
// nothing but its undo task would ever forget it. A claim refused at once (no connection)
// never reached Redis and leaves nothing.
TEST_F(ServiceTest, AClaimRedisTimedOutOnLeavesItsUndoTask) {
  stock("G1", 10);
  hot_.fail_hook = [](const std::string& method, const std::string&) {
    return method == "claimOrder" ? "connection refused" : "";
  };
  EXPECT_EQ(errorOf(service_.preallocate(order("O1", {{"G1", 3}}))), ErrorCode::kUnavailable);
  EXPECT_TRUE(ledger_.compensations.empty());
  hot_.fail_hook = [&](const std::string& method, const std::string&) -> std::string {
    if (method != "claimOrder") return "";
    clock_.now_ms += 2'000;
    return "timeout";
  };
  EXPECT_EQ(errorOf(service_.preallocate(order("O1", {{"G1", 3}}))), ErrorCode::kUnavailable);
  ASSERT_EQ(ledger_.compensations.size(), 1u);
  EXPECT_EQ(ledger_.compensations[0].kind, "release_undo");
  EXPECT_EQ(ledger_.compensations[0].order_no, "O1");
  EXPECT_EQ(ledger_.compensations[0].key, record("G1"));
}

// A refused order whose lines were all released but whose claim could not be dropped would
// stay "being allocated" for good: its undo task forgets it.
TEST_F(ServiceTest, AClaimThatCannotBeDroppedLeavesItsUndoTask) {
  stock("G1", 10);
  stock("G2", 0);
  hot_.fail_hook = [](const std::string& method, const std::string&) {
    return method == "abortOrder" ? "timeout" : "";
  };
  auto outcome = service_.preallocate(order("O1", {{"G1", 3}, {"G2", 1}}));
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(std::holds_alternative<PreallocateRefusal>(*outcome));
  EXPECT_EQ(quantities("G1"), (Quantities{10, 0, 0}));
  ASSERT_EQ(ledger_.compensations.size(), 1u);
  EXPECT_EQ(ledger_.compensations[0].kind, "release_undo");
  EXPECT_EQ(ledger_.compensations[0].order_no, "O1");
}

TEST_F(ServiceTest, AFailingRollbackReleaseAnswers503AndARetryFinishesIt) {
  stock("G1", 10);
  allocate(order("O1", {{"G1", 3}}));
  hot_.fail_hook = [](const std::string& method, const std::string&) {
    return method == "release" ? "timeout" : "";
  };
  EXPECT_EQ(service_.rollback({"D1", "O1"}).error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(ledger_.compensations.size(), 1u);
  hot_.fail_hook = nullptr;
  auto retry = service_.rollback({"D1", "O1"});
  ASSERT_TRUE(retry.has_value());
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(quantities("G1"), (Quantities{10, 0, 0}));
}

TEST_F(ServiceTest, ARollbackThatWinsTheRaceRefusesTheAllocation) {
  stock("G1", 10);
  stock("G2", 10);
  bool rolled_back = false;
  hot_.before_hold = [&](const RecordKey& key) {
    if (key.goods_no == "G2" && !rolled_back) {
      rolled_back = true;
      ASSERT_TRUE(service_.rollback({"D1", "O1"}).has_value());
    }
  };
  EXPECT_EQ(errorOf(service_.preallocate(order("O1", {{"G1", 3}, {"G2", 3}}))),
            ErrorCode::kOrderRolledBack);
  EXPECT_EQ(quantities("G1"), (Quantities{10, 0, 0}));
  EXPECT_EQ(quantities("G2"), (Quantities{10, 0, 0}));
}

// The same race when the order is refused (a line on a record never seen): the rollback has
// taken the claim, so the refusal's undo is not this call's to make, and the answer is the
// rollback's, not a 503 that a retry would turn into it.
TEST_F(ServiceTest, ARollbackThatTakesTheClaimOfARefusedOrderIsItsAnswer) {
  stock("G1", 10);
  bool rolled_back = false;
  // G2 is not in Redis, so the service looks for it in the database: the rollback lands then.
  ledger_.fail_hook = [&](const std::string& method) {
    if (method == "findRecord" && !hot_.holds.empty() && !rolled_back) {  // G1 is held
      rolled_back = true;
      EXPECT_TRUE(service_.rollback({"D1", "O1"}).has_value());
    }
    return std::string();
  };
  EXPECT_EQ(errorOf(service_.preallocate(order("O1", {{"G1", 3}, {"G2", 3}}))),
            ErrorCode::kOrderRolledBack);
  ledger_.fail_hook = nullptr;
  EXPECT_TRUE(rolled_back);
  EXPECT_EQ(quantities("G1"), (Quantities{10, 0, 0}));
}

TEST_F(ServiceTest, ADuplicateInFlightWaitsThenAnswersUnavailable) {
  stock("G1", 10);
  hot_.orders[{"D1", "O1"}] = FakeHotStore::Order{
      'P',  "", linesDigest(order("O1", {{"G1", 1}}).lines), "someone-else", "", clock_.nowMs(),
      false};
  EXPECT_EQ(errorOf(service_.preallocate(order("O1", {{"G1", 1}}))), ErrorCode::kUnavailable);
  EXPECT_EQ(counters_.busy_waits_exhausted.load(), 1u);
  // Once the lease has expired, a retry takes the order over and finishes it.
  clock_.now_ms += limits::kOrderLeaseMs + 1;
  EXPECT_EQ(allocate(order("O1", {{"G1", 1}})).status, OrderStatus::kAllocated);
}

TEST_F(ServiceTest, ATakeoverThatIsRefusedUndoesTheDeadOwnersHoldsToo) {
  stock("X", 10);
  stock("Y", 10);
  stock("Z", 0);
  // A dead owner claimed X, Y, Z, held X and Y, and never came back.
  const auto dead = order("O1", {{"X", 5}, {"Y", 5}, {"Z", 1}});
  for (const auto* goods : {"X", "Y"}) {
    ASSERT_TRUE(hot_.loadRecord(record(goods), Quantities{10, 0, 0}).has_value());
    ASSERT_EQ(hot_.hold(record(goods), "O1", 5, false)->kind, HoldOutcome::Kind::kHeld);
  }
  hot_.orders[{"D1", "O1"}] = FakeHotStore::Order{'P',
                                                  encodeLineRequests(dead.lines),
                                                  linesDigest(dead.lines),
                                                  "dead",
                                                  "",
                                                  clock_.nowMs() - limits::kOrderLeaseMs - 1,
                                                  false};
  // The retry lists the lines in another order; Z is short, so the order is refused.
  auto outcome = service_.preallocate(order("O1", {{"Z", 1}, {"Y", 5}, {"X", 5}}));
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(std::holds_alternative<PreallocateRefusal>(*outcome));
  EXPECT_EQ(quantities("X"), (Quantities{10, 0, 0}));
  EXPECT_EQ(quantities("Y"), (Quantities{10, 0, 0}));
  EXPECT_TRUE(hot_.holds.empty());
  EXPECT_TRUE(hot_.orders.empty());
}

TEST_F(ServiceTest, AnOwnerThatLostItsClaimLeavesTheLinesToTheNewOwner) {
  stock("G1", 10);
  stock("G2", 10);
  hot_.before_hold = [&](const RecordKey& key) {
    if (key.goods_no != "G2") return;
    // This owner stalls past its lease and another call takes the order over.
    clock_.now_ms += limits::kOrderLeaseMs + 1;
    hot_.orders[{"D1", "O1"}].token = "new-owner";
    hot_.orders[{"D1", "O1"}].since_ms = clock_.now_ms;
  };
  EXPECT_EQ(errorOf(service_.preallocate(order("O1", {{"G1", 3}, {"G2", 3}}))),
            ErrorCode::kUnavailable);
  // Nothing was undone behind the new owner's back.
  EXPECT_EQ(quantities("G1").preallocated, 3);
  EXPECT_EQ((hot_.orders[{"D1", "O1"}].token), "new-owner");
}

TEST_F(ServiceTest, AReplayAfterDeductKeepsTheFirstStatus) {
  stock("G1", 1);
  EXPECT_EQ(allocate(order("O1", {{"G1", 2}}, true)).status, OrderStatus::kShortage);
  ASSERT_TRUE(service_.deduct({"D1", "O1"}).has_value());
  const auto replay = allocate(order("O1", {{"G1", 2}}, true));
  EXPECT_TRUE(replay.replayed);
  EXPECT_EQ(replay.status, OrderStatus::kShortage);
}

// ---- adjust ----

AdjustRequest adjustDelta(const std::string& ref, std::int64_t delta) {
  return AdjustRequest{record("G1"), ref, delta, std::nullopt};
}

TEST_F(ServiceTest, AdjustCreatesTheRecordAndReplaysByRef) {
  auto first = service_.adjust(adjustDelta("R1", 10), "d10");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, (Quantities{10, 0, 0}));
  EXPECT_EQ(ledger_.records[record("G1").index()].on_hand, 10);
  auto replay = service_.adjust(adjustDelta("R1", 10), "d10");
  ASSERT_TRUE(replay.has_value());
  EXPECT_EQ(*replay, (Quantities{10, 0, 0}));
  EXPECT_EQ(quantities("G1").on_hand, 10);
  EXPECT_EQ(service_.adjust(adjustDelta("R1", 11), "d11").error().code,
            ErrorCode::kIdempotencyConflict);
}

TEST_F(ServiceTest, AdjustRefusesToMakeAvailableNegative) {
  ASSERT_TRUE(service_.adjust(adjustDelta("R1", 5), "d5").has_value());
  allocate(order("O1", {{"G1", 3}}));
  const std::vector<AdjustRequest> refused = {adjustDelta("R2", -3),
                                              AdjustRequest{record("G1"), "R3", std::nullopt, 2}};
  for (const auto& request : refused) {
    EXPECT_EQ(service_.adjust(request, request.ref).error().code, ErrorCode::kInsufficientStock);
  }
  EXPECT_EQ(quantities("G1"), (Quantities{5, 3, 0}));
  EXPECT_EQ(ledger_.records[record("G1").index()].on_hand, 5);
  EXPECT_FALSE(ledger_.adjustments.contains({"D1", "R2"}));  // the ref can be used again
  auto set = service_.adjust(AdjustRequest{record("G1"), "R4", std::nullopt, 3}, "s3");
  ASSERT_TRUE(set.has_value());
  EXPECT_EQ(*set, (Quantities{3, 3, 0}));
  EXPECT_EQ(ledger_.records[record("G1").index()].on_hand, 3);
}

// Two calls with one ref at once: the second resumes the change (applied once) and, finishing
// last, answers what the first recorded, not its own later reading of the record.
TEST_F(ServiceTest, AConcurrentDuplicateAdjustAnswersTheFirstAnswer) {
  ASSERT_TRUE(service_.adjust(adjustDelta("R0", 10), "d10").has_value());
  const Quantities first_answer{15, 2, 0};  // a hold came between the two readings
  hot_.fail_hook = [&](const std::string& method, const std::string&) {
    if (method == "adjust") {  // the other call completes while this one is in Redis
      auto& adjustment = ledger_.adjustments[{"D1", "R1"}];
      adjustment.state = "complete";
      adjustment.answer = first_answer;
    }
    return std::string();
  };
  auto answer = service_.adjust(adjustDelta("R1", 5), "d5");
  hot_.fail_hook = nullptr;
  ASSERT_TRUE(answer.has_value()) << answer.error().message;
  EXPECT_EQ(*answer, first_answer);
  EXPECT_EQ((ledger_.adjustments[{"D1", "R1"}].answer), first_answer);
}

TEST_F(ServiceTest, ADecreaseOfAnUnknownRecordIsRefusedWithoutCreatingIt) {
  EXPECT_EQ(service_.adjust(adjustDelta("R1", -1), "d-1").error().code,
            ErrorCode::kInsufficientStock);
  EXPECT_FALSE(ledger_.records.contains(record("G1").index()));
}

TEST_F(ServiceTest, AnIncreaseGoesToTheDatabaseFirstAndARetryFinishesItOnce) {
  ASSERT_TRUE(service_.adjust(adjustDelta("R0", 1), "d1").has_value());
  hot_.fail_hook = [](const std::string& method, const std::string&) {
    return method == "adjust" ? "redis down" : "";
  };
  EXPECT_EQ(service_.adjust(adjustDelta("R1", 10), "d10").error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(ledger_.records[record("G1").index()].on_hand, 11);  // the database won
  EXPECT_EQ(quantities("G1").on_hand, 1);
  hot_.fail_hook = nullptr;
  auto retry = service_.adjust(adjustDelta("R1", 10), "d10");
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->on_hand, 11);
  EXPECT_EQ(ledger_.records[record("G1").index()].on_hand, 11);
}

TEST_F(ServiceTest, ADecreaseGoesToRedisFirstAndARetryFinishesItOnce) {
  ASSERT_TRUE(service_.adjust(adjustDelta("R0", 10), "d10").has_value());
  ledger_.fail_hook = [](const std::string& method) {
    return method == "applyAdjustment" ? "db down" : "";
  };
  EXPECT_EQ(service_.adjust(adjustDelta("R1", -4), "d-4").error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(quantities("G1").on_hand, 6);  // Redis won
  ledger_.fail_hook = nullptr;
  auto retry = service_.adjust(adjustDelta("R1", -4), "d-4");
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->on_hand, 6);
  EXPECT_EQ(ledger_.records[record("G1").index()].on_hand, 6);
}

TEST_F(ServiceTest, AnIncreasePastTheMaximumChangesNothing) {
  ASSERT_TRUE(service_.adjust(adjustDelta("R0", limits::kOnHandMax - 1), "d").has_value());
  EXPECT_EQ(service_.adjust(adjustDelta("R1", 2), "d2").error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(ledger_.records[record("G1").index()].on_hand, limits::kOnHandMax - 1);
  EXPECT_EQ(quantities("G1").on_hand, limits::kOnHandMax - 1);
  EXPECT_FALSE(ledger_.adjustments.contains({"D1", "R1"}));
}

TEST_F(ServiceTest, ReadinessNamesTheFailingDependency) {
  EXPECT_TRUE(service_.checkReady().has_value());
  ledger_.fail_hook = [](const std::string& method) { return method == "ping" ? "down" : ""; };
  auto ready = service_.checkReady();
  ASSERT_FALSE(ready.has_value());
  EXPECT_NE(ready.error().message.find("database"), std::string::npos);
}

}  // namespace
}  // namespace allot
