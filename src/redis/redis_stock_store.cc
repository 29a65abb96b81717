#include "redis/redis_stock_store.h"

#include <algorithm>
#include <optional>
#include <string_view>

#include "core/assert.h"
#include "core/decimal.h"
#include "core/limits.h"
#include "redis/keys.h"
#include "redis/scripts.h"

namespace allot::redis {

namespace {

Error unexpected(std::string_view script, const Reply& reply) {
  std::string message = "unexpected reply from " + std::string(script);
  if (reply.isError()) message += ": " + reply.str;
  return Error{ErrorCode::kInternal, std::move(message)};
}

// A script reply that must be an array of at least `count` elements.
Result<const std::vector<Reply>*> arrayOf(std::string_view script, const Reply& reply,
                                          std::size_t count) {
  if (!reply.isArray() || reply.elements.size() < count) {
    return std::unexpected(unexpected(script, reply));
  }
  return &reply.elements;
}

std::int64_t integerAt(const std::vector<Reply>& elements, std::size_t i) {
  return elements[i].isInteger() ? elements[i].integer : -1;
}

std::string stringAt(const std::vector<Reply>& elements, std::size_t i) {
  return elements[i].isString() ? elements[i].str : std::string();
}

bool parseCounter(const Reply& reply, std::int64_t& out) {
  if (reply.isNil()) {
    out = 0;
    return true;
  }
  if (!reply.isString()) return false;
  const auto value = readDecimal<std::int64_t>(reply.str);
  if (value) out = *value;
  return value.has_value();
}

std::string decimal(std::int64_t value) { return std::to_string(value); }

std::string_view releaseKindName(ReleaseKind kind) {
  switch (kind) {
    case ReleaseKind::kUndo: return "undo";
    case ReleaseKind::kRollback: return "rollback";
    case ReleaseKind::kDeduct: return "deduct";
  }
  return "undo";
}

}  // namespace

struct RedisStockStore::Scripts {
  const Script& hold = embeddedScript("hold.lua");
  const Script& release = embeddedScript("release.lua");
  const Script& adjust = embeddedScript("adjust.lua");
  const Script& order_claim = embeddedScript("order_claim.lua");
  const Script& order_commit = embeddedScript("order_commit.lua");
  const Script& order_abort = embeddedScript("order_abort.lua");
  const Script& order_end = embeddedScript("order_end.lua");
  const Script& order_released = embeddedScript("order_released.lua");
  const Script& ping = embeddedScript("ping.lua");
  const Script& record_evict = embeddedScript("record_evict.lua");
  const Script& order_load = embeddedScript("order_load.lua");
  const Script& order_read = embeddedScript("order_read.lua");
  const Script& order_migrate = embeddedScript("order_migrate.lua");
  const Script& line_load = embeddedScript("line_load.lua");
};

RedisStockStore::RedisStockStore(Client& client, StoreOptions options)
    : client_(client), options_(options), scripts_(std::make_unique<Scripts>()) {}

RedisStockStore::~RedisStockStore() = default;

Result<Reply> RedisStockStore::evalAppending(const Script& script,
                                             const std::vector<std::string>& keys,
                                             const std::vector<std::string>& args,
                                             std::size_t stream_at) {
  ALLOT_ASSERT(stream_at < keys.size());
  auto reply = client_.evalScript(script, keys, args);
  // Noted even when the outcome is unknown (a timeout): reading a stream with nothing new
  // costs one XRANGE, missing one costs a sweep interval of lag.
  if (options_.on_outbox_append) options_.on_outbox_append(keys[stream_at]);
  return reply;
}

// ---- orders ----

Result<ClaimOutcome> RedisStockStore::claimOrder(const OrderRef& order,
                                                 const std::string& lines_blob,
                                                 const std::string& digest,
                                                 const std::string& token, std::int64_t now_ms) {
  ALLOT_TRY(reply, client_.evalScript(scripts_->order_claim,
                                      {keys::order(order), keys::orderBucket(order)},
                                      {lines_blob, digest, token, decimal(now_ms),
                                       decimal(options_.order_lease_ms), order.order_no}));
  ALLOT_TRY(elements, arrayOf("order_claim", reply, 3));
  ClaimOutcome outcome;
  switch (integerAt(*elements, 0)) {
    case 1: outcome.kind = ClaimOutcome::Kind::kClaimed; break;
    case 2: outcome.kind = ClaimOutcome::Kind::kReplay; break;
    case 3: outcome.kind = ClaimOutcome::Kind::kRolledBack; break;
    case 5: outcome.kind = ClaimOutcome::Kind::kConflict; break;
    case 7: outcome.kind = ClaimOutcome::Kind::kBusy; break;
    default: return std::unexpected(unexpected("order_claim", reply));
  }
  const auto status = orderStatusFromCode(stringAt(*elements, 1));
  if (!status) return std::unexpected(unexpected("order_claim", reply));
  outcome.status = *status;
  outcome.answer_blob = stringAt(*elements, 2);
  return outcome;
}

Result<CommitOutcome> RedisStockStore::commitOrder(const OrderRef& order, OrderStatus status,
                                                   const std::string& answer_blob,
                                                   const std::string& token) {
  ALLOT_ASSERT(status == OrderStatus::kAllocated || status == OrderStatus::kShortage);
  const auto key = keys::order(order);
  ALLOT_TRY(reply, evalAppending(scripts_->order_commit, {key, keys::outboxFor(key)},
                                 {std::string(1, orderStatusCode(status)), answer_blob,
                                  order.dept_no, order.order_no, token},
                                 /*stream_at=*/1));
  if (!reply.isInteger()) return std::unexpected(unexpected("order_commit", reply));
  switch (reply.integer) {
    case 0: return CommitOutcome::kRolledBack;
    case 1: return CommitOutcome::kCommitted;
    case 2: return CommitOutcome::kNotOwner;
    default: return std::unexpected(unexpected("order_commit", reply));
  }
}

Result<void> RedisStockStore::abortOrder(const OrderRef& order, const std::string& token) {
  ALLOT_TRY(reply, client_.evalScript(scripts_->order_abort, {keys::order(order)}, {token}));
  if (!reply.isInteger()) return std::unexpected(unexpected("order_abort", reply));
  return {};
}

Result<EndOutcome> RedisStockStore::endOrder(const OrderRef& order, ReleaseKind kind) {
  ALLOT_ASSERT(kind != ReleaseKind::kUndo);
  const auto key = keys::order(order);
  ALLOT_TRY(reply, evalAppending(
                       scripts_->order_end, {key, keys::outboxFor(key), keys::orderBucket(order)},
                       {std::string(releaseKindName(kind)), decimal(options_.retention_seconds),
                        order.dept_no, order.order_no},
                       /*stream_at=*/1));
  ALLOT_TRY(elements, arrayOf("order_end", reply, 3));
  EndOutcome outcome;
  switch (integerAt(*elements, 0)) {
    case 0: outcome.kind = EndOutcome::Kind::kNotFound; break;
    case 1: outcome.kind = EndOutcome::Kind::kStarted; break;
    case 2: outcome.kind = EndOutcome::Kind::kReplay; break;
    case 3: outcome.kind = EndOutcome::Kind::kRolledBack; break;
    case 6: outcome.kind = EndOutcome::Kind::kDeducted; break;
    case 7: outcome.kind = EndOutcome::Kind::kBusy; break;
    default: return std::unexpected(unexpected("order_end", reply));
  }
  outcome.lines_blob = stringAt(*elements, 1);
  outcome.released = integerAt(*elements, 2) == 1;
  return outcome;
}

Result<void> RedisStockStore::markOrderReleased(const OrderRef& order) {
  ALLOT_TRY(reply, client_.evalScript(scripts_->order_released, {keys::order(order)},
                                      {decimal(options_.retention_seconds)}));
  if (!reply.isInteger()) return std::unexpected(unexpected("order_released", reply));
  return {};
}

Result<std::optional<StoredOrder>> RedisStockStore::readOrder(const OrderRef& order) {
  ALLOT_TRY(reply,
            client_.evalScript(scripts_->order_read, {keys::order(order), keys::orderBucket(order)},
                               {order.order_no}));
  ALLOT_TRY(elements, arrayOf("order_read", reply, 3));
  if ((*elements)[0].isNil()) return std::optional<StoredOrder>();
  const auto status = orderStatusFromCode(stringAt(*elements, 0));
  if (!status) return std::unexpected(unexpected("order_read", reply));
  return std::optional<StoredOrder>(
      StoredOrder{*status, stringAt(*elements, 1), stringAt(*elements, 2)});
}

// ---- records ----

Result<HoldOutcome> RedisStockStore::hold(const RecordKey& key, const std::string& order_no,
                                          std::int64_t qty, bool allow_shortage) {
  ALLOT_TRY(outcomes, holdBatch(key, {HoldRequest{order_no, qty, allow_shortage}}));
  return outcomes.front();
}

Result<std::vector<HoldOutcome>> RedisStockStore::holdBatch(
    const RecordKey& key, const std::vector<HoldRequest>& requests) {
  ALLOT_ASSERT(!requests.empty() && requests.size() <= limits::kHoldBatchMax);
  // hold.lua's layout: KEYS u s l h ob (o rb)..., ARGV index dept (order qty shortage)...
  const auto usable = keys::usable(key);
  std::vector<std::string> script_keys{usable, keys::subtracted(key), keys::ullage(key),
                                       keys::holds(key), keys::outboxFor(usable)};
  std::vector<std::string> args{key.index(), key.dept_no};
  script_keys.reserve(5 + 2 * requests.size());
  args.reserve(2 + 3 * requests.size());
  for (const auto& request : requests) {
    ALLOT_ASSERT(request.qty >= limits::kLineQtyMin && request.qty <= limits::kLineQtyMax);
    script_keys.push_back(keys::operate(key, request.order_no));
    script_keys.push_back(keys::rollbackTombstone(key, request.order_no));
    args.push_back(request.order_no);
    args.push_back(decimal(request.qty));
    args.push_back(request.allow_shortage ? "1" : "0");
  }
  ALLOT_TRY(reply, evalAppending(scripts_->hold, script_keys, args, /*stream_at=*/4));
  ALLOT_TRY(elements, arrayOf("hold", reply, 4 * requests.size()));
  std::vector<HoldOutcome> outcomes(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    auto& outcome = outcomes[i];
    switch (integerAt(*elements, 4 * i)) {
      case 0: outcome.kind = HoldOutcome::Kind::kInsufficient; break;
      case 1: outcome.kind = HoldOutcome::Kind::kHeld; break;
      case 2: outcome.kind = HoldOutcome::Kind::kAlreadyHeld; break;
      case 3: outcome.kind = HoldOutcome::Kind::kRolledBack; break;
      case 4: outcome.kind = HoldOutcome::Kind::kNotLoaded; break;
      default: return std::unexpected(unexpected("hold", reply));
    }
    outcome.allocated = integerAt(*elements, 4 * i + 1);
    outcome.shortage = integerAt(*elements, 4 * i + 2);
    outcome.available = integerAt(*elements, 4 * i + 3);
  }
  return outcomes;
}

Result<ReleaseOutcome> RedisStockStore::release(const RecordKey& key, const std::string& order_no,
                                                ReleaseKind kind) {
  const auto usable = keys::usable(key);
  ALLOT_TRY(reply,
            evalAppending(scripts_->release,
                          {usable, keys::subtracted(key), keys::ullage(key), keys::holds(key),
                           keys::operate(key, order_no), keys::rollbackTombstone(key, order_no),
                           keys::deductionRecord(key), keys::outboxFor(usable), keys::fence(key)},
                          {key.index(), key.dept_no, order_no, std::string(releaseKindName(kind)),
                           decimal(options_.retention_seconds)},
                          /*stream_at=*/7));
  ALLOT_TRY(elements, arrayOf("release", reply, 3));
  const auto released = integerAt(*elements, 0);
  if (released == -1 && (*elements)[0].isInteger()) {
    return fail(ErrorCode::kUnavailable, "record " + key.index() +
                                             " is not in Redis (its merchant moved to the "
                                             "MySQL path); retry");
  }
  if (released != 0 && released != 1) return std::unexpected(unexpected("release", reply));
  return ReleaseOutcome{released == 1, integerAt(*elements, 1), integerAt(*elements, 2)};
}

Result<HotAdjustOutcome> RedisStockStore::adjust(const RecordKey& key, const std::string& ref,
                                                 AdjustChange change) {
  const auto usable = keys::usable(key);
  const bool set = change.mode == AdjustChange::Mode::kSet;
  ALLOT_TRY(reply, evalAppending(
                       scripts_->adjust,
                       {usable, keys::subtracted(key), keys::ullage(key), keys::adjustRef(key, ref),
                        keys::outboxFor(usable)},
                       {key.index(), key.dept_no, ref, set ? "set" : "delta", decimal(change.value),
                        decimal(options_.retention_seconds), decimal(limits::kOnHandMax)},
                       /*stream_at=*/4));
  ALLOT_TRY(elements, arrayOf("adjust", reply, 5));
  HotAdjustOutcome outcome;
  switch (integerAt(*elements, 0)) {
    case 0: outcome.kind = HotAdjustOutcome::Kind::kInsufficient; break;
    case 1: outcome.kind = HotAdjustOutcome::Kind::kApplied; break;
    case 2: outcome.kind = HotAdjustOutcome::Kind::kReplay; break;
    case 4: outcome.kind = HotAdjustOutcome::Kind::kNotLoaded; break;
    case 5:
      return fail(ErrorCode::kInvalidRequest,
                  "on_hand of " + key.index() + " would exceed " + decimal(limits::kOnHandMax));
    default: return std::unexpected(unexpected("adjust", reply));
  }
  outcome.delta = integerAt(*elements, 1);
  const std::int64_t usable_after = integerAt(*elements, 2);
  const std::int64_t subtracted = integerAt(*elements, 3);
  outcome.after = Quantities{usable_after + subtracted, subtracted, integerAt(*elements, 4)};
  return outcome;
}

Result<std::optional<Quantities>> RedisStockStore::readRecord(const RecordKey& key) {
  const auto usable = keys::usable(key);
  ALLOT_TRY(reply,
            client_.command(usable, {"MGET", usable, keys::subtracted(key), keys::ullage(key)}));
  ALLOT_TRY(elements, arrayOf("MGET record", reply, 3));
  if ((*elements)[0].isNil()) return std::optional<Quantities>();
  std::int64_t available = 0, subtracted = 0, ullage = 0;
  if (!parseCounter((*elements)[0], available) || !parseCounter((*elements)[1], subtracted) ||
      !parseCounter((*elements)[2], ullage)) {
    return std::unexpected(unexpected("MGET record", reply));
  }
  return std::optional<Quantities>(Quantities{available + subtracted, subtracted, ullage});
}

Result<bool> RedisStockStore::loadRecord(const RecordKey& key, const Quantities& from_db) {
  return load(key, from_db, /*unfence=*/false);
}

Result<bool> RedisStockStore::reloadRecord(const RecordKey& key, const Quantities& from_db) {
  return load(key, from_db, /*unfence=*/true);
}

Result<bool> RedisStockStore::load(const RecordKey& key, const Quantities& from_db, bool unfence) {
  const auto usable = keys::usable(key);
  const auto fence = keys::fence(key);
  // The seed's initialisation lock: WATCH the usable key, load only when it is absent, and let
  // EXEC fail when anyone touched it meanwhile; then look again. Newer Redis state always wins.
  // The fence is watched too: a record evicted for the MySQL path is never loaded back, except
  // by the switch to Redis (unfence).
  constexpr std::int64_t kAlreadyLoaded = 0, kLoaded = 1, kRaced = 2, kInvalidRow = 3, kFenced = 4;
  for (int attempt = 0; attempt < limits::kLoadAttemptsMax; ++attempt) {
    ALLOT_TRY(reply, client_.withConnection(usable, [&](Connection& connection) -> Result<Reply> {
      auto give_up = [&](std::int64_t code) -> Result<Reply> {
        ALLOT_TRY_VOID(connection.command({"UNWATCH"}));
        return Reply{Reply::Type::kInteger, code};
      };
      ALLOT_TRY(watched, connection.command({"WATCH", usable, fence}));
      if (watched.isError()) return watched;
      ALLOT_TRY(exists, connection.command({"EXISTS", usable}));
      if (!exists.isInteger()) return exists;
      if (exists.integer == 1) return give_up(kAlreadyLoaded);
      ALLOT_TRY(fenced, connection.command({"EXISTS", fence}));
      if (!fenced.isInteger()) return fenced;
      if (fenced.integer == 1 && !unfence) return give_up(kFenced);
      // Only Redis state newer than the row explains such a row (a decrease applied before
      // the write-back of earlier releases); loading it would break the invariant in Redis.
      if (!from_db.valid()) return give_up(kInvalidRow);
      ALLOT_TRY_VOID(connection.command({"MULTI"}));
      if (fenced.integer == 1) ALLOT_TRY_VOID(connection.command({"DEL", fence}));
      ALLOT_TRY_VOID(connection.command({"SET", usable, decimal(from_db.available())}));
      ALLOT_TRY_VOID(
          connection.command({"SET", keys::subtracted(key), decimal(from_db.preallocated)}));
      ALLOT_TRY_VOID(connection.command({"SET", keys::ullage(key), decimal(from_db.shortage)}));
      ALLOT_TRY(executed, connection.command({"EXEC"}));
      if (executed.isNil()) return Reply{Reply::Type::kInteger, kRaced};
      if (!executed.isArray()) return executed;
      return Reply{Reply::Type::kInteger, kLoaded};
    }));
    if (!reply.isInteger()) return std::unexpected(unexpected("load", reply));
    switch (reply.integer) {
      case kAlreadyLoaded: return false;
      case kLoaded: return true;
      case kRaced: continue;
      case kFenced:
        return fail(ErrorCode::kUnavailable, "record " + key.index() +
                                                 " moved to the MySQL path with its merchant; "
                                                 "retry");
      case kInvalidRow:
        return fail(ErrorCode::kUnavailable,
                    "the database row of " + key.index() + " holds more than it has (on_hand " +
                        decimal(from_db.on_hand) + ", preallocated " +
                        decimal(from_db.preallocated) +
                        ") and Redis has no copy; the reconciliation must repair it; retry");
      default: return std::unexpected(unexpected("load", reply));
    }
  }
  return fail(ErrorCode::kUnavailable, "loading " + key.index() + " kept racing; retry");
}

Result<std::optional<Quantities>> RedisStockStore::evictRecord(const RecordKey& key,
                                                               bool drop_holds) {
  const auto usable = keys::usable(key);
  ALLOT_TRY(reply, client_.evalScript(scripts_->record_evict,
                                      {usable, keys::subtracted(key), keys::ullage(key),
                                       keys::fence(key), keys::holds(key)},
                                      {drop_holds ? "1" : "0"}));
  ALLOT_TRY(elements, arrayOf("record_evict", reply, 1));
  if (integerAt(*elements, 0) == 0) return std::optional<Quantities>();
  if (integerAt(*elements, 0) != 1 || elements->size() < 4) {
    return std::unexpected(unexpected("record_evict", reply));
  }
  const std::int64_t subtracted = integerAt(*elements, 2);
  return std::optional<Quantities>(
      Quantities{integerAt(*elements, 1) + subtracted, subtracted, integerAt(*elements, 3)});
}

Result<void> RedisStockStore::loadOrder(const OrderRef& order, OrderStatus status,
                                        const std::string& lines_blob, const std::string& digest,
                                        const std::string& answer_blob,
                                        const std::vector<LoadedLine>& lines) {
  const bool live = status == OrderStatus::kAllocated || status == OrderStatus::kShortage;
  const auto retention = decimal(options_.retention_seconds);
  ALLOT_TRY_VOID(loadLines(order.order_no, status == OrderStatus::kRolledBack, lines));
  // The order last: its hash is what a replay, rollback or deduct looks at first.
  const bool released = std::none_of(lines.begin(), lines.end(), [](const LoadedLine& line) {
    return line.state == LoadedLine::State::kHeld;
  });
  ALLOT_TRY(reply, client_.evalScript(
                       scripts_->order_load, {keys::order(order), keys::orderBucket(order)},
                       {std::string(1, orderStatusCode(status)), lines_blob, digest, answer_blob,
                        !live && released ? "1" : "0", live ? "0" : retention, order.order_no}));
  if (!reply.isInteger() || reply.integer != 1) {
    return std::unexpected(unexpected("order_load", reply));
  }
  return {};
}

Result<void> RedisStockStore::loadLines(const std::string& order_no, bool rolled_back,
                                        const std::vector<LoadedLine>& lines) {
  const auto retention = decimal(options_.retention_seconds);
  for (const auto& line : lines) {
    const char* state = line.state == LoadedLine::State::kHeld       ? "held"
                        : line.state == LoadedLine::State::kDeducted ? "deducted"
                                                                     : "released";
    ALLOT_TRY(reply, client_.evalScript(scripts_->line_load,
                                        {keys::holds(line.key), keys::operate(line.key, order_no),
                                         keys::rollbackTombstone(line.key, order_no),
                                         keys::deductionRecord(line.key)},
                                        {state, decimal(line.allocated), decimal(line.shortage),
                                         order_no, rolled_back ? "1" : "0", retention}));
    if (!reply.isInteger() || reply.integer != 1) {
      return std::unexpected(unexpected("line_load", reply));
    }
  }
  return {};
}

Result<void> RedisStockStore::ping() {
  ALLOT_TRY(reply, client_.evalScript(scripts_->ping, {}, {}));
  if (!reply.isInteger() || reply.integer != 1) return std::unexpected(unexpected("ping", reply));
  return {};
}

// ---- the order layout before buckets ----

namespace {

// The order of an old key "ord:{<dept>|<order>}"; nullopt for any other key. Neither part can
// hold '|', '{', '}' or ':' (the field charset).
std::optional<OrderRef> legacyOrderOf(std::string_view key) {
  constexpr std::string_view kPrefix = "ord:{";
  if (!key.starts_with(kPrefix) || !key.ends_with('}')) return std::nullopt;
  const std::string_view inner = key.substr(kPrefix.size(), key.size() - kPrefix.size() - 1);
  const auto bar = inner.find('|');
  if (bar == std::string_view::npos || bar == 0 || bar + 1 == inner.size() ||
      inner.find_first_of("|{}:", bar + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  return OrderRef{std::string(inner.substr(0, bar)), std::string(inner.substr(bar + 1))};
}

}  // namespace

Result<std::size_t> RedisStockStore::moveLegacyOrders(std::span<const std::string> old_keys) {
  struct Move {
    const std::string* old_key = nullptr;
    OrderRef order;
  };
  std::vector<Move> moves;
  std::vector<RoutedCommand> reads;
  for (const std::string& old_key : old_keys) {
    auto order = legacyOrderOf(old_key);
    if (!order) continue;
    moves.push_back(Move{&old_key, std::move(*order)});
    reads.push_back({old_key, {"HGETALL", old_key}});
    reads.push_back({old_key, {"PEXPIRETIME", old_key}});
  }
  // 1. Each order's fields and expiry.
  auto read = client_.pipeline(reads);
  std::vector<const std::string*> found;  // the old key of each write
  std::vector<RoutedCommand> writes;
  for (std::size_t i = 0; i < moves.size(); ++i) {
    const Move& move = moves[i];
    ALLOT_TRY(fields, std::move(read[2 * i]));
    if (fields.isError() && fields.str.starts_with("WRONGTYPE")) continue;  // not an order's
    if (!fields.isArray() || fields.elements.size() % 2 != 0) {
      return std::unexpected(unexpected("HGETALL " + *move.old_key, fields));
    }
    ALLOT_TRY(expiry, std::move(read[2 * i + 1]));
    if (!expiry.isInteger() || expiry.integer < -2) {
      return std::unexpected(unexpected("PEXPIRETIME " + *move.old_key, expiry));
    }
    // Empty, or -2 ("no such key"): expired or moved meanwhile.
    if (fields.elements.empty() || expiry.integer == -2) continue;
    std::string order_key = keys::order(move.order);
    std::vector<std::string> argv{"EVALSHA",
                                  scripts_->order_migrate.sha1(),
                                  "2",
                                  order_key,
                                  keys::orderBucket(move.order),
                                  move.order.order_no,
                                  decimal(expiry.integer)};
    for (auto& element : fields.elements) argv.push_back(std::move(element.str));
    writes.push_back({std::move(order_key), std::move(argv)});
    found.push_back(move.old_key);
  }
  // 2. The order in the new layout (unless it is there already: a move run again). A server
  // without the script (restarted, SCRIPT FLUSH) answers NOSCRIPT: the script is loaded on
  // every master and those writes are sent again, once.
  auto wrote = client_.pipeline(writes);
  std::vector<std::size_t> unloaded;
  for (std::size_t i = 0; i < wrote.size(); ++i) {
    if (wrote[i] && wrote[i]->isNoScript()) unloaded.push_back(i);
  }
  if (!unloaded.empty()) {
    ALLOT_TRY(loaded, client_.commandOnMasters({"SCRIPT", "LOAD", scripts_->order_migrate.body()}));
    for (const Reply& reply : loaded) {
      if (!reply.isString() || reply.str != scripts_->order_migrate.sha1()) {
        return std::unexpected(unexpected("SCRIPT LOAD order_migrate", reply));
      }
    }
    std::vector<RoutedCommand> again;
    for (const std::size_t i : unloaded) again.push_back(writes[i]);
    auto rewrote = client_.pipeline(again);
    for (std::size_t j = 0; j < unloaded.size(); ++j) wrote[unloaded[j]] = std::move(rewrote[j]);
  }
  std::vector<RoutedCommand> deletes;
  for (std::size_t i = 0; i < found.size(); ++i) {
    ALLOT_TRY(moved, std::move(wrote[i]));
    if (!moved.isInteger()) return std::unexpected(unexpected("order_migrate", moved));
    deletes.push_back({*found[i], {"DEL", *found[i]}});
  }
  // 3. The old keys, once their orders are in the new layout.
  auto deleted = client_.pipeline(deletes);
  for (std::size_t i = 0; i < deletes.size(); ++i) {
    ALLOT_TRY(reply, std::move(deleted[i]));
    if (!reply.isInteger())
      return std::unexpected(unexpected(deletes[i].argv[0] + " " + deletes[i].routing_key, reply));
  }
  return deletes.size();
}

}  // namespace allot::redis
