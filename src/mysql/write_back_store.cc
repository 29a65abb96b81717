// The write-back's transaction. Lock order inside it: the outbox_positions row first (so two
// write-backs of one stream serialise and the second skips what the first applied), then per
// event the stock_adjustments row (adjust), the stock row, and order rows.
//
// Why an event can fail for good, and why that is rare: the events of one record are applied
// in stream order, so preallocated and shortage in the database always equal a past value of
// Redis's counters (never negative), and on_hand is at least Redis's on_hand at that point
// (increases reach the database before Redis, decreases after). The CHECK can only trip when
// the two stores were changed outside this design (a Redis failover that lost writes, a
// manual edit of a stock row): such an event is dead-lettered, never retried forever.
#include "mysql/write_back_store.h"

#include <mysqld_error.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <span>
#include <vector>

#include "core/decimal.h"
#include "domain/order.h"
#include "domain/record_key.h"
#include "mysql/mysql_ledger.h"
#include "mysql/record_params.h"

namespace allot::mysql {
namespace {

constexpr std::string_view kFirstId = "0-0";
constexpr std::size_t kReasonLengthMax = 512;

// An outbox event whose fields were checked; which fields matter depends on the kind.
struct Event {
  std::string kind;  // hold | undo | rollback | deduct | adjust | order
  RecordKey key;     // record events and adjust
  std::string dept_no;
  std::string order_no;
  std::int64_t allocated = 0;
  std::int64_t shortage = 0;
  std::string ref;
  std::int64_t delta = 0;
  std::string status;  // order: P A S R D; hold: empty, or A | S for a fused order
  std::string answer;  // order: encoded LineOutcomes

  // A hold with st is a whole single-line order, claimed, held and committed in one step: it
  // stands for the order event that would have said st, too.
  [[nodiscard]] bool fused() const { return kind == "hold" && !status.empty(); }
};

// A failure that retrying the same event can never cure: the event is dead-lettered.
struct Permanent {
  std::string reason;
};

Result<std::int64_t> parseInteger(std::string_view text, std::string_view field) {
  if (const auto value = readDecimal<std::int64_t>(text)) return *value;
  return fail(ErrorCode::kInvalidRequest, "field " + std::string(field) + " is not an integer");
}

Result<Event> decodeEvent(const OutboxEvent& raw) {
  Event event;
  std::string record, allocated, shortage, delta;
  for (const auto& [name, value] : raw.fields) {
    if (name == "e")
      event.kind = value;
    else if (name == "r")
      record = value;
    else if (name == "d")
      event.dept_no = value;
    else if (name == "o")
      event.order_no = value;
    else if (name == "a")
      allocated = value;
    else if (name == "s")
      shortage = value;
    else if (name == "f")
      event.ref = value;
    else if (name == "q")
      delta = value;
    else if (name == "st")
      event.status = value;
    else if (name == "an")
      event.answer = value;
  }
  if (event.kind == "order") {
    if (event.dept_no.empty() || event.order_no.empty()) {
      return fail(ErrorCode::kInvalidRequest, "order event without d or o");
    }
    return event;
  }
  if (!RecordKey::parseIndex(record, event.key) || event.key.dept_no != event.dept_no) {
    return fail(ErrorCode::kInvalidRequest, "bad record index '" + record + "'");
  }
  if (event.kind == "adjust") {
    if (event.ref.empty()) return fail(ErrorCode::kInvalidRequest, "adjust event without f");
    ALLOT_TRY(q, parseInteger(delta, "q"));
    event.delta = q;
    return event;
  }
  if (event.kind != "hold" && event.kind != "undo" && event.kind != "rollback" &&
      event.kind != "deduct") {
    return fail(ErrorCode::kInvalidRequest, "unknown event kind '" + event.kind + "'");
  }
  if (event.order_no.empty()) return fail(ErrorCode::kInvalidRequest, "record event without o");
  ALLOT_TRY(a, parseInteger(allocated, "a"));
  ALLOT_TRY(s, parseInteger(shortage, "s"));
  if (a < 0 || s < 0) return fail(ErrorCode::kInvalidRequest, "negative a or s");
  event.allocated = a;
  event.shortage = s;
  if (!event.status.empty() && event.kind != "hold") {
    return fail(ErrorCode::kInvalidRequest, "st on a " + event.kind + " event");
  }
  if (event.fused() && event.status != "A" && event.status != "S") {
    return fail(ErrorCode::kInvalidRequest, "fused hold with st '" + event.status + "'");
  }
  return event;
}

// A `holds` entry (order_hold.lua: one entry per call) carries the fused holds of one call on
// one record (parseFusedHolds): it stands for those fused hold events, in that order, and is
// applied as they are. Every other entry is one event.
Result<std::vector<Event>> decodeEvents(const OutboxEvent& raw) {
  std::string_view kind, batch;
  for (const auto& [name, value] : raw.fields) {
    if (name == "e") kind = value;
    if (name == "b") batch = value;
  }
  if (kind != "holds") {
    ALLOT_TRY(event, decodeEvent(raw));
    return std::vector<Event>{std::move(event)};
  }
  if (batch.empty()) return fail(ErrorCode::kInvalidRequest, "holds event without b");
  ALLOT_TRY(holds, parseFusedHolds(batch));
  // The record fields are decoded once, as the first hold's; each hold then differs from it
  // only in what a fused hold of its own would say.
  OutboxEvent first{raw.id, {{"e", "hold"}}};
  for (const auto& [name, value] : raw.fields) {
    if (name == "r" || name == "d") first.fields.emplace_back(name, value);
  }
  first.fields.insert(first.fields.end(), {{"o", std::string(holds.front().order_no)},
                                           {"a", "0"},
                                           {"s", "0"},
                                           {"st", std::string(holds.front().status)}});
  ALLOT_TRY(base, decodeEvent(first));
  std::vector<Event> events;
  events.reserve(holds.size());
  for (const FusedHold& hold : holds) {
    if (hold.order_no.empty() || hold.allocated < 0 || hold.shortage < 0 ||
        (hold.status != "A" && hold.status != "S")) {
      return fail(ErrorCode::kInvalidRequest, "a holds item is not a fused hold");
    }
    Event& event = events.emplace_back(base);
    event.order_no = std::string(hold.order_no);
    event.allocated = hold.allocated;
    event.shortage = hold.shortage;
    event.status = std::string(hold.status);
  }
  return events;
}

constexpr std::string_view kKeyWhere =
    " WHERE dept_no = ? AND goods_no = ? AND warehouse_no = ? AND stock_status = ? AND "
    "stock_type = ? AND goods_level = ?";

// The stock change of a record event. A statement refused by the CHECK is rolled back alone
// by InnoDB (the transaction stays usable), so it can be dead-lettered in place.
Result<std::optional<Permanent>> changeStock(Connection& connection, const Event& event) {
  const std::int64_t a = event.allocated, s = event.shortage;
  Result<std::uint64_t> changed = std::uint64_t{1};
  if (event.kind == "hold") {
    changed = connection.execute(
        "INSERT INTO stock (dept_no, goods_no, warehouse_no, stock_status, stock_type, "
        "goods_level, preallocated, shortage) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY "
        "UPDATE preallocated = preallocated + VALUES(preallocated), "
        "shortage = shortage + VALUES(shortage)",
        keyParams(event.key, a, s));
  } else if (a != 0 || s != 0) {
    const std::int64_t on_hand_change = event.kind == "deduct" ? a : 0;
    const auto key = keyParams(event.key);
    const std::array<Param, 9> params{
        Param{a}, Param{on_hand_change}, Param{s}, key[0], key[1], key[2], key[3], key[4], key[5]};
    changed = connection.execute(
        std::string("UPDATE stock SET preallocated = preallocated - ?, on_hand = on_hand - ?, "
                    "shortage = shortage - ?") +
            std::string(kKeyWhere),
        params);
    if (changed && *changed == 0) return Permanent{"no stock row for " + event.key.index()};
  }
  if (changed) return std::optional<Permanent>{};
  if (connection.lastErrorNumber() == ER_CONSTRAINT_FAILED) {
    return Permanent{changed.error().message};
  }
  return std::unexpected(changed.error());
}

// An undone order line is deleted: undo only reverses a refused order, which Redis forgets.
Result<void> deleteOrderLine(Connection& connection, const Event& event) {
  const RecordKey& k = event.key;
  const std::array<Param, 7> params{
      Param{std::string_view(k.dept_no)},      Param{std::string_view(event.order_no)},
      Param{std::string_view(k.goods_no)},     Param{std::string_view(k.warehouse_no)},
      Param{std::string_view(k.stock_status)}, Param{std::string_view(k.stock_type)},
      Param{std::string_view(k.goods_level)}};
  ALLOT_TRY_VOID(connection.execute(
      "DELETE FROM order_lines WHERE dept_no = ? AND order_no = ? AND goods_no = ? AND "
      "warehouse_no = ? AND stock_status = ? AND stock_type = ? AND goods_level = ?",
      params));
  return {};
}

// The adjust's change, under a savepoint: applyAdjustmentIn may have written its
// stock_adjustments row before the ledger refuses the change, and a dead-lettered event must
// leave nothing behind.
Result<std::optional<Permanent>> applyAdjust(Connection& connection, const Event& event) {
  ALLOT_TRY_VOID(connection.executeText("SAVEPOINT allot_adjust"));
  const Result<void> done = applyAdjustmentIn(connection, event.key, event.ref, event.delta);
  if (done) return std::optional<Permanent>{};
  const bool permanent = done.error().code == ErrorCode::kInsufficientStock ||
                         done.error().code == ErrorCode::kIdempotencyConflict ||
                         connection.lastErrorNumber() == ER_CONSTRAINT_FAILED;
  if (!permanent) return std::unexpected(done.error());
  ALLOT_TRY_VOID(connection.executeText("ROLLBACK TO SAVEPOINT allot_adjust"));
  return Permanent{done.error().message};
}

std::string_view provisionalLineState(OrderStatus status) {
  if (status == OrderStatus::kRolledBack) return "released";
  if (status == OrderStatus::kDeducted) return "deducted";
  return "held";
}

// The order row and its lines (BatchSums below, alone for one event).
Result<std::optional<Permanent>> applyOrder(Connection& connection, const Event& event);
// A record event's order line, and a fused hold's order row (BatchSums, alone for one event).
Result<void> applyLine(Connection& connection, const Event& event);

// Applies one decoded event; a Permanent answer means nothing of it was applied.
Result<std::optional<Permanent>> applyDecoded(Connection& connection, const Event& event) {
  if (event.kind == "order") return applyOrder(connection, event);
  if (event.kind == "adjust") return applyAdjust(connection, event);
  ALLOT_TRY(refused, changeStock(connection, event));
  if (refused) return refused;
  ALLOT_TRY_VOID(applyLine(connection, event));
  return std::optional<Permanent>{};
}

// Applies one entry (one event, or the fused holds of a `holds` entry, all or none); a
// Permanent answer means nothing of it was applied.
Result<std::optional<Permanent>> applyEvent(Connection& connection, const OutboxEvent& raw) {
  auto events = decodeEvents(raw);
  if (!events) return Permanent{"malformed event: " + events.error().message};
  if (events->size() == 1) return applyDecoded(connection, events->front());
  ALLOT_TRY_VOID(connection.executeText("SAVEPOINT allot_entry"));
  for (const Event& event : *events) {
    ALLOT_TRY(refused, applyDecoded(connection, event));
    if (refused) {
      ALLOT_TRY_VOID(connection.executeText("ROLLBACK TO SAVEPOINT allot_entry"));
      return refused;
    }
  }
  return std::optional<Permanent>{};
}

Result<void> deadLetter(Connection& connection, const std::string& stream, const OutboxEvent& raw,
                        const std::string& reason) {
  std::string fields;
  for (const auto& [name, value] : raw.fields) fields += name + "=" + value + "\n";
  std::string cut;
  for (char c : reason.substr(0, kReasonLengthMax)) {
    const auto byte = static_cast<unsigned char>(c);
    cut.push_back(byte >= 0x20 && byte < 0x7f ? c : '?');
  }
  ALLOT_TRY_VOID(connection.execute(
      "INSERT INTO outbox_dead_letters (stream, event_id, fields, reason) VALUES (?, ?, ?, ?) "
      "ON DUPLICATE KEY UPDATE reason = VALUES(reason)",
      {stream, raw.id, fields, cut}));
  return {};
}

// ---- The batched apply: the same changes in a few multi-row statements ----
//
// Within one batch the record events' changes add up: each record's stock row takes the sum
// of its events' changes in one statement, and each order line only its last event's state
// (every line statement sets all of qty, allocated, shortage and state, so the last one is
// what applying them one by one leaves). Adjust and order events are applied one by one, after
// the sums gathered so far are written, so they see the row as the one-by-one apply would.
// When a sum is refused (a CHECK), the batch is applied again event by event, which finds the
// event to dead-letter.

// Rows per multi-row statement: a fixed set of sizes, so the prepared statements stay few.
constexpr std::array<std::size_t, 4> kChunkRows = {64, 16, 4, 1};

// Calls run(sql, params) once per chunk of rows: `head` + that many copies of `row` (joined by
// commas) + `tail`, with `width` params per row taken from `params`, in chunks of kChunkRows.
template <typename Run>
Result<void> forEachChunk(std::string_view head, std::string_view row, std::string_view tail,
                          std::size_t width, const std::vector<Param>& params, Run run) {
  const std::size_t rows = params.size() / width;
  std::size_t done = 0;
  for (const std::size_t chunk : kChunkRows) {
    while (rows - done >= chunk) {
      std::string sql(head);
      for (std::size_t i = 0; i < chunk; ++i) {
        if (i > 0) sql += ", ";
        sql += row;
      }
      sql += tail;
      ALLOT_TRY_VOID(run(sql, std::span<const Param>(params.data() + done * width, chunk * width)));
      done += chunk;
    }
  }
  return {};
}

Result<void> executeRows(Connection& connection, std::string_view head, std::string_view row,
                         std::string_view tail, std::size_t width,
                         const std::vector<Param>& params) {
  return forEachChunk(head, row, tail, width, params,
                      [&](const std::string& sql, std::span<const Param> slice) -> Result<void> {
                        ALLOT_TRY_VOID(connection.execute(sql, slice));
                        return {};
                      });
}

Result<Rows> queryRows(Connection& connection, std::string_view head, std::string_view row,
                       std::string_view tail, std::size_t width, const std::vector<Param>& params) {
  Rows found;
  ALLOT_TRY_VOID(
      forEachChunk(head, row, tail, width, params,
                   [&](const std::string& sql, std::span<const Param> slice) -> Result<void> {
                     ALLOT_TRY(some, connection.query(sql, slice));
                     for (auto& one : some) found.push_back(std::move(one));
                     return {};
                   }));
  return found;
}

struct StockSum {
  const RecordKey* key = nullptr;
  std::int64_t preallocated = 0;
  std::int64_t shortage = 0;
  std::int64_t on_hand = 0;
};

class BatchSums {
 public:
  // An order event: the order row, and its lines as answered. A line's state is set only when
  // the line is new: the record events (another stream, applied independently) own it after
  // that. Permanent when its state or lines are malformed (the event is dead-lettered).
  std::optional<Permanent> addOrder(const Event& event) {
    const auto status = orderStatusFromCode(event.status);
    if (!status || *status == OrderStatus::kPending) {
      return Permanent{"order event with state '" + event.status + "'"};
    }
    auto lines = decodeLineOutcomes(event.dept_no, event.answer);
    if (!lines) return Permanent{"order answer lines: " + lines.error().message};
    auto& order = orders_[event.dept_no + "|" + event.order_no];
    order.answered = true;
    setStatus(order, event, *status);
    if (!lines->empty()) {
      std::vector<LineRequest> requested;
      for (const auto& line : *lines) requested.push_back(LineRequest{line.key, line.qty});
      order.digest = linesDigest(requested);
      order.lines = std::move(*lines);
    }
    return std::nullopt;
  }

  // A record event: its stock change adds up, its order line keeps its last state.
  void add(const Event& event) {
    auto& sum = stock_[event.key.index()];
    sum.key = &event.key;
    const std::int64_t sign = event.kind == "hold" ? 1 : -1;
    sum.preallocated += sign * event.allocated;
    sum.shortage += sign * event.shortage;
    if (event.kind == "deduct") sum.on_hand -= event.allocated;
    addLine(event);
  }

  // The order line of a record event (the record's events own a line's state). A fused hold
  // is also the order event its order never sent: the orders row with the status and the
  // single line requested, and line_no 1 on the line, written by the line's own upsert.
  void addLine(const Event& event) {
    std::string line_name;
    line_name.reserve(event.order_no.size() + 1 + event.key.indexSize());
    line_name.append(event.order_no).append("|");
    event.key.appendIndex(line_name);
    auto& line = lines_[std::move(line_name)];
    line.event = &event;
    if (!event.fused()) return;
    line.line_no = 1;
    std::string order_name;
    order_name.reserve(event.dept_no.size() + 1 + event.order_no.size());
    order_name.append(event.dept_no).append("|").append(event.order_no);
    auto& order = orders_[std::move(order_name)];
    setStatus(order, event, *orderStatusFromCode(event.status));  // A or S: decodeEvent checked
    order.digest = lineDigest(event.key, event.allocated + event.shortage);
  }

  // Writes the sums; a CHECK refusal is returned as Permanent (the caller falls back).
  Result<std::optional<Permanent>> flush(Connection& connection) {
    if (stock_.empty() && lines_.empty() && orders_.empty()) return std::optional<Permanent>{};
    std::vector<Param> stock_params;
    for (const auto& [index, sum] : stock_) {
      if (sum.preallocated == 0 && sum.shortage == 0 && sum.on_hand == 0) continue;
      for (const Param& param : keyParams(*sum.key)) stock_params.push_back(param);
      stock_params.insert(stock_params.end(),
                          {Param{sum.preallocated}, Param{sum.shortage}, Param{sum.on_hand}});
    }
    auto stocked =
        executeRows(connection,
                    "INSERT INTO stock (dept_no, goods_no, warehouse_no, stock_status, stock_type, "
                    "goods_level, preallocated, shortage, on_hand) VALUES ",
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    " ON DUPLICATE KEY UPDATE preallocated = preallocated + VALUES(preallocated), "
                    "shortage = shortage + VALUES(shortage), on_hand = on_hand + VALUES(on_hand)",
                    9, stock_params);
    if (!stocked) {
      if (connection.lastErrorNumber() == ER_CONSTRAINT_FAILED) {
        return Permanent{stocked.error().message};
      }
      return std::unexpected(stocked.error());
    }
    std::vector<Param> line_params;
    OrderNames pending;
    for (const auto& [name, line] : lines_) {
      const Event& event = *line.event;
      // A line held before its order's answer: the order's claim is pending (mysql/
      // pending_order_scan.h).
      if (event.kind == "hold" && !event.fused()) pending.emplace(event.dept_no, event.order_no);
      if (event.kind == "undo") {
        ALLOT_TRY_VOID(deleteOrderLine(connection, event));  // rare
        continue;
      }
      const RecordKey& k = event.key;
      const std::string_view state = event.kind == "hold"     ? "held"
                                     : event.kind == "deduct" ? "deducted"
                                                              : "released";
      line_params.insert(
          line_params.end(),
          {Param{std::string_view(k.dept_no)}, Param{std::string_view(event.order_no)},
           Param{std::string_view(k.goods_no)}, Param{std::string_view(k.warehouse_no)},
           Param{std::string_view(k.stock_status)}, Param{std::string_view(k.stock_type)},
           Param{std::string_view(k.goods_level)}, Param{line.line_no},
           Param{event.allocated + event.shortage}, Param{event.allocated}, Param{event.shortage},
           Param{state}});
    }
    // line_no 0 is "not known yet": an order event (or a fused hold) gives the real one, in
    // whichever order the two streams are applied.
    ALLOT_TRY_VOID(executeRows(
        connection,
        "INSERT INTO order_lines (dept_no, order_no, goods_no, warehouse_no, stock_status, "
        "stock_type, goods_level, line_no, qty, allocated, shortage, state) VALUES ",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        " ON DUPLICATE KEY UPDATE line_no = GREATEST(line_no, VALUES(line_no)), "
        "qty = VALUES(qty), allocated = VALUES(allocated), shortage = VALUES(shortage), "
        "state = VALUES(state)",
        12, line_params));
    // Unless its answer is in already (the order's stream is often applied before its
    // records'). The row is dated by its latest hold: a retry of a refused order, or a long
    // call, is as young as its last line. (Under READ COMMITTED the orders rows are read
    // without locks.)
    ALLOT_TRY_VOID(executeRows(
        connection,
        "INSERT INTO pending_orders (dept_no, order_no) SELECT DISTINCT l.dept_no, l.order_no "
        "FROM order_lines l WHERE (l.dept_no, l.order_no) IN (",
        "(?, ?)",
        ") AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.dept_no = l.dept_no AND o.order_no = "
        "l.order_no) ON DUPLICATE KEY UPDATE seen_at = CURRENT_TIMESTAMP(6)",
        2, orderParams(pending)));
    ALLOT_TRY_VOID(flushOrders(connection));
    stock_.clear();
    lines_.clear();
    orders_.clear();
    return std::optional<Permanent>{};
  }

 private:
  struct LineSum {
    const Event* event = nullptr;  // the last record event of the line
    std::int64_t line_no = 0;      // 1 once a fused hold named it; 0: not known here
  };
  // Orders as (dept_no, order_no), sorted as the primary keys of orders and pending_orders,
  // so concurrent write-backs lock their rows in one order.
  using OrderNames = std::set<std::pair<std::string_view, std::string_view>>;

  static std::vector<Param> orderParams(const OrderNames& names) {
    std::vector<Param> params;
    params.reserve(names.size() * 2);
    for (const auto& [dept_no, order_no] : names) {
      params.insert(params.end(), {Param{dept_no}, Param{order_no}});
    }
    return params;
  }

  struct OrderSum {
    const Event* event = nullptr;
    bool answered = false;  // by an order event (not only by fused holds)
    OrderStatus status = OrderStatus::kAllocated;
    std::optional<std::string> digest;  // the last one seen; a tombstone has none
    std::vector<LineOutcome> lines;     // the last non-empty answer
  };

  // An order's status never moves back from an end state, here and in the orders upsert: a
  // fused order's first state (A or S) is in its record's stream and its rollback or deduct in
  // its own, and the two streams may be applied in either order.
  // A bare tombstone (a rollback of an order never seen: no lines) does not hold the status:
  // an order placed under the same number once Redis forgot the tombstone replaces it.
  static void setStatus(OrderSum& order, const Event& event, OrderStatus status) {
    const bool ended =
        order.event != nullptr && order.digest.has_value() &&
        (order.status == OrderStatus::kRolledBack || order.status == OrderStatus::kDeducted);
    order.event = &event;
    if (!ended) order.status = status;
  }

  // The orders rows and their lines as answered (applyOrder: the same for one event).
  Result<void> flushOrders(Connection& connection) {
    std::vector<Param> order_params, line_params;
    OrderNames answered;
    for (const auto& [name, order] : orders_) {
      if (order.answered) answered.emplace(order.event->dept_no, order.event->order_no);
      order_params.insert(
          order_params.end(),
          {Param{std::string_view(order.event->dept_no)},
           Param{std::string_view(order.event->order_no)}, Param{orderStatusName(order.status)},
           order.digest ? Param{std::string_view(*order.digest)} : Param{nullptr}});
      const std::string_view state = provisionalLineState(order.status);
      for (std::size_t i = 0; i < order.lines.size(); ++i) {
        const LineOutcome& line = order.lines[i];
        line_params.insert(
            line_params.end(),
            {Param{std::string_view(order.event->dept_no)},
             Param{std::string_view(order.event->order_no)},
             Param{std::string_view(line.key.goods_no)},
             Param{std::string_view(line.key.warehouse_no)},
             Param{std::string_view(line.key.stock_status)},
             Param{std::string_view(line.key.stock_type)},
             Param{std::string_view(line.key.goods_level)}, Param{static_cast<std::int64_t>(i + 1)},
             Param{line.qty}, Param{line.allocated}, Param{line.shortage}, Param{state}});
      }
    }
    ALLOT_TRY_VOID(executeRows(
        connection, "INSERT INTO orders (dept_no, order_no, status, lines_digest) VALUES ",
        "(?, ?, ?, ?)",
        " ON DUPLICATE KEY UPDATE status = IF(status IN ('rolled_back', 'deducted') AND "
        "lines_digest IS NOT NULL, status, VALUES(status)), "
        "lines_digest = COALESCE(VALUES(lines_digest), lines_digest)",
        4, order_params));
    // An answered order is not pending any more (a hold of it applied after this, from its
    // record's stream, finds the orders row and adds none back).
    ALLOT_TRY_VOID(executeRows(connection,
                               "DELETE FROM pending_orders WHERE (dept_no, order_no) IN (",
                               "(?, ?)", ")", 2, orderParams(answered)));
    return executeRows(
        connection,
        "INSERT INTO order_lines (dept_no, order_no, goods_no, warehouse_no, stock_status, "
        "stock_type, goods_level, line_no, qty, allocated, shortage, state) VALUES ",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        " ON DUPLICATE KEY UPDATE line_no = VALUES(line_no), qty = VALUES(qty), "
        "allocated = VALUES(allocated), shortage = VALUES(shortage)",
        12, line_params);
  }

  std::map<std::string, OrderSum> orders_;  // by dept|order
  std::map<std::string, StockSum> stock_;   // by record index
  std::map<std::string, LineSum> lines_;    // by order|record index
};

Result<std::optional<Permanent>> applyOrder(Connection& connection, const Event& event) {
  BatchSums one;
  if (auto refused = one.addOrder(event)) return refused;
  return one.flush(connection);
}

Result<void> applyLine(Connection& connection, const Event& event) {
  BatchSums one;
  one.addLine(event);
  ALLOT_TRY(refused, one.flush(connection));
  // Without a stock sum, nothing in a line's or an order's upsert can be refused for good.
  if (refused) return fail(ErrorCode::kInternal, "order line refused: " + refused->reason);
  return {};
}

// The batch with sums; nullopt when it must be applied event by event instead (a malformed
// event, a refused adjust or order, or a refused sum), after the caller rolled it back.
Result<std::optional<std::size_t>> applySummed(Connection& connection,
                                               const std::vector<const OutboxEvent*>& raws) {
  std::vector<Event> events;
  events.reserve(raws.size());
  for (const OutboxEvent* raw : raws) {
    auto decoded = decodeEvents(*raw);
    if (!decoded) return std::optional<std::size_t>();
    for (Event& event : *decoded) events.push_back(std::move(event));
  }
  BatchSums sums;
  for (const Event& event : events) {
    if (event.kind == "order") {
      if (sums.addOrder(event)) return std::optional<std::size_t>();
      continue;
    }
    if (event.kind == "adjust") {
      ALLOT_TRY(refused, sums.flush(connection));
      if (refused) return std::optional<std::size_t>();
      ALLOT_TRY(one, applyAdjust(connection, event));
      if (one) return std::optional<std::size_t>();
      continue;
    }
    sums.add(event);
  }
  ALLOT_TRY(refused, sums.flush(connection));
  if (refused) return std::optional<std::size_t>();
  return std::optional<std::size_t>(events.size());
}

}  // namespace

Result<std::vector<FusedHold>> parseFusedHolds(std::string_view batch) {
  std::vector<FusedHold> holds;
  while (!batch.empty()) {
    const auto comma = batch.find(',');
    std::string_view item = batch.substr(0, comma);
    batch = comma == std::string_view::npos ? std::string_view() : batch.substr(comma + 1);
    std::array<std::string_view, 4> parts;  // order, allocated, shortage, status
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const auto colon = item.find(':');
      if ((colon == std::string_view::npos) != (i + 1 == parts.size())) {
        return fail(ErrorCode::kInvalidRequest, "a holds item is not order:a:s:st");
      }
      parts[i] = item.substr(0, colon);
      if (colon != std::string_view::npos) item.remove_prefix(colon + 1);
    }
    ALLOT_TRY(allocated, parseInteger(parts[1], "a"));
    ALLOT_TRY(shortage, parseInteger(parts[2], "s"));
    holds.push_back({parts[0], allocated, shortage, parts[3]});
  }
  if (holds.empty()) return fail(ErrorCode::kInvalidRequest, "a holds event with no hold");
  return holds;
}

std::optional<StreamId> StreamId::parse(std::string_view text) {
  const auto dash = text.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const auto ms = readDecimal<decltype(StreamId::ms)>(text.substr(0, dash));
  const auto seq = readDecimal<decltype(StreamId::seq)>(text.substr(dash + 1));
  if (!ms || !seq) return std::nullopt;
  return StreamId{*ms, *seq};
}

std::string StreamId::text() const { return std::to_string(ms) + "-" + std::to_string(seq); }

StreamId StreamId::next() const {
  if (seq == UINT64_MAX) return StreamId{ms + 1, 0};
  return StreamId{ms, seq + 1};
}

Result<StreamPosition> WriteBackStore::readPosition(const std::string& stream) {
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY(rows,
            lease->query("SELECT last_id, events_applied FROM outbox_positions WHERE stream = ?",
                         {stream}));
  if (rows.empty()) return StreamPosition{};
  ALLOT_TRY(applied, rows[0].integer(1));
  return StreamPosition{std::string(rows[0].text(0)), applied};
}

Result<std::map<std::string, std::string>> WriteBackStore::readPositions(
    const std::vector<std::string>& streams) {
  std::vector<Param> params;
  params.reserve(streams.size());
  for (const std::string& stream : streams) params.push_back(std::string_view(stream));
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY(rows,
            queryRows(*lease, "SELECT stream, last_id FROM outbox_positions WHERE stream IN (", "?",
                      ")", 1, params));
  std::map<std::string, std::string> positions;
  for (const auto& row : rows) positions.emplace(row.text(0), row.text(1));
  return positions;
}

Result<BatchOutcome> WriteBackStore::applyBatch(const std::string& stream,
                                                const std::vector<OutboxEvent>& events) {
  ALLOT_TRY(outcomes, applyBatches({StreamBatch{stream, events}}));
  return std::move(outcomes.front());
}

Result<std::vector<BatchOutcome>> WriteBackStore::applyBatches(
    const std::vector<StreamBatch>& batches) {
  // Position rows are locked in stream order, so two write-backs never wait on each other in
  // a cycle.
  std::vector<std::size_t> order(batches.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return batches[a].stream < batches[b].stream; });
  return pool_.withTransaction([&](Connection& connection) -> Result<std::vector<BatchOutcome>> {
    std::vector<BatchOutcome> outcomes(batches.size());
    std::vector<std::vector<const OutboxEvent*>> fresh(batches.size());
    std::vector<const OutboxEvent*> all;
    // The inserts lock the position rows even when they are new, so a concurrent write-back
    // of these streams waits here (READ COMMITTED takes no gap lock for a missing row).
    std::vector<Param> stream_params, insert_params;
    for (const std::size_t b : order) {
      stream_params.push_back(std::string_view(batches[b].stream));
      insert_params.insert(insert_params.end(),
                           {Param{std::string_view(batches[b].stream)}, Param{kFirstId}});
    }
    ALLOT_TRY_VOID(executeRows(connection,
                               "INSERT INTO outbox_positions (stream, last_id, events_applied) "
                               "VALUES ",
                               "(?, ?, 0)", " ON DUPLICATE KEY UPDATE stream = stream", 2,
                               insert_params));
    ALLOT_TRY(rows, queryRows(connection,
                              "SELECT stream, last_id FROM outbox_positions WHERE stream IN (", "?",
                              ") FOR UPDATE", 1, stream_params));
    std::map<std::string, std::string, std::less<>> stored_ids;
    for (const auto& row : rows) stored_ids.emplace(row.text(0), row.text(1));
    for (const std::size_t b : order) {
      const std::string& stream = batches[b].stream;
      const auto found = stored_ids.find(stream);
      if (found == stored_ids.end()) {
        return fail(ErrorCode::kInternal, "outbox position of " + stream + " vanished");
      }
      const auto stored = StreamId::parse(found->second);
      if (!stored) {
        return fail(ErrorCode::kInternal, "outbox position of " + stream + " is malformed");
      }
      StreamId last = *stored;
      for (const OutboxEvent& raw : batches[b].events) {
        const auto id = StreamId::parse(raw.id);
        if (!id) return fail(ErrorCode::kInternal, "stream id '" + raw.id + "' is malformed");
        if (*id <= last) {
          ++outcomes[b].skipped;
          continue;
        }
        fresh[b].push_back(&raw);
        all.push_back(&raw);
        last = *id;
      }
      outcomes[b].last_id = last.text();
    }
    ALLOT_TRY_VOID(connection.executeText("SAVEPOINT allot_batch"));
    ALLOT_TRY(summed, applySummed(connection, all));
    for (std::size_t b = 0; b < batches.size(); ++b) {
      if (summed) {
        outcomes[b].applied = fresh[b].size();
        continue;
      }
      if (b == 0) ALLOT_TRY_VOID(connection.executeText("ROLLBACK TO SAVEPOINT allot_batch"));
      // Event by event, to find what must be dead-lettered.
      for (const OutboxEvent* raw : fresh[b]) {
        ALLOT_TRY(refused, applyEvent(connection, *raw));
        if (refused) {
          ALLOT_TRY_VOID(deadLetter(connection, batches[b].stream, *raw, refused->reason));
          ++outcomes[b].dead_lettered;
          outcomes[b].dead_letter_reasons.push_back(raw->id + ": " + refused->reason);
        } else {
          ++outcomes[b].applied;
        }
      }
    }
    std::vector<Param> position_params;
    for (const std::size_t b : order) {
      if (outcomes[b].applied + outcomes[b].dead_lettered == 0) continue;
      position_params.insert(
          position_params.end(),
          {Param{std::string_view(batches[b].stream)}, Param{std::string_view(outcomes[b].last_id)},
           Param{static_cast<std::int64_t>(outcomes[b].applied)}});
    }
    ALLOT_TRY_VOID(executeRows(
        connection, "INSERT INTO outbox_positions (stream, last_id, events_applied) VALUES ",
        "(?, ?, ?)",
        " ON DUPLICATE KEY UPDATE last_id = VALUES(last_id), "
        "events_applied = events_applied + VALUES(events_applied)",
        3, position_params));
    return outcomes;
  });
}

}  // namespace allot::mysql
