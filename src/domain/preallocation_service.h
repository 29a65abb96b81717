// The business rules of pre-allocation, written against the ports only. The multi-line
// protocol: an order is claimed in its own slot, its lines are held one by one (each an
// atomic script in the record's slot), and the order is committed. A line that cannot be
// held makes the order refused: the lines already held are reversed (the seed's first
// compensation stage), a reverse that keeps failing is recorded as a durable compensation
// task (second stage), and the reconciliation scan is the last net (third stage).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/limits.h"
#include "core/result.h"
#include "domain/counters.h"
#include "domain/hold_coalescer.h"
#include "domain/order.h"
#include "domain/ports.h"
#include "domain/stock_api.h"

namespace allot {

struct ServiceOptions {
  std::int64_t order_lease_ms = limits::kOrderLeaseMs;
  std::int64_t busy_wait_ms = limits::kBusyWaitMs;
  int reverse_attempts = limits::kReverseAttemptsMax;
  // Group commit: concurrent holds of one record go to the store together (HoldCoalescer).
  bool coalesce_holds = true;
  std::size_t hold_calls_in_flight = limits::kHoldCallsInFlightMax;  // per record
};

class PreallocationService final : public StockApi {
 public:
  PreallocationService(HotStore& hot, Ledger& ledger, Clock& clock, ServiceCounters& counters,
                       ServiceOptions options = {});

  [[nodiscard]] Result<PreallocateOutcome> preallocate(const PreallocateRequest& request) override;
  [[nodiscard]] Result<EndAnswer> rollback(const OrderRef& order) override;
  [[nodiscard]] Result<EndAnswer> deduct(const OrderRef& order) override;
  [[nodiscard]] Result<OrderAnswer> findOrder(const OrderRef& order) override;
  // digest: the canonical body, to tell a replay from a conflicting reuse of the ref.
  [[nodiscard]] Result<Quantities> adjust(const AdjustRequest& request,
                                          const std::string& digest) override;
  [[nodiscard]] Result<Quantities> readRecord(const RecordKey& key) override;
  // Readiness: a real script call and a real query.
  [[nodiscard]] Result<void> checkReady() override;

 private:
  struct HeldLines;
  struct Lease;

  [[nodiscard]] Result<ClaimOutcome> claimWithWait(Lease& lease);
  [[nodiscard]] Result<PreallocateOutcome> replayAnswer(const PreallocateRequest& request,
                                                        const ClaimOutcome& claim);
  // Renews the claim when due (always when force is set); false once another caller owns it,
  // or when Redis did not answer past half a lease (then *unknown is set, when given).
  bool stillOwner(Lease& lease, bool force, bool* unknown = nullptr);
  [[nodiscard]] Result<HeldLines> holdLines(const PreallocateRequest& request, Lease& lease);
  [[nodiscard]] Result<HoldOutcome> holdOne(const LineRequest& line, const std::string& order_no,
                                            bool allow_shortage);
  // Loads a record into Redis when the DB has it (or creates it when create is true).
  // False when the record exists nowhere and create is false.
  [[nodiscard]] Result<bool> loadRecord(const RecordKey& key, bool create);
  [[nodiscard]] Result<PreallocateOutcome> finishOrder(const PreallocateRequest& request,
                                                       HeldLines& held, Lease& lease);
  // Reverses every line of a refused or failed order (while this caller still owns it) and
  // forgets the claim, so the same order_no may be tried again. False when another caller
  // owns the order now (and nothing was touched).
  bool undoOrder(const PreallocateRequest& request, Lease& lease);
  // Records the undo of the order as a compensation task, for a claim this call may have left
  // in Redis without being able to drop it: the task takes it over once its lease has passed,
  // releases whatever it holds and forgets it (and finds nothing to do when there is none).
  void recordUndo(const PreallocateRequest& request, const std::string& reason);
  // Records a compensation task; counts whether it could be.
  void recordCompensation(const CompensationTask& task);
  [[nodiscard]] static std::vector<RecordKey> keysOf(const PreallocateRequest& request);
  [[nodiscard]] Result<EndAnswer> endOrder(const OrderRef& order, ReleaseKind kind);
  // Releases each line, retrying a failure that came fast (not a timeout); records what still
  // fails as a compensation task. Lines still left after 4 s (Redis timing out) are not tried:
  // they get their tasks straight away. False when some line could not be released now.
  bool releaseLines(const std::string& order_no, const std::vector<RecordKey>& keys,
                    ReleaseKind kind);
  [[nodiscard]] Result<HotAdjustOutcome> adjustInRedis(const RecordKey& key, const std::string& ref,
                                                       AdjustChange change);
  [[nodiscard]] std::vector<ShortLine> collectShortLines(const PreallocateRequest& request,
                                                         std::size_t first_short,
                                                         std::int64_t first_available);
  [[nodiscard]] std::string newToken();

  HotStore& hot_;
  Ledger& ledger_;
  Clock& clock_;
  ServiceCounters& counters_;
  ServiceOptions options_;
  std::unique_ptr<HoldCoalescer> coalescer_;  // null when coalescing is off
  std::atomic<std::uint64_t> token_sequence_{0};
  std::uint64_t token_seed_;
};

}  // namespace allot
