// The fast path of the commonest order: one line. On a standalone Redis the claim, the hold
// and the commit of such an order can be one atomic script (AsyncHotStore), so it costs one
// round trip instead of three, and concurrent orders of one record share that round trip
// (group commit, as HoldCoalescer does for the holds of the multi-step protocol).
//
// One instance per event-loop thread, never shared: no locks. Orders of one record queue in
// a lane; while fewer than calls_in_flight_max calls of the record are in flight, the lane is
// flushed at the end of the current turn of the event loop (AsyncHotStore::defer), so every
// order that arrived in that turn goes in one call; later ones go in the call that follows
// the first reply. Each order gets its own answer, the one the multi-step protocol gives an
// uncontended order: a new hold, a replay of its first answer, a refusal, a conflict, a
// rolled-back tombstone. Whatever the script cannot finish by itself (a claim in progress
// elsewhere, a record not in Redis yet, a failed call whose outcome is unknown) it leaves
// untouched and hands back: the multi-step protocol (PreallocationService) serves it, with
// its waits, loads and compensation.
//
// A merchant is served here only when the route gate admits it without waiting (its cached
// route is Redis and no switch is under way); an admitted order counts as a call in flight
// of its merchant until answered, so a route switch waits for it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/limits.h"
#include "domain/counters.h"
#include "domain/ports.h"
#include "domain/stock_api.h"

namespace allot {

class SingleLinePreallocator final : public AsyncPreallocator {
 public:
  SingleLinePreallocator(std::unique_ptr<AsyncHotStore> store, RouteGate& gate,
                         ServiceCounters& counters, std::size_t batch_max = limits::kHoldBatchMax,
                         std::size_t calls_in_flight_max = limits::kHoldCallsInFlightMax);
  SingleLinePreallocator(const SingleLinePreallocator&) = delete;
  SingleLinePreallocator& operator=(const SingleLinePreallocator&) = delete;

  [[nodiscard]] bool preallocate(PreallocateRequest request, Done done) override;

 private:
  struct Waiting {
    PreallocateRequest request;
    Done done;
  };
  struct Lane {  // the orders of one record
    std::vector<Waiting> queue;
    std::size_t in_flight = 0;  // calls
    bool flush_deferred = false;
  };

  void flush(const std::string& index);
  void send(const std::string& index, Lane& lane);
  void complete(const std::string& index, std::vector<Waiting> batch,
                Result<std::vector<LineOrderOutcome>> outcomes);
  [[nodiscard]] std::optional<Result<PreallocateOutcome>> answer(const PreallocateRequest& request,
                                                                 const LineOrderOutcome& outcome);

  std::unique_ptr<AsyncHotStore> store_;
  RouteGate& gate_;
  ServiceCounters& counters_;
  const std::size_t batch_max_;
  const std::size_t calls_in_flight_max_;
  std::unordered_map<std::string, Lane> lanes_;  // by record index; a lane lives while used
  std::vector<std::vector<Waiting>> spare_queues_;  // emptied batches, their storage reused
};

}  // namespace allot
