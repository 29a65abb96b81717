// The compensation worker's business rule (the seed's second stage): apply each durable task
// recorded when an inline reverse kept failing. Every task is a release of one hold, which is
// idempotent, so a task applied again after a crash changes nothing more: "at most once" in
// effect. A task that keeps failing backs off exponentially and, after a bound, is given up
// to an operator and to the reconciliation scan (the third stage).
#pragma once

#include <cstddef>
#include <cstdint>

#include "domain/counters.h"
#include "domain/ports.h"

namespace allot {

struct CompensationOptions {
  std::size_t batch_size = 100;
  std::int64_t lease_ms = 30'000;         // a taken task is hidden from other workers this long
  std::int64_t first_retry_ms = 1'000;    // doubled per attempt
  std::int64_t retry_ms_max = 300'000;
  int attempts_max = 20;
};

class CompensationProcessor {
 public:
  CompensationProcessor(HotStore& hot, CompensationQueue& queue, ServiceCounters& counters,
                        CompensationOptions options = {});

  // Applies the tasks that are due now; returns how many it took (applied or not).
  [[nodiscard]] Result<std::size_t> runOnce();

 private:
  [[nodiscard]] Result<void> apply(const CompensationTask& task);

  HotStore& hot_;
  CompensationQueue& queue_;
  ServiceCounters& counters_;
  CompensationOptions options_;
};

}  // namespace allot
