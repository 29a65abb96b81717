// The single-line fast path's script (lua/order_hold.lua) through RedisAsyncStore and its
// pipelined AsyncConnection, against a real standalone Redis of the test's own: each order is
// claimed, held and committed in one step and leaves exactly what the multi-step protocol leaves,
// so the other scripts (replay, rollback, deduct) read it unchanged; what the script cannot finish
// it leaves untouched.
#include "redis/redis_async_store.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>

#include "redis/client.h"
#include "redis/keys.h"
#include "redis/redis_stock_store.h"
#include "support/allotd_process.h"
#include "support/servers.h"
#include "support/test_env.h"

namespace allot {
namespace {

using Kind = LineOrderOutcome::Kind;

class AsyncStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(redis_.url().empty());
    client_ = testing::connectRedis(redis_.url());
    ASSERT_NE(client_, nullptr);
    store_ = std::make_unique<redis::RedisStockStore>(*client_, redis::StoreOptions{3600, 30'000});
    auto options = redis::parseRedisUrl(redis_.url());
    ASSERT_TRUE(options.has_value());
    auto node = redis::parseNodeAddress(options->seeds.front());
    ASSERT_TRUE(node.has_value());
    fast_ = std::make_unique<redis::RedisAsyncStore>(
        io_, *node, redis::ConnectionSettings{options->password},
        [this](const std::string& stream) { noted_.push_back(stream); });
    dept_ = testing::uniqueName("as");
  }

  RecordKey record(const std::string& goods) { return RecordKey{dept_, goods, "W1"}; }

  void load(const RecordKey& key, std::int64_t on_hand) {
    ASSERT_TRUE(store_->loadRecord(key, Quantities{on_hand, 0, 0}).value());
  }

  // One call, run to its answer.
  Result<std::vector<LineOrderOutcome>> call(const RecordKey& key,
                                             const std::vector<LineOrder>& orders,
                                             redis::RedisAsyncStore* store = nullptr) {
    std::optional<Result<std::vector<LineOrderOutcome>>> answer;
    (store ? store : fast_.get())
        ->preallocateLines(key, orders, [&](Result<std::vector<LineOrderOutcome>> outcomes) {
          answer = std::move(outcomes);
        });
    io_.restart();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!answer && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(50));
    }
    if (!answer) return fail(ErrorCode::kInternal, "no answer within 10 s");
    return std::move(*answer);
  }

  std::vector<LineOrderOutcome> called(const RecordKey& key, const std::vector<LineOrder>& orders) {
    auto outcomes = call(key, orders);
    EXPECT_TRUE(outcomes.has_value()) << outcomes.error().message;
    EXPECT_EQ(outcomes ? outcomes->size() : 0, orders.size());
    return outcomes ? *outcomes : std::vector<LineOrderOutcome>(orders.size());
  }

  Quantities read(const RecordKey& key) {
    auto q = store_->readRecord(key);
    EXPECT_TRUE(q.has_value() && q->has_value());
    return q && *q ? **q : Quantities{};
  }

  // The `holds` entries of the record's stream, as field lists.
  std::vector<std::vector<std::string>> holdsEntries(const RecordKey& key) {
    const auto stream = redis::keys::outboxFor(redis::keys::usable(key));
    auto reply = client_->command(stream, {"XRANGE", stream, "-", "+"});
    std::vector<std::vector<std::string>> found;
    if (!reply || !reply->isArray()) return found;
    for (const auto& entry : reply->elements) {
      std::vector<std::string> fields;
      for (const auto& field : entry.elements[1].elements) fields.push_back(field.str);
      if (fields.size() >= 2 && fields[1] == "holds") found.push_back(fields);
    }
    return found;
  }

  // The b fields of those entries, each "order:allocated:shortage:status,...".
  std::vector<std::string> heldBatches(const RecordKey& key) {
    std::vector<std::string> batches;
    for (const auto& fields : holdsEntries(key)) batches.push_back(fields.back());
    return batches;
  }

  std::string hashField(const std::string& key, const std::string& field) {
    auto reply = client_->command(key, {"HGET", key, field});
    return reply && reply->isString() ? reply->str : std::string("(nil)");
  }

  // A server of this test's own: the checks below read the outbox exactly as the script left
  // it, which another suite's write-back on the shared server could trim at any moment.
  testing::PrivateRedis redis_;
  boost::asio::io_context io_{1};
  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<redis::RedisStockStore> store_;
  std::unique_ptr<redis::RedisAsyncStore> fast_;
  std::vector<std::string> noted_;
  std::string dept_;
};

TEST_F(AsyncStoreTest, HoldsAndCommitsEachOrderAsTheMultiStepProtocolWould) {
  const auto key = record("G1");
  load(key, 10);
  const auto outcomes = called(key, {{"O1", 4, false}, {"O2", 3, false}});
  EXPECT_EQ(outcomes[0].kind, Kind::kHeld);
  EXPECT_EQ(outcomes[0].status, OrderStatus::kAllocated);
  EXPECT_EQ(outcomes[0].allocated, 4);
  EXPECT_EQ(outcomes[0].shortage, 0);
  EXPECT_EQ(outcomes[1].kind, Kind::kHeld);
  EXPECT_EQ(outcomes[1].allocated, 3);
  EXPECT_EQ(read(key), (Quantities{10, 7, 0}));
  // What order_claim + hold + order_commit leave, but for the order's state: that is one
  // field of its bucket ("<st><allocated>:<shortage>:<line>"), and no hash of its own.
  const OrderRef o1{dept_, "O1"};
  const auto order_key = redis::keys::order(o1);
  const auto bucket = redis::keys::orderBucket(o1);
  EXPECT_EQ(hashField(bucket, "O1"), "A4:0:G1|W1|1|1|A|4");
  EXPECT_EQ(hashField(order_key, "st"), "(nil)");
  EXPECT_EQ(hashField(redis::keys::holds(key), "O1"), "4:0");
  const auto stored = store_->readOrder(o1);
  ASSERT_TRUE(stored.has_value() && stored->has_value());
  EXPECT_EQ((*stored)->status, OrderStatus::kAllocated);
  EXPECT_EQ((*stored)->lines_blob, "G1|W1|1|1|A|4");
  EXPECT_EQ((*stored)->answer_blob, "G1|W1|1|1|A|4|4|0");
  // One outbox entry for the call, in the record's stream, carrying each order's state.
  const auto entries = holdsEntries(key);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0], (std::vector<std::string>{"e", "holds", "r", key.index(), "d", dept_, "b",
                                                  "O1:4:0:A,O2:3:0:A"}));
  EXPECT_EQ(noted_.back(), redis::keys::outboxFor(redis::keys::usable(key)));
  // The multi-step protocol reads it: a claim of the same lines replays, a rollback ends it.
  auto claim = store_->claimOrder(OrderRef{dept_, "O1"}, "G1|W1|1|1|A|4", "G1|W1|1|1|A|4", "t", 0);
  ASSERT_TRUE(claim.has_value());
  EXPECT_EQ(claim->kind, ClaimOutcome::Kind::kReplay);
  EXPECT_EQ(claim->answer_blob, "G1|W1|1|1|A|4|4|0");
  auto ended = store_->endOrder(OrderRef{dept_, "O1"}, ReleaseKind::kRollback);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->kind, EndOutcome::Kind::kStarted);
  EXPECT_EQ(ended->lines_blob, "G1|W1|1|1|A|4");
  // The ended order left its bucket for a hash of its own, which can expire.
  EXPECT_EQ(hashField(bucket, "O1"), "(nil)");
  EXPECT_EQ(hashField(order_key, "st"), "R");
  EXPECT_EQ(hashField(order_key, "an"), "G1|W1|1|1|A|4|4|0");
  EXPECT_TRUE(store_->release(key, "O1", ReleaseKind::kRollback)->released);
  ASSERT_TRUE(store_->markOrderReleased(o1).has_value());
  EXPECT_GT(client_->command(order_key, {"TTL", order_key})->integer, 0);
  EXPECT_EQ(read(key), (Quantities{10, 3, 0}));
  EXPECT_EQ(store_->endOrder(o1, ReleaseKind::kRollback)->kind, EndOutcome::Kind::kReplay);
  EXPECT_EQ(called(key, {{"O1", 4, false}})[0].kind, Kind::kRolledBack);
  // A deduct moves its order out of the bucket the same way.
  const OrderRef o2{dept_, "O2"};
  ASSERT_EQ(store_->endOrder(o2, ReleaseKind::kDeduct)->kind, EndOutcome::Kind::kStarted);
  EXPECT_EQ(hashField(redis::keys::orderBucket(o2), "O2"), "(nil)");
  EXPECT_EQ(hashField(redis::keys::order(o2), "st"), "D");
  EXPECT_EQ(store_->readOrder(o2)->value().status, OrderStatus::kDeducted);
}

TEST_F(AsyncStoreTest, ARetryReplaysAndOtherLinesConflict) {
  const auto key = record("G1");
  load(key, 10);
  ASSERT_EQ(called(key, {{"O1", 2, false}})[0].kind, Kind::kHeld);
  const auto again = called(key, {{"O1", 2, false}, {"O1", 3, false}});
  EXPECT_EQ(again[0].kind, Kind::kReplay);
  EXPECT_EQ(again[0].status, OrderStatus::kAllocated);
  EXPECT_EQ(again[0].answer_blob, "G1|W1|1|1|A|2|2|0");
  EXPECT_EQ(again[1].kind, Kind::kConflict);
  EXPECT_EQ(read(key), (Quantities{10, 2, 0}));
  EXPECT_EQ(heldBatches(key), (std::vector<std::string>{"O1:2:0:A"}));
  // The same order twice in one call: the second is the first's replay.
  const auto twice = called(key, {{"O2", 1, false}, {"O2", 1, false}});
  EXPECT_EQ(twice[0].kind, Kind::kHeld);
  EXPECT_EQ(twice[1].kind, Kind::kReplay);
  EXPECT_EQ(read(key), (Quantities{10, 3, 0}));
  // A multi-line order of that number conflicts too.
  const std::string two_lines = "G1|W1|1|1|A|1\nG2|W1|1|1|A|1";
  ASSERT_EQ(store_->claimOrder(OrderRef{dept_, "M1"}, two_lines, two_lines, "t", 0)->kind,
            ClaimOutcome::Kind::kClaimed);
  ASSERT_TRUE(store_->commitOrder(OrderRef{dept_, "M1"}, OrderStatus::kAllocated,
                                  "G1|W1|1|1|A|1|1|0\nG2|W1|1|1|A|1|1|0", "t"));
  EXPECT_EQ(called(key, {{"M1", 1, false}})[0].kind, Kind::kConflict);
}

TEST_F(AsyncStoreTest, TombstonesRefuseAndNothingIsHeld) {
  const auto key = record("G1");
  load(key, 10);
  // A rollback that came first: a bare order tombstone, and a record tombstone.
  ASSERT_EQ(store_->endOrder(OrderRef{dept_, "R1"}, ReleaseKind::kRollback)->kind,
            EndOutcome::Kind::kStarted);
  ASSERT_TRUE(store_->release(key, "R2", ReleaseKind::kRollback).has_value());
  const auto outcomes = called(key, {{"R1", 1, false}, {"R2", 1, false}});
  EXPECT_EQ(outcomes[0].kind, Kind::kRolledBack);
  EXPECT_EQ(outcomes[1].kind, Kind::kRolledBack);
  EXPECT_EQ(read(key), (Quantities{10, 0, 0}));
  EXPECT_EQ(hashField(redis::keys::order(OrderRef{dept_, "R2"}), "st"), "(nil)");
  EXPECT_EQ(hashField(redis::keys::orderBucket(OrderRef{dept_, "R2"}), "R2"), "(nil)");
  EXPECT_TRUE(holdsEntries(key).empty()) << "a call that held nothing appends nothing";
}

TEST_F(AsyncStoreTest, ShortageAndRefusalFollowTheHoldRules) {
  const auto key = record("G1");
  load(key, 5);
  const auto outcomes =
      called(key, {{"N1", 4, false}, {"N2", 3, false}, {"N3", 3, true}, {"N4", 1, false}});
  EXPECT_EQ(outcomes[0].kind, Kind::kHeld);
  EXPECT_EQ(outcomes[1].kind, Kind::kInsufficient);
  EXPECT_EQ(outcomes[1].available, 1);
  EXPECT_EQ(outcomes[2].kind, Kind::kHeld);
  EXPECT_EQ(outcomes[2].status, OrderStatus::kShortage);
  EXPECT_EQ(outcomes[2].allocated, 1);
  EXPECT_EQ(outcomes[2].shortage, 2);
  EXPECT_EQ(outcomes[3].kind, Kind::kInsufficient);
  EXPECT_EQ(outcomes[3].available, 0);
  EXPECT_EQ(read(key), (Quantities{5, 5, 2}));
  EXPECT_EQ(hashField(redis::keys::orderBucket(OrderRef{dept_, "N2"}), "N2"), "(nil)");
  EXPECT_EQ(hashField(redis::keys::orderBucket(OrderRef{dept_, "N3"}), "N3"), "S1:2:G1|W1|1|1|A|3");
  EXPECT_EQ(store_->readOrder(OrderRef{dept_, "N3"})->value().answer_blob, "G1|W1|1|1|A|3|1|2");
  EXPECT_EQ(heldBatches(key), (std::vector<std::string>{"N1:4:0:A,N3:1:2:S"}));
}

TEST_F(AsyncStoreTest, WhatOnlyTheMultiStepProtocolCanFinishIsLeftUntouched) {
  const auto key = record("G1");
  const auto unloaded = called(key, {{"U1", 1, false}});
  EXPECT_EQ(unloaded[0].kind, Kind::kSlow);
  EXPECT_EQ(unloaded[0].reason, "unloaded");
  EXPECT_FALSE(store_->readOrder(OrderRef{dept_, "U1"})->has_value());
  load(key, 10);
  // Another caller's claim in progress, with the same line.
  ASSERT_EQ(
      store_->claimOrder(OrderRef{dept_, "P1"}, "G1|W1|1|1|A|1", "G1|W1|1|1|A|1", "other", 0)->kind,
      ClaimOutcome::Kind::kClaimed);
  // A hold whose order is gone (e.g. its hash expired), a live hold of the layout before h:
  // (its own o: key), and a held order asking for more than is left: the protocol decides.
  ASSERT_EQ(store_->hold(key, "H1", 1, false)->kind, HoldOutcome::Kind::kHeld);
  ASSERT_TRUE(client_->command("", {"SET", redis::keys::operate(key, "H2"), "1:0"}).has_value());
  ASSERT_EQ(store_->hold(key, "H3", 1, false)->kind, HoldOutcome::Kind::kHeld);
  const auto outcomes =
      called(key, {{"P1", 1, false}, {"H1", 1, false}, {"H2", 1, false}, {"H3", 99, false}});
  EXPECT_EQ(outcomes[0].kind, Kind::kSlow);
  EXPECT_EQ(outcomes[0].reason, "pending");
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(outcomes[i].kind, Kind::kSlow) << i;
    EXPECT_EQ(outcomes[i].reason, "held") << i;
  }
  EXPECT_EQ(read(key), (Quantities{10, 2, 0}));
  EXPECT_EQ(hashField(redis::keys::order(OrderRef{dept_, "P1"}), "st"), "P");
}

// An order in its bucket is replaced by what the database has (a route switch back to
// Redis), and a bucket field that does not parse is refused before anything is written.
TEST_F(AsyncStoreTest, ALoadReplacesABucketedOrderAndACorruptFieldLosesNothing) {
  const auto key = record("G1");
  load(key, 10);
  ASSERT_EQ(called(key, {{"L1", 2, false}})[0].kind, Kind::kHeld);
  const OrderRef l1{dept_, "L1"};
  ASSERT_TRUE(store_
                  ->loadOrder(l1, OrderStatus::kDeducted, "G1|W1|1|1|A|2", "G1|W1|1|1|A|2",
                              "G1|W1|1|1|A|2|2|0",
                              {{key, 2, 0, redis::RedisStockStore::LoadedLine::State::kDeducted}})
                  .has_value());
  EXPECT_EQ(hashField(redis::keys::orderBucket(l1), "L1"), "(nil)");
  EXPECT_EQ(hashField(redis::keys::order(l1), "st"), "D");
  EXPECT_EQ(store_->readOrder(l1)->value().status, OrderStatus::kDeducted);
  EXPECT_EQ(called(key, {{"L1", 2, false}})[0].kind, Kind::kReplay);
  // A live single-line order from the database goes into its bucket, as the fast path leaves
  // it; a live multi-line one gets its own hash.
  using State = redis::RedisStockStore::LoadedLine::State;
  const OrderRef l2{dept_, "L2"};
  ASSERT_TRUE(store_
                  ->loadOrder(l2, OrderStatus::kShortage, "G1|W1|1|1|A|3", "G1|W1|1|1|A|3",
                              "G1|W1|1|1|A|3|1|2", {{key, 1, 2, State::kHeld}})
                  .has_value());
  EXPECT_EQ(hashField(redis::keys::orderBucket(l2), "L2"), "S1:2:G1|W1|1|1|A|3");
  EXPECT_EQ(hashField(redis::keys::order(l2), "st"), "(nil)");
  const OrderRef l3{dept_, "L3"};
  const std::string two = "G1|W1|1|1|A|1\nG2|W1|1|1|A|1";
  ASSERT_TRUE(store_
                  ->loadOrder(l3, OrderStatus::kAllocated, two, two,
                              "G1|W1|1|1|A|1|1|0\nG2|W1|1|1|A|1|1|0", {{key, 1, 0, State::kHeld}})
                  .has_value());
  EXPECT_EQ(hashField(redis::keys::orderBucket(l3), "L3"), "(nil)");
  EXPECT_EQ(hashField(redis::keys::order(l3), "st"), "A");
  const auto ended = store_->endOrder(l2, ReleaseKind::kRollback);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->lines_blob, "G1|W1|1|1|A|3");
  EXPECT_EQ(hashField(redis::keys::order(l2), "an"), "G1|W1|1|1|A|3|1|2");

  const OrderRef bad{dept_, "C1"};
  const auto bucket = redis::keys::orderBucket(bad);
  ASSERT_TRUE(client_->command(bucket, {"HSET", bucket, "C1", "garbage"}).has_value());
  EXPECT_FALSE(store_->endOrder(bad, ReleaseKind::kRollback).has_value());
  EXPECT_FALSE(store_->readOrder(bad).has_value());
  EXPECT_FALSE(store_->claimOrder(bad, "G1|W1|1|1|A|1", "G1|W1|1|1|A|1", "t", 0).has_value());
  const auto outcome = called(key, {{"C1", 1, false}});
  EXPECT_EQ(outcome[0].kind, Kind::kSlow);
  EXPECT_EQ(outcome[0].reason, "corrupt");
  EXPECT_EQ(hashField(bucket, "C1"), "garbage") << "nothing was written over it";
  EXPECT_EQ(hashField(redis::keys::order(bad), "st"), "(nil)");
  EXPECT_EQ(read(key), (Quantities{10, 2, 0}));
}

TEST_F(AsyncStoreTest, AFlushedScriptCacheIsTransparent) {
  const auto key = record("G1");
  load(key, 10);
  ASSERT_TRUE(client_->command("", {"SCRIPT", "FLUSH"}).has_value());
  const auto outcomes = called(key, {{"F1", 1, false}});
  EXPECT_EQ(outcomes[0].kind, Kind::kHeld);
  EXPECT_EQ(read(key), (Quantities{10, 1, 0}));
}

TEST_F(AsyncStoreTest, AServerThatIsNotThereFailsTheCall) {
  // A port nothing listens on: the connection fails, and the call with it.
  auto port = testing::pickFreePort();
  ASSERT_TRUE(port.has_value());
  redis::RedisAsyncStore nowhere(io_, redis::NodeAddress{"127.0.0.1", *port},
                                 redis::ConnectionSettings{}, nullptr);
  auto outcomes = call(record("G1"), {{"X1", 1, false}}, &nowhere);
  ASSERT_FALSE(outcomes.has_value());
  EXPECT_EQ(outcomes.error().code, ErrorCode::kUnavailable);
  // Within the back-off the next call is refused at once, without a connect.
  auto again = call(record("G1"), {{"X2", 1, false}}, &nowhere);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace allot
