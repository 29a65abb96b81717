// The reconciliation against real servers (standalone Redis, MariaDB): records are built
// through PreallocationService and drained into MariaDB by a WriteBack, then drift is injected
// on one side and reconcile(dept) must find it, record it and repair it by the rule in
// reconcile.cc; without drift, or with events merely waiting in the outbox, it must change
// nothing.
#include "workers/reconcile.h"

#include <gtest/gtest.h>

#include <thread>

#include "domain/preallocation_service.h"
#include "domain/system_clock.h"
#include "mysql/mysql_ledger.h"
#include "mysql/pool.h"
#include "mysql/url.h"
#include "mysql/write_back_store.h"
#include "redis/client.h"
#include "redis/keys.h"
#include "redis/redis_stock_store.h"
#include "redis/scripts.h"
#include "support/servers.h"
#include "support/test_env.h"
#include "workers/write_back.h"

namespace allot {
namespace {

class ReconcileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = testing::connectRedis(testing::redisUrl());
    ASSERT_NE(client_, nullptr);
    hot_ = std::make_unique<redis::RedisStockStore>(*client_, redis::StoreOptions{3600, 30'000});
    ledger_ = testing::openLedger();
    ASSERT_NE(ledger_, nullptr);
    store_ = std::make_unique<mysql::WriteBackStore>(ledger_->pool());
    write_back_ = std::make_unique<workers::WriteBack>(*client_, *store_);
    service_ = std::make_unique<PreallocationService>(*hot_, *ledger_, clock_, counters_);
    reconciler_ =
        std::make_unique<workers::Reconciler>(*client_, ledger_->pool(), write_back_.get());
    dept_ = testing::uniqueName("rc");
  }

  RecordKey record(const std::string& goods) { return RecordKey{dept_, goods, "W1"}; }

  void adjust(const std::string& goods, const std::string& ref, std::int64_t delta) {
    AdjustRequest request{record(goods), ref, delta, std::nullopt};
    auto done = service_->adjust(request, goods + "/" + ref + "/" + std::to_string(delta));
    ASSERT_TRUE(done.has_value()) << done.error().message;
  }

  void preallocate(const std::string& order_no, const std::string& goods, std::int64_t qty,
                   bool shortage) {
    PreallocateRequest request{dept_, order_no, {{record(goods), qty}}, shortage};
    auto outcome = service_->preallocate(request);
    ASSERT_TRUE(outcome.has_value()) << outcome.error().message;
    ASSERT_TRUE(std::holds_alternative<OrderAnswer>(*outcome)) << order_no;
  }

  void drain() {
    ASSERT_TRUE(
        write_back_->waitDrained(std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  }

  // G1: on_hand 10, two live holds (3, and 2 + 1 short), one deducted hold of 1; G2: on_hand 4.
  // Everything drained, so both stores agree.
  void buildRecords() {
    adjust("G1", "R1", 10);
    adjust("G2", "R2", 4);
    preallocate("O1", "G1", 3, false);
    preallocate("O2", "G1", 1, false);
    ASSERT_TRUE(service_->deduct({dept_, "O2"}).has_value());
    preallocate("O3", "G2", 4, false);
    preallocate("O4", "G1", 2, false);
    drain();
    ASSERT_EQ(dbRecord("G1"), (Quantities{9, 5, 0}));
    ASSERT_EQ(redisRecord("G1"), dbRecord("G1"));
    ASSERT_EQ(redisRecord("G2"), dbRecord("G2"));
  }

  std::optional<Quantities> redisRecord(const std::string& goods) {
    auto read = hot_->readRecord(record(goods));
    EXPECT_TRUE(read.has_value()) << read.error().message;
    return read ? *read : std::nullopt;
  }

  std::optional<Quantities> dbRecord(const std::string& goods) {
    const RecordKey key = record(goods);
    auto rows = query(
        "SELECT on_hand, preallocated, shortage FROM stock WHERE dept_no = ? AND goods_no = ? "
        "AND warehouse_no = ? AND stock_status = ? AND stock_type = ? AND goods_level = ?",
        {key.dept_no, key.goods_no, key.warehouse_no, key.stock_status, key.stock_type,
         key.goods_level});
    if (rows.empty()) return std::nullopt;
    return Quantities{*rows[0].integer(0), *rows[0].integer(1), *rows[0].integer(2)};
  }

  mysql::Rows query(std::string_view sql, std::initializer_list<mysql::Param> params) {
    auto lease = ledger_->pool().acquire();
    EXPECT_TRUE(lease.has_value());
    if (!lease) return {};
    auto rows = (*lease)->query(sql, params);
    EXPECT_TRUE(rows.has_value()) << rows.error().message;
    return rows ? std::move(*rows) : mysql::Rows{};
  }

  void execute(std::string_view sql, std::initializer_list<mysql::Param> params) {
    auto lease = ledger_->pool().acquire();
    ASSERT_TRUE(lease.has_value());
    auto done = (*lease)->execute(sql, params);
    ASSERT_TRUE(done.has_value()) << done.error().message;
  }

  std::int64_t reconciliationRows() {
    auto rows = query("SELECT COUNT(*) FROM reconciliations WHERE dept_no = ?", {dept_});
    return rows.empty() ? -1 : *rows[0].integer(0);
  }

  workers::ReconcileReport reconcile() {
    auto report = reconciler_->reconcile(dept_);
    EXPECT_TRUE(report.has_value()) << report.error().message;
    return report ? *report : workers::ReconcileReport{};
  }

  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<redis::RedisStockStore> hot_;
  std::unique_ptr<mysql::MysqlLedger> ledger_;
  std::unique_ptr<mysql::WriteBackStore> store_;
  std::unique_ptr<workers::WriteBack> write_back_;
  SystemClock clock_;
  ServiceCounters counters_;
  std::unique_ptr<PreallocationService> service_;
  std::unique_ptr<workers::Reconciler> reconciler_;
  std::string dept_;
};

// One drift injected after a full drain, and the state both stores must reach.
struct DriftCase {
  std::string name;
  std::string redis_command;  // "DECRBY_USABLE" / "" : what to do in Redis
  std::int64_t redis_amount = 0;
  std::string sql;      // an UPDATE of G1's row, or ""
  Quantities expected;  // G1 in both stores after the repair
};

TEST_F(ReconcileTest, InjectedDriftIsFoundRecordedAndRepaired) {
  const std::vector<DriftCase> cases = {
      // A stray DECRBY: Redis lost 4 of on_hand; the database wins on_hand.
      {"stray_decrby", "DECRBY_USABLE", 4, "", Quantities{9, 5, 0}},
      // The database row gained 5: the database wins, Redis usable grows by 5.
      {"db_on_hand_plus_5", "", 0, "UPDATE stock SET on_hand = on_hand + 5", Quantities{14, 5, 0}},
      // The database's preallocated is wrong: the live holds (3 + 2) are the truth.
      {"db_preallocated_99", "", 0, "UPDATE stock SET preallocated = 99", Quantities{9, 5, 0}},
      // Redis's subtracted is wrong (usable kept, so on_hand looks changed too): holds win
      // for subtracted, the database for on_hand.
      {"redis_subtracted_7", "INCRBY_SUBTRACTED", 2, "", Quantities{9, 5, 0}},
  };
  for (const auto& drift : cases) {
    SCOPED_TRACE(drift.name);
    dept_ = testing::uniqueName("rc");
    buildRecords();
    const RecordKey key = record("G1");
    if (drift.redis_command == "DECRBY_USABLE") {
      const auto usable = redis::keys::usable(key);
      ASSERT_TRUE(client_->command(usable, {"DECRBY", usable, std::to_string(drift.redis_amount)}));
    } else if (drift.redis_command == "INCRBY_SUBTRACTED") {
      const auto subtracted = redis::keys::subtracted(key);
      ASSERT_TRUE(
          client_->command(subtracted, {"INCRBY", subtracted, std::to_string(drift.redis_amount)}));
    }
    if (!drift.sql.empty()) {
      execute(drift.sql +
                  " WHERE dept_no = ? AND goods_no = ? AND warehouse_no = ? AND stock_status = ? "
                  "AND stock_type = ? AND goods_level = ?",
              {key.dept_no, key.goods_no, key.warehouse_no, key.stock_status, key.stock_type,
               key.goods_level});
    }
    ASSERT_NE(redisRecord("G1"), dbRecord("G1"));

    const auto report = reconcile();
    EXPECT_EQ(report.checked, 2);
    EXPECT_EQ(report.mismatched, 1);
    EXPECT_EQ(report.repaired, 1);
    EXPECT_EQ(report.lag_only, 0);
    EXPECT_EQ(redisRecord("G1"), drift.expected);
    EXPECT_EQ(dbRecord("G1"), drift.expected);
    EXPECT_EQ(reconciliationRows(), 1);

    // Repaired for good: the next run finds nothing, and the holds still release cleanly.
    const auto again = reconcile();
    EXPECT_EQ(again.mismatched, 0);
    ASSERT_TRUE(service_->rollback({dept_, "O1"}).has_value());
    drain();
    EXPECT_EQ(redisRecord("G1"), dbRecord("G1"));
    EXPECT_EQ(redisRecord("G1")->preallocated, drift.expected.preallocated - 3);
  }
}

// A hold event lost from the outbox before the drain: the database's preallocated lags
// forever; the live holds in Redis are the truth, so the database is repaired.
TEST_F(ReconcileTest, LostOutboxEntryIsRepairedInTheDatabase) {
  buildRecords();
  preallocate("O9", "G1", 2, false);
  const std::string stream = redis::keys::outboxFor(redis::keys::usable(record("G1")));
  auto entries = client_->command(stream, {"XRANGE", stream, "-", "+"});
  ASSERT_TRUE(entries.has_value() && entries->isArray());
  std::string lost;
  for (const auto& entry : entries->elements) {
    const auto& fields = entry.elements[1].elements;
    int matches = 0;  // e=hold, o=O9, d=this test's dept
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].str == "e" && fields[i + 1].str == "hold") ++matches;
      if (fields[i].str == "o" && fields[i + 1].str == "O9") ++matches;
      if (fields[i].str == "d" && fields[i + 1].str == dept_) ++matches;
    }
    if (matches == 3) lost = entry.elements[0].str;
  }
  ASSERT_FALSE(lost.empty());
  auto deleted = client_->command(stream, {"XDEL", stream, lost});
  ASSERT_TRUE(deleted.has_value() && deleted->integer == 1);
  drain();
  ASSERT_EQ(dbRecord("G1"), (Quantities{9, 5, 0}));
  ASSERT_EQ(redisRecord("G1"), (Quantities{9, 7, 0}));

  const auto report = reconcile();
  EXPECT_EQ(report.mismatched, 1);
  EXPECT_EQ(report.repaired, 1);
  EXPECT_EQ(dbRecord("G1"), (Quantities{9, 7, 0}));
  EXPECT_EQ(redisRecord("G1"), (Quantities{9, 7, 0}));
  EXPECT_EQ(reconciliationRows(), 1);
}

TEST_F(ReconcileTest, NoDriftChangesNothing) {
  buildRecords();
  const auto before_g1 = redisRecord("G1");
  const auto before_g2 = redisRecord("G2");
  const auto report = reconcile();
  EXPECT_EQ(report.checked, 2);
  EXPECT_EQ(report.mismatched, 0);
  EXPECT_EQ(report.repaired, 0);
  EXPECT_EQ(report.lag_only, 0);
  EXPECT_EQ(reconciliationRows(), 0);
  EXPECT_EQ(redisRecord("G1"), before_g1);
  EXPECT_EQ(redisRecord("G2"), before_g2);
  EXPECT_EQ(dbRecord("G1"), before_g1);
  EXPECT_EQ(reconciler_->metrics().runs.load(), 1u);
}

// Events still in the outbox are lag, not drift: nothing is repaired or recorded.
// With a read replica configured the first compare reads it (here a second pool on the same
// server: this suite has no replication), and a replica that fails leaves the primary to it.
TEST_F(ReconcileTest, TheFirstCompareReadsTheReplicaAndFallsBackToThePrimary) {
  buildRecords();
  auto replica_options = mysql::parseMysqlUrl(testing::mysqlUrl());
  ASSERT_TRUE(replica_options.has_value());
  auto replica = mysql::Pool::create(*replica_options);
  ASSERT_TRUE(replica.has_value()) << replica.error().message;
  workers::Reconciler with_replica(*client_, ledger_->pool(), write_back_.get(), replica->get());
  auto report = with_replica.reconcile(dept_);
  ASSERT_TRUE(report.has_value()) << report.error().message;
  EXPECT_EQ(report->checked, 2);
  EXPECT_EQ(report->mismatched, 0);
  EXPECT_EQ(with_replica.metrics().replica_reads.load(), 2u);
  EXPECT_EQ(with_replica.metrics().replica_failures.load(), 0u);

  // A "replica" without the stock table: every read of it fails.
  auto broken_options = *replica_options;
  broken_options.database = "information_schema";
  auto broken = mysql::Pool::create(broken_options);
  ASSERT_TRUE(broken.has_value()) << broken.error().message;
  workers::Reconciler broken_replica(*client_, ledger_->pool(), write_back_.get(), broken->get());
  auto fallback = broken_replica.reconcile(dept_);
  ASSERT_TRUE(fallback.has_value()) << fallback.error().message;
  EXPECT_EQ(fallback->checked, 2);
  EXPECT_EQ(broken_replica.metrics().replica_failures.load(), 2u);
}

TEST_F(ReconcileTest, PendingEventsAreLagNotDrift) {
  buildRecords();
  preallocate("O7", "G1", 1, false);
  ASSERT_TRUE(service_->rollback({dept_, "O3"}).has_value());
  // A decrease goes to Redis first and then to the database inline: its outbox event is then
  // already applied (by ref) and must not count as pending.
  adjust("G2", "R3", -1);
  const auto redis_g1 = redisRecord("G1");
  const auto report = reconcile();
  EXPECT_EQ(report.checked, 2);
  EXPECT_EQ(report.mismatched, 0);
  EXPECT_EQ(report.repaired, 0);
  EXPECT_EQ(reconciliationRows(), 0);
  EXPECT_EQ(redisRecord("G1"), redis_g1);
  // Another suite's write-back (sharing this Redis) may drain our streams at any time; while
  // the database still differs from Redis, nothing drained G1 yet, so it must be lag.
  if (dbRecord("G1") != redisRecord("G1")) {
    EXPECT_GE(report.lag_only, 1);
  }
  drain();
  EXPECT_EQ(dbRecord("G1"), redisRecord("G1"));
  EXPECT_EQ(dbRecord("G2"), redisRecord("G2"));
}

// Single-line orders of the fast path (order_hold.lua, one `holds` outbox entry per call)
// not yet written back are lag too, and their holds count as live in a repair.
TEST_F(ReconcileTest, FusedHoldsNotYetWrittenBackAreLagNotDrift) {
  buildRecords();
  const RecordKey key = record("G1");
  // The script as allotd's fast path calls it (standalone only: plain EVAL, since its keys
  // span the record's and the orders' slots).
  std::vector<std::string> argv{"EVAL",
                                std::string(redis::embeddedScript("order_hold.lua").body()),
                                "13",
                                redis::keys::usable(key),
                                redis::keys::subtracted(key),
                                redis::keys::ullage(key),
                                redis::keys::holds(key),
                                redis::keys::outboxFor(redis::keys::usable(key))};
  for (const char* order : {"F1", "F2"}) {
    argv.push_back(redis::keys::operate(key, order));
    argv.push_back(redis::keys::rollbackTombstone(key, order));
    argv.push_back(redis::keys::order(OrderRef{dept_, order}));
    argv.push_back(redis::keys::orderBucket(OrderRef{dept_, order}));
  }
  argv.insert(argv.end(),
              {key.index(), dept_, encodeLineRecord(key), "F1", "1", "0", "F2", "4", "1"});
  auto held = client_->command("", argv);
  ASSERT_TRUE(held.has_value() && held->isArray()) << (held ? held->str : held.error().message);
  ASSERT_EQ(redisRecord("G1"), (Quantities{9, 9, 1}));  // F2 finds 3 left: 3 held, 1 short
  const auto report = reconcile();
  EXPECT_EQ(report.mismatched, 0);
  EXPECT_EQ(reconciliationRows(), 0);
  if (dbRecord("G1") != redisRecord("G1")) {
    EXPECT_GE(report.lag_only, 1);  // (unless another suite's write-back drained it already)
  }
  drain();
  EXPECT_EQ(dbRecord("G1"), (Quantities{9, 9, 1}));
  // Drift injected now is repaired with the fused holds counted among the live ones.
  ASSERT_TRUE(client_->command("", {"SET", redis::keys::subtracted(key), "0"}).has_value());
  const auto repaired = reconcile();
  EXPECT_EQ(repaired.mismatched, 1);
  EXPECT_EQ(repaired.repaired, 1);
  EXPECT_EQ(redisRecord("G1"), (Quantities{9, 9, 1}));
}

// The database says less stock than the live holds keep (it was sold in Redis but the
// database does not have it): the Redis repair is refused and recorded for an operator.
TEST_F(ReconcileTest, OnHandBelowTheLiveHoldsIsRefusedAndRecorded) {
  buildRecords();
  const RecordKey key = record("G1");
  execute(
      "UPDATE stock SET on_hand = 2 WHERE dept_no = ? AND goods_no = ? AND warehouse_no = ? "
      "AND stock_status = ? AND stock_type = ? AND goods_level = ?",
      {key.dept_no, key.goods_no, key.warehouse_no, key.stock_status, key.stock_type,
       key.goods_level});
  const auto report = reconcile();
  EXPECT_EQ(report.mismatched, 1);
  EXPECT_EQ(report.repaired, 0);
  EXPECT_EQ(redisRecord("G1"), (Quantities{9, 5, 0}));  // untouched
  EXPECT_EQ(dbRecord("G1"), (Quantities{2, 5, 0}));
  auto rows = query("SELECT repaired, repair FROM reconciliations WHERE dept_no = ?", {dept_});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(*rows[0].integer(0), 0);
  EXPECT_NE(rows[0].text(1).find("refused"), std::string_view::npos) << rows[0].text(1);
}

// Holds keep arriving while a drift is repaired: the WATCH/MULTI session must never overwrite
// a hold made after it read the counters, so every hold survives the repair.
TEST_F(ReconcileTest, RepairDoesNotLoseConcurrentHolds) {
  buildRecords();
  const auto usable = redis::keys::usable(record("G1"));
  ASSERT_TRUE(client_->command(usable, {"DECRBY", usable, "3"}));
  constexpr int kHolds = 40;
  std::thread holder([&] {
    for (int i = 0; i < kHolds; ++i) preallocate("C" + std::to_string(i), "G1", 1, true);
  });
  const auto report = reconcile();
  holder.join();
  EXPECT_EQ(report.mismatched, 1);
  const auto after = redisRecord("G1");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->on_hand, 9);                                  // the database's on_hand won
  EXPECT_EQ(after->preallocated + after->shortage, 5 + kHolds);  // no hold was lost
  drain();
  EXPECT_EQ(dbRecord("G1"), redisRecord("G1"));
  EXPECT_EQ(reconcile().mismatched, 0);
}

}  // namespace
}  // namespace allot
