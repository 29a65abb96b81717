#include "workers/route_switch.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "domain/order.h"
#include "mysql/pending_order_scan.h"
#include "mysql/record_params.h"
#include "redis/keys.h"
#include "redis/sha1.h"
#include "workers/write_back.h"

namespace allot::workers {

namespace {

static_assert(kRouteSwitchPageRows == 500, "the page SQL below says LIMIT 500");

constexpr std::string_view kStockPageSql =
    "SELECT goods_no, warehouse_no, stock_status, stock_type, goods_level, on_hand, "
    "preallocated, shortage FROM stock WHERE dept_no = ? AND (goods_no, warehouse_no, "
    "stock_status, stock_type, goods_level) > (?, ?, ?, ?, ?) ORDER BY goods_no, warehouse_no, "
    "stock_status, stock_type, goods_level LIMIT 500";
// Live orders, ended ones young enough that Redis would still remember them, and any with a
// line still held (a rollback whose release never ran, a tombstone over a straggler's
// lines): the switch back drops the records' live holds, and loads these.
constexpr std::string_view kOrderPageSql =
    "SELECT order_no, status, lines_digest FROM orders WHERE dept_no = ? AND order_no > ? AND "
    "(status IN ('allocated', 'shortage') OR updated_at > NOW(6) - INTERVAL ? SECOND OR "
    "EXISTS (SELECT 1 FROM order_lines l WHERE l.dept_no = orders.dept_no AND l.order_no = "
    "orders.order_no AND l.state = 'held')) ORDER BY order_no LIMIT 500";
constexpr std::string_view kLinesSql =
    "SELECT order_no, goods_no, warehouse_no, stock_status, stock_type, goods_level, qty, "
    "allocated, shortage, state FROM order_lines WHERE dept_no = ? AND order_no >= ? AND "
    "order_no <= ? ORDER BY order_no, line_no";
// The order and last error of the merchant's oldest pending task, and how many are pending.
constexpr std::string_view kPendingCompensationsSql =
    "SELECT t.order_no, t.reason, (SELECT COUNT(*) FROM compensation_tasks c WHERE c.dept_no = "
    "t.dept_no AND c.state = 'pending') FROM compensation_tasks t WHERE t.dept_no = ? AND "
    "t.state = 'pending' ORDER BY t.id LIMIT 1";
// Rows of the merchant's orders still in pending_orders (a plain read: one another process
// is deleting is still counted).
constexpr std::string_view kPendingOrderRowsSql =
    "SELECT COUNT(*) FROM pending_orders WHERE dept_no = ?";
// Held lines of the merchant's orders without an orders row, in pages of 500 (keyset).
constexpr std::string_view kUnansweredLinesSql =
    "SELECT l.order_no, l.goods_no, l.warehouse_no, l.stock_status, l.stock_type, "
    "l.goods_level, l.allocated, l.shortage FROM order_lines l WHERE l.dept_no = ? AND "
    "l.state = 'held' AND (l.order_no, l.goods_no, l.warehouse_no, l.stock_status, "
    "l.stock_type, l.goods_level) > (?, ?, ?, ?, ?, ?) AND NOT EXISTS (SELECT 1 FROM orders o "
    "WHERE o.dept_no = l.dept_no AND o.order_no = l.order_no) ORDER BY l.order_no, l.goods_no, "
    "l.warehouse_no, l.stock_status, l.stock_type, l.goods_level LIMIT 500";
// Orders of the merchant with a line held and no answer, left after the final drain.
constexpr std::string_view kOrdersLeftPendingSql =
    "SELECT p.order_no FROM pending_orders p WHERE p.dept_no = ? AND NOT EXISTS (SELECT 1 FROM "
    "orders o WHERE o.dept_no = p.dept_no AND o.order_no = p.order_no) AND EXISTS (SELECT 1 "
    "FROM order_lines l WHERE l.dept_no = p.dept_no AND l.order_no = p.order_no AND l.state = "
    "'held') ORDER BY p.order_no LIMIT 10";
constexpr std::string_view kStockRowForUpdateSql =
    "SELECT on_hand, preallocated, shortage FROM stock WHERE dept_no = ? AND goods_no = ? AND "
    "warehouse_no = ? AND stock_status = ? AND stock_type = ? AND goods_level = ? FOR UPDATE";
constexpr std::string_view kSetStockSql =
    "UPDATE stock SET on_hand = ?, preallocated = ?, shortage = ? WHERE dept_no = ? AND "
    "goods_no = ? AND warehouse_no = ? AND stock_status = ? AND stock_type = ? AND "
    "goods_level = ?";
constexpr std::string_view kRecordDriftSql =
    "INSERT INTO reconciliations (dept_no, goods_no, warehouse_no, stock_status, stock_type, "
    "goods_level, db_on_hand, db_preallocated, db_shortage, redis_usable, redis_subtracted, "
    "redis_ullage, pending_on_hand, pending_preallocated, pending_shortage, repaired, repair, "
    "rule) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 1, ?, ?)";
constexpr std::string_view kSettleRule =
    "route switch to mysql: after the drain the row must equal the counters evicted from "
    "Redis, which served the merchant until then; Redis wins";

struct RecordRow {
  RecordKey key;
  Quantities quantities;
};

// Calls `each` for every record of the merchant, in pages.
template <typename Each>
Result<void> forEachRecord(mysql::Pool& pool, const std::string& dept_no, Each each) {
  RecordKey after{dept_no, "", "", "", "", ""};
  while (true) {
    std::vector<RecordRow> page;
    {
      ALLOT_TRY(lease, pool.acquire());
      ALLOT_TRY(rows, lease->query(kStockPageSql, mysql::keyParams(after)));
      for (const auto& row : rows) {
        RecordRow record{mysql::recordKeyOf(dept_no, row, 0), {}};
        ALLOT_TRY(on_hand, row.integer(5));
        ALLOT_TRY(preallocated, row.integer(6));
        ALLOT_TRY(shortage, row.integer(7));
        record.quantities = Quantities{on_hand, preallocated, shortage};
        page.push_back(std::move(record));
      }
    }
    for (const auto& record : page) ALLOT_TRY_VOID(each(record));
    if (page.size() < kRouteSwitchPageRows) return {};
    after = page.back().key;
  }
}

Result<redis::RedisStockStore::LoadedLine::State> lineState(std::string_view text) {
  using State = redis::RedisStockStore::LoadedLine::State;
  if (text == "held") return State::kHeld;
  if (text == "released") return State::kReleased;
  if (text == "deducted") return State::kDeducted;
  return fail(ErrorCode::kInternal, "order_lines holds an unknown state: " + std::string(text));
}

Result<OrderStatus> statusOf(std::string_view text) {
  for (auto status : {OrderStatus::kAllocated, OrderStatus::kShortage, OrderStatus::kRolledBack,
                      OrderStatus::kDeducted}) {
    if (orderStatusName(status) == text) return status;
  }
  return fail(ErrorCode::kInternal, "orders holds an unknown status: " + std::string(text));
}

}  // namespace

RouteSwitch::RouteSwitch(redis::RedisStockStore& store, mysql::Pool& pool, RouteTable& table,
                         WriteBack& write_back, RunCompensation run_compensation,
                         RouteSwitchOptions options)
    : store_(store),
      pool_(pool),
      table_(table),
      write_back_(write_back),
      run_compensation_(std::move(run_compensation)),
      options_(options) {}

std::string routeSwitchLockName(std::string_view database, std::string_view dept_no) {
  // Lock names are the server's, not the database's; at most 64 characters.
  return "allot.switch." + redis::sha1Hex(std::string(database) + "\n" + std::string(dept_no));
}

// One switch of a merchant at a time across every allotd: a named lock on a connection of its
// own, so that closing it (also by the process dying) releases the lock, and no pooled
// connection can carry it off to other work.
class RouteSwitch::SwitchLock {
 public:
  static Result<SwitchLock> take(const mysql::MysqlOptions& options, const std::string& dept_no) {
    SwitchLock lock;
    lock.name_ = routeSwitchLockName(options.database, dept_no);
    auto connection = mysql::Connection::open(options);
    if (!connection) {
      return fail(ErrorCode::kUnavailable, "cannot open the connection for the switch lock: " +
                                               connection.error().message + "; nothing was done");
    }
    lock.connection_ = std::move(*connection);
    // Idle while the switch works, for a minute or two: a short server wait_timeout must not
    // end the session, and the lock with it.
    ALLOT_TRY_VOID(lock.connection_->execute(
        "SET SESSION wait_timeout = GREATEST(@@session.wait_timeout, 3600)"));
    ALLOT_TRY(locked,
              lock.connection_->query("SELECT GET_LOCK(?, 0)", {std::string_view(lock.name_)}));
    if (locked.empty() || locked[0].isNull(0) || locked[0].integer(0).value_or(0) != 1) {
      return fail(ErrorCode::kUnavailable, "a switch of merchant " + dept_no +
                                               " is running in another allotd; nothing was done");
    }
    return lock;
  }

  SwitchLock(SwitchLock&&) = default;
  SwitchLock& operator=(SwitchLock&&) = default;
  SwitchLock(const SwitchLock&) = delete;
  SwitchLock& operator=(const SwitchLock&) = delete;
  // Released before the connection closes: closing alone frees it a moment later, and a PUT
  // from another allotd right after this one's answer would find it still taken.
  ~SwitchLock() {
    if (connection_ == nullptr) return;
    if (auto released = connection_->query("SELECT RELEASE_LOCK(?)", {std::string_view(name_)});
        !released) {
      spdlog::warn("route switch: RELEASE_LOCK failed ({}); closing its connection frees it",
                   released.error().message);
    }
  }

  // Fails when the lock's connection was lost: the server freed the lock, and another switch
  // of the merchant may have begun.
  [[nodiscard]] Result<void> check() const {
    ALLOT_TRY(held, connection_->query("SELECT IS_USED_LOCK(?) = CONNECTION_ID()",
                                       {std::string_view(name_)}));
    if (held.empty() || held[0].isNull(0) || held[0].integer(0).value_or(0) != 1) {
      return fail(ErrorCode::kUnavailable, "the switch lost its lock in the database");
    }
    return {};
  }

 private:
  SwitchLock() = default;
  std::unique_ptr<mysql::Connection> connection_;  // closed with the lock: that releases it
  std::string name_;
};

Result<void> RouteSwitch::move(const std::string& dept_no, Route from, Route to) {
  ALLOT_TRY(lock, SwitchLock::take(pool_.options(), dept_no));
  return moveLocked(dept_no, from, to, lock);
}

Result<void> RouteSwitch::moveLocked(const std::string& dept_no, Route from, Route to,
                                     const SwitchLock& lock) {
  // The route as it stands now that no other switch can run.
  ALLOT_TRY(before, table_.findRoute(dept_no));
  const bool was_switching = before && before->switching;
  if (before && !was_switching && before->route == to) return {};  // done elsewhere meanwhile
  if (before && before->route != from) {
    return fail(ErrorCode::kUnavailable, "the route of merchant " + dept_no + " changed to " +
                                             std::string(routeName(before->route)) +
                                             " meanwhile; nothing was done");
  }
  // The route it takes by default, now recorded: nothing moves (the protocol would evict live
  // counters and reload them from rows the write-back has not caught up with).
  if (from == to && !was_switching) return table_.saveRoute(dept_no, StoredRoute{to, false});
  spdlog::info("route switch of {}: {} -> {}", dept_no, routeName(from), routeName(to));
  bool data_moved = false;
  auto moved = [&]() -> Result<void> {
    ALLOT_TRY_VOID(table_.saveRoute(dept_no, StoredRoute{from, /*switching=*/true}));
    std::this_thread::sleep_for(options_.settle);
    if (to == Route::kMysql) {
      ALLOT_TRY_VOID(toMysql(dept_no, lock, data_moved));
    } else {
      ALLOT_TRY_VOID(lock.check());
      data_moved = true;  // its first step evicts
      ALLOT_TRY_VOID(toRedis(dept_no, /*rerun=*/was_switching));
    }
    ALLOT_TRY_VOID(lock.check());
    return table_.saveRoute(dept_no, StoredRoute{to, /*switching=*/false});
  }();
  if (!moved) {
    metrics_.failures.fetch_add(1);
    // A switch put off before any data moved gives the merchant back as it was: its route
    // (or no row), when it was settled. One that found the merchant switching (an earlier
    // switch failed half-way) leaves it so: its data may be half moved.
    const bool put_back =
        !data_moved && !was_switching &&
        (before ? table_.saveRoute(dept_no, StoredRoute{from, false}) : table_.forgetRoute(dept_no))
            .has_value();
    if (put_back) {
      spdlog::warn("route switch of {} to {} put off before any data moved: {}", dept_no,
                   routeName(to), moved.error().message);
      return fail(moved.error().code, moved.error().message +
                                          "; nothing was moved: the merchant stays on " +
                                          std::string(routeName(from)));
    }
    spdlog::error("route switch of {} to {} failed: {}", dept_no, routeName(to),
                  moved.error().message);
    return moved;
  }
  metrics_.switches.fetch_add(1);
  spdlog::info("route switch of {} to {} done", dept_no, routeName(to));
  return {};
}

Result<RouteSwitch::PendingTasks> RouteSwitch::pendingCompensations(const std::string& dept_no) {
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY(rows, lease->query(kPendingCompensationsSql, {std::string_view(dept_no)}));
  PendingTasks pending;
  if (rows.empty()) return pending;
  ALLOT_TRY(count, rows[0].integer(2));
  pending.count = count;
  pending.oldest = "order " + std::string(rows[0].text(0)) + ": " + std::string(rows[0].text(1));
  return pending;
}

Result<void> RouteSwitch::releaseWhatNeedsRedis(const std::string& dept_no,
                                                const std::set<std::string>& streams) {
  // Every hold made before the gate closed is then in the database, and with it every order
  // a dead call left pending (pending_orders).
  ALLOT_TRY_VOID(drain(streams));
  // Each becomes an undo task now, whatever its age: no call of the merchant runs any more.
  // A claim still within its lease may be a straggler of another allotd; its undo waits. The
  // tasks release holds in Redis: they must run while the records are there. A row or task
  // another process holds meanwhile (its scan or worker) is given a moment to be done; the
  // wait starts again whenever fewer are left (a backlog goes a batch of tasks at a time).
  mysql::PendingOrderScan scan(pool_);
  const auto started = std::chrono::steady_clock::now();
  auto give_up_at = started + kCompensationWait;
  std::int64_t left_before = std::numeric_limits<std::int64_t>::max();
  while (true) {
    while (true) {
      ALLOT_TRY(pass, scan.runOnce({0, kRouteSwitchPageRows, dept_no}));
      metrics_.pending_orders_undone.fetch_add(pass.compensated);
      if (pass.taken < kRouteSwitchPageRows) break;
    }
    if (run_compensation_) ALLOT_TRY_VOID(run_compensation_(dept_no));
    ALLOT_TRY(pending, pendingCompensations(dept_no));
    ALLOT_TRY(rows_left, pendingOrderRows(dept_no));
    if (pending.count == 0 && rows_left == 0) return {};
    const auto now = std::chrono::steady_clock::now();
    if (pending.count + rows_left < left_before) {
      left_before = pending.count + rows_left;
      give_up_at = std::min(now + kCompensationWait, started + options_.drain_timeout);
    }
    if (now >= give_up_at) {
      if (pending.count == 0) {
        return fail(ErrorCode::kUnavailable,
                    std::to_string(rows_left) +
                        " orders of the merchant left pending are being handled by another "
                        "process (its pending-order scan)");
      }
      return fail(ErrorCode::kUnavailable,
                  std::to_string(pending.count) +
                      " compensation tasks of the merchant are still pending (they need Redis); "
                      "the oldest, " +
                      pending.oldest);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Result<std::int64_t> RouteSwitch::pendingOrderRows(const std::string& dept_no) {
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY(rows, lease->query(kPendingOrderRowsSql, {std::string_view(dept_no)}));
  if (rows.empty()) return std::int64_t{0};
  return rows[0].integer(0);
}

Result<void> RouteSwitch::drain(const std::set<std::string>& streams) {
  const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
  if (write_back_.drainAppendedBefore(streams, deadline)) return {};
  if (std::chrono::steady_clock::now() < deadline) {
    // It gave up early: a stream could not be read (the write-back logs why).
    return fail(ErrorCode::kUnavailable,
                "the write-back could not drain the merchant's outbox streams: Redis did not "
                "answer (see the log)");
  }
  return fail(ErrorCode::kUnavailable, "the write-back did not drain within " +
                                           std::to_string(options_.drain_timeout.count()) + " ms");
}

namespace {

// The streams the merchant's events can be in: its orders' slots (every order is in one of
// its buckets' slots: no SCAN of the keyspace); its records' are added as they are listed.
std::set<std::string> orderStreams(const std::string& dept_no) {
  std::set<std::string> streams;
  for (unsigned bucket = 0; bucket < redis::keys::kOrderBuckets; ++bucket) {
    streams.insert(redis::keys::outboxFor(redis::keys::orderBucketAt(dept_no, bucket)));
  }
  return streams;
}

std::string recordStream(const RecordKey& key) {
  return redis::keys::outboxFor(redis::keys::usable(key));
}

}  // namespace

Result<void> RouteSwitch::toMysql(const std::string& dept_no, const SwitchLock& lock,
                                  bool& data_moved) {
  std::set<std::string> streams = orderStreams(dept_no);
  ALLOT_TRY_VOID(forEachRecord(pool_, dept_no, [&](const RecordRow& record) -> Result<void> {
    streams.insert(recordStream(record.key));
    return {};
  }));
  ALLOT_TRY_VOID(releaseWhatNeedsRedis(dept_no, streams));
  ALLOT_TRY_VOID(lock.check());
  data_moved = true;
  std::vector<RecordRow> evicted;
  ALLOT_TRY_VOID(forEachRecord(pool_, dept_no, [&](const RecordRow& record) -> Result<void> {
    ALLOT_TRY(counters, store_.evictRecord(record.key));
    metrics_.records_evicted.fetch_add(1);
    // A record created since the streams were listed has its stream too.
    streams.insert(recordStream(record.key));
    if (counters) evicted.push_back(RecordRow{record.key, *counters});
    return {};
  }));
  ALLOT_TRY_VOID(drain(streams));
  for (const auto& record : evicted) ALLOT_TRY_VOID(settle(record.key, record.quantities));
  return warnOfOrdersLeftPending(dept_no);
}

// A hold of a straggler (a call of another allotd still running past the settle wait) made
// between the undo of pending orders and the eviction is left held in the database with no
// answer, its row in pending_orders kept: the scan's undo releases it there later
// (CompensationQueue::releaseUnansweredInDatabase). Such orders are named, not hidden.
Result<void> RouteSwitch::warnOfOrdersLeftPending(const std::string& dept_no) {
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY(rows, lease->query(kOrdersLeftPendingSql, {std::string_view(dept_no)}));
  if (rows.empty()) return {};
  std::string names;
  for (const auto& row : rows) names += (names.empty() ? "" : ", ") + std::string(row.text(0));
  metrics_.orders_left_pending.fetch_add(rows.size());
  spdlog::error(
      "route switch of {} to mysql: orders with lines held and no answer were left behind by a "
      "call still running during the switch: {} (at most 10 named); the pending-order scan "
      "releases them in the database once their claims' leases have passed",
      dept_no, names);
  return {};
}

Result<void> RouteSwitch::settle(const RecordKey& key, const Quantities& from_redis) {
  ALLOT_TRY(lease, pool_.acquire());
  mysql::Connection& db = *lease;
  ALLOT_TRY_VOID(db.begin());
  auto settled = [&]() -> Result<void> {
    ALLOT_TRY(rows, db.query(kStockRowForUpdateSql, mysql::keyParams(key)));
    if (rows.empty()) return fail(ErrorCode::kInternal, "the row of " + key.index() + " vanished");
    ALLOT_TRY(on_hand, rows[0].integer(0));
    ALLOT_TRY(preallocated, rows[0].integer(1));
    ALLOT_TRY(shortage, rows[0].integer(2));
    const Quantities row{on_hand, preallocated, shortage};
    if (row == from_redis) return {};
    const std::string repair = "row set to on_hand " + std::to_string(from_redis.on_hand) +
                               ", preallocated " + std::to_string(from_redis.preallocated) +
                               ", shortage " + std::to_string(from_redis.shortage);
    spdlog::warn("route switch: drift on {}: db {}/{}/{}; {}", key.index(), on_hand, preallocated,
                 shortage, repair);
    ALLOT_TRY_VOID(db.execute(
        kSetStockSql,
        {from_redis.on_hand, from_redis.preallocated, from_redis.shortage, key.dept_no,
         key.goods_no, key.warehouse_no, key.stock_status, key.stock_type, key.goods_level}));
    ALLOT_TRY_VOID(db.execute(
        kRecordDriftSql,
        {key.dept_no, key.goods_no, key.warehouse_no, key.stock_status, key.stock_type,
         key.goods_level, on_hand, preallocated, shortage, from_redis.available(),
         from_redis.preallocated, from_redis.shortage, std::string_view(repair), kSettleRule}));
    metrics_.settle_repairs.fetch_add(1);
    return {};
  }();
  if (!settled) {
    (void)db.rollback();
    return settled;
  }
  return db.commit();
}

Result<void> RouteSwitch::toRedis(const std::string& dept_no, bool rerun) {
  // A copy left in Redis from before the merchant's stay on the MySQL path is stale.
  std::set<std::string> streams = orderStreams(dept_no);
  // Its live-hold entries too: every hold the database has is loaded again below.
  ALLOT_TRY_VOID(forEachRecord(pool_, dept_no, [&](const RecordRow& record) -> Result<void> {
    ALLOT_TRY_VOID(store_.evictRecord(record.key, /*drop_holds=*/true));
    streams.insert(recordStream(record.key));
    return {};
  }));
  // Rerun after a switch to MySQL that failed half-way, the rows may still lack events
  // appended before its eviction (or, put off without being put back, before this one): the
  // rows and orders are read once they are in. Coming from the MySQL path, whose calls write
  // no events, there is nothing to wait for.
  if (rerun) {
    ALLOT_TRY_VOID(drain(streams));
  }
  ALLOT_TRY_VOID(loadOrders(dept_no));
  ALLOT_TRY_VOID(loadUnansweredLines(dept_no));
  return forEachRecord(pool_, dept_no, [&](const RecordRow& record) -> Result<void> {
    ALLOT_TRY_VOID(store_.reloadRecord(record.key, record.quantities));
    metrics_.records_loaded.fetch_add(1);
    return {};
  });
}

// The held lines of orders with no orders row: a straggler's, left by a switch to MySQL and
// not undone yet. Their claims are still pending in Redis; their undo finds the holds here.
Result<void> RouteSwitch::loadUnansweredLines(const std::string& dept_no) {
  std::string after_order;
  RecordKey after_key{dept_no, "", "", "", "", ""};
  while (true) {
    std::vector<std::pair<std::string, redis::RedisStockStore::LoadedLine>> page;
    {
      ALLOT_TRY(lease, pool_.acquire());
      ALLOT_TRY(rows, lease->query(kUnansweredLinesSql,
                                   {std::string_view(dept_no), std::string_view(after_order),
                                    std::string_view(after_key.goods_no),
                                    std::string_view(after_key.warehouse_no),
                                    std::string_view(after_key.stock_status),
                                    std::string_view(after_key.stock_type),
                                    std::string_view(after_key.goods_level)}));
      for (const auto& row : rows) {
        ALLOT_TRY(allocated, row.integer(6));
        ALLOT_TRY(shortage, row.integer(7));
        page.emplace_back(std::string(row.text(0)),
                          redis::RedisStockStore::LoadedLine{
                              mysql::recordKeyOf(dept_no, row, 1), allocated, shortage,
                              redis::RedisStockStore::LoadedLine::State::kHeld});
      }
    }
    for (const auto& [order_no, line] : page) {
      ALLOT_TRY_VOID(store_.loadLines(order_no, /*rolled_back=*/false, {line}));
    }
    if (page.size() < kRouteSwitchPageRows) return {};
    after_order = page.back().first;
    after_key = page.back().second.key;
  }
}

Result<void> RouteSwitch::loadOrders(const std::string& dept_no) {
  struct Order {
    std::string order_no;
    OrderStatus status = OrderStatus::kAllocated;
    std::optional<std::string> digest;  // lines_digest; NULL when the order never had an answer
    std::vector<LineRequest> requested;
    std::vector<LineOutcome> answered;
    std::vector<redis::RedisStockStore::LoadedLine> lines;
  };
  std::string after;
  while (true) {
    std::vector<Order> page;
    std::map<std::string, std::size_t> index;
    {
      ALLOT_TRY(lease, pool_.acquire());
      ALLOT_TRY(rows,
                lease->query(kOrderPageSql, {std::string_view(dept_no), std::string_view(after),
                                             options_.retention_seconds}));
      for (const auto& row : rows) {
        ALLOT_TRY(status, statusOf(row.text(1)));
        index.emplace(std::string(row.text(0)), page.size());
        page.push_back(Order{std::string(row.text(0)),
                             status,
                             row.isNull(2) ? std::nullopt : std::optional<std::string>(row.text(2)),
                             {},
                             {},
                             {}});
      }
      if (page.empty()) return {};
      ALLOT_TRY(lines, lease->query(kLinesSql, {std::string_view(dept_no),
                                                std::string_view(page.front().order_no),
                                                std::string_view(page.back().order_no)}));
      for (const auto& row : lines) {
        auto found = index.find(std::string(row.text(0)));
        if (found == index.end()) continue;  // an order outside this page's filter
        Order& order = page[found->second];
        const RecordKey key = mysql::recordKeyOf(dept_no, row, 1);
        ALLOT_TRY(qty, row.integer(6));
        ALLOT_TRY(allocated, row.integer(7));
        ALLOT_TRY(shortage, row.integer(8));
        ALLOT_TRY(state, lineState(row.text(9)));
        order.requested.push_back(LineRequest{key, qty});
        order.answered.push_back(LineOutcome{key, qty, allocated, shortage});
        order.lines.push_back({key, allocated, shortage, state});
      }
    }
    for (const auto& order : page) {
      // An order rolled back before it had an answer (while it was being allocated) is a
      // tombstone too; its lines' releases and tombstones are loaded all the same. Not while
      // a line of it is still held (its release never ran): a retry of the rollback must find
      // the lines to release them.
      const bool still_held =
          std::any_of(order.lines.begin(), order.lines.end(), [](const auto& line) {
            return line.state == redis::RedisStockStore::LoadedLine::State::kHeld;
          });
      const bool tombstone =
          order.requested.empty() ||
          (!order.digest && order.status == OrderStatus::kRolledBack && !still_held);
      ALLOT_TRY_VOID(store_.loadOrder(
          OrderRef{dept_no, order.order_no}, order.status,
          tombstone ? std::string() : encodeLineRequests(order.requested),
          order.digest.value_or(std::string()),
          tombstone ? std::string() : encodeLineOutcomes(order.answered), order.lines));
      metrics_.orders_loaded.fetch_add(1);
    }
    if (page.size() < kRouteSwitchPageRows) return {};
    after = page.back().order_no;
  }
}

}  // namespace allot::workers
