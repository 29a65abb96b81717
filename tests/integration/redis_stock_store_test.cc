// The Lua scripts and the RedisStockStore against a real Redis, standalone and Cluster. In
// Cluster every script must find all its keys in one slot (else Redis answers CROSSSLOT), so
// these tests also prove the key layout and the per-slot outbox design.
#include "redis/redis_stock_store.h"

#include <gtest/gtest.h>

#include "core/limits.h"
#include "redis/client.h"
#include "redis/keys.h"
#include "support/servers.h"
#include "support/test_env.h"

namespace allot {
namespace {

using redis::Reply;

class StoreTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    client_ = testing::connectRedis(GetParam() ? testing::redisClusterUrl() : testing::redisUrl());
    ASSERT_NE(client_, nullptr);
    ASSERT_EQ(client_->isCluster(), GetParam());
    store_ = std::make_unique<redis::RedisStockStore>(*client_, redis::StoreOptions{3600, 30'000});
    dept_ = testing::uniqueName("st");
  }

  RecordKey record(const std::string& goods) { return RecordKey{dept_, goods, "W1"}; }

  Quantities read(const RecordKey& key) {
    auto q = store_->readRecord(key);
    EXPECT_TRUE(q.has_value() && q->has_value());
    return q && *q ? **q : Quantities{};
  }

  // Entries of the outbox stream that holds `key`'s events, with the given event type.
  std::vector<Reply> outboxEvents(const std::string& key_in_slot, const std::string& type,
                                  const std::string& order_or_ref) {
    const auto stream = redis::keys::outboxFor(key_in_slot);
    auto reply = client_->command(stream, {"XRANGE", stream, "-", "+"});
    EXPECT_TRUE(reply.has_value());
    std::vector<Reply> found;
    if (!reply || !reply->isArray()) return found;
    for (const auto& entry : reply->elements) {
      const auto& fields = entry.elements[1].elements;
      bool type_matches = false, subject_matches = false;
      for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str == "e" && fields[i + 1].str == type) type_matches = true;
        if ((fields[i].str == "o" || fields[i].str == "f") && fields[i + 1].str == order_or_ref) {
          subject_matches = true;
        }
      }
      if (type_matches && subject_matches) found.push_back(entry);
    }
    return found;
  }

  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<redis::RedisStockStore> store_;
  std::string dept_;
};

TEST_P(StoreTest, HoldIsIdempotentAndWritesOneOutboxEvent) {
  const auto key = record("G1");
  EXPECT_EQ(store_->hold(key, "O1", 1, false)->kind, HoldOutcome::Kind::kNotLoaded);
  ASSERT_TRUE(store_->loadRecord(key, Quantities{10, 0, 0}).value());
  EXPECT_FALSE(store_->loadRecord(key, Quantities{99, 0, 0}).value());  // never over Redis
  auto first = store_->hold(key, "O1", 4, false);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(first->kind, HoldOutcome::Kind::kHeld);
  auto again = store_->hold(key, "O1", 4, false);
  EXPECT_EQ(again->kind, HoldOutcome::Kind::kAlreadyHeld);
  EXPECT_EQ(again->allocated, 4);
  EXPECT_EQ(read(key), (Quantities{10, 4, 0}));
  EXPECT_EQ(outboxEvents(redis::keys::usable(key), "hold", "O1").size(), 1u);
  auto refused = store_->hold(key, "O2", 7, false);
  EXPECT_EQ(refused->kind, HoldOutcome::Kind::kInsufficient);
  EXPECT_EQ(refused->available, 6);
  EXPECT_EQ(read(key), (Quantities{10, 4, 0}));
}

// A lagging row may hold more than it has (a decrease written before earlier releases): harmless
// while Redis has the record, refused (never loaded, never a crash) when it has not.
TEST_P(StoreTest, ARowHoldingMoreThanItHasIsNeverLoaded) {
  const Quantities lagging{3, 5, 0};
  const auto loaded = record("G7");
  ASSERT_TRUE(store_->loadRecord(loaded, Quantities{8, 0, 0}).value());
  auto again = store_->loadRecord(loaded, lagging);
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_FALSE(*again);
  EXPECT_EQ(read(loaded), (Quantities{8, 0, 0}));

  const auto absent = record("G8");
  auto refused = store_->loadRecord(absent, lagging);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(store_->hold(absent, "O1", 1, false)->kind, HoldOutcome::Kind::kNotLoaded);
}

TEST_P(StoreTest, ShortageRollbackAndDeductMoveTheRightCounters) {
  const auto key = record("G2");
  ASSERT_TRUE(store_->loadRecord(key, Quantities{5, 0, 0}).has_value());
  auto held = store_->hold(key, "O1", 8, true);
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->allocated, 5);
  EXPECT_EQ(held->shortage, 3);
  EXPECT_EQ(read(key), (Quantities{5, 5, 3}));
  auto deducted = store_->release(key, "O1", ReleaseKind::kDeduct);
  ASSERT_TRUE(deducted.has_value()) << deducted.error().message;
  EXPECT_TRUE(deducted->released);
  EXPECT_EQ(read(key), (Quantities{0, 0, 0}));
  EXPECT_FALSE(store_->release(key, "O1", ReleaseKind::kDeduct)->released);
  EXPECT_EQ(read(key), (Quantities{0, 0, 0}));

  ASSERT_TRUE(store_->adjust(key, "R1", {AdjustChange::Mode::kDelta, 4}).has_value());
  ASSERT_EQ(store_->hold(key, "O2", 3, false)->kind, HoldOutcome::Kind::kHeld);
  EXPECT_TRUE(store_->release(key, "O2", ReleaseKind::kRollback)->released);
  EXPECT_EQ(read(key), (Quantities{4, 0, 0}));
  // The tombstone refuses a late hold of the rolled-back order.
  EXPECT_EQ(store_->hold(key, "O2", 3, false)->kind, HoldOutcome::Kind::kRolledBack);
  EXPECT_EQ(read(key), (Quantities{4, 0, 0}));
}

// A record that is not loaded: an undo or a rollback there has nothing to release when the
// record was never seen (an order refused for it, or rolled back while it was being
// allocated), and the rollback leaves its tombstone for a hold that comes once the record
// exists. Everything else answers "not loaded" (unavailable) and writes nothing: a deduct, a
// release on a record that moved to the MySQL path (fenced), and one of an order that has a
// trace of a hold there.
TEST_P(StoreTest, AReleaseOnARecordNeverSeenHasNothingToRelease) {
  const auto never_seen = record("G10");
  auto undone = store_->release(never_seen, "O1", ReleaseKind::kUndo);
  ASSERT_TRUE(undone.has_value()) << undone.error().message;
  EXPECT_FALSE(undone->released);
  const auto tombstone = redis::keys::rollbackTombstone(never_seen, "O1");
  EXPECT_EQ(client_->command(tombstone, {"EXISTS", tombstone})->integer, 0);
  auto refused = store_->release(never_seen, "O1", ReleaseKind::kDeduct);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  auto rolled_back = store_->release(never_seen, "O1", ReleaseKind::kRollback);
  ASSERT_TRUE(rolled_back.has_value()) << rolled_back.error().message;
  EXPECT_FALSE(rolled_back->released);
  EXPECT_EQ(client_->command(tombstone, {"EXISTS", tombstone})->integer, 1);
  auto loaded = store_->readRecord(never_seen);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_FALSE(loaded->has_value());
  // Once the record exists, the tombstone refuses a late hold of the order.
  ASSERT_TRUE(store_->loadRecord(never_seen, Quantities{5, 0, 0}).value());
  EXPECT_EQ(store_->hold(never_seen, "O1", 1, false)->kind, HoldOutcome::Kind::kRolledBack);
  EXPECT_EQ(read(never_seen), (Quantities{5, 0, 0}));

  const auto moved = record("G11");
  ASSERT_TRUE(store_->loadRecord(moved, Quantities{5, 0, 0}).value());
  ASSERT_EQ(store_->hold(moved, "O2", 2, false)->kind, HoldOutcome::Kind::kHeld);
  ASSERT_TRUE(store_->evictRecord(moved).has_value());
  for (const auto kind : {ReleaseKind::kUndo, ReleaseKind::kRollback}) {
    auto fenced = store_->release(moved, "O3", kind);
    ASSERT_FALSE(fenced.has_value());
    EXPECT_EQ(fenced.error().code, ErrorCode::kUnavailable);
  }
  const auto moved_tombstone = redis::keys::rollbackTombstone(moved, "O3");
  EXPECT_EQ(client_->command(moved_tombstone, {"EXISTS", moved_tombstone})->integer, 0);

  // A hold entry without the record's counters (not a state the scripts leave, but nothing
  // says it was never held): not loaded.
  const auto traced = record("G12");
  const auto holds = redis::keys::holds(traced);
  ASSERT_TRUE(client_->command(holds, {"HSET", holds, "O4", "2:0"}).has_value());
  for (const auto kind : {ReleaseKind::kUndo, ReleaseKind::kRollback}) {
    auto kept = store_->release(traced, "O4", kind);
    ASSERT_FALSE(kept.has_value());
    EXPECT_EQ(kept.error().code, ErrorCode::kUnavailable);
  }
  EXPECT_EQ(client_->command(holds, {"HGET", holds, "O4"})->str, "2:0");
}

// The write-back reads a stream as soon as a script names it (without waiting for its sweep):
// every script that may append must name the outbox stream of its slot, never another key.
TEST_P(StoreTest, EveryScriptThatAppendsNamesItsOutboxStream) {
  std::vector<std::string> noted;
  redis::StoreOptions options{3600, 30'000};
  options.on_outbox_append = [&](const std::string& stream) { noted.push_back(stream); };
  redis::RedisStockStore store(*client_, options);
  const auto key = record("G13");
  const auto stream = redis::keys::outboxFor(redis::keys::usable(key));
  ASSERT_TRUE(store.loadRecord(key, Quantities{10, 0, 0}).value());
  ASSERT_TRUE(store.adjust(key, "R1", {AdjustChange::Mode::kDelta, 1}).has_value());
  for (const auto kind : {ReleaseKind::kUndo, ReleaseKind::kRollback, ReleaseKind::kDeduct}) {
    const std::string order = std::string("O") + std::to_string(static_cast<int>(kind));
    ASSERT_EQ(store.hold(key, order, 1, false)->kind, HoldOutcome::Kind::kHeld);
    ASSERT_TRUE(store.release(key, order, kind).has_value());
  }
  ASSERT_GE(noted.size(), 7u);
  for (const auto& name : noted) EXPECT_EQ(name, stream);
}

TEST_P(StoreTest, AdjustByDeltaAndBySetNeverMakesAvailableNegative) {
  const auto key = record("G3");
  ASSERT_TRUE(store_->loadRecord(key, Quantities{}).has_value());
  auto added = store_->adjust(key, "R1", {AdjustChange::Mode::kDelta, 10});
  ASSERT_TRUE(added.has_value()) << added.error().message;
  EXPECT_EQ(added->after, (Quantities{10, 0, 0}));
  EXPECT_EQ(store_->adjust(key, "R1", {AdjustChange::Mode::kDelta, 10})->kind,
            HotAdjustOutcome::Kind::kReplay);
  ASSERT_EQ(store_->hold(key, "O1", 6, false)->kind, HoldOutcome::Kind::kHeld);
  EXPECT_EQ(store_->adjust(key, "R2", {AdjustChange::Mode::kDelta, -5})->kind,
            HotAdjustOutcome::Kind::kInsufficient);
  EXPECT_EQ(store_->adjust(key, "R3", {AdjustChange::Mode::kSet, 5})->kind,
            HotAdjustOutcome::Kind::kInsufficient);
  auto set = store_->adjust(key, "R4", {AdjustChange::Mode::kSet, 7});
  EXPECT_EQ(set->delta, -3);
  EXPECT_EQ(set->after, (Quantities{7, 6, 0}));
  EXPECT_EQ(outboxEvents(redis::keys::usable(key), "adjust", "R4").size(), 1u);
  auto too_much = store_->adjust(key, "R5", {AdjustChange::Mode::kSet, limits::kOnHandMax + 1});
  ASSERT_FALSE(too_much.has_value());
  EXPECT_EQ(too_much.error().code, ErrorCode::kInvalidRequest);
}

TEST_P(StoreTest, OrderLifecycleScripts) {
  const OrderRef order{dept_, "O1"};
  auto claim = store_->claimOrder(order, "lines", "digest", "t1", 1000);
  ASSERT_TRUE(claim.has_value()) << claim.error().message;
  EXPECT_EQ(claim->kind, ClaimOutcome::Kind::kClaimed);
  EXPECT_EQ(store_->claimOrder(order, "lines", "digest", "t1", 1001)->kind,
            ClaimOutcome::Kind::kClaimed);  // the same caller again
  EXPECT_EQ(store_->claimOrder(order, "lines", "digest", "t2", 1002)->kind,
            ClaimOutcome::Kind::kBusy);
  EXPECT_EQ(store_->claimOrder(order, "other", "other", "t2", 1002)->kind,
            ClaimOutcome::Kind::kConflict);
  EXPECT_EQ(store_->endOrder(order, ReleaseKind::kDeduct)->kind, EndOutcome::Kind::kBusy);
  EXPECT_EQ(store_->commitOrder(order, OrderStatus::kAllocated, "answer", "t2").value(),
            CommitOutcome::kNotOwner);
  ASSERT_EQ(store_->commitOrder(order, OrderStatus::kAllocated, "answer", "t1").value(),
            CommitOutcome::kCommitted);
  auto replay = store_->claimOrder(order, "lines", "digest", "t3", 1003);
  EXPECT_EQ(replay->kind, ClaimOutcome::Kind::kReplay);
  EXPECT_EQ(replay->answer_blob, "answer");
  auto deducted = store_->endOrder(order, ReleaseKind::kDeduct);
  EXPECT_EQ(deducted->kind, EndOutcome::Kind::kStarted);
  EXPECT_EQ(deducted->lines_blob, "lines");
  EXPECT_EQ(store_->endOrder(order, ReleaseKind::kRollback)->kind, EndOutcome::Kind::kDeducted);
  ASSERT_TRUE(store_->markOrderReleased(order).has_value());
  auto replayed = store_->endOrder(order, ReleaseKind::kDeduct);
  EXPECT_EQ(replayed->kind, EndOutcome::Kind::kReplay);
  EXPECT_TRUE(replayed->released);
  const auto order_key = redis::keys::order(order);
  EXPECT_EQ(outboxEvents(order_key, "order", "O1").size(), 2u);  // committed, deducted
  auto ttl = client_->command(order_key, {"TTL", order_key});
  EXPECT_GT(ttl->integer, 0);  // retention counts down once released

  const OrderRef unknown{dept_, "O2"};
  EXPECT_EQ(store_->endOrder(unknown, ReleaseKind::kDeduct)->kind, EndOutcome::Kind::kNotFound);
  EXPECT_EQ(store_->endOrder(unknown, ReleaseKind::kRollback)->kind, EndOutcome::Kind::kStarted);
  EXPECT_EQ(store_->claimOrder(unknown, "l", "d", "t", 1)->kind, ClaimOutcome::Kind::kRolledBack);
}

TEST_P(StoreTest, AbortForgetsOnlyTheOwnersPendingClaim) {
  const OrderRef order{dept_, "O1"};
  ASSERT_EQ(store_->claimOrder(order, "l", "d", "t1", 1000)->kind, ClaimOutcome::Kind::kClaimed);
  ASSERT_TRUE(store_->abortOrder(order, "t2").has_value());
  EXPECT_TRUE(store_->readOrder(order)->has_value());
  ASSERT_TRUE(store_->abortOrder(order, "t1").has_value());
  EXPECT_FALSE(store_->readOrder(order)->has_value());
}

TEST_P(StoreTest, ScriptsSurviveAScriptCacheFlush) {
  ASSERT_TRUE(client_->commandOnMasters({"SCRIPT", "FLUSH"}).has_value());
  EXPECT_TRUE(store_->ping().has_value());
  const auto key = record("G4");
  ASSERT_TRUE(store_->loadRecord(key, Quantities{1, 0, 0}).has_value());
  EXPECT_EQ(store_->hold(key, "O1", 1, false)->kind, HoldOutcome::Kind::kHeld);
}

// Live holds written before the h: hash existed are keys of their own: they still replay,
// release and deduct as before.
TEST_P(StoreTest, AHoldOfTheKeyPerHoldLayoutStillReplaysAndReleases) {
  const auto key = record("G6");
  ASSERT_TRUE(store_->loadRecord(key, Quantities{10, 5, 0}).value());
  for (const std::string order : {"old1", "old2"}) {
    const auto operate = redis::keys::operate(key, order);
    ASSERT_TRUE(client_->command(operate, {"SET", operate, order == "old1" ? "2:0" : "3:0"}));
  }
  auto replay = store_->hold(key, "old1", 2, false);
  ASSERT_TRUE(replay.has_value());
  EXPECT_EQ(replay->kind, HoldOutcome::Kind::kAlreadyHeld);
  EXPECT_EQ(replay->allocated, 2);
  EXPECT_TRUE(store_->release(key, "old1", ReleaseKind::kRollback)->released);
  EXPECT_EQ(read(key), (Quantities{10, 3, 0}));
  EXPECT_TRUE(store_->release(key, "old2", ReleaseKind::kDeduct)->released);
  EXPECT_EQ(read(key), (Quantities{7, 0, 0}));
  const auto operate = redis::keys::operate(key, "old2");
  EXPECT_EQ(client_->command(operate, {"GET", operate})->str, "3:0:D");
  EXPECT_FALSE(store_->release(key, "old2", ReleaseKind::kDeduct)->released);
}

TEST_P(StoreTest, EveryKeyOfARecordSharesTheSlotOfItsOutbox) {
  const auto key = record("G5");
  const auto slot = redis::keyHashSlot(redis::keys::usable(key));
  for (const auto& name :
       {redis::keys::subtracted(key), redis::keys::ullage(key), redis::keys::holds(key),
        redis::keys::operate(key, "O"), redis::keys::rollbackTombstone(key, "O"),
        redis::keys::deductionRecord(key), redis::keys::adjustRef(key, "R"),
        redis::keys::outboxFor(redis::keys::usable(key))}) {
    EXPECT_EQ(redis::keyHashSlot(name), slot) << name;
  }
}

TEST_P(StoreTest, ABatchOfHoldsAnswersEachAsSingleHoldsInTurnWould) {
  const auto key = record("G1");
  ASSERT_TRUE(store_->loadRecord(key, Quantities{6, 0, 0}).value());
  ASSERT_TRUE(store_->hold(key, "held-before", 1, false)->kind == HoldOutcome::Kind::kHeld);
  ASSERT_TRUE(store_->release(key, "rolled", ReleaseKind::kRollback).has_value());  // tombstone
  // In turn: 5 usable; "a" takes 2; "held-before" is a replay; "rolled" is refused by its
  // tombstone; "big" is short (3 left); "b" takes 3; "short" takes 0 and records 4 as shortage;
  // "a" again is a replay of its first hold.
  const std::vector<HoldRequest> requests{
      {"a", 2, false}, {"held-before", 1, false}, {"rolled", 1, false}, {"big", 4, false},
      {"b", 3, false}, {"short", 4, true},        {"a", 2, false}};
  struct Expected {
    HoldOutcome::Kind kind;
    std::int64_t allocated, shortage, available;
  };
  const std::vector<Expected> expected{
      {HoldOutcome::Kind::kHeld, 2, 0, 3},       {HoldOutcome::Kind::kAlreadyHeld, 1, 0, 0},
      {HoldOutcome::Kind::kRolledBack, 0, 0, 0}, {HoldOutcome::Kind::kInsufficient, 0, 0, 3},
      {HoldOutcome::Kind::kHeld, 3, 0, 0},       {HoldOutcome::Kind::kHeld, 0, 4, 0},
      {HoldOutcome::Kind::kAlreadyHeld, 2, 0, 0}};
  auto outcomes = store_->holdBatch(key, requests);
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message;
  ASSERT_EQ(outcomes->size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(std::to_string(i) + " " + requests[i].order_no);
    EXPECT_EQ((*outcomes)[i].kind, expected[i].kind);
    EXPECT_EQ((*outcomes)[i].allocated, expected[i].allocated);
    EXPECT_EQ((*outcomes)[i].shortage, expected[i].shortage);
    EXPECT_EQ((*outcomes)[i].available, expected[i].available);
  }
  EXPECT_EQ(read(key), (Quantities{6, 6, 4}));
  // One outbox event and one live-hold entry per hold that happened, as single holds.
  const auto usable = redis::keys::usable(key);
  const auto holds = redis::keys::holds(key);
  for (const std::string order : {"a", "b", "short"}) {
    EXPECT_EQ(outboxEvents(usable, "hold", order).size(), 1u) << order;
    EXPECT_EQ(client_->command(holds, {"HEXISTS", holds, order})->integer, 1) << order;
  }
  for (const std::string order : {"rolled", "big"}) {
    EXPECT_TRUE(outboxEvents(usable, "hold", order).empty()) << order;
    EXPECT_EQ(client_->command(holds, {"HEXISTS", holds, order})->integer, 0) << order;
  }
  // Each hold of a batch is released on its own, like any other hold.
  EXPECT_TRUE(store_->release(key, "b", ReleaseKind::kUndo)->released);
  EXPECT_EQ(read(key), (Quantities{6, 3, 4}));
}

TEST_P(StoreTest, AFullBatchFitsInOneScriptCall) {
  const auto key = record("G1");
  ASSERT_TRUE(store_->loadRecord(key, Quantities{1'000, 0, 0}).value());
  std::vector<HoldRequest> requests;
  for (std::size_t i = 0; i < limits::kHoldBatchMax; ++i) {
    requests.push_back({"O" + std::to_string(i), 1, false});
  }
  auto outcomes = store_->holdBatch(key, requests);
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message;
  ASSERT_EQ(outcomes->size(), limits::kHoldBatchMax);
  for (std::size_t i = 0; i < outcomes->size(); ++i) {
    EXPECT_EQ((*outcomes)[i].kind, HoldOutcome::Kind::kHeld);
    EXPECT_EQ((*outcomes)[i].available, static_cast<std::int64_t>(1'000 - 1 - i));
  }
  const auto held = static_cast<std::int64_t>(limits::kHoldBatchMax);
  EXPECT_EQ(read(key), (Quantities{1'000, held, 0}));
}

INSTANTIATE_TEST_SUITE_P(Redis, StoreTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Cluster" : "Standalone"; });

}  // namespace
}  // namespace allot
