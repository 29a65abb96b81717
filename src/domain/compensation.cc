#include "domain/compensation.h"

#include <algorithm>
#include <mutex>

namespace allot {

CompensationProcessor::CompensationProcessor(HotStore& hot, CompensationQueue& queue,
                                             ServiceCounters& counters, CompensationOptions options)
    : hot_(hot), queue_(queue), counters_(counters), options_(options) {}

Result<std::size_t> CompensationProcessor::runOnce(const std::optional<std::string>& dept_no) {
  std::lock_guard lock(running_);
  ALLOT_TRY(due, queue_.takeDue(options_.batch_size, options_.lease_ms, dept_no));
  for (const auto& item : due) {
    auto applied = apply(item.task, item.id);
    if (applied) {
      ALLOT_TRY_VOID(queue_.complete(item.id));
      counters_.compensations_applied.fetch_add(1);
      continue;
    }
    counters_.compensation_attempts_failed.fetch_add(1);
    const int attempts = item.attempts + 1;
    const bool give_up = attempts >= options_.attempts_max;
    if (give_up) counters_.compensations_given_up.fetch_add(1);
    const int doublings = std::min(attempts - 1, 20);
    const std::int64_t retry_after =
        std::min(options_.first_retry_ms << doublings, options_.retry_ms_max);
    ALLOT_TRY_VOID(queue_.retryLater(item.id, applied.error().message, retry_after, give_up));
  }
  return due.size();
}

Result<void> CompensationProcessor::apply(const CompensationTask& task, std::int64_t id) {
  ReleaseKind kind;
  if (task.kind == "release_undo") {
    return undo(task, id);
  } else if (task.kind == "release_rollback") {
    kind = ReleaseKind::kRollback;
  } else if (task.kind == "release_deduct") {
    kind = ReleaseKind::kDeduct;
  } else {
    return fail(ErrorCode::kInternal, "unknown compensation kind " + task.kind);
  }
  ALLOT_TRY_VOID(hot_.release(task.key, task.order_no, kind));
  return {};
}

Result<void> CompensationProcessor::undo(const CompensationTask& task, std::int64_t id) {
  const OrderRef order{task.key.dept_no, task.order_no};
  ALLOT_TRY(stored, hot_.readOrder(order));
  // No claim: whoever forgot it (a retry's own undo, or this worker) released its lines
  // first, and a new claim may be committing the same hold right now: nothing to do.
  if (!stored) return {};
  if (stored->status != OrderStatus::kPending) return {};  // committed or ended: not ours
  ALLOT_TRY(lines, decodeLineRequests(order.dept_no, stored->lines_blob));
  const std::string digest = linesDigest(lines);
  // A token of this attempt only: another worker that took the same task (its lease lapsed)
  // must find the claim busy, not renew it as its own.
  const std::string token = "compensation." + std::to_string(id) + "." + std::to_string(random_());
  std::vector<RecordKey> keys{task.key};
  for (const auto& line : lines) {
    if (line.key != task.key) keys.push_back(line.key);
  }
  // Every line of the dead claim (this task's and any other) is released, the claim renewed
  // before each, so one that a retry took over meanwhile is left to it; then it is forgotten.
  bool released_in_redis = false;
  for (const auto& key : keys) {
    ALLOT_TRY(claim, hot_.claimOrder(order, stored->lines_blob, digest, token, clock_.nowMs()));
    switch (claim.kind) {
      case ClaimOutcome::Kind::kClaimed: break;
      case ClaimOutcome::Kind::kBusy:
        return fail(ErrorCode::kUnavailable,
                    "order " + order.order_no + " is being allocated by a live call");
      case ClaimOutcome::Kind::kReplay:
      case ClaimOutcome::Kind::kConflict:
      case ClaimOutcome::Kind::kRolledBack: return {};  // committed or ended meanwhile
    }
    auto released = hot_.release(key, order.order_no, ReleaseKind::kUndo);
    if (released) {
      released_in_redis = released_in_redis || released->released;
      continue;
    }
    // The merchant moved to the MySQL path with the order's lines held (its call still ran
    // during the switch): its records are out of Redis, and, with the claim ours, the lines
    // are released in the database, where they are now, all at once. Not after a line was
    // released here (its event may not be applied yet), nor when Redis did not answer.
    ALLOT_TRY(loaded, hot_.readRecord(key));
    if (loaded || released_in_redis) return std::unexpected(released.error());
    ALLOT_TRY(in_database, queue_.releaseUnansweredInDatabase(order));
    if (!in_database) return std::unexpected(released.error());
    break;
  }
  ALLOT_TRY_VOID(hot_.abortOrder(order, token));
  return {};
}

}  // namespace allot
