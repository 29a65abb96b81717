// Compensation's third stage: the scan for orders left pending. A multi-line order's claim is
// pending while its lines are held; a call that ends without answering (its allotd killed
// mid-call, or Redis and MariaDB failing at once so that even the undo task could not be
// written) leaves the claim so, and its holds keep their stock from everyone else until the
// caller retries or rolls the order back, which it may never do.
//
// The write-back keeps, in pending_orders (migration 0007), every order of a line held before
// its answer, dated by its latest such hold, and deletes the row when it applies the order's
// answer (the order event of its commit or rollback). Each pass of the scan takes up to a
// batch of rows older than the claim's lease, with FOR UPDATE SKIP LOCKED, and in the same
// transaction turns each into a `release_undo` compensation task naming one of its held
// lines, or drops it: when the order has an orders row after all (its answer was applied
// before the hold that added the row back), or no line is held any more (its undo ran).
// The compensation worker then applies the task as any undo: it takes the dead claim over,
// releases every line of it and forgets it, so the order is unknown again (404), as after a
// refusal. The age only spares the worker tasks it would have to put off: what keeps a live or
// committed order's holds safe is the undo itself, which does nothing to an order that is not
// pending and waits (busy) while the claim's lease, measured by Redis, runs.
//
// Several allotd processes may scan at once: rows are taken with FOR UPDATE SKIP LOCKED, and a
// row becomes a task in the transaction that deletes it (a second task of the same order, from
// a row added back later, finds nothing to do).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/result.h"
#include "mysql/pool.h"

namespace allot::mysql {

struct PendingScanOptions {
  std::int64_t older_than_ms = 0;      // rows seen at least this long ago are taken
  std::size_t batch_size = 100;        // rows taken per pass (one transaction)
  std::optional<std::string> dept_no;  // one merchant only; every merchant when empty
};

struct PendingScanReport {
  std::uint64_t taken = 0;        // rows past the age taken by this pass (batch_size: maybe more)
  std::uint64_t answered = 0;     // rows of orders answered after all: dropped
  std::uint64_t compensated = 0;  // orders handed to the compensation worker as undo tasks
  std::uint64_t released = 0;     // rows of orders with no line held any more: dropped
};

class PendingOrderScan {
 public:
  explicit PendingOrderScan(Pool& pool) : pool_(pool) {}

  // One pass; the counts of what it did.
  [[nodiscard]] Result<PendingScanReport> runOnce(const PendingScanOptions& options);

 private:
  Pool& pool_;
};

}  // namespace allot::mysql
