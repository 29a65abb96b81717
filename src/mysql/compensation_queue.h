// The compensation_tasks table as the domain's CompensationQueue. takeDue uses
// SELECT ... FOR UPDATE SKIP LOCKED and pushes next_attempt_at forward in the same
// transaction, so concurrent workers (several allotd processes) never take the same task at
// once, and a task whose worker died is taken again after its lease.
#pragma once

#include "domain/ports.h"
#include "mysql/pool.h"

namespace allot::mysql {

class MysqlCompensationQueue final : public CompensationQueue {
 public:
  explicit MysqlCompensationQueue(Pool& pool) : pool_(pool) {}

  Result<std::vector<DueCompensation>> takeDue(std::size_t limit, std::int64_t lease_ms,
                                               const std::optional<std::string>& dept_no) override;
  Result<void> complete(std::int64_t id) override;
  Result<void> retryLater(std::int64_t id, const std::string& reason, std::int64_t retry_after_ms,
                          bool give_up) override;
  Result<bool> releaseUnansweredInDatabase(const OrderRef& order) override;

 private:
  Pool& pool_;
};

}  // namespace allot::mysql
