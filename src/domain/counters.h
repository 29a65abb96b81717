// Counters the service keeps about itself, exported by /metrics. Plain atomics: the domain
// knows nothing about Prometheus.
#pragma once

#include <atomic>
#include <cstdint>

namespace allot {

struct ServiceCounters {
  std::atomic<std::uint64_t> record_loads{0};      // records loaded from the DB into Redis
  std::atomic<std::uint64_t> orders_allocated{0};  // new holds answered 200
  std::atomic<std::uint64_t> orders_replayed{0};   // retries answered from the first answer
  std::atomic<std::uint64_t> orders_refused{0};    // all-or-nothing refusals
  std::atomic<std::uint64_t> rollbacks{0};
  std::atomic<std::uint64_t> deducts{0};
  std::atomic<std::uint64_t> adjusts{0};
  std::atomic<std::uint64_t> reverse_retries{0};           // compensation stage 1: inline retries
  std::atomic<std::uint64_t> compensations_recorded{0};    // stage 2: durable tasks written
  std::atomic<std::uint64_t> compensations_unrecorded{0};  // stage 2 failed too: left to the scan
  std::atomic<std::uint64_t> busy_waits_exhausted{0};      // duplicates answered 503 after waiting
  std::atomic<std::uint64_t> compensations_applied{0};     // stage 2 tasks applied by the worker
  std::atomic<std::uint64_t> compensation_attempts_failed{0};
  std::atomic<std::uint64_t> compensations_given_up{0};      // left to an operator
  std::atomic<std::uint64_t> pending_orders_compensated{0};  // stage 3: found by the scan
  std::atomic<std::uint64_t> hold_batches{0};   // coalesced hold calls (HotStore::holdBatch)
  std::atomic<std::uint64_t> holds_batched{0};  // holds carried by them
  // The single-line fast path (SingleLinePreallocator): its script calls, the orders they
  // carried, and the orders it handed to the multi-step protocol instead.
  std::atomic<std::uint64_t> fast_batches{0};
  std::atomic<std::uint64_t> fast_orders{0};
  std::atomic<std::uint64_t> fast_fallbacks{0};
};

}  // namespace allot
