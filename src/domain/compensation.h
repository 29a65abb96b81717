// The compensation worker's business rule (the seed's second stage): apply each durable task
// recorded when an inline reverse kept failing. Every task is a release of one hold, which is
// idempotent, so a task applied again after a crash changes nothing more: "at most once" in
// effect. A task that keeps failing backs off exponentially and, after a bound, is given up
// to an operator (state failed; nothing retries it).
//
// An undo (the reverse of a refused or failed pre-allocation) looks at its order first. The
// failed call left the order's claim pending, and until the task runs a retry of the order
// may take the claim over, find the hold already there (a hold is one per order and record),
// and commit it: the hold is then that order's, and releasing it would offer its stock twice.
// So an undo of a committed or ended order does nothing, nor one of an order without a claim
// (whoever forgot the claim released its lines first, and a new claim may be committing the
// hold). One of a pending order takes the claim over as a retry would (only once its lease
// has passed: a live call decides itself), with a token of its own attempt, renews it before
// each line it releases (so a retry that took it over meanwhile keeps its holds), and forgets
// it: the order is unknown again (404), as it was before the refused call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "domain/counters.h"
#include "domain/ports.h"
#include "domain/system_clock.h"

namespace allot {

struct CompensationOptions {
  std::size_t batch_size = 100;
  std::int64_t lease_ms = 30'000;       // a taken task is hidden from other workers this long
  std::int64_t first_retry_ms = 1'000;  // doubled per attempt
  std::int64_t retry_ms_max = 300'000;
  int attempts_max = 20;
};

class CompensationProcessor {
 public:
  CompensationProcessor(HotStore& hot, CompensationQueue& queue, ServiceCounters& counters,
                        CompensationOptions options = {});

  // Applies the tasks that are due now (of one merchant only, when dept_no is set); returns
  // how many it took (applied or not). Calls from several threads (the worker, a route
  // switch) take turns.
  [[nodiscard]] Result<std::size_t> runOnce(
      const std::optional<std::string>& dept_no = std::nullopt);

 private:
  [[nodiscard]] Result<void> apply(const CompensationTask& task, std::int64_t id);
  [[nodiscard]] Result<void> undo(const CompensationTask& task, std::int64_t id);

  HotStore& hot_;
  CompensationQueue& queue_;
  ServiceCounters& counters_;
  CompensationOptions options_;
  std::mutex running_;                              // one runOnce at a time
  std::mt19937_64 random_{std::random_device{}()};  // tokens of the claims it takes over
  SystemClock clock_;  // for the claims it takes over (Redis measures their leases itself)
};

}  // namespace allot
