// The database of record (allot::Ledger) on MariaDB: stock counters, the idempotency rows of
// stock adjustments, and the durable queue of compensation tasks. Built on the Pool; every
// method is one short statement or one transaction, safe to call from many threads.
#pragma once

#include <memory>
#include <string>

#include "core/result.h"
#include "domain/ports.h"
#include "mysql/migrator.h"
#include "mysql/pool.h"
#include "mysql/url.h"

namespace allot::mysql {

// Longest compensation reason kept; longer ones are cut (the column is VARCHAR(512)).
inline constexpr std::size_t kCompensationReasonLengthMax = 512;
inline constexpr std::size_t kCompensationKindLengthMax = 32;

// The per-ref idempotent on_hand change of MysqlLedger::applyAdjustment, on a connection whose
// transaction the caller owns, so the write-back can apply an adjust event in the same
// transaction as the rest of its batch. Locks the stock_adjustments row, then the stock row.
[[nodiscard]] Result<void> applyAdjustmentIn(Connection& connection, const RecordKey& key,
                                             const std::string& ref, std::int64_t delta);

class MysqlLedger final : public Ledger {
 public:
  // Migrates the schema (under the migration lock) and opens the pool.
  [[nodiscard]] static Result<std::unique_ptr<MysqlLedger>> open(const MysqlOptions& options);

  // For the workers (write-back, reconcile, compensation) that share these connections.
  [[nodiscard]] Pool& pool() { return *pool_; }
  // What open() found and did, for the start-up log.
  [[nodiscard]] const MigrationReport& migrationReport() const { return migration_report_; }

  [[nodiscard]] Result<std::optional<Quantities>> findRecord(const RecordKey& key) override;
  [[nodiscard]] Result<std::vector<std::optional<Quantities>>> findRecords(
      const std::vector<RecordKey>& keys) override;
  [[nodiscard]] Result<void> ensureRecord(const RecordKey& key) override;
  [[nodiscard]] Result<AdjustmentClaim> claimAdjustment(const RecordKey& key,
                                                        const std::string& ref,
                                                        const std::string& digest) override;
  [[nodiscard]] Result<void> applyAdjustment(const RecordKey& key, const std::string& ref,
                                             std::int64_t delta) override;
  [[nodiscard]] Result<Quantities> completeAdjustment(const std::string& dept_no,
                                                      const std::string& ref,
                                                      const Quantities& answer) override;
  [[nodiscard]] Result<void> dropAdjustmentClaim(const std::string& dept_no,
                                                 const std::string& ref) override;
  [[nodiscard]] Result<void> recordCompensation(const CompensationTask& task) override;
  [[nodiscard]] Result<void> ping() override;

 private:
  MysqlLedger(std::unique_ptr<Pool> pool, MigrationReport report)
      : pool_(std::move(pool)), migration_report_(std::move(report)) {}

  std::unique_ptr<Pool> pool_;
  MigrationReport migration_report_;
};

}  // namespace allot::mysql
