// The MySQL path. Every operation is one transaction run by Pool::withTransaction, which
// reruns it after a deadlock or a lock wait timeout; so each transaction body keeps all its
// state in locals and talks to the database only through the connection it is given.
//
// Concurrent calls for one order serialize on the orders row: preallocate and rollback take
// it with INSERT ... ON DUPLICATE KEY UPDATE (which waits for another transaction's
// uncommitted insert of the same key, unlike a locking read of a missing row under READ
// COMMITTED, which takes no lock at all), deduct with SELECT ... FOR UPDATE (it must not
// create the row). Stock rows are then locked in key order.
//
// Before any of that, every writing transaction passes the merchant's fence (migration 0009):
// a shared lock on its merchant_fences row, and on its merchant_routes row, which a route
// switch takes exclusively first. A transaction that began before a switch is waited for; one
// that begins after it finds the merchant switching, or on the other path, and answers 503.
#include "mysql/mysql_path.h"

#include <algorithm>
#include <numeric>
#include <optional>
#include <vector>

#include "core/assert.h"
#include "core/limits.h"
#include "mysql/record_params.h"

namespace allot::mysql {
namespace {

constexpr std::string_view kStockWhere =
    " WHERE dept_no = ? AND goods_no = ? AND warehouse_no = ? AND stock_status = ? AND "
    "stock_type = ? AND goods_level = ?";

const std::string kSelectStock =
    std::string("SELECT on_hand, preallocated, shortage FROM stock") + std::string(kStockWhere);
const std::string kSelectStockForUpdate = kSelectStock + " FOR UPDATE";

// A no-op update on a duplicate, rather than INSERT IGNORE, because IGNORE also turns real
// data errors into warnings. Either way the row is locked afterwards.
constexpr std::string_view kEnsureStock =
    "INSERT INTO stock (dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level)"
    " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE dept_no = dept_no";

const std::string kHoldStock =
    std::string("UPDATE stock SET preallocated = preallocated + ?, shortage = shortage + ?") +
    std::string(kStockWhere);
const std::string kReleaseStock =
    std::string(
        "UPDATE stock SET on_hand = on_hand - ?, preallocated = preallocated - ?, "
        "shortage = shortage - ?") +
    std::string(kStockWhere);
const std::string kSetOnHand =
    std::string("UPDATE stock SET on_hand = ?") + std::string(kStockWhere);

// Affected rows: 1 when the row was inserted, 0 when it existed (left as it was, but locked).
constexpr std::string_view kInsertOrder =
    "INSERT INTO orders (dept_no, order_no, status, lines_digest) VALUES (?, ?, ?, ?) "
    "ON DUPLICATE KEY UPDATE order_no = order_no";
constexpr std::string_view kSelectOrder =
    "SELECT status, lines_digest FROM orders WHERE dept_no = ? AND order_no = ?";
constexpr std::string_view kSelectOrderForUpdate =
    "SELECT status, lines_digest FROM orders WHERE dept_no = ? AND order_no = ? FOR UPDATE";
constexpr std::string_view kSetOrderStatus =
    "UPDATE orders SET status = ? WHERE dept_no = ? AND order_no = ?";

constexpr std::string_view kInsertLine =
    "INSERT INTO order_lines (dept_no, goods_no, warehouse_no, stock_status, stock_type, "
    "goods_level, order_no, line_no, qty, allocated, shortage, state) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'held')";
constexpr std::string_view kSelectLines =
    "SELECT goods_no, warehouse_no, stock_status, stock_type, goods_level, qty, allocated, "
    "shortage FROM order_lines WHERE dept_no = ? AND order_no = ? ORDER BY line_no, goods_no, "
    "warehouse_no, stock_status, stock_type, goods_level";
// In primary key order of stock (dept_no is fixed), so releases lock stock rows in key order.
constexpr std::string_view kSelectHeldLines =
    "SELECT goods_no, warehouse_no, stock_status, stock_type, goods_level, qty, allocated, "
    "shortage FROM order_lines WHERE dept_no = ? AND order_no = ? AND state = 'held' "
    "ORDER BY goods_no, warehouse_no, stock_status, stock_type, goods_level";
// The order's pending_orders row (the write-back dates it by the order's latest hold) when
// it is younger than the given milliseconds.
constexpr std::string_view kYoungPendingOrder =
    "SELECT 1 FROM pending_orders WHERE dept_no = ? AND order_no = ? AND seen_at > "
    "CURRENT_TIMESTAMP(6) - INTERVAL ? * 1000 MICROSECOND";
constexpr std::string_view kEndHeldLines =
    "UPDATE order_lines SET state = ? WHERE dept_no = ? AND order_no = ? AND state = 'held'";

constexpr std::string_view kInsertAdjustment =
    "INSERT INTO stock_adjustments (dept_no, ref, goods_no, warehouse_no, stock_status,"
    " stock_type, goods_level, body_digest, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')"
    " ON DUPLICATE KEY UPDATE ref = ref";
constexpr std::string_view kSelectAdjustmentForUpdate =
    "SELECT goods_no, warehouse_no, stock_status, stock_type, goods_level, body_digest, state,"
    " answer_on_hand, answer_preallocated, answer_shortage FROM stock_adjustments"
    " WHERE dept_no = ? AND ref = ? FOR UPDATE";
constexpr std::string_view kAdoptAdjustment =
    "UPDATE stock_adjustments SET body_digest = ? WHERE dept_no = ? AND ref = ? AND "
    "body_digest IS NULL";
constexpr std::string_view kDropPendingAdjustment =
    "DELETE FROM stock_adjustments WHERE dept_no = ? AND ref = ? AND state = 'pending'";
constexpr std::string_view kCompleteAdjustment =
    "UPDATE stock_adjustments SET state = 'complete', delta = ?, answer_on_hand = ?, "
    "answer_preallocated = ?, answer_shortage = ? WHERE dept_no = ? AND ref = ?";

// `leading` values, then the six key fields (the order of kStockWhere and of the INSERTs).
std::vector<Param> withKey(std::initializer_list<Param> leading, const RecordKey& key) {
  std::vector<Param> params(leading);
  for (const std::string* field : {&key.dept_no, &key.goods_no, &key.warehouse_no,
                                   &key.stock_status, &key.stock_type, &key.goods_level}) {
    params.emplace_back(std::string_view(*field));
  }
  return params;
}

std::optional<OrderStatus> statusFromName(std::string_view name) {
  for (const auto status : {OrderStatus::kAllocated, OrderStatus::kShortage,
                            OrderStatus::kRolledBack, OrderStatus::kDeducted}) {
    if (orderStatusName(status) == name) return status;
  }
  return std::nullopt;
}

Error unknownOrder(const OrderRef& order) {
  return Error{ErrorCode::kNotFound, "order " + order.order_no + " is unknown"};
}

// ---- the fence ----

// The merchant's fence row and route, read under a shared lock (the route row is locked too
// when there is one). No row: the merchant has never had a call on this path.
constexpr std::string_view kSelectFence =
    "SELECT r.route, r.switching FROM merchant_fences f LEFT JOIN merchant_routes r ON "
    "r.dept_no = f.dept_no WHERE f.dept_no = ? LOCK IN SHARE MODE";
// Only when the row is missing: on a row that exists it would take it exclusively, and the
// MySQL path's calls of the merchant would queue on each other.
constexpr std::string_view kInsertFence =
    "INSERT INTO merchant_fences (dept_no) VALUES (?) ON DUPLICATE KEY UPDATE dept_no = dept_no";

// Passes the merchant's fence: holds the shared lock until the transaction ends, and fails
// with 503 unless the merchant is on the MySQL path and not being switched.
Result<void> passFence(Connection& connection, const std::string& dept_no, Route default_route) {
  ALLOT_TRY(state, enterMerchantFence(connection, dept_no, default_route));
  switch (state) {
    case FenceState::kOnMysql: return {};
    case FenceState::kSwitching:
      return fail(ErrorCode::kUnavailable,
                  "merchant " + dept_no + " is moving between routes; retry");
    case FenceState::kOnRedis:
      return fail(ErrorCode::kUnavailable,
                  "merchant " + dept_no + " has moved to the Redis route; retry");
  }
  return fail(ErrorCode::kInternal, "unknown fence state");
}

// ---- stock rows ----

Result<std::optional<Quantities>> selectStock(Connection& connection, const RecordKey& key,
                                              bool for_update) {
  ALLOT_TRY(rows,
            connection.query(for_update ? kSelectStockForUpdate : kSelectStock, withKey({}, key)));
  if (rows.empty()) return std::optional<Quantities>{};
  ALLOT_TRY(on_hand, rows[0].integer(0));
  ALLOT_TRY(preallocated, rows[0].integer(1));
  ALLOT_TRY(shortage, rows[0].integer(2));
  return std::optional<Quantities>{Quantities{on_hand, preallocated, shortage}};
}

// Runs a statement that must change exactly one stock row; anything else means a stored
// invariant is broken (a held line without its stock row), which is reported, not hidden.
Result<void> changeOneStockRow(Connection& connection, std::string_view sql,
                               const std::vector<Param>& params, const RecordKey& key) {
  ALLOT_TRY(changed, connection.execute(sql, params));
  if (changed != 1) {
    return fail(ErrorCode::kInternal, "stock row of " + key.index() + " is missing");
  }
  return {};
}

// ---- orders rows ----

struct OrderRow {
  OrderStatus status = OrderStatus::kAllocated;
  std::optional<std::string> digest;  // NULL for a tombstone
};

Result<std::optional<OrderRow>> selectOrder(Connection& connection, const OrderRef& order,
                                            bool for_update) {
  ALLOT_TRY(rows, connection.query(for_update ? kSelectOrderForUpdate : kSelectOrder,
                                   {order.dept_no, order.order_no}));
  if (rows.empty()) return std::optional<OrderRow>{};
  const auto status = statusFromName(rows[0].text(0));
  if (!status) {
    return fail(ErrorCode::kInternal, "order " + order.order_no + " has an unknown status '" +
                                          std::string(rows[0].text(0)) + "'");
  }
  OrderRow row{*status, std::nullopt};
  if (!rows[0].isNull(1)) row.digest = std::string(rows[0].text(1));
  return std::optional<OrderRow>{std::move(row)};
}

// Inserts the orders row unless it exists; either way this transaction holds its lock after.
// True when it was inserted now.
Result<bool> insertOrderIfAbsent(Connection& connection, const OrderRef& order, OrderStatus status,
                                 Param digest) {
  const std::vector<Param> params{std::string_view(order.dept_no), std::string_view(order.order_no),
                                  orderStatusName(status), digest};
  ALLOT_TRY(inserted, connection.execute(kInsertOrder, params));
  return inserted == 1;
}

Result<std::vector<LineOutcome>> decodeLineRows(const std::string& dept_no, const Rows& rows) {
  std::vector<LineOutcome> lines;
  lines.reserve(rows.size());
  for (const Row& row : rows) {
    LineOutcome line;
    line.key = recordKeyOf(dept_no, row, 0);
    ALLOT_TRY(qty, row.integer(5));
    ALLOT_TRY(allocated, row.integer(6));
    ALLOT_TRY(shortage, row.integer(7));
    line.qty = qty;
    line.allocated = allocated;
    line.shortage = shortage;
    lines.push_back(std::move(line));
  }
  return lines;
}

Result<std::vector<LineOutcome>> selectLines(Connection& connection, const OrderRef& order,
                                             std::string_view sql) {
  ALLOT_TRY(rows, connection.query(sql, {order.dept_no, order.order_no}));
  return decodeLineRows(order.dept_no, rows);
}

OrderStatus firstAnswerStatus(const std::vector<LineOutcome>& lines) {
  const bool any_shortage =
      std::any_of(lines.begin(), lines.end(), [](const auto& line) { return line.shortage > 0; });
  return any_shortage ? OrderStatus::kShortage : OrderStatus::kAllocated;
}

// ---- preallocate ----

// The answer to a preallocation whose order_no is already in the table.
Result<PreallocateOutcome> answerExisting(Connection& connection, const PreallocateRequest& request,
                                          const std::string& digest) {
  const OrderRef order{request.dept_no, request.order_no};
  ALLOT_TRY(stored, selectOrder(connection, order, /*for_update=*/false));
  if (!stored) {
    // The row was locked by this transaction's INSERT a moment ago; it cannot vanish.
    return fail(ErrorCode::kInternal, "order " + request.order_no + " vanished while locked");
  }
  if (stored->status == OrderStatus::kRolledBack) {
    return std::unexpected(orderRolledBack(request.order_no));
  }
  if (stored->digest != digest) return std::unexpected(orderConflict(request.order_no));
  ALLOT_TRY(lines, selectLines(connection, order, kSelectLines));
  // A deducted order replays its first answer, which was allocated or shortage.
  const OrderStatus status =
      stored->status == OrderStatus::kDeducted ? firstAnswerStatus(lines) : stored->status;
  return OrderAnswer{request.order_no, status, true, std::move(lines)};
}

struct Holding {
  std::vector<LineOutcome> outcomes;   // request order
  std::vector<ShortLine> short_lines;  // request order; non-empty means refused
};

// Request indices sorted by record key: the lock order. A record twice in one order is
// refused (the edge validates this too; the order_lines key would refuse it anyway).
Result<std::vector<std::size_t>> lockOrder(const PreallocateRequest& request) {
  std::vector<std::size_t> order(request.lines.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return request.lines[a].key < request.lines[b].key;
  });
  for (std::size_t i = 1; i < order.size(); ++i) {
    if (request.lines[order[i - 1]].key == request.lines[order[i]].key) {
      return fail(ErrorCode::kInvalidRequest, "record " + request.lines[order[i]].key.index() +
                                                  " appears twice in order " + request.order_no);
    }
  }
  return order;
}

// Locks every line's stock row in key order and decides what each line takes. Writes
// nothing but, with allow_shortage, the zero row of an unknown record (which must exist to
// carry the shortage).
Result<Holding> decideLines(Connection& connection, const PreallocateRequest& request,
                            const std::vector<std::size_t>& locking) {
  Holding holding;
  holding.outcomes.resize(request.lines.size());
  std::vector<std::optional<ShortLine>> short_lines(request.lines.size());
  for (const std::size_t index : locking) {
    const LineRequest& line = request.lines[index];
    if (request.allow_shortage)
      ALLOT_TRY_VOID(connection.execute(kEnsureStock, withKey({}, line.key)));
    ALLOT_TRY(stored, selectStock(connection, line.key, /*for_update=*/true));
    // An unknown record has nothing available.
    const std::int64_t available = stored ? stored->available() : 0;
    ALLOT_ASSERT(available >= 0);
    if (line.qty > available && !request.allow_shortage) {
      short_lines[index] = ShortLine{line.key, line.qty, available};
      continue;
    }
    const std::int64_t allocated = std::min(line.qty, available);
    holding.outcomes[index] = LineOutcome{line.key, line.qty, allocated, line.qty - allocated};
  }
  for (auto& short_line : short_lines) {
    if (short_line) holding.short_lines.push_back(std::move(*short_line));
  }
  return holding;
}

// Applies the decided holds to the locked stock rows and records the order's lines.
Result<void> writeHolds(Connection& connection, const PreallocateRequest& request,
                        const std::vector<LineOutcome>& outcomes) {
  for (std::size_t index = 0; index < outcomes.size(); ++index) {
    const LineOutcome& line = outcomes[index];
    ALLOT_TRY_VOID(changeOneStockRow(connection, kHoldStock,
                                     withKey({line.allocated, line.shortage}, line.key), line.key));
    std::vector<Param> params = withKey({}, line.key);
    params.insert(params.end(),
                  {std::string_view(request.order_no), static_cast<std::int64_t>(index), line.qty,
                   line.allocated, line.shortage});
    ALLOT_TRY_VOID(connection.execute(kInsertLine, params));
  }
  return {};
}

// One attempt of the preallocation transaction. A refusal is returned through `refusal`
// together with an error, so that the pool rolls back the orders row inserted first.
Result<PreallocateOutcome> preallocateOnce(Connection& connection,
                                           const PreallocateRequest& request,
                                           const std::string& digest,
                                           std::optional<PreallocateRefusal>& refusal) {
  refusal.reset();
  const OrderRef order{request.dept_no, request.order_no};
  ALLOT_TRY(locking, lockOrder(request));
  ALLOT_TRY(inserted, insertOrderIfAbsent(connection, order, OrderStatus::kAllocated,
                                          std::string_view(digest)));
  if (!inserted) return answerExisting(connection, request, digest);
  ALLOT_TRY(holding, decideLines(connection, request, locking));
  if (!holding.short_lines.empty()) {
    refusal = PreallocateRefusal{std::move(holding.short_lines)};
    return fail(ErrorCode::kInsufficientStock, "order " + request.order_no + " is refused");
  }
  ALLOT_TRY_VOID(writeHolds(connection, request, holding.outcomes));
  const OrderStatus status = firstAnswerStatus(holding.outcomes);
  if (status != OrderStatus::kAllocated) {
    ALLOT_TRY_VOID(connection.execute(kSetOrderStatus,
                                      {orderStatusName(status), order.dept_no, order.order_no}));
  }
  return OrderAnswer{request.order_no, status, false, std::move(holding.outcomes)};
}

// ---- rollback and deduct ----

// Releases every held line of an order (locked by the caller): the one step rollback and
// deduct share. A deduct also takes the held quantity out of on_hand.
Result<void> releaseHeldLines(Connection& connection, const OrderRef& order, OrderStatus end) {
  ALLOT_ASSERT(end == OrderStatus::kRolledBack || end == OrderStatus::kDeducted);
  ALLOT_TRY_VOID(releaseHeldStock(connection, order, end == OrderStatus::kDeducted));
  const std::string_view line_state = end == OrderStatus::kDeducted ? "deducted" : "released";
  ALLOT_TRY_VOID(connection.execute(kEndHeldLines, {line_state, order.dept_no, order.order_no}));
  ALLOT_TRY_VOID(
      connection.execute(kSetOrderStatus, {orderStatusName(end), order.dept_no, order.order_no}));
  return {};
}

// An order without an answer can still hold lines: a call on the Redis path that never
// answered (a straggler of a route switch) whose holds the write-back wrote. When that call is
// dead, its lines are given back by the rollback that ends the order, here and now: the undo
// task of the order may never run on this path (the merchant can be switched back to Redis
// first, which would load them as the holds of a rolled-back order, for good). The call is
// dead once its holds are older than a claim's lease (plus the pending-order scan's margin for
// clock skew): a younger one may still commit in Redis, and its lines are left to its undo.
Result<void> releaseLinesOfADeadCall(Connection& connection, const OrderRef& order) {
  ALLOT_TRY(young, connection.query(kYoungPendingOrder,
                                    {order.dept_no, order.order_no, limits::kDeadCallAgeMs}));
  if (!young.empty()) return {};
  return releaseHeldLines(connection, order, OrderStatus::kRolledBack);
}

Result<EndAnswer> rollbackOnce(Connection& connection, const OrderRef& order) {
  // An unknown order gets a tombstone, so a late preallocation of it is refused.
  ALLOT_TRY(inserted, insertOrderIfAbsent(connection, order, OrderStatus::kRolledBack, nullptr));
  if (inserted) {
    ALLOT_TRY_VOID(releaseLinesOfADeadCall(connection, order));
    return EndAnswer{order.order_no, OrderStatus::kRolledBack, false};
  }
  ALLOT_TRY(stored, selectOrder(connection, order, /*for_update=*/false));
  if (!stored)
    return fail(ErrorCode::kInternal, "order " + order.order_no + " vanished while locked");
  switch (stored->status) {
    case OrderStatus::kRolledBack:
      // A tombstone (no answer) may have got such lines after it was written.
      if (!stored->digest) ALLOT_TRY_VOID(releaseLinesOfADeadCall(connection, order));
      return EndAnswer{order.order_no, OrderStatus::kRolledBack, true};
    case OrderStatus::kDeducted:
      return fail(ErrorCode::kOrderDeducted, "order " + order.order_no + " was deducted");
    case OrderStatus::kAllocated:
    case OrderStatus::kShortage:
    case OrderStatus::kPending: break;
  }
  ALLOT_TRY_VOID(releaseHeldLines(connection, order, OrderStatus::kRolledBack));
  return EndAnswer{order.order_no, OrderStatus::kRolledBack, false};
}

Result<EndAnswer> deductOnce(Connection& connection, const OrderRef& order) {
  // A locking read, not an insert: a deduct of an unknown order must leave nothing behind.
  // It still waits for a preallocation of the same order that has not committed yet.
  ALLOT_TRY(stored, selectOrder(connection, order, /*for_update=*/true));
  if (!stored) return std::unexpected(unknownOrder(order));
  switch (stored->status) {
    case OrderStatus::kDeducted: return EndAnswer{order.order_no, OrderStatus::kDeducted, true};
    case OrderStatus::kRolledBack: return std::unexpected(orderRolledBack(order.order_no));
    case OrderStatus::kAllocated:
    case OrderStatus::kShortage:
    case OrderStatus::kPending: break;
  }
  ALLOT_TRY_VOID(releaseHeldLines(connection, order, OrderStatus::kDeducted));
  return EndAnswer{order.order_no, OrderStatus::kDeducted, false};
}

// ---- adjust ----

struct AdjustClaim {
  enum class Kind { kApply, kAlreadyApplied, kReplay };
  Kind kind = Kind::kApply;
  Quantities answer;  // kReplay
};

// Claims the ref (its row is locked afterwards) with the protocol of MysqlLedger: a ref used
// with another record or body is a conflict, a complete one replays its answer.
Result<AdjustClaim> claimRef(Connection& connection, const AdjustRequest& request,
                             const std::string& digest) {
  const RecordKey& key = request.key;
  const std::vector<Param> insert{
      std::string_view(key.dept_no),      std::string_view(request.ref),
      std::string_view(key.goods_no),     std::string_view(key.warehouse_no),
      std::string_view(key.stock_status), std::string_view(key.stock_type),
      std::string_view(key.goods_level),  std::string_view(digest)};
  ALLOT_TRY(inserted, connection.execute(kInsertAdjustment, insert));
  if (inserted == 1) return AdjustClaim{};
  ALLOT_TRY(rows, connection.query(kSelectAdjustmentForUpdate, {key.dept_no, request.ref}));
  if (rows.empty()) return fail(ErrorCode::kInternal, "adjust ref " + request.ref + " vanished");
  const Row& row = rows[0];
  const RecordKey stored_key{key.dept_no,
                             std::string(row.text(0)),
                             std::string(row.text(1)),
                             std::string(row.text(2)),
                             std::string(row.text(3)),
                             std::string(row.text(4))};
  const auto conflict = [&] {
    return fail(ErrorCode::kIdempotencyConflict,
                "ref " + request.ref + " was already used with another body");
  };
  if (stored_key != key) return conflict();
  if (row.isNull(5)) {
    // Applied by the write-back without a body: the first claim for this record adopts it.
    ALLOT_TRY_VOID(connection.execute(kAdoptAdjustment, {digest, key.dept_no, request.ref}));
  } else if (row.text(5) != digest) {
    return conflict();
  }
  const std::string_view state = row.text(6);
  if (state == "complete") {
    ALLOT_TRY(on_hand, row.integer(7));
    ALLOT_TRY(preallocated, row.integer(8));
    ALLOT_TRY(shortage, row.integer(9));
    return AdjustClaim{AdjustClaim::Kind::kReplay, Quantities{on_hand, preallocated, shortage}};
  }
  return AdjustClaim{
      state == "applied" ? AdjustClaim::Kind::kAlreadyApplied : AdjustClaim::Kind::kApply, {}};
}

// Locks the stock row, creating it (at zero) when the change may create a record.
Result<std::optional<Quantities>> lockStockForAdjust(Connection& connection,
                                                     const AdjustRequest& request) {
  ALLOT_TRY(stored, selectStock(connection, request.key, /*for_update=*/true));
  if (stored) return stored;
  // A count or a delta >= 0 creates the record; a decrease of an unknown one creates nothing
  // (nothing is there to decrease).
  const bool creates = !request.delta || *request.delta >= 0;
  if (!creates) return stored;
  // Insert then lock: two creators of one record must not both compute from "no row".
  ALLOT_TRY_VOID(connection.execute(kEnsureStock, withKey({}, request.key)));
  return selectStock(connection, request.key, /*for_update=*/true);
}

Result<Quantities> adjustOnce(Connection& connection, const AdjustRequest& request,
                              const std::string& digest) {
  const RecordKey& key = request.key;
  ALLOT_TRY(claim, claimRef(connection, request, digest));
  if (claim.kind == AdjustClaim::Kind::kReplay) return claim.answer;
  ALLOT_TRY(stored, lockStockForAdjust(connection, request));
  if (!stored)
    return fail(ErrorCode::kInsufficientStock, "record " + key.index() + " has no stock");
  Quantities after = *stored;
  std::int64_t delta = 0;
  if (claim.kind == AdjustClaim::Kind::kApply) {
    delta = request.delta ? *request.delta : *request.on_hand - stored->on_hand;
    after.on_hand = stored->on_hand + delta;
    if (after.on_hand > limits::kOnHandMax) {
      return fail(ErrorCode::kInvalidRequest, "on_hand of " + key.index() + " would exceed " +
                                                  std::to_string(limits::kOnHandMax));
    }
    if (after.available() < 0) {
      return fail(ErrorCode::kInsufficientStock,
                  "record " + key.index() + " has " + std::to_string(stored->available()) +
                      " available; the change would make available negative");
    }
    // An unchanged value updates no row, which changeOneStockRow would take for a lost row.
    if (delta != 0) {
      ALLOT_TRY_VOID(changeOneStockRow(connection, kSetOnHand, withKey({after.on_hand}, key), key));
    }
  }
  ALLOT_ASSERT(after.valid());
  ALLOT_TRY_VOID(connection.execute(
      kCompleteAdjustment,
      {delta, after.on_hand, after.preallocated, after.shortage, key.dept_no, request.ref}));
  return after;
}

}  // namespace

Result<FenceState> enterMerchantFence(Connection& connection, const std::string& dept_no,
                                      Route default_route) {
  ALLOT_TRY(rows, connection.query(kSelectFence, {std::string_view(dept_no)}));
  if (rows.empty()) {
    ALLOT_TRY_VOID(connection.execute(kInsertFence, {std::string_view(dept_no)}));
    ALLOT_TRY(locked, connection.query(kSelectFence, {std::string_view(dept_no)}));
    rows = std::move(locked);
    if (rows.empty()) return fail(ErrorCode::kInternal, "the fence of " + dept_no + " vanished");
  }
  if (rows[0].isNull(0)) {
    return default_route == Route::kMysql ? FenceState::kOnMysql : FenceState::kOnRedis;
  }
  ALLOT_TRY(switching, rows[0].integer(1));
  if (switching != 0) return FenceState::kSwitching;
  return rows[0].text(0) == routeName(Route::kMysql) ? FenceState::kOnMysql : FenceState::kOnRedis;
}

Result<void> releaseHeldStock(Connection& connection, const OrderRef& order, bool ship) {
  ALLOT_TRY(held, selectLines(connection, order, kSelectHeldLines));
  for (const LineOutcome& line : held) {
    if (line.allocated == 0 && line.shortage == 0) continue;  // nothing to give back
    const std::int64_t shipped = ship ? line.allocated : 0;
    ALLOT_TRY_VOID(changeOneStockRow(connection, kReleaseStock,
                                     withKey({shipped, line.allocated, line.shortage}, line.key),
                                     line.key));
  }
  return {};
}

Result<PreallocateOutcome> MysqlPath::preallocate(const PreallocateRequest& request) {
  ALLOT_ASSERT(!request.lines.empty() && request.lines.size() <= limits::kOrderLinesMax);
  const std::string digest = linesDigest(request.lines);
  std::optional<PreallocateRefusal> refusal;
  auto outcome = pool_.withTransaction([&](Connection& connection) -> Result<PreallocateOutcome> {
    ALLOT_TRY_VOID(passFence(connection, request.dept_no, default_route_));
    return preallocateOnce(connection, request, digest, refusal);
  });
  if (!outcome && refusal) return PreallocateOutcome{std::move(*refusal)};
  return outcome;
}

Result<EndAnswer> MysqlPath::rollback(const OrderRef& order) {
  return pool_.withTransaction([&](Connection& connection) -> Result<EndAnswer> {
    ALLOT_TRY_VOID(passFence(connection, order.dept_no, default_route_));
    return rollbackOnce(connection, order);
  });
}

Result<EndAnswer> MysqlPath::deduct(const OrderRef& order) {
  return pool_.withTransaction([&](Connection& connection) -> Result<EndAnswer> {
    ALLOT_TRY_VOID(passFence(connection, order.dept_no, default_route_));
    return deductOnce(connection, order);
  });
}

Result<OrderAnswer> MysqlPath::findOrder(const OrderRef& order) {
  // One transaction, so the status and the lines are read from the same committed state
  // even under READ COMMITTED: the order row's shared lock keeps an end from landing between.
  return pool_.withTransaction([&](Connection& connection) -> Result<OrderAnswer> {
    ALLOT_TRY(rows, connection.query(std::string(kSelectOrder) + " LOCK IN SHARE MODE",
                                     {order.dept_no, order.order_no}));
    if (rows.empty()) return std::unexpected(unknownOrder(order));
    const auto status = statusFromName(rows[0].text(0));
    if (!status) return fail(ErrorCode::kInternal, "order " + order.order_no + " has a bad status");
    // A rolled-back order without lines_digest never had an answer (a tombstone, or an order
    // rolled back while it was being allocated, whose lines the write-back recorded from its
    // holds and releases): it has no answer lines, as Redis shows it.
    if (*status == OrderStatus::kRolledBack && rows[0].isNull(1)) {
      return OrderAnswer{order.order_no, *status, false, {}};
    }
    ALLOT_TRY(lines, selectLines(connection, order, kSelectLines));
    return OrderAnswer{order.order_no, *status, false, std::move(lines)};
  });
}

Result<Quantities> MysqlPath::adjust(const AdjustRequest& request, const std::string& digest) {
  ALLOT_ASSERT(request.delta.has_value() != request.on_hand.has_value());
  auto answer = pool_.withTransaction([&](Connection& connection) -> Result<Quantities> {
    ALLOT_TRY_VOID(passFence(connection, request.key.dept_no, default_route_));
    return adjustOnce(connection, request, digest);
  });
  const bool refused = !answer && (answer.error().code == ErrorCode::kInsufficientStock ||
                                   answer.error().code == ErrorCode::kInvalidRequest);
  if (refused) {
    // The rollback removed a claim this call made; a pending claim left by an earlier call
    // that never finished is dropped too, as the Redis path does, so that a refused change
    // never keeps the ref. Best effort: a leftover claim only makes the ref resume later.
    if (auto lease = pool_.acquire()) {
      static_cast<void>(
          (*lease)->execute(kDropPendingAdjustment, {request.key.dept_no, request.ref}));
    }
  }
  return answer;
}

Result<Quantities> MysqlPath::readRecord(const RecordKey& key) {
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY(stored, selectStock(*lease, key, /*for_update=*/false));
  if (!stored) return fail(ErrorCode::kNotFound, "record " + key.index() + " was never seen");
  return *stored;
}

Result<void> MysqlPath::checkReady() {
  auto checked = [&]() -> Result<void> {
    ALLOT_TRY(lease, pool_.acquire());
    ALLOT_TRY(rows, lease->query("SELECT 1"));
    if (rows.size() != 1 || rows[0].text(0) != "1") {
      return fail(ErrorCode::kInternal, "mysql answered SELECT 1 with something else");
    }
    return {};
  }();
  if (!checked) return fail(ErrorCode::kUnavailable, "database: " + checked.error().message);
  return {};
}

}  // namespace allot::mysql
