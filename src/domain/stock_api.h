// The operations of the contract (API.md 1-6) as one interface, so that a route can pick the
// path that serves a merchant: the Redis path (PreallocationService) or the MySQL path
// (mysql/mysql_path.h), which give the same answers.
#pragma once

#include <string>

#include "core/result.h"
#include "domain/order.h"
#include "domain/quantities.h"

namespace allot {

class StockApi {
 public:
  virtual ~StockApi() = default;
  [[nodiscard]] virtual Result<PreallocateOutcome> preallocate(
      const PreallocateRequest& request) = 0;
  [[nodiscard]] virtual Result<EndAnswer> rollback(const OrderRef& order) = 0;
  [[nodiscard]] virtual Result<EndAnswer> deduct(const OrderRef& order) = 0;
  [[nodiscard]] virtual Result<OrderAnswer> findOrder(const OrderRef& order) = 0;
  // digest: the canonical body, to tell a replay from a conflicting reuse of the ref.
  [[nodiscard]] virtual Result<Quantities> adjust(const AdjustRequest& request,
                                                  const std::string& digest) = 0;
  [[nodiscard]] virtual Result<Quantities> readRecord(const RecordKey& key) = 0;
  [[nodiscard]] virtual Result<void> checkReady() = 0;
};

}  // namespace allot
