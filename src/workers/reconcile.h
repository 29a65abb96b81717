// The reconciliation: compares every record that Redis holds with its row in the database of
// record, tells replication lag (outbox events not yet written back) from real drift, and
// repairs drift by the rule written at the top of reconcile.cc, recording each drift in the
// `reconciliations` table. Runs on demand (POST /v1/admin/reconcile) and periodically.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/result.h"
#include "domain/quantities.h"
#include "domain/record_key.h"
#include "mysql/pool.h"
#include "redis/client.h"

namespace allot::workers {

class WriteBack;

// Bounds: stock rows read per page, outbox events of one stream examined for one record,
// SCAN calls to find a record's live holds, and attempts of one WATCH/MULTI repair session.
inline constexpr std::size_t kReconcilePageRows = 500;
inline constexpr std::size_t kReconcilePendingEventsMax = 100'000;
inline constexpr std::size_t kReconcileScanCallsMax = 100'000;
inline constexpr int kReconcileSessionAttemptsMax = 10;

struct ReconcileReport {
  std::int64_t checked = 0;     // records loaded in Redis and compared
  std::int64_t mismatched = 0;  // real drift (found after the pending events were counted)
  std::int64_t repaired = 0;    // drift repaired (mismatched - repaired were refused: alerts)
  std::int64_t lag_only = 0;    // differed only by events still waiting in the outbox
  std::int64_t failed = 0;      // could not be compared (a bad value, busy; logged): alerts
  // The write-back's age of its oldest waiting event when the run ended (0 without one).
  std::int64_t writeback_lag_ms = 0;
};

// What /metrics prints; counters only grow.
struct ReconcileMetrics {
  std::atomic<std::uint64_t> runs{0};
  std::atomic<std::uint64_t> run_failures{0};
  std::atomic<std::uint64_t> records_checked{0};
  std::atomic<std::uint64_t> mismatched{0};
  std::atomic<std::uint64_t> repaired{0};
  std::atomic<std::uint64_t> records_failed{0};
  std::atomic<std::uint64_t> lag_only{0};
  std::atomic<std::uint64_t> replica_reads{0};     // first compares read from the replica
  std::atomic<std::uint64_t> replica_failures{0};  // replica reads that failed (primary used)
};

class Reconciler {
 public:
  // write_back may be null; it is only read for its lag gauge. replica may be null: the
  // first, unlocked compare of each record reads it when set (the seed's "replica first"),
  // and the primary when it is not or when the replica fails.
  Reconciler(redis::Client& client, mysql::Pool& pool, const WriteBack* write_back = nullptr,
             mysql::Pool* replica = nullptr)
      : client_(client), pool_(pool), write_back_(write_back), replica_(replica) {}
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // Every record of dept_no (or of every dept), in pages of kReconcilePageRows. A failure on
  // one record is logged and the run goes on; only a failure to list the records fails it.
  [[nodiscard]] Result<ReconcileReport> reconcile(std::optional<std::string> dept_no);

  [[nodiscard]] const ReconcileMetrics& metrics() const { return metrics_; }

 private:
  // Adds a run's findings (a whole run, or the part before it stopped) to metrics_.
  void countInMetrics(const ReconcileReport& report);
  enum class Verdict { kNotLoaded, kEqual, kLagOnly, kRepaired, kRefused };

  [[nodiscard]] Result<Verdict> reconcileRecord(const RecordKey& key);
  [[nodiscard]] Result<Verdict> recheckLocked(const RecordKey& key);

  redis::Client& client_;
  mysql::Pool& pool_;
  const WriteBack* write_back_;
  mysql::Pool* replica_;
  ReconcileMetrics metrics_;
};

}  // namespace allot::workers
