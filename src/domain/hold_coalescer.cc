#include "domain/hold_coalescer.h"

#include "core/assert.h"

namespace allot {

HoldCoalescer::HoldCoalescer(HotStore& hot, ServiceCounters& counters, std::size_t batch_max,
                             std::size_t calls_in_flight_max)
    : hot_(hot),
      counters_(counters),
      batch_max_(batch_max),
      calls_in_flight_max_(calls_in_flight_max) {
  ALLOT_ASSERT(batch_max_ >= 1 && batch_max_ <= limits::kHoldBatchMax);
  ALLOT_ASSERT(calls_in_flight_max_ >= 1);
}

Result<HoldOutcome> HoldCoalescer::hold(const RecordKey& key, const HoldRequest& request) {
  Waiter me{&request, std::nullopt, {}};
  const std::string name = key.index();
  std::unique_lock lock(mutex_);
  // References into an unordered_map stay valid while other elements come and go; this lane
  // is erased only once its queue is empty and no call is in flight, i.e. never while this
  // waiter is in it or in a call.
  Lane& lane = lanes_[name];
  lane.queue.push_back(&me);
  changed_.notify_all();
  while (!me.result) {
    if (lane.in_flight < calls_in_flight_max_ && !lane.queue.empty()) {
      runBatch(lock, key, name, lane);
      continue;  // this waiter may not have fit into that batch
    }
    me.ready.wait(lock);
  }
  return std::move(*me.result);
}

void HoldCoalescer::runBatch(std::unique_lock<std::mutex>& lock, const RecordKey& key,
                             const std::string& name, Lane& lane) {
  ALLOT_ASSERT(lane.in_flight < calls_in_flight_max_ && !lane.queue.empty());
  ++lane.in_flight;
  changed_.notify_all();
  std::vector<Waiter*> batch;
  std::vector<HoldRequest> requests;
  while (!lane.queue.empty() && batch.size() < batch_max_) {
    batch.push_back(lane.queue.front());
    requests.push_back(*lane.queue.front()->request);
    lane.queue.pop_front();
  }
  lock.unlock();
  auto outcomes = hot_.holdBatch(key, requests);
  lock.lock();
  ALLOT_ASSERT(!outcomes || outcomes->size() == batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (outcomes) {
      batch[i]->result = (*outcomes)[i];
    } else {
      batch[i]->result = std::unexpected(outcomes.error());
    }
    batch[i]->ready.notify_one();
  }
  counters_.hold_batches.fetch_add(1);
  counters_.holds_batched.fetch_add(batch.size());
  --lane.in_flight;
  if (lane.queue.empty()) {
    if (lane.in_flight == 0) lanes_.erase(name);
  } else {
    lane.queue.front()->ready.notify_one();  // the next batch's leader
  }
}

void HoldCoalescer::waitUntilInFlight(const RecordKey& key) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] {
    const auto lane = lanes_.find(key.index());
    return lane != lanes_.end() && lane->second.in_flight > 0;
  });
}

void HoldCoalescer::waitUntilQueued(const RecordKey& key, std::size_t count) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] {
    const auto lane = lanes_.find(key.index());
    return lane != lanes_.end() && lane->second.queue.size() >= count;
  });
}

}  // namespace allot
