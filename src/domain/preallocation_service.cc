#include "domain/preallocation_service.h"

#include <algorithm>
#include <random>

#include "core/assert.h"

namespace allot {

namespace {

// A Redis call that failed after this long timed out: the server is stalled (a refused or
// reset connection fails at once). A retry would wait as long again, and the command may
// still run when the server resumes.
constexpr std::int64_t kStalledMs = 500;
// How long a call spends on inline releases before it leaves the rest to their tasks.
constexpr std::int64_t kInlineReleaseBudgetMs = 4'000;

}  // namespace

struct PreallocationService::HeldLines {
  std::vector<LineOutcome> outcomes;  // one per line held so far, in request order
  std::optional<std::size_t> first_short;
  std::int64_t first_short_available = 0;
  bool rolled_back = false;  // a rollback of this order won the race
  bool lost_claim = false;   // the lease expired and another caller took the order over
};

// The claim of a pending order, renewed while its owner works. A caller that cannot renew it
// has been taken over (its lease expired): from then on the lines belong to the new owner,
// and this caller must neither undo nor commit them.
struct PreallocationService::Lease {
  OrderRef order;
  std::string blob;
  std::string digest;
  std::string token;
  std::int64_t renewed_at_ms = 0;
};

PreallocationService::PreallocationService(HotStore& hot, Ledger& ledger, Clock& clock,
                                           ServiceCounters& counters, ServiceOptions options)
    : hot_(hot), ledger_(ledger), clock_(clock), counters_(counters), options_(options) {
  if (options_.coalesce_holds) {
    coalescer_ = std::make_unique<HoldCoalescer>(hot_, counters_, limits::kHoldBatchMax,
                                                 options_.hold_calls_in_flight);
  }
  std::random_device device;
  token_seed_ = (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

std::string PreallocationService::newToken() {
  return std::to_string(token_seed_) + "." + std::to_string(token_sequence_.fetch_add(1));
}

// ---- preallocate ----

Result<PreallocateOutcome> PreallocationService::preallocate(const PreallocateRequest& request) {
  ALLOT_ASSERT(!request.lines.empty() && request.lines.size() <= limits::kOrderLinesMax);
  Lease lease{{request.dept_no, request.order_no},
              encodeLineRequests(request.lines),
              linesDigest(request.lines),
              newToken(),
              clock_.nowMs()};
  const std::int64_t claim_started = clock_.nowMs();
  auto claimed = claimWithWait(lease);
  if (!claimed) {
    // Redis timed out on the claim, which it may still make (a stalled server runs the
    // command when it resumes): no call would ever finish or forget that claim.
    if (clock_.nowMs() - claim_started >= kStalledMs) {
      recordUndo(request, "its claim was not answered: " + claimed.error().message);
    }
    return std::unexpected(claimed.error());
  }
  const ClaimOutcome& claim = *claimed;
  switch (claim.kind) {
    case ClaimOutcome::Kind::kClaimed: break;
    case ClaimOutcome::Kind::kReplay: return replayAnswer(request, claim);
    case ClaimOutcome::Kind::kConflict: return std::unexpected(orderConflict(request.order_no));
    case ClaimOutcome::Kind::kRolledBack: return std::unexpected(orderRolledBack(request.order_no));
    case ClaimOutcome::Kind::kBusy:
      counters_.busy_waits_exhausted.fetch_add(1);
      return fail(ErrorCode::kUnavailable,
                  "order " + request.order_no + " is being allocated by another call; retry");
  }
  auto held = holdLines(request, lease);
  if (!held) {
    // The outcome of the failing line is unknown: undo every line (a release is idempotent).
    (void)undoOrder(request, lease);
    return std::unexpected(held.error());
  }
  return finishOrder(request, *held, lease);
}

Result<PreallocateOutcome> PreallocationService::replayAnswer(const PreallocateRequest& request,
                                                              const ClaimOutcome& claim) {
  ALLOT_TRY(answer,
            replayedAnswer(request.dept_no, request.order_no, claim.status, claim.answer_blob));
  counters_.orders_replayed.fetch_add(1);
  return answer;
}

Result<ClaimOutcome> PreallocationService::claimWithWait(Lease& lease) {
  const std::int64_t deadline = clock_.nowMs() + options_.busy_wait_ms;
  std::int64_t pause_ms = 2;
  while (true) {
    ALLOT_TRY(claim,
              hot_.claimOrder(lease.order, lease.blob, lease.digest, lease.token, clock_.nowMs()));
    lease.renewed_at_ms = clock_.nowMs();
    if (claim.kind != ClaimOutcome::Kind::kBusy || clock_.nowMs() >= deadline) return claim;
    clock_.sleepMs(pause_ms);
    pause_ms = std::min<std::int64_t>(pause_ms * 2, 50);
  }
}

bool PreallocationService::stillOwner(Lease& lease, bool force, bool* unknown) {
  const std::int64_t now = clock_.nowMs();
  if (!force && now - lease.renewed_at_ms < options_.order_lease_ms / 6) return true;
  auto claim = hot_.claimOrder(lease.order, lease.blob, lease.digest, lease.token, now);
  if (!claim) {
    // Redis did not answer: the claim is still ours while well inside the last lease.
    const bool inside = now - lease.renewed_at_ms < options_.order_lease_ms / 2;
    if (!inside && unknown != nullptr) *unknown = true;
    return inside;
  }
  if (claim->kind != ClaimOutcome::Kind::kClaimed) return false;
  lease.renewed_at_ms = now;
  return true;
}

bool PreallocationService::undoOrder(const PreallocateRequest& request, Lease& lease) {
  bool unknown = false;
  if (!stillOwner(lease, /*force=*/true, &unknown)) {
    // The new owner decides about the lines; when Redis could not say whether there is one,
    // the undo task does, later (it leaves a live owner's claim alone).
    if (unknown) recordUndo(request, "Redis did not answer while the order was undone");
    return false;
  }
  if (releaseLines(request.order_no, keysOf(request), ReleaseKind::kUndo)) {
    // Every line is released (or has its task, which forgets the claim too): a claim left
    // now would keep the order "being allocated" for good.
    if (auto aborted = hot_.abortOrder(lease.order, lease.token); !aborted) {
      recordUndo(request, "its claim could not be dropped: " + aborted.error().message);
    }
  }
  return true;
}

void PreallocationService::recordUndo(const PreallocateRequest& request,
                                      const std::string& reason) {
  recordCompensation({"release_undo", request.lines.front().key, request.order_no, reason});
}

void PreallocationService::recordCompensation(const CompensationTask& task) {
  if (ledger_.recordCompensation(task)) {
    counters_.compensations_recorded.fetch_add(1);
  } else {
    counters_.compensations_unrecorded.fetch_add(1);
  }
}

std::vector<RecordKey> PreallocationService::keysOf(const PreallocateRequest& request) {
  std::vector<RecordKey> keys;
  keys.reserve(request.lines.size());
  for (const auto& line : request.lines) keys.push_back(line.key);
  return keys;
}

Result<PreallocationService::HeldLines> PreallocationService::holdLines(
    const PreallocateRequest& request, Lease& lease) {
  HeldLines held;
  for (std::size_t i = 0; i < request.lines.size(); ++i) {
    bool unknown = false;
    if (!stillOwner(lease, /*force=*/false, &unknown)) {
      if (unknown) recordUndo(request, "Redis did not answer while the order was held");
      held.lost_claim = true;
      return held;
    }
    const auto& line = request.lines[i];
    ALLOT_TRY(outcome, holdOne(line, request.order_no, request.allow_shortage));
    switch (outcome.kind) {
      case HoldOutcome::Kind::kHeld:
      case HoldOutcome::Kind::kAlreadyHeld:
        ALLOT_ASSERT(outcome.allocated + outcome.shortage == line.qty);
        held.outcomes.push_back({line.key, line.qty, outcome.allocated, outcome.shortage});
        break;
      case HoldOutcome::Kind::kInsufficient:
        held.first_short = i;
        held.first_short_available = outcome.available;
        return held;
      case HoldOutcome::Kind::kRolledBack: held.rolled_back = true; return held;
      case HoldOutcome::Kind::kNotLoaded:
        return fail(ErrorCode::kUnavailable, "record " + line.key.index() + " could not be loaded");
    }
  }
  return held;
}

Result<HoldOutcome> PreallocationService::holdOne(const LineRequest& line,
                                                  const std::string& order_no,
                                                  bool allow_shortage) {
  for (int attempt = 0; attempt < limits::kLoadAttemptsMax; ++attempt) {
    ALLOT_TRY(outcome, coalescer_ ? coalescer_->hold(line.key, {order_no, line.qty, allow_shortage})
                                  : hot_.hold(line.key, order_no, line.qty, allow_shortage));
    if (outcome.kind != HoldOutcome::Kind::kNotLoaded) return outcome;
    // An unknown record has nothing available; with allow_shortage the shortage is recorded
    // on it, so it must exist.
    ALLOT_TRY(exists, loadRecord(line.key, allow_shortage));
    if (!exists) return HoldOutcome{HoldOutcome::Kind::kInsufficient, 0, 0, 0};
  }
  return HoldOutcome{HoldOutcome::Kind::kNotLoaded};
}

Result<bool> PreallocationService::loadRecord(const RecordKey& key, bool create) {
  ALLOT_TRY(stored, ledger_.findRecord(key));
  if (!stored) {
    if (!create) return false;
    ALLOT_TRY_VOID(ledger_.ensureRecord(key));
    stored = Quantities{};
  }
  ALLOT_TRY(loaded_now, hot_.loadRecord(key, *stored));
  if (loaded_now) counters_.record_loads.fetch_add(1);
  return true;
}

Result<PreallocateOutcome> PreallocationService::finishOrder(const PreallocateRequest& request,
                                                             HeldLines& held, Lease& lease) {
  auto taken_over = [&]() -> Result<PreallocateOutcome> {
    // A rollback that landed meanwhile ended the order (and releases its lines): that is the
    // answer a retry would get, so it is given now.
    if (auto now = hot_.readOrder(lease.order);
        now && *now && (*now)->status == OrderStatus::kRolledBack) {
      return std::unexpected(orderRolledBack(request.order_no));
    }
    return fail(ErrorCode::kUnavailable,
                "order " + request.order_no + " was taken over by another call; retry");
  };
  auto rolled_back = [&] {
    // Every line gets the rollback's tombstone, so no hold of this order can survive it.
    releaseLines(request.order_no, keysOf(request), ReleaseKind::kRollback);
    return std::unexpected(orderRolledBack(request.order_no));
  };
  if (held.lost_claim) return taken_over();
  if (held.rolled_back) {
    (void)hot_.abortOrder(lease.order, lease.token);  // only a claim left pending by us
    return rolled_back();
  }
  if (held.first_short) {
    auto short_lines = collectShortLines(request, *held.first_short, held.first_short_available);
    if (!undoOrder(request, lease)) return taken_over();
    counters_.orders_refused.fetch_add(1);
    return PreallocateRefusal{std::move(short_lines)};
  }
  const bool any_shortage = std::any_of(held.outcomes.begin(), held.outcomes.end(),
                                        [](const auto& line) { return line.shortage > 0; });
  const auto status = any_shortage ? OrderStatus::kShortage : OrderStatus::kAllocated;
  ALLOT_TRY(committed,
            hot_.commitOrder(lease.order, status, encodeLineOutcomes(held.outcomes), lease.token));
  switch (committed) {
    case CommitOutcome::kCommitted: break;
    case CommitOutcome::kRolledBack: return rolled_back();
    case CommitOutcome::kNotOwner: return taken_over();
  }
  counters_.orders_allocated.fetch_add(1);
  return OrderAnswer{request.order_no, status, false, std::move(held.outcomes)};
}

std::vector<ShortLine> PreallocationService::collectShortLines(const PreallocateRequest& request,
                                                               std::size_t first_short,
                                                               std::int64_t first_available) {
  // The first short line is known exactly; the lines after it were not tried, so they are
  // named when a read shows them short too (informational: nothing is held on them): from
  // Redis, or for the records not loaded, from the database in one read (as GET /v1/stock
  // reads a record). This runs before the undo, so the held lines wait for it. A record
  // never seen has nothing available.
  std::vector<ShortLine> short_lines;
  const auto& first = request.lines[first_short];
  short_lines.push_back({first.key, first.qty, first_available});
  std::vector<std::optional<std::int64_t>> available(request.lines.size());
  std::vector<std::size_t> not_loaded;
  std::vector<RecordKey> not_loaded_keys;
  for (std::size_t i = first_short + 1; i < request.lines.size(); ++i) {
    const std::int64_t started = clock_.nowMs();
    auto hot = hot_.readRecord(request.lines[i].key);
    if (!hot) {
      if (clock_.nowMs() - started >= kStalledMs) break;  // stalled: the rest would wait too
      continue;                                           // unknown: not named
    }
    if (*hot) {
      available[i] = (*hot)->available();
    } else {
      not_loaded.push_back(i);
      not_loaded_keys.push_back(request.lines[i].key);
    }
  }
  if (!not_loaded.empty()) {
    if (auto rows = ledger_.findRecords(not_loaded_keys)) {
      for (std::size_t j = 0; j < not_loaded.size(); ++j) {
        available[not_loaded[j]] = (*rows)[j] ? (*rows)[j]->available() : 0;
      }
    }
  }
  for (std::size_t i = first_short + 1; i < request.lines.size(); ++i) {
    const auto& line = request.lines[i];
    if (available[i] && *available[i] < line.qty) {
      short_lines.push_back({line.key, line.qty, *available[i]});
    }
  }
  return short_lines;
}

// ---- rollback and deduct: one shared path that ends an order and releases its lines ----

Result<EndAnswer> PreallocationService::rollback(const OrderRef& order) {
  return endOrder(order, ReleaseKind::kRollback);
}

Result<EndAnswer> PreallocationService::deduct(const OrderRef& order) {
  return endOrder(order, ReleaseKind::kDeduct);
}

Result<EndAnswer> PreallocationService::endOrder(const OrderRef& order, ReleaseKind kind) {
  ALLOT_ASSERT(kind != ReleaseKind::kUndo);
  const auto end_status =
      kind == ReleaseKind::kRollback ? OrderStatus::kRolledBack : OrderStatus::kDeducted;
  const std::int64_t deadline = clock_.nowMs() + options_.busy_wait_ms;
  while (true) {
    ALLOT_TRY(end, hot_.endOrder(order, kind));
    switch (end.kind) {
      case EndOutcome::Kind::kNotFound:
        return fail(ErrorCode::kNotFound, "order " + order.order_no + " is unknown");
      case EndOutcome::Kind::kRolledBack: return std::unexpected(orderRolledBack(order.order_no));
      case EndOutcome::Kind::kDeducted:
        return fail(ErrorCode::kOrderDeducted, "order " + order.order_no + " was deducted");
      case EndOutcome::Kind::kBusy:
        if (clock_.nowMs() >= deadline) {
          counters_.busy_waits_exhausted.fetch_add(1);
          return fail(ErrorCode::kUnavailable,
                      "order " + order.order_no + " is being allocated; retry");
        }
        clock_.sleepMs(10);
        continue;
      case EndOutcome::Kind::kStarted:
      case EndOutcome::Kind::kReplay: break;
    }
    const bool replayed = end.kind == EndOutcome::Kind::kReplay;
    if (!replayed || !end.released) {
      ALLOT_TRY(lines, decodeLineRequests(order.dept_no, end.lines_blob));
      std::vector<RecordKey> keys;
      for (const auto& line : lines) keys.push_back(line.key);
      if (!releaseLines(order.order_no, keys, kind)) {
        return fail(ErrorCode::kUnavailable,
                    "order " + order.order_no + " is " + std::string(orderStatusName(end_status)) +
                        " but some lines are not released yet; retry to finish");
      }
      ALLOT_TRY_VOID(hot_.markOrderReleased(order));
    }
    if (!replayed) {
      (kind == ReleaseKind::kRollback ? counters_.rollbacks : counters_.deducts).fetch_add(1);
    }
    return EndAnswer{order.order_no, end_status, replayed};
  }
}

bool PreallocationService::releaseLines(const std::string& order_no,
                                        const std::vector<RecordKey>& keys, ReleaseKind kind) {
  static constexpr const char* kKindNames[] = {"release_undo", "release_rollback",
                                               "release_deduct"};
  // A failure that came at once is retried; a timeout is not. Every line is tried while the
  // budget lasts (on Redis Cluster a stalled node stalls only its own lines); the lines left
  // then get their tasks untried, so the answer comes within a few timeouts.
  const std::int64_t give_up_at = clock_.nowMs() + kInlineReleaseBudgetMs;
  bool all_released = true;
  for (const auto& key : keys) {
    Result<ReleaseOutcome> outcome = fail(
        ErrorCode::kUnavailable, "not tried: the releases before it took too long (Redis stalled)");
    for (int attempt = 0; attempt < options_.reverse_attempts && clock_.nowMs() < give_up_at;
         ++attempt) {
      if (attempt > 0) {
        counters_.reverse_retries.fetch_add(1);
        clock_.sleepMs(5 << attempt);
      }
      const std::int64_t started = clock_.nowMs();
      outcome = hot_.release(key, order_no, kind);
      if (outcome || clock_.nowMs() - started >= kStalledMs) break;
    }
    if (outcome) continue;
    all_released = false;
    recordCompensation(
        {kKindNames[static_cast<int>(kind)], key, order_no, outcome.error().message});
  }
  return all_released;
}

// ---- reads ----

Result<OrderAnswer> PreallocationService::findOrder(const OrderRef& order) {
  ALLOT_TRY(stored, hot_.readOrder(order));
  if (!stored) return fail(ErrorCode::kNotFound, "order " + order.order_no + " is unknown");
  if (stored->status == OrderStatus::kPending) {
    return fail(ErrorCode::kUnavailable, "order " + order.order_no + " is being allocated; retry");
  }
  ALLOT_TRY(lines, decodeLineOutcomes(order.dept_no, stored->answer_blob));
  return OrderAnswer{order.order_no, stored->status, false, std::move(lines)};
}

Result<Quantities> PreallocationService::readRecord(const RecordKey& key) {
  ALLOT_TRY(hot, hot_.readRecord(key));
  if (hot) return *hot;
  ALLOT_TRY(stored, ledger_.findRecord(key));
  if (stored) return *stored;
  return fail(ErrorCode::kNotFound, "record " + key.index() + " was never seen");
}

Result<void> PreallocationService::checkReady() {
  if (auto hot = hot_.ping(); !hot) {
    return fail(ErrorCode::kUnavailable, "redis: " + hot.error().message);
  }
  if (auto db = ledger_.ping(); !db) {
    return fail(ErrorCode::kUnavailable, "database: " + db.error().message);
  }
  return {};
}

// ---- adjust ----

Result<Quantities> PreallocationService::adjust(const AdjustRequest& request,
                                                const std::string& digest) {
  ALLOT_ASSERT(request.delta.has_value() != request.on_hand.has_value());
  const auto& key = request.key;
  ALLOT_TRY(claim, ledger_.claimAdjustment(key, request.ref, digest));
  switch (claim.kind) {
    case AdjustmentClaim::Kind::kConflict:
      return fail(ErrorCode::kIdempotencyConflict,
                  "ref " + request.ref + " was already used with another body");
    case AdjustmentClaim::Kind::kReplay:
      ALLOT_ASSERT(claim.answer.has_value());
      return *claim.answer;
    case AdjustmentClaim::Kind::kNew:
    case AdjustmentClaim::Kind::kResume: break;
  }
  const bool increase = request.delta.has_value() && *request.delta > 0;
  const AdjustChange change = request.delta
                                  ? AdjustChange{AdjustChange::Mode::kDelta, *request.delta}
                                  : AdjustChange{AdjustChange::Mode::kSet, *request.on_hand};
  // A decrease of a record that exists nowhere is refused without creating it; a delta of 0
  // creates it at zero, as a count of 0 does.
  ALLOT_TRY(exists, loadRecord(key, /*create=*/!request.delta || *request.delta >= 0));
  if (!exists) {
    (void)ledger_.dropAdjustmentClaim(key.dept_no, request.ref);
    return fail(ErrorCode::kInsufficientStock, "record " + key.index() + " has no stock");
  }
  // An increase is recorded in the database first, so Redis never offers stock the record
  // does not have; if Redis then fails, the database wins and a retry (or the compensation
  // worker) finishes the Redis step. Everything else goes to Redis first, where the check
  // against available is atomic; if the database then fails, Redis wins and the adjust event
  // in the outbox carries the change to the database (applied once per ref).
  if (increase) {
    // The database has no upper bound of its own: check it here, before its step.
    ALLOT_TRY(current, hot_.readRecord(key));
    if (current && current->on_hand > limits::kOnHandMax - *request.delta) {
      (void)ledger_.dropAdjustmentClaim(key.dept_no, request.ref);
      return fail(ErrorCode::kInvalidRequest, "on_hand of " + key.index() + " would exceed " +
                                                  std::to_string(limits::kOnHandMax));
    }
    ALLOT_TRY_VOID(ledger_.applyAdjustment(key, request.ref, *request.delta));
  }
  ALLOT_TRY(outcome, adjustInRedis(key, request.ref, change));
  if (outcome.kind == HotAdjustOutcome::Kind::kInsufficient) {
    (void)ledger_.dropAdjustmentClaim(key.dept_no, request.ref);
    return fail(ErrorCode::kInsufficientStock,
                "record " + key.index() + " has " + std::to_string(outcome.after.available()) +
                    " available; the change would make available negative");
  }
  if (!increase) {
    if (auto applied = ledger_.applyAdjustment(key, request.ref, outcome.delta); !applied) {
      // Redis accepted the change, so the database refusing it means the database lags (an
      // earlier change still in the outbox): not the caller's problem, and not final.
      return fail(ErrorCode::kUnavailable,
                  "the change is applied in Redis; the database has not caught up yet (" +
                      applied.error().message + "); retry with the same ref");
    }
  }
  ALLOT_TRY(first_answer, ledger_.completeAdjustment(key.dept_no, request.ref, outcome.after));
  counters_.adjusts.fetch_add(1);
  return first_answer;
}

Result<HotAdjustOutcome> PreallocationService::adjustInRedis(const RecordKey& key,
                                                             const std::string& ref,
                                                             AdjustChange change) {
  for (int attempt = 0; attempt < limits::kLoadAttemptsMax; ++attempt) {
    ALLOT_TRY(outcome, hot_.adjust(key, ref, change));
    if (outcome.kind != HotAdjustOutcome::Kind::kNotLoaded) {
      ALLOT_ASSERT(outcome.after.valid());
      return outcome;
    }
    ALLOT_TRY_VOID(loadRecord(key, /*create=*/true));
  }
  return fail(ErrorCode::kUnavailable, "record " + key.index() + " could not be loaded");
}

}  // namespace allot
