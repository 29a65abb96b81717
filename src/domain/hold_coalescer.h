// Group commit of concurrent holds on one record. While `calls_in_flight_max` hold calls for
// a record are in flight, later holds of the same record queue; when a call returns, the first
// waiter takes every queued hold (up to limits::kHoldBatchMax) into the next call,
// HotStore::holdBatch. More than one call in flight keeps the record busy in Redis while a
// reply travels back (Redis still runs the calls one at a time, each atomic).
// Each hold gets its own answer: the batch runs the same per-hold logic one hold after the
// other inside one atomic script, so the outcome is the one a sequence of single calls in the
// same order would have had (idempotency, tombstones and shortage included).
//
// A failed batch call (transport error, timeout) fails every hold in it with the same error:
// the outcome of each is unknown, exactly as for a single call, and the callers handle it as
// they handle a failed single hold (they undo the order; a release is idempotent).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/limits.h"
#include "core/result.h"
#include "domain/counters.h"
#include "domain/ports.h"

namespace allot {

class HoldCoalescer {
 public:
  HoldCoalescer(HotStore& hot, ServiceCounters& counters,
                std::size_t batch_max = limits::kHoldBatchMax,
                std::size_t calls_in_flight_max = limits::kHoldCallsInFlightMax);

  // Blocks until this hold's batch has returned. Thread-safe.
  [[nodiscard]] Result<HoldOutcome> hold(const RecordKey& key, const HoldRequest& request);

  // For tests that need a known batch: block until a call for key is in flight, or until at
  // least `count` holds of key wait behind the calls in flight.
  void waitUntilInFlight(const RecordKey& key);
  void waitUntilQueued(const RecordKey& key, std::size_t count);

 private:
  struct Waiter {
    const HoldRequest* request;
    std::optional<Result<HoldOutcome>> result;
    std::condition_variable ready;
  };
  struct Lane {  // the holds of one record
    std::deque<Waiter*> queue;
    std::size_t in_flight = 0;  // calls
  };

  // Runs one batch from the front of lane's queue; lock is released during the call.
  void runBatch(std::unique_lock<std::mutex>& lock, const RecordKey& key, const std::string& name,
                Lane& lane);

  HotStore& hot_;
  ServiceCounters& counters_;
  const std::size_t batch_max_;
  const std::size_t calls_in_flight_max_;
  std::mutex mutex_;
  std::condition_variable changed_;  // a lane's queue or flight changed (for the waits above)
  std::unordered_map<std::string, Lane> lanes_;  // by record index; a lane lives while used
};

}  // namespace allot
