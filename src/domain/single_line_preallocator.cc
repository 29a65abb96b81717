#include "domain/single_line_preallocator.h"

#include "core/assert.h"

namespace allot {

namespace {
constexpr std::size_t kQueueReserve = 16;
constexpr std::size_t kSpareQueuesMax = 16;  // storage of finished batches kept for reuse
}  // namespace

SingleLinePreallocator::SingleLinePreallocator(std::unique_ptr<AsyncHotStore> store,
                                               RouteGate& gate, ServiceCounters& counters,
                                               std::size_t batch_max,
                                               std::size_t calls_in_flight_max)
    : store_(std::move(store)),
      gate_(gate),
      counters_(counters),
      batch_max_(batch_max),
      calls_in_flight_max_(calls_in_flight_max) {
  ALLOT_ASSERT(store_ != nullptr);
  ALLOT_ASSERT(batch_max_ >= 1 && batch_max_ <= limits::kHoldBatchMax);
  ALLOT_ASSERT(calls_in_flight_max_ >= 1);
}

bool SingleLinePreallocator::preallocate(PreallocateRequest request, Done done) {
  if (request.lines.size() != 1) return false;
  if (!gate_.tryAdmitRedis(request.dept_no)) return false;
  const std::string index = request.lines.front().key.index();
  Lane& lane = lanes_[index];
  if (lane.queue.capacity() == 0) {
    // A finished batch's storage if there is one, else room for a typical batch at once:
    // no queue grows one order at a time, and the hot path does not ask malloc for a
    // large block per batch.
    if (spare_queues_.empty()) {
      lane.queue.reserve(kQueueReserve);
    } else {
      lane.queue = std::move(spare_queues_.back());
      spare_queues_.pop_back();
    }
  }
  lane.queue.push_back({std::move(request), std::move(done)});
  if (lane.in_flight < calls_in_flight_max_ && !lane.flush_deferred) {
    // Not now: the other orders of this turn of the event loop go in the same call.
    lane.flush_deferred = true;
    store_->defer([this, index] { flush(index); });
  }
  return true;
}

void SingleLinePreallocator::flush(const std::string& index) {
  const auto found = lanes_.find(index);
  ALLOT_ASSERT(found != lanes_.end());  // a lane with a deferred flush is never erased
  Lane& lane = found->second;
  lane.flush_deferred = false;
  while (lane.in_flight < calls_in_flight_max_ && !lane.queue.empty()) send(index, lane);
}

void SingleLinePreallocator::send(const std::string& index, Lane& lane) {
  ALLOT_ASSERT(!lane.queue.empty());
  const std::size_t count = std::min(batch_max_, lane.queue.size());
  std::vector<Waiting> batch;
  if (count == lane.queue.size()) {
    batch.swap(lane.queue);  // the commonest case: the whole queue goes, nothing is moved
  } else {
    batch.assign(std::make_move_iterator(lane.queue.begin()),
                 std::make_move_iterator(lane.queue.begin() + count));
    lane.queue.erase(lane.queue.begin(), lane.queue.begin() + count);
  }
  std::vector<LineOrder> orders;
  orders.reserve(batch.size());
  for (const auto& waiting : batch) {
    const auto& request = waiting.request;
    orders.push_back({request.order_no, request.lines.front().qty, request.allow_shortage});
  }
  ++lane.in_flight;
  counters_.fast_batches.fetch_add(1, std::memory_order_relaxed);
  counters_.fast_orders.fetch_add(batch.size(), std::memory_order_relaxed);
  // The key is copied out of the batch before the batch moves into the callback.
  const RecordKey key = batch.front().request.lines.front().key;
  store_->preallocateLines(key, orders,
                           [this, index, batch = std::move(batch)](
                               Result<std::vector<LineOrderOutcome>> outcomes) mutable {
                             complete(index, std::move(batch), std::move(outcomes));
                           });
}

void SingleLinePreallocator::complete(const std::string& index, std::vector<Waiting> batch,
                                      Result<std::vector<LineOrderOutcome>> outcomes) {
  const auto found = lanes_.find(index);
  ALLOT_ASSERT(found != lanes_.end());  // a lane with a call in flight is never erased
  Lane& lane = found->second;
  --lane.in_flight;
  // The orders that queued behind this call go now, before the answers are handed out.
  while (lane.in_flight < calls_in_flight_max_ && !lane.queue.empty()) send(index, lane);
  if (lane.queue.empty() && lane.in_flight == 0 && !lane.flush_deferred) lanes_.erase(found);
  if (outcomes && outcomes->size() != batch.size()) {
    outcomes = fail(ErrorCode::kInternal, "the store answered a batch with the wrong count");
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& waiting = batch[i];
    // A failed call's orders may or may not have been held: the multi-step protocol finds
    // out (a committed one replays), and undoes or compensates what it must.
    std::optional<Result<PreallocateOutcome>> result =
        outcomes ? answer(waiting.request, (*outcomes)[i]) : std::nullopt;
    if (!result) counters_.fast_fallbacks.fetch_add(1, std::memory_order_relaxed);
    gate_.leave(waiting.request.dept_no);
    waiting.done(std::move(result));
  }
  batch.clear();
  if (spare_queues_.size() < kSpareQueuesMax) spare_queues_.push_back(std::move(batch));
}

std::optional<Result<PreallocateOutcome>> SingleLinePreallocator::answer(
    const PreallocateRequest& request, const LineOrderOutcome& outcome) {
  const LineRequest& line = request.lines.front();
  switch (outcome.kind) {
    case LineOrderOutcome::Kind::kHeld:
      ALLOT_ASSERT(outcome.allocated + outcome.shortage == line.qty);
      counters_.orders_allocated.fetch_add(1, std::memory_order_relaxed);
      return Result<PreallocateOutcome>(
          OrderAnswer{request.order_no,
                      outcome.status,
                      false,
                      {LineOutcome{line.key, line.qty, outcome.allocated, outcome.shortage}}});
    case LineOrderOutcome::Kind::kReplay: {
      auto replayed =
          replayedAnswer(request.dept_no, request.order_no, outcome.status, outcome.answer_blob);
      if (!replayed) return Result<PreallocateOutcome>(std::unexpected(replayed.error()));
      counters_.orders_replayed.fetch_add(1, std::memory_order_relaxed);
      return Result<PreallocateOutcome>(std::move(*replayed));
    }
    case LineOrderOutcome::Kind::kInsufficient:
      counters_.orders_refused.fetch_add(1, std::memory_order_relaxed);
      return Result<PreallocateOutcome>(
          PreallocateRefusal{{ShortLine{line.key, line.qty, outcome.available}}});
    case LineOrderOutcome::Kind::kRolledBack:
      return Result<PreallocateOutcome>(std::unexpected(orderRolledBack(request.order_no)));
    case LineOrderOutcome::Kind::kConflict:
      return Result<PreallocateOutcome>(std::unexpected(orderConflict(request.order_no)));
    case LineOrderOutcome::Kind::kSlow: return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace allot
