// The data side of a live route switch (API.md 7; the MerchantRouter closes the gate around
// it, so no call of the merchant runs on either path meanwhile).
//
// redis -> mysql:
//   1. mark the route switching in merchant_routes, and wait `settle` so that every other
//      allotd (which re-reads routes every second) stops admitting the merchant's calls;
//   2. drain the write-back of the merchant's streams and turn every order a dead call left
//      pending (pending_orders) into an undo task, then apply the merchant's compensation
//      tasks (they act on Redis); when some cannot be applied (a claim still within its
//      lease), the switch is put off: nothing has moved, and a merchant that was settled
//      gets its route (or its lack of a row) back;
//   3. evict every record of the merchant from Redis and fence it (record_evict.lua): from
//      here no script can change its counters, and no load can bring it back;
//   4. drain the write-back: every event appended before the eviction is in the database;
//   5. settle: each record's database row must now equal the counters evicted from Redis;
//      a row that does not (drift) is set to Redis's counters, the live truth until now, and
//      recorded in `reconciliations`;
//   6. save the route mysql, no longer switching.
// mysql -> redis:
//   1. mark the route switching and wait `settle` (the MySQL path stops for the merchant);
//   2. evict whatever Redis still holds of the merchant's records (a stale copy), and, when
//      the merchant was found switching (a rerun after a switch to MySQL that failed
//      half-way), drain the write-back of its streams, which may hold events its rows lack;
//   3. load the merchant's orders (live ones, ended ones within the retention, and any with a
//      line still held) with their lines' anti-duplicate keys, tombstones and deduction
//      records, as the database has them,
//      and the held lines of orders without an answer (a straggler's, not undone yet); the
//      eviction of step 2 dropped the records' live holds, so these are all there are;
//   4. load every record from its row, lifting the fence;
//   5. save the route redis, no longer switching.
// A move from a route to itself only records the route when the merchant is settled (it
// takes that route by default); found switching, it reruns the protocol to that route.
// One switch of a merchant runs at a time across every allotd (a named lock of the database).
// Every step can run again: a switch that fails once data has moved leaves the merchant
// switching (refused by every allotd) until a PUT of either route runs the protocol again
// from its first step.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>

#include "core/result.h"
#include "domain/merchant_router.h"
#include "mysql/pool.h"
#include "redis/redis_stock_store.h"

namespace allot::workers {

class WriteBack;

inline constexpr std::size_t kRouteSwitchPageRows = 500;

struct RouteSwitchOptions {
  // How long other processes get to notice the switching mark (their route refresh interval
  // plus a margin).
  std::chrono::milliseconds settle{1500};
  std::chrono::milliseconds drain_timeout{30'000};
  std::int64_t retention_seconds = 7 * 24 * 3600;
};

struct RouteSwitchMetrics {
  std::atomic<std::uint64_t> switches{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint64_t> records_evicted{0};
  std::atomic<std::uint64_t> records_loaded{0};
  std::atomic<std::uint64_t> orders_loaded{0};
  std::atomic<std::uint64_t> settle_repairs{0};         // rows set to Redis's counters in step 5
  std::atomic<std::uint64_t> pending_orders_undone{0};  // dead calls' orders undone in step 2
  std::atomic<std::uint64_t> orders_left_pending{0};    // held with no answer after step 4
};

// How long a switch to MySQL waits for the merchant's compensation tasks before it is put off.
inline constexpr std::chrono::milliseconds kCompensationWait{3'000};

// The name of the database lock a switch of the merchant holds (GET_LOCK).
[[nodiscard]] std::string routeSwitchLockName(std::string_view database, std::string_view dept_no);

class RouteSwitch {
 public:
  // run_compensation applies the merchant's due compensation tasks once (the compensation
  // worker's step, for one merchant).
  using RunCompensation = std::function<Result<void>(const std::string& dept_no)>;
  RouteSwitch(redis::RedisStockStore& store, mysql::Pool& pool, RouteTable& table,
              WriteBack& write_back, RunCompensation run_compensation,
              RouteSwitchOptions options = {});

  // Refused (503, nothing done) while another allotd switches the same merchant. A move to
  // the route the merchant already takes (by default) only records it.
  [[nodiscard]] Result<void> move(const std::string& dept_no, Route from, Route to);
  [[nodiscard]] const RouteSwitchMetrics& metrics() const { return metrics_; }

 private:
  class SwitchLock;
  [[nodiscard]] Result<void> moveLocked(const std::string& dept_no, Route from, Route to,
                                        const SwitchLock& lock);
  struct PendingTasks {
    std::int64_t count = 0;
    std::string oldest;  // "order <order_no>: <its last error>"
  };
  // data_moved is set once the first record is about to be evicted.
  [[nodiscard]] Result<void> toMysql(const std::string& dept_no, const SwitchLock& lock,
                                     bool& data_moved);
  [[nodiscard]] Result<void> releaseWhatNeedsRedis(const std::string& dept_no,
                                                   const std::set<std::string>& streams);
  [[nodiscard]] Result<std::int64_t> pendingOrderRows(const std::string& dept_no);
  [[nodiscard]] Result<void> drain(const std::set<std::string>& streams);
  [[nodiscard]] Result<void> warnOfOrdersLeftPending(const std::string& dept_no);
  // rerun: the merchant was found switching (an earlier switch failed half-way).
  [[nodiscard]] Result<void> toRedis(const std::string& dept_no, bool rerun);
  [[nodiscard]] Result<void> settle(const RecordKey& key, const Quantities& from_redis);
  [[nodiscard]] Result<void> loadOrders(const std::string& dept_no);
  [[nodiscard]] Result<void> loadUnansweredLines(const std::string& dept_no);
  [[nodiscard]] Result<PendingTasks> pendingCompensations(const std::string& dept_no);

  redis::RedisStockStore& store_;
  mysql::Pool& pool_;
  RouteTable& table_;
  WriteBack& write_back_;
  RunCompensation run_compensation_;
  RouteSwitchOptions options_;
  RouteSwitchMetrics metrics_;
};

}  // namespace allot::workers
