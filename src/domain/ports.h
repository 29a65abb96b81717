// The ports of the domain: what the business rules need from the outside world, declared
// as pure interfaces. Adapters implement them (redis/ for HotStore, mysql/ for Ledger);
// unit tests implement them with in-memory fakes. Nothing here includes an I/O header.
//
// Every HotStore call is one atomic step in one Redis slot and is idempotent: repeating a
// call with the same arguments after an unknown outcome (a timeout) changes nothing more.
// That is what lets the adapters retry a call whose reply was lost.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "domain/order.h"
#include "domain/quantities.h"
#include "domain/record_key.h"

namespace allot {

enum class Route { kRedis, kMysql };
[[nodiscard]] std::string_view routeName(Route route);

// ---- Order-level steps (the order's own slot) ----

struct ClaimOutcome {
  enum class Kind {
    kClaimed,     // this caller owns the pending order (new, its own retry, or a takeover)
    kReplay,      // already allocated/shortage/deducted with the same lines
    kConflict,    // the order exists with other lines
    kRolledBack,  // a tombstone
    kBusy,        // another caller is allocating it right now
  };
  Kind kind = Kind::kClaimed;
  OrderStatus status = OrderStatus::kPending;
  std::string answer_blob;  // for kReplay: encoded LineOutcomes
};

enum class CommitOutcome {
  kCommitted,   // now, or by an earlier call of the same commit
  kRolledBack,  // a rollback won the race: release the lines with a tombstone
  kNotOwner,    // the claim's lease expired and another caller owns the order: hands off
};

enum class ReleaseKind {
  kUndo,      // reverse a hold of an order that was refused; no tombstone
  kRollback,  // the caller cancelled: return the hold, leave a tombstone
  kDeduct,    // the warehouse shipped: the hold leaves preallocated and on_hand
};

struct EndOutcome {  // rollback or deduct at the order level
  enum class Kind {
    kStarted,     // state changed now; release the lines
    kReplay,      // already in the requested end state
    kNotFound,    // deduct of an unknown order
    kRolledBack,  // deduct of a rolled-back order
    kDeducted,    // rollback of a deducted order
    kBusy,        // deduct of an order still being allocated
  };
  Kind kind = Kind::kStarted;
  std::string lines_blob;  // encoded LineRequests (empty for a bare tombstone)
  bool released = false;   // kReplay: every line was already released
};

struct StoredOrder {
  OrderStatus status = OrderStatus::kPending;
  std::string lines_blob;   // encoded LineRequests
  std::string answer_blob;  // encoded LineOutcomes (empty while pending)
};

// ---- Record-level steps (the record's slot) ----

struct HoldOutcome {
  enum class Kind { kHeld, kAlreadyHeld, kInsufficient, kRolledBack, kNotLoaded };
  Kind kind = Kind::kHeld;
  std::int64_t allocated = 0;
  std::int64_t shortage = 0;
  std::int64_t available = 0;  // kInsufficient: what was available
};

// One hold of a batch (HotStore::holdBatch): one order's line on the batch's record.
struct HoldRequest {
  std::string order_no;
  std::int64_t qty = 0;
  bool allow_shortage = false;
};

struct ReleaseOutcome {
  bool released = false;  // false: nothing was held (already released, or never held)
  std::int64_t allocated = 0;
  std::int64_t shortage = 0;
};

struct AdjustChange {
  enum class Mode { kDelta, kSet };
  Mode mode = Mode::kDelta;
  std::int64_t value = 0;
};

struct HotAdjustOutcome {
  enum class Kind { kApplied, kReplay, kInsufficient, kNotLoaded };
  Kind kind = Kind::kApplied;
  std::int64_t delta = 0;  // the on_hand change (computed for kSet)
  Quantities after;        // the record after the call
};

class HotStore {
 public:
  virtual ~HotStore() = default;

  // A claim by the same token renews its lease. The Redis adapter measures the lease with the
  // server's clock; now_ms is the caller's clock, used by fakes.
  [[nodiscard]] virtual Result<ClaimOutcome> claimOrder(const OrderRef& order,
                                                        const std::string& lines_blob,
                                                        const std::string& digest,
                                                        const std::string& token,
                                                        std::int64_t now_ms) = 0;
  // Commits a pending order claimed with token.
  [[nodiscard]] virtual Result<CommitOutcome> commitOrder(const OrderRef& order, OrderStatus status,
                                                          const std::string& answer_blob,
                                                          const std::string& token) = 0;
  // Forgets a pending order claimed with token (a refused all-or-nothing order).
  [[nodiscard]] virtual Result<void> abortOrder(const OrderRef& order,
                                                const std::string& token) = 0;
  [[nodiscard]] virtual Result<EndOutcome> endOrder(const OrderRef& order, ReleaseKind kind) = 0;
  // Every line of an ended order is released; starts the retention countdown.
  [[nodiscard]] virtual Result<void> markOrderReleased(const OrderRef& order) = 0;
  [[nodiscard]] virtual Result<std::optional<StoredOrder>> readOrder(const OrderRef& order) = 0;

  [[nodiscard]] virtual Result<HoldOutcome> hold(const RecordKey& key, const std::string& order_no,
                                                 std::int64_t qty, bool allow_shortage) = 0;
  // Holds of one record for several orders in one atomic step, one after the other in the
  // order given, each with exactly the outcome hold() would have given it at that point.
  // Returns one outcome per request, in order. requests: 1..limits::kHoldBatchMax.
  [[nodiscard]] virtual Result<std::vector<HoldOutcome>> holdBatch(
      const RecordKey& key, const std::vector<HoldRequest>& requests) = 0;
  [[nodiscard]] virtual Result<ReleaseOutcome> release(const RecordKey& key,
                                                       const std::string& order_no,
                                                       ReleaseKind kind) = 0;
  [[nodiscard]] virtual Result<HotAdjustOutcome> adjust(const RecordKey& key,
                                                        const std::string& ref,
                                                        AdjustChange change) = 0;
  [[nodiscard]] virtual Result<std::optional<Quantities>> readRecord(const RecordKey& key) = 0;
  // Loads a record under WATCH unless Redis already has it. True when this call loaded it;
  // false when it was already there (Redis state is newer and is never overwritten).
  [[nodiscard]] virtual Result<bool> loadRecord(const RecordKey& key,
                                                const Quantities& from_db) = 0;
  // A real script call, for readiness.
  [[nodiscard]] virtual Result<void> ping() = 0;
};

// ---- The single-line fast path (standalone Redis) ----

// One single-line order of a batch: the batch's record, this order's number and quantity.
struct LineOrder {
  std::string order_no;
  std::int64_t qty = 0;
  bool allow_shortage = false;
};

struct LineOrderOutcome {
  enum class Kind {
    kHeld,          // claimed, held and committed now: status, allocated, shortage
    kReplay,        // the order exists with the same line: status and answer_blob
    kInsufficient,  // nothing changed: available
    kRolledBack,    // a tombstone
    kConflict,      // the order exists with other lines
    kSlow,          // nothing changed; the multi-step protocol must serve it (reason)
  };
  Kind kind = Kind::kHeld;
  OrderStatus status = OrderStatus::kAllocated;
  std::int64_t allocated = 0;
  std::int64_t shortage = 0;
  std::int64_t available = 0;
  std::string answer_blob;  // kReplay: encoded LineOutcomes
  std::string reason;       // kSlow: "pending", "held" or "unloaded"
};

// The non-blocking store behind the single-line fast path. It lives on one event-loop
// thread: every call and every callback happens on that thread.
class AsyncHotStore {
 public:
  using BatchDone = std::function<void(Result<std::vector<LineOrderOutcome>>)>;
  virtual ~AsyncHotStore() = default;

  // Claims, holds and commits single-line orders of one record, each in one atomic step, one
  // after the other in the order given: each gets the outcome the multi-step protocol would
  // have given it at that point when uncontended. `done` runs later, on this thread, with one
  // outcome per order; an Error means every outcome is unknown. orders: 1..kHoldBatchMax.
  virtual void preallocateLines(const RecordKey& key, const std::vector<LineOrder>& orders,
                                BatchDone done) = 0;
  // Runs fn later on this thread, after the work that is ready now (so that what arrives in
  // the same turn of the event loop can be batched).
  virtual void defer(std::function<void()> fn) = 0;
};

// ---- The database of record ----

struct AdjustmentClaim {
  enum class Kind {
    kNew,       // the ref was free and is now claimed (state pending)
    kResume,    // claimed earlier with the same body, not complete: redo the steps
    kReplay,    // complete with the same body: answer with `answer`
    kConflict,  // the ref was used with another body
  };
  Kind kind = Kind::kNew;
  std::optional<Quantities> answer;  // kReplay
};

struct CompensationTask {
  std::string kind;  // "release_undo" | "release_rollback" | "release_deduct" | "adjust_redis"
  RecordKey key;
  std::string order_no;  // or the adjust ref
  std::string reason;
};

class Ledger {
 public:
  virtual ~Ledger() = default;

  [[nodiscard]] virtual Result<std::optional<Quantities>> findRecord(const RecordKey& key) = 0;
  // findRecord of each key, in one read: the answer i is keys[i]'s.
  [[nodiscard]] virtual Result<std::vector<std::optional<Quantities>>> findRecords(
      const std::vector<RecordKey>& keys) = 0;
  // Creates a zero record unless it exists.
  [[nodiscard]] virtual Result<void> ensureRecord(const RecordKey& key) = 0;
  // Claims an adjust ref (unique per dept_no) for this body digest.
  [[nodiscard]] virtual Result<AdjustmentClaim> claimAdjustment(const RecordKey& key,
                                                                const std::string& ref,
                                                                const std::string& digest) = 0;
  // Adds delta to the record's on_hand at most once per ref, in one transaction with the
  // adjustment row (so the write-back may call it again for the same ref harmlessly).
  // Fails with kInsufficientStock when on_hand would become negative.
  [[nodiscard]] virtual Result<void> applyAdjustment(const RecordKey& key, const std::string& ref,
                                                     std::int64_t delta) = 0;
  // Records `answer` as the ref's answer unless one is recorded already, and returns the one
  // recorded: the first. A concurrent duplicate that resumed the same change answers it too.
  [[nodiscard]] virtual Result<Quantities> completeAdjustment(const std::string& dept_no,
                                                              const std::string& ref,
                                                              const Quantities& answer) = 0;
  // Releases a claim that changed nothing (a refused adjust), so the ref can be used again.
  [[nodiscard]] virtual Result<void> dropAdjustmentClaim(const std::string& dept_no,
                                                         const std::string& ref) = 0;
  // Durable record of a reverse step that failed inline, for the compensation worker.
  [[nodiscard]] virtual Result<void> recordCompensation(const CompensationTask& task) = 0;
  [[nodiscard]] virtual Result<void> ping() = 0;
};

// The durable queue of compensation tasks (the seed's second stage), drained by the
// compensation worker.
struct DueCompensation {
  std::int64_t id = 0;
  int attempts = 0;  // attempts before this one
  CompensationTask task;
};

class CompensationQueue {
 public:
  virtual ~CompensationQueue() = default;
  // Takes up to `limit` pending tasks whose time has come (of one merchant only, when
  // dept_no is set), hiding them from other takers for lease_ms (a worker that dies mid-task
  // leaves it to be taken again).
  [[nodiscard]] virtual Result<std::vector<DueCompensation>> takeDue(
      std::size_t limit, std::int64_t lease_ms, const std::optional<std::string>& dept_no) = 0;
  [[nodiscard]] virtual Result<void> complete(std::int64_t id) = 0;
  // Schedules another attempt after retry_after_ms, or gives up (state failed: an operator
  // takes over; nothing retries it).
  [[nodiscard]] virtual Result<void> retryLater(std::int64_t id, const std::string& reason,
                                                std::int64_t retry_after_ms, bool give_up) = 0;
  // Releases, in the database, the lines an order without an answer still holds there, once
  // its merchant is settled on the MySQL path (its records are out of Redis, so only the
  // database holds them); false, changing nothing, when the merchant is not settled there or
  // the order has an answer (a tombstone is none). The caller owns the order's claim in Redis,
  // so no call of the order on the Redis path can answer; one on the MySQL path waits for the
  // orders row this locks (or inserts for the while, and deletes).
  [[nodiscard]] virtual Result<bool> releaseUnansweredInDatabase(const OrderRef& order) = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual std::int64_t nowMs() = 0;
  virtual void sleepMs(std::int64_t ms) = 0;
};

}  // namespace allot
