#include "workers/route_switch.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "domain/order.h"
#include "mysql/record_params.h"
#include "redis/keys.h"
#include "workers/write_back.h"

namespace allot::workers {

namespace {

static_assert(kRouteSwitchPageRows == 500, "the page SQL below says LIMIT 500");

constexpr std::string_view kStockPageSql =
    "SELECT goods_no, warehouse_no, stock_status, stock_type, goods_level, on_hand, "
    "preallocated, shortage FROM stock WHERE dept_no = ? AND (goods_no, warehouse_no, "
    "stock_status, stock_type, goods_level) > (?, ?, ?, ?, ?) ORDER BY goods_no, warehouse_no, "
    "stock_status, stock_type, goods_level LIMIT 500";
// Live orders, and ended ones young enough that Redis would still remember them.
constexpr std::string_view kOrderPageSql =
    "SELECT order_no, status, lines_digest FROM orders WHERE dept_no = ? AND order_no > ? AND "
    "(status IN ('allocated', 'shortage') OR updated_at > NOW(6) - INTERVAL ? SECOND) "
    "ORDER BY order_no LIMIT 500";
constexpr std::string_view kLinesSql =
    "SELECT order_no, goods_no, warehouse_no, stock_status, stock_type, goods_level, qty, "
    "allocated, shortage, state FROM order_lines WHERE dept_no = ? AND order_no >= ? AND "
    "order_no <= ? ORDER BY order_no, line_no";
constexpr std::string_view kPendingCompensationsSql =
    "SELECT COUNT(*) FROM compensation_tasks WHERE dept_no = ? AND state = 'pending'";
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
        RecordRow record{
            RecordKey{dept_no, std::string(row.text(0)), std::string(row.text(1)),
                      std::string(row.text(2)), std::string(row.text(3)), std::string(row.text(4))},
            {}};
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
                         WriteBack& write_back, std::function<Result<void>()> run_compensation,
                         RouteSwitchOptions options)
    : store_(store),
      pool_(pool),
      table_(table),
      write_back_(write_back),
      run_compensation_(std::move(run_compensation)),
      options_(options) {}

Result<void> RouteSwitch::move(const std::string& dept_no, Route from, Route to) {
  spdlog::info("route switch of {}: {} -> {}", dept_no, routeName(from), routeName(to));
  auto moved = [&]() -> Result<void> {
    ALLOT_TRY_VOID(table_.saveRoute(dept_no, StoredRoute{from, /*switching=*/true}));
    std::this_thread::sleep_for(options_.settle);
    ALLOT_TRY_VOID(to == Route::kMysql ? toMysql(dept_no) : toRedis(dept_no));
    return table_.saveRoute(dept_no, StoredRoute{to, /*switching=*/false});
  }();
  if (!moved) {
    metrics_.failures.fetch_add(1);
    spdlog::error("route switch of {} to {} failed: {}", dept_no, routeName(to),
                  moved.error().message);
    return moved;
  }
  metrics_.switches.fetch_add(1);
  spdlog::info("route switch of {} to {} done", dept_no, routeName(to));
  return {};
}

Result<std::int64_t> RouteSwitch::pendingCompensations(const std::string& dept_no) {
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY(rows, lease->query(kPendingCompensationsSql, {std::string_view(dept_no)}));
  if (rows.empty()) return std::int64_t{0};
  return rows[0].integer(0);
}

Result<void> RouteSwitch::toMysql(const std::string& dept_no) {
  // Compensation tasks release holds in Redis: they must run while the records are there.
  ALLOT_TRY(pending, pendingCompensations(dept_no));
  if (pending > 0 && run_compensation_) {
    ALLOT_TRY_VOID(run_compensation_());
    ALLOT_TRY(left, pendingCompensations(dept_no));
    pending = left;
  }
  if (pending > 0) {
    return fail(ErrorCode::kUnavailable, std::to_string(pending) +
                                             " compensation tasks of the merchant are still "
                                             "pending (they need Redis)");
  }
  std::vector<RecordRow> evicted;
  // The streams the merchant's events can be in: its records' slots and its orders' slots.
  std::set<std::string> streams;
  ALLOT_TRY_VOID(forEachRecord(pool_, dept_no, [&](const RecordRow& record) -> Result<void> {
    ALLOT_TRY(counters, store_.evictRecord(record.key));
    metrics_.records_evicted.fetch_add(1);
    streams.insert(redis::keys::outboxFor(redis::keys::usable(record.key)));
    if (counters) evicted.push_back(RecordRow{record.key, *counters});
    return {};
  }));
  // Every order of the merchant is in one of its buckets' slots: no SCAN of the keyspace.
  for (unsigned bucket = 0; bucket < redis::keys::kOrderBuckets; ++bucket) {
    streams.insert(redis::keys::outboxFor(redis::keys::orderBucketAt(dept_no, bucket)));
  }
  if (!write_back_.drainAppendedBefore(streams,
                                       std::chrono::steady_clock::now() + options_.drain_timeout)) {
    return fail(ErrorCode::kUnavailable, "the write-back did not drain within " +
                                             std::to_string(options_.drain_timeout.count()) +
                                             " ms");
  }
  for (const auto& record : evicted) ALLOT_TRY_VOID(settle(record.key, record.quantities));
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

Result<void> RouteSwitch::toRedis(const std::string& dept_no) {
  // A copy left in Redis from before the merchant's stay on the MySQL path is stale.
  ALLOT_TRY_VOID(forEachRecord(pool_, dept_no, [&](const RecordRow& record) -> Result<void> {
    ALLOT_TRY_VOID(store_.evictRecord(record.key));
    return {};
  }));
  ALLOT_TRY_VOID(loadOrders(dept_no));
  return forEachRecord(pool_, dept_no, [&](const RecordRow& record) -> Result<void> {
    ALLOT_TRY_VOID(store_.reloadRecord(record.key, record.quantities));
    metrics_.records_loaded.fetch_add(1);
    return {};
  });
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
        const RecordKey key{dept_no,
                            std::string(row.text(1)),
                            std::string(row.text(2)),
                            std::string(row.text(3)),
                            std::string(row.text(4)),
                            std::string(row.text(5))};
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
