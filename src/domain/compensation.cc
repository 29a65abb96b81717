#include "domain/compensation.h"

#include <algorithm>

namespace allot {

CompensationProcessor::CompensationProcessor(HotStore& hot, CompensationQueue& queue,
                                             ServiceCounters& counters,
                                             CompensationOptions options)
    : hot_(hot), queue_(queue), counters_(counters), options_(options) {}

Result<std::size_t> CompensationProcessor::runOnce() {
  ALLOT_TRY(due, queue_.takeDue(options_.batch_size, options_.lease_ms));
  for (const auto& item : due) {
    auto applied = apply(item.task);
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

Result<void> CompensationProcessor::apply(const CompensationTask& task) {
  ReleaseKind kind;
  if (task.kind == "release_undo") {
    kind = ReleaseKind::kUndo;
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

}  // namespace allot
