// In-memory fakes of the domain's ports, for unit tests of the business rules only. The
// FakeHotStore follows the Lua scripts' documented semantics (src/redis/lua/*.lua); the
// integration tests check the real scripts against a real Redis.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "domain/ports.h"

namespace allot::fakes {

class FakeClock final : public Clock {
 public:
  std::int64_t nowMs() override { return now_ms; }
  void sleepMs(std::int64_t ms) override { now_ms += ms; }
  std::int64_t now_ms = 1'000'000;
};

class FakeHotStore final : public HotStore {
 public:
  struct Counters {
    std::int64_t usable = 0, subtracted = 0, ullage = 0;
  };
  struct Hold {
    std::int64_t allocated = 0, shortage = 0;
    bool deducted = false;
  };
  struct Order {
    char status = 'P';
    std::string lines, digest, token, answer;
    std::int64_t since_ms = 0;
    bool released = false;
  };

  Result<ClaimOutcome> claimOrder(const OrderRef& order, const std::string& lines_blob,
                                  const std::string& digest, const std::string& token,
                                  std::int64_t now_ms) override;
  Result<CommitOutcome> commitOrder(const OrderRef& order, OrderStatus status,
                                    const std::string& answer_blob,
                                    const std::string& token) override;
  Result<void> abortOrder(const OrderRef& order, const std::string& token) override;
  Result<EndOutcome> endOrder(const OrderRef& order, ReleaseKind kind) override;
  Result<void> markOrderReleased(const OrderRef& order) override;
  Result<std::optional<StoredOrder>> readOrder(const OrderRef& order) override;
  Result<HoldOutcome> hold(const RecordKey& key, const std::string& order_no, std::int64_t qty,
                           bool allow_shortage) override;
  // Runs hold() for each request, one after the other, as hold.lua does (so a failure of the
  // n-th hold fails the whole call, with the holds before it done: an unknown outcome).
  Result<std::vector<HoldOutcome>> holdBatch(const RecordKey& key,
                                             const std::vector<HoldRequest>& requests) override;
  Result<ReleaseOutcome> release(const RecordKey& key, const std::string& order_no,
                                 ReleaseKind kind) override;
  Result<HotAdjustOutcome> adjust(const RecordKey& key, const std::string& ref,
                                  AdjustChange change) override;
  Result<std::optional<Quantities>> readRecord(const RecordKey& key) override;
  Result<bool> loadRecord(const RecordKey& key, const Quantities& from_db) override;
  Result<void> ping() override;

  // Test controls: each call first asks fail_hook("method", record-or-order); a non-empty
  // answer makes the call fail with kUnavailable and that message.
  std::function<std::string(const std::string&, const std::string&)> fail_hook;
  // Called at the start of hold(), e.g. to run a concurrent rollback.
  std::function<void(const RecordKey&)> before_hold;
  // Called at the start of holdBatch(), e.g. to hold a batch in flight while more holds queue.
  std::function<void(const RecordKey&, const std::vector<HoldRequest>&)> before_batch;
  int hold_batches = 0;

  std::map<std::string, Counters> records;                    // by record index
  std::map<std::pair<std::string, std::string>, Hold> holds;  // (index, order)
  std::set<std::pair<std::string, std::string>> tombstones;   // (index, order)
  std::map<std::pair<std::string, std::string>, std::int64_t> adjust_refs;
  std::map<std::pair<std::string, std::string>, Order> orders;  // (dept, order)
  int loads = 0;
  std::int64_t lease_ms = 30'000;

 private:
  Result<void> maybeFail(const std::string& method, const std::string& subject);
};

class FakeLedger final : public Ledger {
 public:
  struct Adjustment {
    std::string index, digest, state = "pending";
    std::optional<Quantities> answer;
  };

  Result<std::optional<Quantities>> findRecord(const RecordKey& key) override;
  Result<std::vector<std::optional<Quantities>>> findRecords(
      const std::vector<RecordKey>& keys) override;
  Result<void> ensureRecord(const RecordKey& key) override;
  Result<AdjustmentClaim> claimAdjustment(const RecordKey& key, const std::string& ref,
                                          const std::string& digest) override;
  Result<void> applyAdjustment(const RecordKey& key, const std::string& ref,
                               std::int64_t delta) override;
  Result<Quantities> completeAdjustment(const std::string& dept_no, const std::string& ref,
                                        const Quantities& answer) override;
  Result<void> dropAdjustmentClaim(const std::string& dept_no, const std::string& ref) override;
  Result<void> recordCompensation(const CompensationTask& task) override;
  Result<void> ping() override;

  std::function<std::string(const std::string&)> fail_hook;  // by method name
  std::map<std::string, Quantities> records;
  std::map<std::pair<std::string, std::string>, Adjustment> adjustments;  // (dept, ref)
  std::vector<CompensationTask> compensations;

 private:
  Result<void> maybeFail(const std::string& method);
};

}  // namespace allot::fakes
