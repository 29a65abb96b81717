// The write-back against real servers: a mixed load through PreallocationService on Redis
// (standalone and Cluster), drained into MariaDB, must leave every record's counters and every
// order's status and lines equal in both stores. Then the crash cases: a batch committed but
// not trimmed is re-read without doubling anything, a batch that fails before its commit
// loses nothing, and an event that can never apply is dead-lettered instead of blocking.
#include "workers/write_back.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "domain/preallocation_service.h"
#include "domain/system_clock.h"
#include "mysql/connection.h"
#include "mysql/mysql_ledger.h"
#include "mysql/write_back_store.h"
#include "redis/client.h"
#include "redis/keys.h"
#include "redis/redis_stock_store.h"
#include "support/servers.h"
#include "support/test_env.h"
#include "workers/order_layout.h"

namespace allot {
namespace {

using mysql::OutboxEvent;

// A line of an order as the database holds it.
struct DbLine {
  std::int64_t qty = 0, allocated = 0, shortage = 0;
  std::string state;
  bool operator==(const DbLine&) const = default;
};

class DbReader {
 public:
  explicit DbReader(mysql::Pool& pool) : pool_(pool) {}

  std::optional<Quantities> record(const RecordKey& key) {
    auto lease = pool_.acquire();
    EXPECT_TRUE(lease.has_value());
    auto rows = (*lease)->query(
        "SELECT on_hand, preallocated, shortage FROM stock WHERE dept_no = ? AND goods_no = ? "
        "AND warehouse_no = ? AND stock_status = ? AND stock_type = ? AND goods_level = ?",
        {key.dept_no, key.goods_no, key.warehouse_no, key.stock_status, key.stock_type,
         key.goods_level});
    EXPECT_TRUE(rows.has_value()) << (rows ? "" : rows.error().message);
    if (!rows || rows->empty()) return std::nullopt;
    return Quantities{*(*rows)[0].integer(0), *(*rows)[0].integer(1), *(*rows)[0].integer(2)};
  }

  std::optional<std::string> orderStatus(const OrderRef& order) {
    auto lease = pool_.acquire();
    auto rows = (*lease)->query("SELECT status FROM orders WHERE dept_no = ? AND order_no = ?",
                                {order.dept_no, order.order_no});
    EXPECT_TRUE(rows.has_value());
    if (!rows || rows->empty()) return std::nullopt;
    return std::string((*rows)[0].text(0));
  }

  // Dead letters whose event fields mention `text` (a test's unique dept_no).
  std::int64_t deadLettersMentioning(const std::string& text) {
    auto lease = pool_.acquire();
    auto rows = (*lease)->query(
        "SELECT COUNT(*) FROM outbox_dead_letters WHERE INSTR(fields, ?) > 0", {text});
    EXPECT_TRUE(rows.has_value());
    if (!rows || rows->empty()) return -1;
    return *(*rows)[0].integer(0);
  }

  // goods_no -> line
  std::map<std::string, DbLine> orderLines(const OrderRef& order) {
    auto lease = pool_.acquire();
    auto rows = (*lease)->query(
        "SELECT goods_no, qty, allocated, shortage, state FROM order_lines WHERE dept_no = ? "
        "AND order_no = ?",
        {order.dept_no, order.order_no});
    EXPECT_TRUE(rows.has_value());
    std::map<std::string, DbLine> out;
    for (const auto& row : rows ? *rows : mysql::Rows{}) {
      out[std::string(row.text(0))] =
          DbLine{*row.integer(1), *row.integer(2), *row.integer(3), std::string(row.text(4))};
    }
    return out;
  }

  // The orders row and every line of an order, with line_no: what an order's rows say.
  std::string orderRows(const OrderRef& order) {
    auto lease = pool_.acquire();
    auto head = (*lease)->query(
        "SELECT status, COALESCE(lines_digest, '-') FROM orders WHERE dept_no = ? AND "
        "order_no = ?",
        {order.dept_no, order.order_no});
    auto lines = (*lease)->query(
        "SELECT goods_no, line_no, qty, allocated, shortage, state FROM order_lines WHERE "
        "dept_no = ? AND order_no = ? ORDER BY goods_no",
        {order.dept_no, order.order_no});
    EXPECT_TRUE(head.has_value() && lines.has_value());
    std::string out = head && !head->empty() ? std::string((*head)[0].text(0)) + " [" +
                                                   std::string((*head)[0].text(1)) + "]"
                                             : "no order";
    for (const auto& row : lines ? *lines : mysql::Rows{}) {
      out += "; " + std::string(row.text(0)) + " #" + std::string(row.text(1)) + " " +
             std::string(row.text(2)) + "/" + std::string(row.text(3)) + "/" +
             std::string(row.text(4)) + " " + std::string(row.text(5));
    }
    return out;
  }

  std::int64_t deadLetters(const std::string& stream) {
    auto lease = pool_.acquire();
    auto rows =
        (*lease)->query("SELECT COUNT(*) FROM outbox_dead_letters WHERE stream = ?", {stream});
    EXPECT_TRUE(rows.has_value());
    return rows ? *(*rows)[0].integer(0) : -1;
  }

 private:
  mysql::Pool& pool_;
};

class WriteBackTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    client_ = testing::connectRedis(GetParam() ? testing::redisClusterUrl() : testing::redisUrl());
    ASSERT_NE(client_, nullptr);
    hot_ = std::make_unique<redis::RedisStockStore>(*client_, redis::StoreOptions{3600, 30'000});
    ledger_ = testing::openLedger();
    ASSERT_NE(ledger_, nullptr);
    store_ = std::make_unique<mysql::WriteBackStore>(ledger_->pool());
    db_ = std::make_unique<DbReader>(ledger_->pool());
    service_ = std::make_unique<PreallocationService>(*hot_, *ledger_, clock_, counters_);
    dept_ = testing::uniqueName("wb");
  }

  // A small batch, so the drain crosses several batches per stream.
  std::unique_ptr<workers::WriteBack> newWorker() {
    return std::make_unique<workers::WriteBack>(
        *client_, *store_,
        workers::WriteBackOptions{std::chrono::milliseconds(5), 7,
                                  std::chrono::milliseconds(1000)});
  }

  RecordKey record(const std::string& goods) { return RecordKey{dept_, goods, "W1"}; }

  // Order i of `holds` entry `entry`, as appendHoldsEntries names them.
  OrderRef heldOrder(int entry, int i) const {
    return OrderRef{dept_, "H" + std::to_string(entry) + "x" + std::to_string(i)};
  }

  // Appends `entries` `holds` entries of 10 orders of one unit each to the record's stream,
  // as order_hold.lua writes them.
  void appendHoldsEntries(const RecordKey& key, int entries) {
    const std::string stream = redis::keys::outboxFor(redis::keys::usable(key));
    for (int entry = 0; entry < entries; ++entry) {
      std::string orders;
      for (int i = 0; i < 10; ++i) {
        if (i > 0) orders += ',';
        orders += heldOrder(entry, i).order_no + ":1:0:A";
      }
      ASSERT_TRUE(client_
                      ->command(stream, {"XADD", stream, "*", "e", "holds", "r", key.index(), "d",
                                         dept_, "b", orders})
                      .has_value());
    }
  }

  void adjust(const std::string& goods, const std::string& ref, std::int64_t delta) {
    AdjustRequest request{record(goods), ref, delta, std::nullopt};
    auto done = service_->adjust(request, goods + "/" + ref + "/" + std::to_string(delta));
    ASSERT_TRUE(done.has_value()) << done.error().message;
  }

  // Preallocates; true when the order was answered (false: refused).
  bool preallocate(const std::string& order_no,
                   std::vector<std::pair<std::string, std::int64_t>> lines, bool shortage) {
    PreallocateRequest request{dept_, order_no, {}, shortage};
    for (const auto& [goods, qty] : lines) request.lines.push_back({record(goods), qty});
    auto outcome = service_->preallocate(request);
    EXPECT_TRUE(outcome.has_value()) << outcome.error().message;
    return outcome && std::holds_alternative<OrderAnswer>(*outcome);
  }

  void expectRecordsEqual(const std::vector<std::string>& goods) {
    for (const auto& g : goods) {
      auto in_redis = hot_->readRecord(record(g));
      ASSERT_TRUE(in_redis.has_value() && in_redis->has_value()) << g;
      EXPECT_EQ(db_->record(record(g)), **in_redis) << "record " << g;
    }
  }

  void expectOrdersEqual(const std::vector<std::string>& orders) {
    for (const auto& order_no : orders) {
      const OrderRef ref{dept_, order_no};
      auto stored = hot_->readOrder(ref);
      ASSERT_TRUE(stored.has_value()) << stored.error().message;
      if (!stored->has_value()) {
        EXPECT_EQ(db_->orderStatus(ref), std::nullopt) << order_no;
        EXPECT_TRUE(db_->orderLines(ref).empty()) << order_no;
        continue;
      }
      EXPECT_EQ(db_->orderStatus(ref), std::string(orderStatusName((*stored)->status))) << order_no;
      auto answer = decodeLineOutcomes(dept_, (*stored)->answer_blob);
      ASSERT_TRUE(answer.has_value());
      const std::string state = (*stored)->status == OrderStatus::kDeducted     ? "deducted"
                                : (*stored)->status == OrderStatus::kRolledBack ? "released"
                                                                                : "held";
      std::map<std::string, DbLine> expected;
      for (const auto& line : *answer) {
        expected[line.key.goods_no] = DbLine{line.qty, line.allocated, line.shortage, state};
      }
      EXPECT_EQ(db_->orderLines(ref), expected) << order_no;
    }
  }

  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<redis::RedisStockStore> hot_;
  std::unique_ptr<mysql::MysqlLedger> ledger_;
  std::unique_ptr<mysql::WriteBackStore> store_;
  std::unique_ptr<DbReader> db_;
  SystemClock clock_;
  ServiceCounters counters_;
  std::unique_ptr<PreallocationService> service_;
  std::string dept_;
};

TEST_P(WriteBackTest, MixedLoadLeavesBothStoresEqual) {
  auto worker = newWorker();
  worker->start();
  adjust("G1", "R1", 10);
  adjust("G2", "R2", 5);
  adjust("G3", "R3", 3);
  EXPECT_TRUE(preallocate("O1", {{"G1", 3}, {"G2", 2}}, false));
  EXPECT_TRUE(preallocate("O2", {{"G1", 4}, {"G3", 5}}, true));     // G3 short by 2
  EXPECT_FALSE(preallocate("O3", {{"G1", 1}, {"G2", 10}}, false));  // refused: G1 undone
  EXPECT_TRUE(preallocate("O4", {{"G1", 2}}, false));
  ASSERT_TRUE(service_->rollback({dept_, "O4"}).has_value());
  ASSERT_TRUE(service_->deduct({dept_, "O1"}).has_value());
  adjust("G2", "R4", -1);
  EXPECT_TRUE(preallocate("O5", {{"G4", 2}}, true));           // unknown record: created, all short
  ASSERT_TRUE(service_->rollback({dept_, "O6"}).has_value());  // unknown: a bare tombstone
  ASSERT_TRUE(service_->deduct({dept_, "O2"}).has_value());
  for (int i = 0; i < 20; ++i) {  // enough events for several batches per stream
    EXPECT_TRUE(preallocate("M" + std::to_string(i), {{"G2", 1}}, true));
    if (i % 2 == 0) {
      ASSERT_TRUE(service_->rollback({dept_, "M" + std::to_string(i)}).has_value());
    }
  }

  ASSERT_TRUE(worker->waitDrained(std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  worker->stop();
  expectRecordsEqual({"G1", "G2", "G3", "G4"});
  std::vector<std::string> orders{"O1", "O2", "O3", "O4", "O5", "O6"};
  for (int i = 0; i < 20; ++i) orders.push_back("M" + std::to_string(i));
  expectOrdersEqual(orders);
  EXPECT_EQ(db_->orderStatus({dept_, "O6"}), "rolled_back");
  EXPECT_EQ(db_->record(record("G1")), (Quantities{3, 0, 0}));  // 10 - 3 - 4 deducted
  EXPECT_GT(worker->metrics().events_applied.load(), 0u);
  // The worker sweeps every stream of the shared test server, so its global counter may
  // include other suites' deliberately odd events: count this test's dead letters only.
  EXPECT_EQ(db_->deadLettersMentioning(dept_), 0);
  EXPECT_EQ(worker->metrics().events_pending.load(), 0);
}

// A process committed a batch and died before XTRIM: a fresh worker re-reads the events, the
// stored position skips them, and nothing is applied twice.
TEST_P(WriteBackTest, CommitWithoutTrimAppliesNothingTwice) {
  adjust("G1", "R1", 10);
  ASSERT_TRUE(preallocate("O1", {{"G1", 4}}, false));
  ASSERT_TRUE(newWorker()->drainOnce().has_value());
  ASSERT_TRUE(preallocate("O2", {{"G1", 3}}, false));
  const std::string stream = redis::keys::outboxFor(redis::keys::usable(record("G1")));
  auto position = store_->readPosition(stream);
  ASSERT_TRUE(position.has_value());
  auto reply = client_->command(stream, {"XRANGE", stream, "(" + position->last_id, "+"});
  ASSERT_TRUE(reply.has_value() && reply->isArray() && !reply->elements.empty());
  std::vector<OutboxEvent> events;
  for (const auto& entry : reply->elements) {
    OutboxEvent event{entry.elements[0].str, {}};
    const auto& fields = entry.elements[1].elements;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
      event.fields.emplace_back(fields[i].str, fields[i + 1].str);
    }
    events.push_back(std::move(event));
  }
  ASSERT_TRUE(store_->applyBatch(stream, events).has_value());  // committed, never trimmed

  auto worker = newWorker();
  ASSERT_TRUE(worker->drainOnce().has_value());
  expectRecordsEqual({"G1"});
  EXPECT_EQ(db_->record(record("G1")), (Quantities{10, 7, 0}));
  auto left = client_->command(stream, {"XRANGE", stream, "-", events.back().id});
  ASSERT_TRUE(left.has_value());
  EXPECT_TRUE(left->elements.empty()) << "applied entries were trimmed";
}

// With the periodic sweep an hour away, only noteStream() can lead the running loop to a
// stream written after its start-up sweep.
TEST_P(WriteBackTest, NotedStreamIsWrittenBackByTheLoop) {
  workers::WriteBack worker(
      *client_, *store_,
      workers::WriteBackOptions{std::chrono::milliseconds(5), 100, std::chrono::hours(1)});
  worker.start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // The start-up sweep and the pass after it are done: every stream found was read to its end
  // and forgotten.
  while (worker.metrics().passes.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_GT(worker.metrics().passes.load(), 0u);
  adjust("G1", "R1", 10);
  ASSERT_TRUE(preallocate("O1", {{"G1", 4}}, false));
  worker.noteStream(redis::keys::outboxFor(redis::keys::usable(record("G1"))));
  while (db_->record(record("G1")) != Quantities{10, 4, 0} &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  worker.stop();
  EXPECT_EQ(db_->record(record("G1")), (Quantities{10, 4, 0}));
  EXPECT_EQ(worker.metrics().sweeps.load(), 1u);
}

// A backlog of several batches in one stream, each batch more than a first read (so each is
// read in two steps), and a tick of an hour: only passes that follow a full batch at once,
// without the tick, can apply it all.
TEST_P(WriteBackTest, ABacklogIsAppliedWithoutWaitingATickBetweenBatches) {
  constexpr int kHolds = 400;
  constexpr std::size_t kBatch = 150;
  static_assert(kBatch > workers::kWriteBackFirstReadEvents);
  adjust("G1", "R1", kHolds);
  for (int i = 0; i < kHolds; ++i)
    ASSERT_TRUE(preallocate("O" + std::to_string(i), {{"G1", 1}}, false));
  workers::WriteBack worker(
      *client_, *store_,
      workers::WriteBackOptions{std::chrono::hours(1), kBatch, std::chrono::hours(1)});
  worker.start();
  EXPECT_TRUE(testing::waitFor([&] {
    return db_->record(record("G1")) == Quantities{kHolds, kHolds, 0};
  }));
  worker.stop();
  EXPECT_GE(worker.metrics().passes.load(), (kHolds + kBatch - 1) / kBatch);
  expectOrdersEqual({"O0", "O199", "O399"});
}

// Two write-backs on one backlog at once (several may run): each reads batches ahead while it
// applies, and each may find the other moved the stream on; the stored positions keep every
// event applied exactly once.
TEST_P(WriteBackTest, TwoWriteBacksOnOneBacklogApplyEachEventOnce) {
  constexpr int kHolds = 600;
  adjust("G1", "R1", kHolds);
  adjust("G2", "R2", kHolds);
  for (int i = 0; i < kHolds; ++i) {
    ASSERT_TRUE(preallocate("O" + std::to_string(i), {{i % 3 == 0 ? "G2" : "G1", 1}}, false));
  }
  const workers::WriteBackOptions options{std::chrono::milliseconds(1), 130, std::chrono::hours(1)};
  workers::WriteBack first(*client_, *store_, options), second(*client_, *store_, options);
  first.start();
  second.start();
  EXPECT_TRUE(testing::waitFor([&] {
    return db_->record(record("G1")) == Quantities{kHolds, 2 * kHolds / 3, 0} &&
           db_->record(record("G2")) == Quantities{kHolds, kHolds / 3, 0};
  }));
  first.stop();
  second.stop();
  ASSERT_TRUE(newWorker()->drainOnce().has_value());
  expectRecordsEqual({"G1", "G2"});
  expectOrdersEqual({"O0", "O1", "O299", "O599"});
  EXPECT_EQ(db_->deadLettersMentioning(dept_), 0);
}

// A `holds` entry (one per order_hold.lua call) carries up to 64 orders: it weighs its
// orders in a batch, so five entries of 10 orders go in five transactions of batch_events_max
// 7 (counted by entries, they would have gone in one), and every order still lands.
TEST_P(WriteBackTest, AHoldsEntryWeighsItsOrdersSoATransactionStaysBounded) {
  adjust("G1", "R1", 100);
  const RecordKey key = record("G1");
  const std::string stream = redis::keys::outboxFor(redis::keys::usable(key));
  const auto worker = newWorker();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  ASSERT_TRUE(worker->drainAppendedBefore({stream}, deadline));
  const auto before = worker->metrics().batches.load();
  ASSERT_NO_FATAL_FAILURE(appendHoldsEntries(key, 5));
  ASSERT_TRUE(worker->drainAppendedBefore({stream}, deadline));
  // At least five: other suites' events in the same slot's stream may add transactions.
  EXPECT_GE(worker->metrics().batches.load() - before, 5u);
  EXPECT_EQ(db_->record(key), (Quantities{100, 50, 0}));
  for (int entry = 0; entry < 5; ++entry) {
    for (int i = 0; i < 10; ++i) {
      const OrderRef order = heldOrder(entry, i);
      EXPECT_EQ(db_->orderStatus(order), "allocated") << order.order_no;
      EXPECT_EQ(db_->orderLines(order).at("G1").state, "held") << order.order_no;
    }
  }
}

// A piece that fails stops the stream's later pieces: a committed piece moves the stream's
// position past its events, so a later piece applied over the failed one would skip it for
// good. The fault is a trigger refusing one order of the third entry.
TEST_P(WriteBackTest, AFailedPieceHoldsBackTheStreamsLaterPiecesAndNothingIsLost) {
  adjust("G1", "R1", 100);
  const RecordKey key = record("G1");
  const std::string stream = redis::keys::outboxFor(redis::keys::usable(key));
  const auto worker = newWorker();
  ASSERT_TRUE(worker->drainAppendedBefore(
      {stream}, std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  const std::string trigger = testing::uniqueName("fault");
  auto lease = ledger_->pool().acquire();
  ASSERT_TRUE(lease.has_value());
  const auto created = (*lease)->executeText(
      "CREATE TRIGGER `" + trigger + "` BEFORE INSERT ON orders FOR EACH ROW IF NEW.dept_no = '" +
      dept_ +
      "' AND NEW.order_no = 'H2x0' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected by "
      "the test'; END IF");
  ASSERT_TRUE(created.has_value()) << created.error().message;
  struct DropTrigger {
    mysql::Connection& connection;
    std::string name;
    bool dropped = false;
    void drop() {
      if (dropped) return;
      dropped = true;
      EXPECT_TRUE(connection.executeText("DROP TRIGGER IF EXISTS `" + name + "`").has_value());
    }
    ~DropTrigger() { drop(); }
  } guard{**lease, trigger};
  ASSERT_NO_FATAL_FAILURE(appendHoldsEntries(key, 5));
  EXPECT_FALSE(worker->drainAppendedBefore(
      {stream}, std::chrono::steady_clock::now() + std::chrono::seconds(1)));
  for (int entry = 0; entry < 5; ++entry) {
    const bool before_the_fault = entry < 2;
    EXPECT_EQ(db_->orderStatus(heldOrder(entry, 5)).has_value(), before_the_fault) << entry;
  }
  guard.drop();
  ASSERT_TRUE(worker->drainAppendedBefore(
      {stream}, std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  EXPECT_EQ(db_->record(key), (Quantities{100, 50, 0}));
  for (int entry = 0; entry < 5; ++entry) {
    for (int i = 0; i < 10; ++i) EXPECT_EQ(db_->orderStatus(heldOrder(entry, i)), "allocated");
  }
}

// Orders an older allotd kept in the layout before buckets (ord:{dept|order}) are moved at
// start-up with their fields and expiry, and the scripts then find them: a live order's
// rollback releases what it holds.
TEST_P(WriteBackTest, OrdersOfTheLayoutBeforeBucketsAreMovedAndStillEnd) {
  const RecordKey key = record("G1");
  ASSERT_TRUE(hot_->loadRecord(key, Quantities{10, 0, 0}).value());
  ASSERT_EQ(hot_->hold(key, "LO1", 2, false)->kind, HoldOutcome::Kind::kHeld);
  const std::string live = "ord:{" + dept_ + "|LO1}";
  const std::string ended = "ord:{" + dept_ + "|LO2}";
  ASSERT_TRUE(client_
                  ->command(live, {"HSET", live, "st", "A", "ln", "G1|W1|1|1|A|2", "an",
                                   "G1|W1|1|1|A|2|2|0"})
                  .has_value());
  ASSERT_TRUE(client_->command(ended, {"HSET", ended, "st", "R", "rl", "1"}).has_value());
  ASSERT_TRUE(client_->command(ended, {"EXPIRE", ended, "1000"}).has_value());
  // Another suite's allotd may have set the marker on this shared Redis already.
  ASSERT_TRUE(client_->command("layout:orders", {"DEL", "layout:orders"}).has_value());

  const auto worker = newWorker();
  auto moved = workers::moveOrdersToBuckets(*client_, *worker, *hot_);
  ASSERT_TRUE(moved.has_value()) << moved.error().message;
  EXPECT_FALSE(moved->done_before);
  EXPECT_GE(moved->moved, 2u);
  EXPECT_EQ(client_->command(live, {"EXISTS", live})->integer, 0);
  EXPECT_EQ(client_->command(ended, {"EXISTS", ended})->integer, 0);
  const auto moved_ended = redis::keys::order(OrderRef{dept_, "LO2"});
  const auto ttl = client_->command(moved_ended, {"TTL", moved_ended});
  EXPECT_GT(ttl->integer, 900);
  EXPECT_LE(ttl->integer, 1000);
  EXPECT_EQ(hot_->readOrder(OrderRef{dept_, "LO2"})->value().status, OrderStatus::kRolledBack);

  const OrderRef lo1{dept_, "LO1"};
  EXPECT_EQ(hot_->readOrder(lo1)->value().answer_blob, "G1|W1|1|1|A|2|2|0");
  const auto end = hot_->endOrder(lo1, ReleaseKind::kRollback);
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->kind, EndOutcome::Kind::kStarted);
  EXPECT_EQ(end->lines_blob, "G1|W1|1|1|A|2");
  EXPECT_TRUE(hot_->release(key, "LO1", ReleaseKind::kRollback)->released);
  EXPECT_EQ(hot_->readRecord(key)->value(), (Quantities{10, 0, 0}));

  auto again = workers::moveOrdersToBuckets(*client_, *worker, *hot_);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->done_before);
  EXPECT_EQ(again->moved, 0u);
}

// More old keys than one round of the move (500), some with an expiry instant, one order also
// in the new layout already (a move run again), beside old-looking keys that are not orders of
// ours, on servers without the script loaded (the pipelined EVALSHA meets NOSCRIPT): every
// order arrives in the new layout with its fields and the very same expiry instant, the one
// there already is kept as it was, every old key is gone, and the other keys are left alone.
TEST_P(WriteBackTest, ManyOrdersOfTheLayoutBeforeBucketsMoveInRounds) {
  constexpr int kOrders = 1'234;
  constexpr int kAlreadyMoved = 5;
  // An instant a day from now, in ms, the same for every order that has one.
  const std::int64_t expiry_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          (std::chrono::system_clock::now() + std::chrono::hours(24)).time_since_epoch())
          .count();
  auto oldKey = [&](int i) { return "ord:{" + dept_ + "|MO" + std::to_string(i) + "}"; };
  auto newKey = [&](int i) {
    return redis::keys::order(OrderRef{dept_, "MO" + std::to_string(i)});
  };
  std::vector<redis::RoutedCommand> setup;
  for (int i = 0; i < kOrders; ++i) {
    const std::string key = oldKey(i);
    setup.push_back({key, {"HSET", key, "st", i % 2 == 0 ? "D" : "R", "rl", "1"}});
    if (i % 3 == 0) setup.push_back({key, {"PEXPIREAT", key, std::to_string(expiry_ms)}});
  }
  setup.push_back({newKey(kAlreadyMoved), {"HSET", newKey(kAlreadyMoved), "st", "A"}});
  const std::string no_order = "ord:{" + dept_ + "}";           // no '|': not an order key
  const std::string not_hash = "ord:{" + dept_ + "|MOSTRING}";  // an order's name, not a hash
  setup.push_back({no_order, {"HSET", no_order, "st", "A"}});
  setup.push_back({not_hash, {"SET", not_hash, "x"}});
  for (const auto& reply : client_->pipeline(setup)) {
    ASSERT_TRUE(reply.has_value() && !reply->isError()) << (reply ? reply->str : "transport");
  }
  ASSERT_TRUE(client_->command("layout:orders", {"DEL", "layout:orders"}).has_value());
  ASSERT_TRUE(client_->commandOnMasters({"SCRIPT", "FLUSH"}).has_value());

  const auto worker = newWorker();
  auto moved = workers::moveOrdersToBuckets(*client_, *worker, *hot_);
  ASSERT_TRUE(moved.has_value()) << moved.error().message;
  EXPECT_GE(moved->moved, static_cast<std::size_t>(kOrders));

  std::vector<redis::RoutedCommand> checks, cleanup;
  for (int i = 0; i < kOrders; ++i) {
    checks.push_back({oldKey(i), {"EXISTS", oldKey(i)}});
    checks.push_back({newKey(i), {"HGET", newKey(i), "st"}});
    checks.push_back({newKey(i), {"PEXPIRETIME", newKey(i)}});
    cleanup.push_back({newKey(i), {"DEL", newKey(i)}});
  }
  const auto replies = client_->pipeline(checks);
  for (int i = 0; i < kOrders; ++i) {
    SCOPED_TRACE("order MO" + std::to_string(i));
    ASSERT_TRUE(replies[3 * i].has_value() && replies[3 * i + 1].has_value() &&
                replies[3 * i + 2].has_value());
    EXPECT_EQ(replies[3 * i]->integer, 0);
    if (i == kAlreadyMoved) {
      EXPECT_EQ(replies[3 * i + 1]->str, "A");
      EXPECT_EQ(replies[3 * i + 2]->integer, -1);
      continue;
    }
    EXPECT_EQ(replies[3 * i + 1]->str, i % 2 == 0 ? "D" : "R");
    EXPECT_EQ(replies[3 * i + 2]->integer, i % 3 == 0 ? expiry_ms : -1);
  }
  EXPECT_EQ(hot_->readOrder(OrderRef{dept_, "MO7"})->value().status, OrderStatus::kRolledBack);
  EXPECT_EQ(client_->command(no_order, {"HGET", no_order, "st"})->str, "A");
  EXPECT_EQ(client_->command(not_hash, {"GET", not_hash})->str, "x");
  cleanup.push_back({no_order, {"DEL", no_order}});
  cleanup.push_back({not_hash, {"DEL", not_hash}});
  for (const auto& reply : client_->pipeline(cleanup)) EXPECT_TRUE(reply.has_value());
}

INSTANTIATE_TEST_SUITE_P(Redis, WriteBackTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Cluster" : "Standalone"; });

// ---- WriteBackStore alone, on streams of its own (no Redis involved) ----

class WriteBackStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ledger_ = testing::openLedger();
    ASSERT_NE(ledger_, nullptr);
    store_ = std::make_unique<mysql::WriteBackStore>(ledger_->pool());
    db_ = std::make_unique<DbReader>(ledger_->pool());
    dept_ = testing::uniqueName("wbs");
    stream_ = "ob:{" + dept_ + "}";
    key_ = RecordKey{dept_, "G1", "W1"};
  }

  OutboxEvent record(const std::string& id, const std::string& kind, const std::string& order,
                     std::int64_t allocated, std::int64_t shortage) {
    return OutboxEvent{id,
                       {{"e", kind},
                        {"r", key_.index()},
                        {"d", dept_},
                        {"o", order},
                        {"a", std::to_string(allocated)},
                        {"s", std::to_string(shortage)}}};
  }
  OutboxEvent adjustEvent(const std::string& id, const std::string& ref, std::int64_t delta) {
    return OutboxEvent{id,
                       {{"e", "adjust"},
                        {"r", key_.index()},
                        {"d", dept_},
                        {"f", ref},
                        {"q", std::to_string(delta)}}};
  }

  // A hold of `key` as a script appends it; st not empty: the fused form (a whole order).
  static OutboxEvent hold(const RecordKey& key, const std::string& id, const std::string& order,
                          std::int64_t allocated, std::int64_t shortage, const std::string& st) {
    OutboxEvent event{id,
                      {{"e", "hold"},
                       {"r", key.index()},
                       {"d", key.dept_no},
                       {"o", order},
                       {"a", std::to_string(allocated)},
                       {"s", std::to_string(shortage)}}};
    if (!st.empty()) event.fields.emplace_back("st", st);
    return event;
  }
  static OutboxEvent orderEvent(const std::string& dept, const std::string& id,
                                const std::string& order, const std::string& st,
                                const std::string& answer) {
    return OutboxEvent{id, {{"e", "order"}, {"d", dept}, {"o", order}, {"st", st}, {"an", answer}}};
  }

  std::unique_ptr<mysql::MysqlLedger> ledger_;
  std::unique_ptr<mysql::WriteBackStore> store_;
  std::unique_ptr<DbReader> db_;
  std::string dept_, stream_;
  RecordKey key_;
};

// One merchant's single-line orders sent as fused holds, another's as a hold followed by the
// order event that said st (the form before fused holds): the rows must come out the same,
// whether the batch is summed or applied event by event (a dead letter in it forces that).
TEST_F(WriteBackStoreTest, FusedHoldWritesWhatAHoldAndItsOrderEventWrite) {
  for (const bool one_by_one : {false, true}) {
    SCOPED_TRACE(one_by_one ? "one by one" : "summed");
    const RecordKey fused_key{testing::uniqueName("wbf"), "G1", "W1"};
    const RecordKey split_key{testing::uniqueName("wbp"), "G1", "W1"};
    const auto adjust = [](const RecordKey& key) {
      return OutboxEvent{
          "1-0",
          {{"e", "adjust"}, {"r", key.index()}, {"d", key.dept_no}, {"f", "R1"}, {"q", "10"}}};
    };
    std::vector<OutboxEvent> fused{adjust(fused_key), hold(fused_key, "1-1", "O1", 3, 0, "A"),
                                   hold(fused_key, "1-2", "O2", 2, 4, "S"),
                                   hold(fused_key, "1-3", "O3", 1, 0, "")};
    // The same orders as one `holds` entry (order_hold.lua appends one per call).
    const RecordKey batch_key{testing::uniqueName("wbh"), "G1", "W1"};
    std::vector<OutboxEvent> batched{adjust(batch_key),
                                     OutboxEvent{"1-1",
                                                 {{"e", "holds"},
                                                  {"r", batch_key.index()},
                                                  {"d", batch_key.dept_no},
                                                  {"b", "O1:3:0:A,O2:2:4:S"}}},
                                     hold(batch_key, "1-3", "O3", 1, 0, "")};
    const std::string split_dept = split_key.dept_no;
    std::vector<OutboxEvent> split{adjust(split_key),
                                   hold(split_key, "1-1", "O1", 3, 0, ""),
                                   orderEvent(split_dept, "1-2", "O1", "A", "G1|W1|1|1|A|3|3|0"),
                                   hold(split_key, "1-3", "O2", 2, 4, ""),
                                   orderEvent(split_dept, "1-4", "O2", "S", "G1|W1|1|1|A|6|2|4"),
                                   hold(split_key, "1-5", "O3", 1, 0, "")};
    if (one_by_one) {
      fused.push_back(OutboxEvent{"2-0", {{"e", "explode"}}});
      split.push_back(OutboxEvent{"2-0", {{"e", "explode"}}});
      batched.push_back(OutboxEvent{"2-0", {{"e", "explode"}}});
    }
    for (const auto& [key, events] : {std::pair{fused_key, fused}, std::pair{split_key, split},
                                      std::pair{batch_key, batched}}) {
      auto outcome = store_->applyBatch("ob:{" + key.dept_no + "}", events);
      ASSERT_TRUE(outcome.has_value()) << outcome.error().message;
      EXPECT_EQ(outcome->dead_lettered, one_by_one ? 1u : 0u);
    }
    EXPECT_EQ(db_->record(fused_key), (Quantities{10, 6, 4}));
    EXPECT_EQ(db_->record(fused_key), db_->record(split_key));
    EXPECT_EQ(db_->orderRows({fused_key.dept_no, "O1"}),
              "allocated [G1|W1|1|1|A|3]; G1 #1 3/3/0 held");
    EXPECT_EQ(db_->orderRows({fused_key.dept_no, "O2"}),
              "shortage [G1|W1|1|1|A|6]; G1 #1 6/2/4 held");
    EXPECT_EQ(db_->orderRows({fused_key.dept_no, "O3"}), "no order; G1 #0 1/1/0 held");
    EXPECT_EQ(db_->record(batch_key), db_->record(fused_key));
    for (const char* order : {"O1", "O2", "O3"}) {
      EXPECT_EQ(db_->orderRows({fused_key.dept_no, order}), db_->orderRows({split_dept, order}))
          << order;
      EXPECT_EQ(db_->orderRows({batch_key.dept_no, order}), db_->orderRows({split_dept, order}))
          << order;
    }
  }
}

// A `holds` entry that is malformed anywhere is dead-lettered whole: none of its holds
// applies, and the stream moves on.
TEST_F(WriteBackStoreTest, AMalformedHoldsEntryIsDeadLetteredWhole) {
  const RecordKey key{testing::uniqueName("wbx"), "G1", "W1"};
  const auto holds = [&key](const std::string& id, const std::string& batch) {
    return OutboxEvent{id, {{"e", "holds"}, {"r", key.index()}, {"d", key.dept_no}, {"b", batch}}};
  };
  const std::vector<OutboxEvent> events{
      OutboxEvent{
          "1-0",
          {{"e", "adjust"}, {"r", key.index()}, {"d", key.dept_no}, {"f", "R1"}, {"q", "10"}}},
      holds("1-1", "O1:1:0:A,O2:x:0:A"),   // a quantity that is no number
      holds("1-2", "O3:1:0:A,O4:1:0"),     // an item without its status
      holds("1-3", "O5:1:0:P"),            // a status no fused hold has
      holds("1-4", ""),                    // no hold at all
      holds("1-5", "O6:2:0:A,O7:1:1:S")};  // well formed
  auto outcome = store_->applyBatch("ob:{" + key.dept_no + "}", events);
  ASSERT_TRUE(outcome.has_value()) << outcome.error().message;
  EXPECT_EQ(outcome->dead_lettered, 4u);
  EXPECT_EQ(outcome->applied, 2u);
  EXPECT_EQ(db_->record(key), (Quantities{10, 3, 1}));
  for (const char* order : {"O1", "O2", "O3", "O4", "O5"}) {
    EXPECT_EQ(db_->orderRows({key.dept_no, order}), "no order") << order;
  }
  EXPECT_EQ(db_->orderRows({key.dept_no, "O7"}), "shortage [G1|W1|1|1|A|2]; G1 #1 2/1/1 held");
}

// A fused order's first state is in its record's stream, its rollback or deduct in the
// order's own stream, and the two streams are applied independently: in two transactions in
// either order, or in one (summed, or one by one after a dead letter), with either stream
// first. Every way must leave the same rows, and the status never goes back from an end state.
TEST_F(WriteBackStoreTest, FusedOrderEndsTheSameWhicheverStreamIsAppliedFirst) {
  struct Case {
    const char* name;
    bool one_transaction;
    bool record_stream_first;
    bool dead_letter;  // one transaction only: forces the one-by-one apply
  };
  const std::vector<Case> cases{
      {"record stream, then order stream", false, true, false},
      {"order stream, then record stream", false, false, false},
      {"one transaction, record stream first", true, true, false},
      {"one transaction, order stream first", true, false, false},
      {"one by one, record stream first", true, true, true},
      {"one by one, order stream first", true, false, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const RecordKey key{testing::uniqueName("wbm"), "G1", "W1"};
    const std::string& dept = key.dept_no;
    // Stream names that sort the way the case wants (a transaction locks them in that order).
    const std::string record_stream = "ob:{" + dept + (c.record_stream_first ? "|1}" : "|3}");
    const std::string order_stream = "ob:{" + dept + "|2}";
    std::vector<OutboxEvent> record_events{
        OutboxEvent{"1-0",
                    {{"e", "adjust"}, {"r", key.index()}, {"d", dept}, {"f", "R1"}, {"q", "10"}}},
        hold(key, "1-1", "O1", 3, 0, "A"), hold(key, "1-2", "O2", 2, 0, "A"),
        hold(key, "1-3", "O3", 1, 0, "A")};
    for (auto [id, kind, order, allocated] :
         {std::tuple{"1-4", "rollback", "O1", 3}, std::tuple{"1-5", "deduct", "O2", 2}}) {
      OutboxEvent event = hold(key, id, order, allocated, 0, "");
      event.fields[0].second = kind;
      record_events.push_back(std::move(event));
    }
    std::vector<OutboxEvent> order_events{orderEvent(dept, "1-0", "O1", "R", "G1|W1|1|1|A|3|3|0"),
                                          orderEvent(dept, "1-1", "O2", "D", "G1|W1|1|1|A|2|2|0")};
    if (c.dead_letter) order_events.push_back(OutboxEvent{"1-2", {{"e", "explode"}}});
    std::vector<mysql::WriteBackStore::StreamBatch> batches{{record_stream, record_events},
                                                            {order_stream, order_events}};
    if (!c.record_stream_first) std::swap(batches[0], batches[1]);
    if (c.one_transaction) {
      ASSERT_TRUE(store_->applyBatches(batches).has_value());
    } else {
      for (const auto& batch : batches) {
        ASSERT_TRUE(store_->applyBatch(batch.stream, batch.events).has_value());
      }
    }
    EXPECT_EQ(db_->record(key), (Quantities{8, 1, 0}));
    EXPECT_EQ(db_->orderRows({dept, "O1"}), "rolled_back [G1|W1|1|1|A|3]; G1 #1 3/3/0 released");
    EXPECT_EQ(db_->orderRows({dept, "O2"}), "deducted [G1|W1|1|1|A|2]; G1 #1 2/2/0 deducted");
    EXPECT_EQ(db_->orderRows({dept, "O3"}), "allocated [G1|W1|1|1|A|1]; G1 #1 1/1/0 held");
    // Applied again (a crash before the trims): nothing moves, the end states stay.
    for (const auto& batch : batches) {
      ASSERT_TRUE(store_->applyBatch(batch.stream, batch.events).has_value());
    }
    EXPECT_EQ(db_->orderRows({dept, "O1"}), "rolled_back [G1|W1|1|1|A|3]; G1 #1 3/3/0 released");
  }
}

// Order events of one order in one stream, in a batch or in batches of their own: a later
// allocated or shortage never replaces rolled_back or deducted (BatchSums and the upsert).
TEST_F(WriteBackStoreTest, OrderStatusNeverMovesBackFromAnEndState) {
  const std::string answer = "G1|W1|1|1|A|1|1|0";
  for (const bool one_batch : {true, false}) {
    for (const char* end : {"R", "D"}) {
      SCOPED_TRACE(std::string(end) + (one_batch ? " in one batch" : " in batches"));
      const std::string order = testing::uniqueName("O");
      const std::vector<OutboxEvent> events{orderEvent(dept_, "1-0", order, "A", answer),
                                            orderEvent(dept_, "1-1", order, end, answer),
                                            orderEvent(dept_, "1-2", order, "S", answer),
                                            orderEvent(dept_, "1-3", order, "A", answer)};
      const std::string stream = "ob:{" + order + "}";
      if (one_batch) {
        ASSERT_TRUE(store_->applyBatch(stream, events).has_value());
      } else {
        for (const auto& event : events) ASSERT_TRUE(store_->applyBatch(stream, {event}));
      }
      const std::string ended = std::string(end) == "R" ? "rolled_back" : "deducted";
      EXPECT_EQ(db_->orderStatus({dept_, order}), ended);
    }
  }
}

// A bare tombstone (a rollback of an order never seen: no lines) holds the order number only
// while Redis remembers it; an order placed under that number after Redis forgot it (its
// retention passed) is the order the database must show.
TEST_F(WriteBackStoreTest, AnOrderPlacedAfterABareTombstoneReplacesIt) {
  for (const bool one_batch : {true, false}) {
    SCOPED_TRACE(one_batch ? "in one batch" : "in batches");
    const std::string order = testing::uniqueName("O");
    const std::vector<OutboxEvent> events{
        orderEvent(dept_, "1-0", order, "R", ""),
        orderEvent(dept_, "1-1", order, "A", "G1|W1|1|1|A|1|1|0")};
    const std::string stream = "ob:{" + order + "}";
    if (one_batch) {
      ASSERT_TRUE(store_->applyBatch(stream, events).has_value());
    } else {
      for (const auto& event : events) ASSERT_TRUE(store_->applyBatch(stream, {event}));
    }
    EXPECT_EQ(db_->orderStatus({dept_, order}), "allocated");
  }
}

TEST_F(WriteBackStoreTest, ReappliedAndOverlappingBatchesChangeNothingTwice) {
  const std::vector<OutboxEvent> first{adjustEvent("5-0", "R1", 10),
                                       record("5-1", "hold", "O1", 4, 0),
                                       record("9-0", "hold", "O2", 6, 2)};
  auto applied = store_->applyBatch(stream_, first);
  ASSERT_TRUE(applied.has_value()) << applied.error().message;
  EXPECT_EQ(applied->applied, 3u);
  EXPECT_EQ(applied->last_id, "9-0");
  auto again = store_->applyBatch(stream_, first);  // a crash after commit, before trim
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->applied, 0u);
  EXPECT_EQ(again->skipped, 3u);
  // "10-0" > "9-0" numerically although not as text; the overlap is skipped.
  auto overlap = store_->applyBatch(
      stream_, {record("9-0", "hold", "O2", 6, 2), record("10-0", "deduct", "O1", 4, 0)});
  ASSERT_TRUE(overlap.has_value());
  EXPECT_EQ(overlap->applied, 1u);
  EXPECT_EQ(overlap->skipped, 1u);
  EXPECT_EQ(db_->record(key_), (Quantities{6, 6, 2}));
  EXPECT_EQ(db_->orderLines({dept_, "O1"}).at("G1").state, "deducted");
  auto position = store_->readPosition(stream_);
  ASSERT_TRUE(position.has_value());
  EXPECT_EQ(position->last_id, "10-0");
  EXPECT_EQ(position->events_applied, 4);
}

// A batch that fails half-way (here: a malformed id after two good events) rolls back whole:
// neither the changes nor the position move, and the corrected batch applies everything.
TEST_F(WriteBackStoreTest, BatchFailingBeforeCommitLosesNothing) {
  std::vector<OutboxEvent> events{adjustEvent("1-0", "R1", 5), record("1-1", "hold", "O1", 2, 0),
                                  record("bogus", "hold", "O2", 1, 0)};
  EXPECT_FALSE(store_->applyBatch(stream_, events).has_value());
  EXPECT_EQ(db_->record(key_), std::nullopt);
  EXPECT_EQ(store_->readPosition(stream_)->last_id, "");
  events.back().id = "1-2";
  auto applied = store_->applyBatch(stream_, events);
  ASSERT_TRUE(applied.has_value()) << applied.error().message;
  EXPECT_EQ(applied->applied, 3u);
  EXPECT_EQ(db_->record(key_), (Quantities{5, 3, 0}));
}

// Events that can never apply are dead-lettered and the stream moves past them; the good
// events of the same batch still apply.
TEST_F(WriteBackStoreTest, EventsThatCanNeverApplyAreDeadLettered) {
  struct Case {
    const char* name;
    OutboxEvent event;
  };
  const std::vector<Case> cases{
      {"release below zero (CHECK)", record("2-1", "deduct", "OX", 50, 0)},
      {"adjust below zero", adjustEvent("2-2", "RX", -100)},
      {"unknown kind", record("2-3", "explode", "O1", 1, 0)},
      {"bad quantity", OutboxEvent{"2-4",
                                   {{"e", "hold"},
                                    {"r", key_.index()},
                                    {"d", dept_},
                                    {"o", "O1"},
                                    {"a", "x"},
                                    {"s", "0"}}}},
      {"bad record index",
       OutboxEvent{
           "2-5",
           {{"e", "hold"}, {"r", "nope"}, {"d", dept_}, {"o", "O1"}, {"a", "1"}, {"s", "0"}}}},
      {"order still pending",
       OutboxEvent{"2-6", {{"e", "order"}, {"d", dept_}, {"o", "O9"}, {"st", "P"}, {"an", ""}}}},
      {"order with bad lines",
       OutboxEvent{"2-7", {{"e", "order"}, {"d", dept_}, {"o", "O9"}, {"st", "A"}, {"an", "x|y"}}}},
      {"fused hold rolled back", hold(key_, "2-8", "O9", 1, 0, "R")},
      {"fused hold still pending", hold(key_, "2-9", "O9", 1, 0, "P")},
      {"fused hold with a bad st", hold(key_, "2-10", "O9", 1, 0, "AS")},
      {"st on a rollback",
       [&] {
         auto event = record("2-11", "rollback", "O1", 1, 0);
         event.fields.emplace_back("st", "A");
         return event;
       }()},
  };
  std::vector<OutboxEvent> batch{adjustEvent("2-0", "R1", 5)};
  for (const auto& c : cases) batch.push_back(c.event);
  batch.push_back(record("2-12", "hold", "O1", 1, 0));
  auto outcome = store_->applyBatch(stream_, batch);
  ASSERT_TRUE(outcome.has_value()) << outcome.error().message;
  EXPECT_EQ(outcome->applied, 2u);
  EXPECT_EQ(outcome->dead_lettered, cases.size());
  EXPECT_EQ(outcome->last_id, "2-12");
  EXPECT_EQ(db_->deadLetters(stream_), static_cast<std::int64_t>(cases.size()));
  EXPECT_EQ(db_->record(key_), (Quantities{5, 1, 0}));
  EXPECT_EQ(db_->orderStatus({dept_, "O9"}), std::nullopt);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_NE(outcome->dead_letter_reasons[i].find(cases[i].event.id + ":"), std::string::npos)
        << cases[i].name;
  }
}

TEST(StreamId, ComparesNumericallyAndRejectsMalformedIds) {
  EXPECT_LT(*mysql::StreamId::parse("9-0"), *mysql::StreamId::parse("10-0"));
  EXPECT_LT(*mysql::StreamId::parse("5-9"), *mysql::StreamId::parse("5-10"));
  EXPECT_EQ(mysql::StreamId::parse("5-9")->next().text(), "5-10");
  for (const char* bad : {"", "5", "-1", "5-", "a-1", "1-b", "1-2-3", "18446744073709551616-0"}) {
    EXPECT_FALSE(mysql::StreamId::parse(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace allot
