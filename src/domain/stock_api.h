// The operations of the contract (API.md 1-6) as one interface, so that a route can pick the
// path that serves a merchant: the Redis path (PreallocationService) or the MySQL path
// (mysql/mysql_path.h), which give the same answers.
#pragma once

#include <functional>
#include <optional>
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

// The non-blocking side door for single-line pre-allocations (the hot path): it serves a
// request on the calling event-loop thread when it can, and hands it back otherwise. Every
// call and callback happens on that one thread.
class AsyncPreallocator {
 public:
  // nullopt: not served here (nothing changed); run the request on the ordinary path.
  using Done = std::function<void(std::optional<Result<PreallocateOutcome>>)>;
  virtual ~AsyncPreallocator() = default;
  // False when the request is not for this path (done is never called); true when done
  // will run later, exactly once, never inside this call.
  [[nodiscard]] virtual bool preallocate(PreallocateRequest request, Done done) = 0;
};

// Admission of a call without waiting, for the non-blocking path (MerchantRouter).
class RouteGate {
 public:
  virtual ~RouteGate() = default;
  // Admits a call of the merchant when its route is known, fresh and Redis, and no switch is
  // under way; false otherwise (the ordinary path decides). An admitted call must leave().
  [[nodiscard]] virtual bool tryAdmitRedis(const std::string& dept_no) = 0;
  virtual void leave(const std::string& dept_no) = 0;
};

}  // namespace allot
