// The reconciliation scan: Redis against the database of record, record by record.
//
// THE RULE (copied into docs/design.md):
//
//   A record is compared only while it is loaded in Redis. Its expected state is
//     Redis usable + subtracted == db.on_hand      + pending.on_hand
//     Redis subtracted         == db.preallocated + pending.preallocated
//     Redis ullage             == db.shortage     + pending.shortage
//   where "pending" sums the record's outbox events that the write-back has not applied yet
//   (hold +a/+s; undo and rollback -a/-s; deduct -a on preallocated and on_hand, -s; adjust
//   +q on on_hand unless its ref is already applied in stock_adjustments). A difference that
//   the pending events explain is lag, not drift, and nothing is changed.
//
//   Real drift is repaired as follows, and recorded in `reconciliations`:
//   - preallocated and shortage: the live holds in Redis are the truth. Every live hold is
//     its anti-duplicate key o:{rec}:<order> = "allocated:shortage" (":D" once deducted, and
//     then no longer live). Redis subtracted/ullage become the sums over the live holds
//     (usable adjusted so that on_hand stays as decided below), and the database's
//     preallocated/shortage become the same sums minus the pending events (which the
//     write-back adds later).
//   - on_hand: the database of record wins (after the pending events): Redis usable becomes
//     db.on_hand + pending.on_hand - live preallocated. When that would be negative, Redis
//     holds stock the database does not have (it was sold): the Redis repair is refused,
//     reported and recorded (repaired = 0), for an operator.
//
// Why the re-check is exact: it runs in a MariaDB transaction holding the stock row and the
// stream's outbox_positions row FOR UPDATE, so the write-back cannot move this record (or
// the stream's position) meanwhile; and the Redis side reads under WATCH of the three
// counters and ends with MULTI ... EXEC, so every value it used (counters, pending events,
// live holds) is one snapshot: any script on the record changes a counter and aborts the
// EXEC, and the session is run again. A repair therefore never overwrites a change made
// after it read the values.
#include "workers/reconcile.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <string_view>
#include <thread>
#include <vector>

#include "redis/keys.h"
#include "workers/write_back.h"

namespace allot::workers {

namespace {

constexpr std::string_view kRule =
    "holds are the truth for preallocated/shortage; the database wins on_hand";
constexpr std::size_t kScanCount = 1000;    // SCAN COUNT hint per call
constexpr std::size_t kHoldsPerMget = 500;  // keys per MGET of the live holds
constexpr std::chrono::milliseconds kSessionBackoffFirst{2};
constexpr std::chrono::milliseconds kSessionBackoffMax{200};

static_assert(kReconcilePageRows == 500, "the page SQL below says LIMIT 500");

// The six key fields, in key order, as the page queries select them.
constexpr std::string_view kPageAllSql =
    "SELECT dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level FROM stock "
    "WHERE (dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level) > "
    "(?, ?, ?, ?, ?, ?) ORDER BY dept_no, goods_no, warehouse_no, stock_status, stock_type, "
    "goods_level LIMIT 500";
constexpr std::string_view kPageDeptSql =
    "SELECT dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level FROM stock "
    "WHERE dept_no = ? AND (goods_no, warehouse_no, stock_status, stock_type, goods_level) > "
    "(?, ?, ?, ?, ?) ORDER BY goods_no, warehouse_no, stock_status, stock_type, goods_level "
    "LIMIT 500";
constexpr std::string_view kStockWhere =
    " WHERE dept_no = ? AND goods_no = ? AND warehouse_no = ? AND stock_status = ? "
    "AND stock_type = ? AND goods_level = ?";

struct Counters {
  std::int64_t usable = 0;
  std::int64_t subtracted = 0;
  std::int64_t ullage = 0;
};

// Effects of the record's outbox events not yet applied to the database.
struct Pending {
  std::int64_t on_hand = 0;
  std::int64_t preallocated = 0;
  std::int64_t shortage = 0;
  bool truncated = false;  // more than kReconcilePendingEventsMax: undecidable this run
  bool any = false;
};

struct Repair {
  std::int64_t live_allocated = 0;
  std::int64_t live_shortage = 0;
  std::int64_t new_usable = 0;
  bool redis_refused = false;
  bool redis_change = false;
  std::int64_t db_preallocated = 0;
  std::int64_t db_shortage = 0;
  bool db_refused = false;
  bool db_change = false;
};

// What one WATCH ... EXEC session saw and decided.
struct Session {
  bool loaded = true;
  Counters counters;
  Pending pending;
  bool drift = false;
  Repair repair;
};

Error internal(std::string message) { return Error{ErrorCode::kInternal, std::move(message)}; }

std::optional<std::int64_t> toInteger(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, failure] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (failure != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

Result<redis::Reply> checked(Result<redis::Reply> reply, std::string_view during) {
  if (!reply) return reply;
  if (reply->isError()) return std::unexpected(internal(std::string(during) + ": " + reply->str));
  return reply;
}

// MGET u s l: nullopt when the record is not loaded (no usable counter).
Result<std::optional<Counters>> parseCounters(const redis::Reply& reply) {
  if (!reply.isArray() || reply.elements.size() != 3) {
    return std::unexpected(internal("reconcile: unexpected MGET reply"));
  }
  if (reply.elements[0].isNil()) return std::optional<Counters>{};
  std::int64_t values[3] = {0, 0, 0};
  for (std::size_t i = 0; i < 3; ++i) {
    if (reply.elements[i].isNil()) continue;  // s and l are created with u; absent reads 0
    const auto value = toInteger(reply.elements[i].str);
    if (!value) return std::unexpected(internal("reconcile: a counter is not an integer"));
    values[i] = *value;
  }
  return std::optional<Counters>{Counters{values[0], values[1], values[2]}};
}

std::vector<std::string> counterKeys(const RecordKey& key) {
  return {redis::keys::usable(key), redis::keys::subtracted(key), redis::keys::ullage(key)};
}

std::vector<mysql::Param> keyParams(const RecordKey& key) {
  return {key.dept_no,      key.goods_no,   key.warehouse_no,
          key.stock_status, key.stock_type, key.goods_level};
}

Result<std::optional<Quantities>> readStock(mysql::Connection& db, const RecordKey& key,
                                            bool for_update) {
  std::string sql = "SELECT on_hand, preallocated, shortage FROM stock";
  sql.append(kStockWhere);
  if (for_update) sql.append(" FOR UPDATE");
  const auto params = keyParams(key);
  auto rows = db.query(sql, params);
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::optional<Quantities>{};
  const auto& row = (*rows)[0];
  auto on_hand = row.integer(0);
  auto preallocated = row.integer(1);
  auto shortage = row.integer(2);
  if (!on_hand || !preallocated || !shortage) {
    return std::unexpected(internal("reconcile: a stock quantity is not an integer"));
  }
  return std::optional<Quantities>{Quantities{*on_hand, *preallocated, *shortage}};
}

bool agrees(const Quantities& db, const Pending& pending, const Counters& redis) {
  return db.on_hand + pending.on_hand == redis.usable + redis.subtracted &&
         db.preallocated + pending.preallocated == redis.subtracted &&
         db.shortage + pending.shortage == redis.ullage;
}

// An adjust's delta is pending unless its ref is already applied in the database (an
// increase is applied there before Redis, and the write-back will skip it).
Result<bool> adjustPending(mysql::Connection& db, std::string_view dept_no, std::string_view ref) {
  auto rows =
      db.query("SELECT state FROM stock_adjustments WHERE dept_no = ? AND ref = ?", {dept_no, ref});
  if (!rows) return std::unexpected(rows.error());
  return rows->empty() || (*rows)[0].text(0) == "pending";
}

std::string_view fieldOf(const redis::Reply& fields, std::string_view name) {
  for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    if (fields.elements[i].str == name) return fields.elements[i + 1].str;
  }
  return {};
}

// Adds one event of the record to `pending`.
Result<void> addEvent(mysql::Connection& db, const redis::Reply& fields, Pending& pending) {
  const std::string_view kind = fieldOf(fields, "e");
  const auto allocated = toInteger(fieldOf(fields, "a")).value_or(0);
  const auto shortage = toInteger(fieldOf(fields, "s")).value_or(0);
  pending.any = true;
  if (kind == "hold") {
    pending.preallocated += allocated;
    pending.shortage += shortage;
  } else if (kind == "holds") {
    // The fused holds of one order_hold.lua call.
    auto holds = mysql::parseFusedHolds(fieldOf(fields, "b"));
    if (!holds) return std::unexpected(internal("reconcile: " + holds.error().message));
    for (const auto& hold : *holds) {
      pending.preallocated += hold.allocated;
      pending.shortage += hold.shortage;
    }
  } else if (kind == "undo" || kind == "rollback") {
    pending.preallocated -= allocated;
    pending.shortage -= shortage;
  } else if (kind == "deduct") {
    pending.preallocated -= allocated;
    pending.on_hand -= allocated;
    pending.shortage -= shortage;
  } else if (kind == "adjust") {
    auto open = adjustPending(db, fieldOf(fields, "d"), fieldOf(fields, "f"));
    if (!open) return std::unexpected(open.error());
    if (*open) pending.on_hand += toInteger(fieldOf(fields, "q")).value_or(0);
  }
  return {};
}

// Sums the effects of the record's events in an XRANGE reply.
Result<Pending> sumPending(mysql::Connection& db, const redis::Reply& entries,
                           const std::string& index) {
  if (!entries.isArray()) return std::unexpected(internal("reconcile: unexpected XRANGE reply"));
  Pending pending;
  pending.truncated = entries.elements.size() > kReconcilePendingEventsMax;
  if (pending.truncated) return pending;
  for (const auto& entry : entries.elements) {
    if (!entry.isArray() || entry.elements.size() != 2 || !entry.elements[1].isArray()) {
      return std::unexpected(internal("reconcile: unexpected stream entry"));
    }
    if (fieldOf(entry.elements[1], "r") != index) continue;
    auto added = addEvent(db, entry.elements[1], pending);
    if (!added) return std::unexpected(added.error());
  }
  return pending;
}

// Every o:{rec}:* key on the record's node (the hash tag keeps them in its slot).
Result<std::vector<std::string>> scanHoldKeys(redis::Connection& redis, const RecordKey& key) {
  const std::string pattern = redis::keys::operate(key, "*");
  std::vector<std::string> found;
  std::string cursor = "0";
  for (std::size_t calls = 0; calls < kReconcileScanCallsMax; ++calls) {
    auto reply = checked(
        redis.command({"SCAN", cursor, "MATCH", pattern, "COUNT", std::to_string(kScanCount)}),
        "SCAN");
    if (!reply) return std::unexpected(reply.error());
    if (!reply->isArray() || reply->elements.size() != 2 || !reply->elements[1].isArray()) {
      return std::unexpected(internal("reconcile: unexpected SCAN reply"));
    }
    for (const auto& element : reply->elements[1].elements) found.push_back(element.str);
    cursor = reply->elements[0].str;
    if (cursor == "0") return found;
  }
  return std::unexpected(Error{ErrorCode::kUnavailable, "reconcile: SCAN did not finish"});
}

// Adds one anti-duplicate value ("a:s" live, "a:s:D" deducted) to the live sums.
Result<void> addHold(std::string_view value, Repair& repair) {
  const auto first = value.find(':');
  if (first == std::string_view::npos) return std::unexpected(internal("reconcile: bad hold"));
  const auto second = value.find(':', first + 1);
  const auto allocated = toInteger(value.substr(0, first));
  const auto shortage = toInteger(value.substr(first + 1, second - first - 1));
  if (!allocated || !shortage) return std::unexpected(internal("reconcile: bad hold value"));
  if (second != std::string_view::npos) return {};  // deducted: no longer live
  repair.live_allocated += *allocated;
  repair.live_shortage += *shortage;
  return {};
}

// The live holds of the record's hash (h:{rec}), HSCAN by HSCAN.
Result<void> sumHeldEntries(redis::Connection& redis, const RecordKey& key, Repair& repair) {
  const std::string holds = redis::keys::holds(key);
  std::string cursor = "0";
  for (std::size_t calls = 0; calls < kReconcileScanCallsMax; ++calls) {
    auto reply = checked(
        redis.command({"HSCAN", holds, cursor, "COUNT", std::to_string(kScanCount)}), "HSCAN");
    if (!reply) return std::unexpected(reply.error());
    if (!reply->isArray() || reply->elements.size() != 2 || !reply->elements[1].isArray()) {
      return std::unexpected(internal("reconcile: unexpected HSCAN reply"));
    }
    const auto& pairs = reply->elements[1].elements;  // field, value, field, value, ...
    for (std::size_t i = 1; i < pairs.size(); i += 2) {
      auto added = addHold(pairs[i].str, repair);
      if (!added) return std::unexpected(added.error());
    }
    cursor = reply->elements[0].str;
    if (cursor == "0") return {};
  }
  return std::unexpected(Error{ErrorCode::kUnavailable, "reconcile: HSCAN did not finish"});
}

// Every live hold: the entries of h:{rec}, and any o:{rec}:* key that is not a deducted one
// (a live hold written before h: existed).
Result<void> sumLiveHolds(redis::Connection& redis, const RecordKey& key, Repair& repair) {
  ALLOT_TRY_VOID(sumHeldEntries(redis, key, repair));
  auto keys = scanHoldKeys(redis, key);
  if (!keys) return std::unexpected(keys.error());
  for (std::size_t start = 0; start < keys->size(); start += kHoldsPerMget) {
    std::vector<std::string> argv{"MGET"};
    for (std::size_t i = start; i < keys->size() && i < start + kHoldsPerMget; ++i) {
      argv.push_back((*keys)[i]);
    }
    auto reply = checked(redis.command(argv), "MGET holds");
    if (!reply) return std::unexpected(reply.error());
    if (!reply->isArray()) return std::unexpected(internal("reconcile: unexpected MGET reply"));
    for (const auto& value : reply->elements) {
      if (value.isNil()) continue;  // ended between SCAN and MGET: the EXEC will abort
      auto added = addHold(value.str, repair);
      if (!added) return std::unexpected(added.error());
    }
  }
  return {};
}

// Decides the repair from the live sums (already in `repair`) by the rule at the top.
void planRepair(const Quantities& db, const Session& seen, Repair& repair) {
  const Counters& now = seen.counters;
  repair.new_usable = db.on_hand + seen.pending.on_hand - repair.live_allocated;
  repair.redis_refused = repair.new_usable < 0;
  repair.redis_change = !repair.redis_refused && (repair.new_usable != now.usable ||
                                                  repair.live_allocated != now.subtracted ||
                                                  repair.live_shortage != now.ullage);
  repair.db_preallocated = repair.live_allocated - seen.pending.preallocated;
  repair.db_shortage = repair.live_shortage - seen.pending.shortage;
  repair.db_refused = repair.db_preallocated < 0 || repair.db_shortage < 0;
  repair.db_change = !repair.db_refused && (repair.db_preallocated != db.preallocated ||
                                            repair.db_shortage != db.shortage);
}

}  // namespace

namespace {

// One WATCH ... MULTI ... EXEC session on the record's node. Returns false when the EXEC was
// aborted (a counter changed): the caller runs the session again.
Result<bool> runSession(redis::Connection& redis, mysql::Connection& db, const RecordKey& key,
                        const Quantities& row, const std::string& start, Session& seen) {
  seen = Session{};
  const auto counters = counterKeys(key);
  auto watched = checked(redis.command({"WATCH", counters[0], counters[1], counters[2]}), "WATCH");
  if (!watched) return std::unexpected(watched.error());
  auto mget = checked(redis.command({"MGET", counters[0], counters[1], counters[2]}), "MGET");
  if (!mget) return std::unexpected(mget.error());
  auto parsed = parseCounters(*mget);
  if (!parsed) return std::unexpected(parsed.error());
  if (!parsed->has_value()) {
    seen.loaded = false;
    auto unwatched = checked(redis.command({"UNWATCH"}), "UNWATCH");
    if (!unwatched) return std::unexpected(unwatched.error());
    return true;
  }
  seen.counters = **parsed;
  const std::string stream = redis::keys::outboxFor(counters[0]);
  auto entries = checked(redis.command({"XRANGE", stream, start, "+", "COUNT",
                                        std::to_string(kReconcilePendingEventsMax + 1)}),
                         "XRANGE");
  if (!entries) return std::unexpected(entries.error());
  auto pending = sumPending(db, *entries, key.index());
  if (!pending) return std::unexpected(pending.error());
  seen.pending = *pending;
  seen.drift = !seen.pending.truncated && !agrees(row, seen.pending, seen.counters);
  if (seen.drift) {
    auto summed = sumLiveHolds(redis, key, seen.repair);
    if (!summed) return std::unexpected(summed.error());
    planRepair(row, seen, seen.repair);
  }
  // MULTI ... EXEC even when nothing is written: a non-nil EXEC proves no counter changed
  // since WATCH, so everything read above was one consistent snapshot.
  auto multi = checked(redis.command({"MULTI"}), "MULTI");
  if (!multi) return std::unexpected(multi.error());
  if (seen.drift && seen.repair.redis_change) {
    const std::int64_t values[3] = {seen.repair.new_usable, seen.repair.live_allocated,
                                    seen.repair.live_shortage};
    for (std::size_t i = 0; i < 3; ++i) {
      auto queued = checked(redis.command({"SET", counters[i], std::to_string(values[i])}), "SET");
      if (!queued) return std::unexpected(queued.error());
    }
  }
  auto exec = checked(redis.command({"EXEC"}), "EXEC");
  if (!exec) return std::unexpected(exec.error());
  return !exec->isNil();
}

std::chrono::milliseconds sessionBackoff(int attempt) {
  return std::min(kSessionBackoffFirst * (1 << std::min(attempt, 8)), kSessionBackoffMax);
}

std::string describe(const Session& seen) {
  const Repair& r = seen.repair;
  std::string text;
  if (r.redis_refused) {
    text = "refused redis: usable would be " + std::to_string(r.new_usable);
  } else if (r.redis_change) {
    text = "redis u/s/l=" + std::to_string(r.new_usable) + "/" + std::to_string(r.live_allocated) +
           "/" + std::to_string(r.live_shortage);
  }
  const bool db_part = r.db_refused || r.db_change;
  if (!text.empty() && db_part) text += "; ";
  if (r.db_refused) {
    text += "refused db: preallocated/shortage would be " + std::to_string(r.db_preallocated) +
            "/" + std::to_string(r.db_shortage);
  } else if (r.db_change) {
    text += "db preallocated/shortage=" + std::to_string(r.db_preallocated) + "/" +
            std::to_string(r.db_shortage);
  }
  return text.empty() ? std::string("none") : text;
}

Result<void> recordDrift(mysql::Connection& db, const RecordKey& key, const Quantities& row,
                         const Session& seen, bool repaired) {
  const Repair& r = seen.repair;
  if (r.db_change) {
    std::string sql = "UPDATE stock SET preallocated = ?, shortage = ?";
    sql.append(kStockWhere);
    auto updated =
        db.execute(sql, {r.db_preallocated, r.db_shortage, key.dept_no, key.goods_no,
                         key.warehouse_no, key.stock_status, key.stock_type, key.goods_level});
    if (!updated) return std::unexpected(updated.error());
  }
  const std::string repair = describe(seen);
  auto inserted = db.execute(
      "INSERT INTO reconciliations (dept_no, goods_no, warehouse_no, stock_status, stock_type, "
      "goods_level, db_on_hand, db_preallocated, db_shortage, redis_usable, redis_subtracted, "
      "redis_ullage, pending_on_hand, pending_preallocated, pending_shortage, repaired, repair, "
      "rule) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {key.dept_no, key.goods_no, key.warehouse_no, key.stock_status, key.stock_type,
       key.goods_level, row.on_hand, row.preallocated, row.shortage, seen.counters.usable,
       seen.counters.subtracted, seen.counters.ullage, seen.pending.on_hand,
       seen.pending.preallocated, seen.pending.shortage, std::int64_t{repaired ? 1 : 0},
       std::string_view(repair), kRule});
  if (!inserted) return std::unexpected(inserted.error());
  spdlog::warn("reconcile: drift on {}: db {}/{}/{}, redis u/s/l {}/{}/{}, pending {}/{}/{}; {}",
               key.index(), row.on_hand, row.preallocated, row.shortage, seen.counters.usable,
               seen.counters.subtracted, seen.counters.ullage, seen.pending.on_hand,
               seen.pending.preallocated, seen.pending.shortage, repair);
  return {};
}

}  // namespace

Result<Reconciler::Verdict> Reconciler::recheckLocked(const RecordKey& key) {
  return pool_.withTransaction([&](mysql::Connection& db) -> Result<Verdict> {
    auto row = readStock(db, key, /*for_update=*/true);
    if (!row) return std::unexpected(row.error());
    if (!row->has_value()) return Verdict::kNotLoaded;  // deleted meanwhile
    const std::string stream = redis::keys::outboxFor(redis::keys::usable(key));
    // Locks the position, so the write-back cannot apply (or skip past) events meanwhile.
    auto position = db.query("SELECT last_id FROM outbox_positions WHERE stream = ? FOR UPDATE",
                             {std::string_view(stream)});
    if (!position) return std::unexpected(position.error());
    const std::string start =
        position->empty() ? std::string("-") : "(" + std::string((*position)[0].text(0));
    Session seen;
    bool consistent = false;
    for (int attempt = 0; attempt < kReconcileSessionAttemptsMax && !consistent; ++attempt) {
      // A busy record aborts the EXEC again and again while holds keep arriving (the SCAN of
      // its holds is the slow part); backing off lets a burst pass. The locks held meanwhile
      // only delay the write-back of this stream, never a hold, which runs in Redis alone.
      if (attempt > 0) std::this_thread::sleep_for(sessionBackoff(attempt));
      std::optional<Error> failed;
      auto session = client_.withConnection(
          redis::keys::usable(key), [&](redis::Connection& redis) -> Result<redis::Reply> {
            auto done = runSession(redis, db, key, **row, start, seen);
            if (!done) {
              failed = done.error();
              // Drops the WATCH (or the open MULTI) so the pooled connection is clean again.
              static_cast<void>(redis.command({"DISCARD"}));
              static_cast<void>(redis.command({"UNWATCH"}));
              return std::unexpected(done.error());
            }
            consistent = *done;
            return redis::Reply{};
          });
      if (!session) return std::unexpected(failed.value_or(session.error()));
    }
    if (!consistent) {
      return std::unexpected(Error{ErrorCode::kUnavailable, "reconcile: record kept changing"});
    }
    if (!seen.loaded) return Verdict::kNotLoaded;
    if (!seen.drift) return seen.pending.any ? Verdict::kLagOnly : Verdict::kEqual;
    const bool repaired = !seen.repair.redis_refused && !seen.repair.db_refused;
    auto recorded = recordDrift(db, key, **row, seen, repaired);
    if (!recorded) return std::unexpected(recorded.error());
    return repaired ? Verdict::kRepaired : Verdict::kRefused;
  });
}

Result<Reconciler::Verdict> Reconciler::reconcileRecord(const RecordKey& key) {
  const auto counters = counterKeys(key);
  auto mget = checked(client_.command(counters[0], {"MGET", counters[0], counters[1], counters[2]}),
                      "MGET");
  if (!mget) return std::unexpected(mget.error());
  auto in_redis = parseCounters(*mget);
  if (!in_redis) return std::unexpected(in_redis.error());
  if (!in_redis->has_value()) return Verdict::kNotLoaded;
  // This first, unlocked read may be stale (a replica lags), since any difference is
  // re-checked on the primary under FOR UPDATE below.
  auto first_read = [&](mysql::Pool& pool) -> Result<std::optional<Quantities>> {
    ALLOT_TRY(lease, pool.acquire());
    return readStock(*lease, key, /*for_update=*/false);
  };
  Result<std::optional<Quantities>> row = std::unexpected(Error{ErrorCode::kUnavailable, ""});
  if (replica_ != nullptr) {
    row = first_read(*replica_);
    if (row) {
      metrics_.replica_reads.fetch_add(1);
    } else {
      metrics_.replica_failures.fetch_add(1);
      spdlog::warn("reconcile: the replica failed ({}); reading the primary", row.error().message);
    }
  }
  if (!row) row = first_read(pool_);
  if (!row) return std::unexpected(row.error());
  if (row->has_value() && agrees(**row, Pending{}, **in_redis)) return Verdict::kEqual;
  return recheckLocked(key);
}

namespace {

// One page of record keys after `after` (of one dept, or of all), in key order. The lease is
// returned before the records are examined, which take connections of their own.
Result<std::vector<RecordKey>> fetchPage(mysql::Pool& pool, bool one_dept, const RecordKey& after) {
  auto lease = pool.acquire();
  if (!lease) return std::unexpected(lease.error());
  auto rows = one_dept ? (*lease)->query(kPageDeptSql,
                                         {after.dept_no, after.goods_no, after.warehouse_no,
                                          after.stock_status, after.stock_type, after.goods_level})
                       : (*lease)->query(kPageAllSql, keyParams(after));
  if (!rows) return std::unexpected(rows.error());
  std::vector<RecordKey> keys;
  keys.reserve(rows->size());
  for (const auto& row : *rows) {
    keys.push_back(RecordKey{std::string(row.text(0)), std::string(row.text(1)),
                             std::string(row.text(2)), std::string(row.text(3)),
                             std::string(row.text(4)), std::string(row.text(5))});
  }
  return keys;
}

}  // namespace

void Reconciler::countInMetrics(const ReconcileReport& report) {
  metrics_.records_checked.fetch_add(static_cast<std::uint64_t>(report.checked));
  metrics_.mismatched.fetch_add(static_cast<std::uint64_t>(report.mismatched));
  metrics_.repaired.fetch_add(static_cast<std::uint64_t>(report.repaired));
  metrics_.lag_only.fetch_add(static_cast<std::uint64_t>(report.lag_only));
  metrics_.records_failed.fetch_add(static_cast<std::uint64_t>(report.failed));
}

Result<ReconcileReport> Reconciler::reconcile(std::optional<std::string> dept_no) {
  metrics_.runs.fetch_add(1);
  ReconcileReport report;
  RecordKey after{dept_no.value_or(""), "", "", "", "", ""};
  for (;;) {
    auto page = fetchPage(pool_, dept_no.has_value(), after);
    if (!page) {
      metrics_.run_failures.fetch_add(1);
      return std::unexpected(page.error());
    }
    for (const auto& key : *page) {
      after = key;
      auto verdict = reconcileRecord(key);
      if (!verdict && verdict.error().code == ErrorCode::kUnavailable &&
          !client_.command(redis::keys::usable(key), {"PING"})) {
        // Redis is down or timed out: every record after this one would fail the same way,
        // one timeout each, and a report of the rest would claim a check not made. (A record
        // that is only busy, one that kept changing under a sale or a lock wait in the
        // database, is counted as failed below and the run goes on; the database being down
        // fails the next page.)
        metrics_.run_failures.fetch_add(1);
        countInMetrics(report);  // what it found and repaired before it stopped
        return fail(ErrorCode::kUnavailable,
                    fmt::format("reconciliation stopped at record {} after {} checked: {}; retry",
                                key.index(), report.checked, verdict.error().message));
      }
      if (!verdict) {
        spdlog::warn("reconcile: {}: {}", key.index(), verdict.error().message);
        ++report.failed;
        continue;
      }
      if (*verdict == Verdict::kNotLoaded) continue;
      ++report.checked;
      if (*verdict == Verdict::kLagOnly) ++report.lag_only;
      if (*verdict == Verdict::kRepaired || *verdict == Verdict::kRefused) ++report.mismatched;
      if (*verdict == Verdict::kRepaired) ++report.repaired;
    }
    if (page->size() < kReconcilePageRows) break;
  }
  if (write_back_ != nullptr) {
    report.writeback_lag_ms = write_back_->metrics().oldest_unapplied_age_ms.load();
  }
  countInMetrics(report);
  return report;
}

}  // namespace allot::workers
