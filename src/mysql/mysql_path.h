// The MySQL path: the operations of the contract (API.md 1-6) done directly in MariaDB, each
// in one transaction, with the same answers, error codes and messages as the Redis path
// (domain/preallocation_service.cc). It serves merchants whose route is `mysql`, it is the
// path traffic degrades to, and it is the performance baseline the Redis path is measured
// against.
//
// It writes the rows the write-back writes (orders, order_lines, stock, stock_adjustments)
// with the same meaning, so a merchant can move between the paths:
//   - orders.status is the first answer (allocated | shortage) until the order ends
//     (rolled_back | deducted); a rollback of an unknown order leaves a tombstone row
//     (rolled_back, no lines, lines_digest NULL);
//   - order_lines keep qty/allocated/shortage as first answered; state held while the hold
//     lives, then released (rollback) or deducted;
//   - stock.preallocated and stock.shortage are the sums of allocated and shortage over the
//     record's held lines.
//
// Lock order, the same in every transaction, so no two of them wait on each other in a
// cycle: the merchant's fence (its merchant_fences and merchant_routes rows, shared), then
// the orders row (or the stock_adjustments row), then stock rows sorted by key (RecordKey
// order, which is the primary key order of stock).
//
// The fence: a writing call runs only while the merchant is on the MySQL path and not being
// switched, as the database says inside the call's own transaction, and a route switch waits
// for the calls already running (MysqlRouteTable::saveRoute). A process whose cached route is
// a moment old cannot change the merchant's rows after a switch has moved them away.
#pragma once

#include <string>

#include "core/result.h"
#include "domain/order.h"
#include "domain/ports.h"
#include "domain/quantities.h"
#include "domain/record_key.h"
#include "domain/stock_api.h"
#include "mysql/pool.h"

namespace allot::mysql {

// Gives back the stock of every line of the order still held (subtracted from preallocated
// and shortage; with `ship`, the allocated quantity leaves on_hand too), locking the stock
// rows in key order; the lines are left as they are. The caller holds the order's orders row
// (the MySQL path's lock of an order) in the transaction of `connection`. Rollback, deduct
// and the undo of an order a straggler left held (CompensationQueue) share it.
[[nodiscard]] Result<void> releaseHeldStock(Connection& connection, const OrderRef& order,
                                            bool ship);

// Where the merchant stands, read in the transaction of `connection` behind its fence: a
// shared lock on its merchant_fences row (created on first use) and on its merchant_routes
// row, held until the transaction ends, so a switch of the merchant (MysqlRouteTable::
// saveRoute) waits for it. A merchant without a merchant_routes row is on `default_route`.
enum class FenceState { kOnMysql, kSwitching, kOnRedis };
[[nodiscard]] Result<FenceState> enterMerchantFence(Connection& connection,
                                                    const std::string& dept_no,
                                                    Route default_route);

class MysqlPath final : public StockApi {
 public:
  // The pool must outlive this object; the schema must be migrated (MysqlLedger::open).
  // default_route: the route of a merchant without a merchant_routes row (allotd's
  // default_route); the path refuses such a merchant unless it is the MySQL route.
  explicit MysqlPath(Pool& pool, Route default_route = Route::kMysql)
      : pool_(pool), default_route_(default_route) {}

  [[nodiscard]] Result<PreallocateOutcome> preallocate(const PreallocateRequest& request) override;
  [[nodiscard]] Result<EndAnswer> rollback(const OrderRef& order) override;
  [[nodiscard]] Result<EndAnswer> deduct(const OrderRef& order) override;
  [[nodiscard]] Result<OrderAnswer> findOrder(const OrderRef& order) override;
  [[nodiscard]] Result<Quantities> adjust(const AdjustRequest& request,
                                          const std::string& digest) override;
  [[nodiscard]] Result<Quantities> readRecord(const RecordKey& key) override;
  // A real query on a pooled connection.
  [[nodiscard]] Result<void> checkReady() override;

 private:
  Pool& pool_;
  Route default_route_;
};

}  // namespace allot::mysql
