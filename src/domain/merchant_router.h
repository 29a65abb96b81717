// Per-merchant routing (API.md 7): each merchant is served by the Redis path or the MySQL path,
// and an operator can move it live between the two.
//
// The route of each merchant lives in the database (RouteTable) and is cached here, refreshed
// every refresh_ms so that a switch made by another allotd is seen. Every call is admitted
// through a gate that counts the calls in flight per merchant. A switch closes the gate (new
// calls of that merchant wait up to call_wait_ms, then answer 503 to retry), waits until the
// calls in flight have ended, runs the move (RouteMove: the data protocol of
// workers/route_switch.h) and opens the gate on the new route. No call of the merchant runs on
// either path while its data moves, so a hold can be neither lost nor doubled by the switch.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/result.h"
#include "domain/ports.h"
#include "domain/stock_api.h"

namespace allot {

// What the database says about a merchant's route.
struct StoredRoute {
  Route route = Route::kRedis;
  // A switch began and has not finished (it failed, or its process died): the merchant is
  // served by neither path until a PUT of the route runs the switch again.
  bool switching = false;
};

class RouteTable {
 public:
  virtual ~RouteTable() = default;
  // Empty when the merchant was never configured (it takes the default route).
  [[nodiscard]] virtual Result<std::optional<StoredRoute>> findRoute(
      const std::string& dept_no) = 0;
  [[nodiscard]] virtual Result<void> saveRoute(const std::string& dept_no,
                                               const StoredRoute& route) = 0;
  // Removes the merchant's row: it takes the default route again (a switch put off before any
  // data moved puts a merchant back as it was, without a row).
  [[nodiscard]] virtual Result<void> forgetRoute(const std::string& dept_no) = 0;
};

// The data side of a switch: moves the merchant's records and orders from one path to the
// other. Called with the gate closed; marks the route switching in the table first and saves
// the new route last. An error leaves the merchant switching (a PUT runs it again).
using RouteMove = std::function<Result<void>(const std::string& dept_no, Route from, Route to)>;

// GET /v1/admin/merchants/{dept_no}.
struct MerchantRouteView {
  std::string dept_no;
  Route route = Route::kRedis;
  bool configured = false;  // false: never set; the default route applies
  bool switching = false;
};

struct MerchantRouterOptions {
  Route default_route = Route::kRedis;
  std::int64_t refresh_ms = 1000;        // how old a cached route may get
  std::int64_t call_wait_ms = 2000;      // how long a call waits for a switch before its 503
  std::int64_t drain_calls_ms = 10'000;  // how long a switch waits for the calls in flight
};

class MerchantRouter final : public StockApi, public RouteGate {
 public:
  MerchantRouter(StockApi& redis_path, StockApi& mysql_path, RouteTable& table, RouteMove move,
                 MerchantRouterOptions options = {});

  [[nodiscard]] Result<PreallocateOutcome> preallocate(const PreallocateRequest& request) override;
  [[nodiscard]] Result<EndAnswer> rollback(const OrderRef& order) override;
  [[nodiscard]] Result<EndAnswer> deduct(const OrderRef& order) override;
  [[nodiscard]] Result<OrderAnswer> findOrder(const OrderRef& order) override;
  [[nodiscard]] Result<Quantities> adjust(const AdjustRequest& request,
                                          const std::string& digest) override;
  [[nodiscard]] Result<Quantities> readRecord(const RecordKey& key) override;
  [[nodiscard]] Result<void> checkReady() override;

  // The route that serves the merchant now (the cached one; the default when unknown).
  [[nodiscard]] Route routeOf(const std::string& dept_no);
  [[nodiscard]] Result<MerchantRouteView> view(const std::string& dept_no);
  // Switches the merchant live; a no-op when it is already on `to` and not switching.
  [[nodiscard]] Result<MerchantRouteView> switchRoute(const std::string& dept_no, Route to);

  // RouteGate: the non-blocking admission of the single-line fast path. It never reads the
  // table: a merchant whose cached route is stale goes the ordinary way, which refreshes it.
  [[nodiscard]] bool tryAdmitRedis(const std::string& dept_no) override;
  void leave(const std::string& dept_no) override;

 private:
  struct Entry {
    StoredRoute stored;
    bool configured = false;
    std::int64_t loaded_ms = -1;  // when the table was last read; -1: never
    bool local_switch = false;    // this process is switching it: calls wait
    // Moved on by a switch as it closes the gate and again before it reads the table once the
    // data has moved. A read of the table that began in an earlier epoch is not installed.
    std::uint64_t epoch = 0;
    // A caller is reading the table for it (without the lock), begun in this epoch.
    std::optional<std::uint64_t> reader_epoch;
    int in_flight = 0;
  };
  struct Shard {
    std::mutex mutex;
    std::condition_variable changed;
    std::unordered_map<std::string, Entry> entries;
  };
  static constexpr std::size_t kShards = 16;

  template <typename Call>
  auto through(const std::string& dept_no, Call call) -> decltype(call(std::declval<StockApi&>()));
  [[nodiscard]] Shard& shardOf(const std::string& dept_no);
  // Admits one call: waits out a local switch, refreshes a stale entry, counts the call.
  [[nodiscard]] Result<Route> admit(const std::string& dept_no);
  // Reads the table into the entry when it is stale (or always with force). Shard locked on
  // entry and on return, but not while the table is read. While another caller reads it, waits
  // up to call_wait_ms for that read, then answers 503: a hung database holds up one caller
  // per merchant, not every call of it (a route read before is not served meanwhile: it may
  // be older than a switch's settle wait).
  [[nodiscard]] Result<void> refresh(Shard& shard, std::unique_lock<std::mutex>& lock,
                                     const std::string& dept_no, bool force);
  [[nodiscard]] MerchantRouteView viewOf(const std::string& dept_no, const Entry& entry) const;

  StockApi& redis_path_;
  StockApi& mysql_path_;
  RouteTable& table_;
  RouteMove move_;
  MerchantRouterOptions options_;
  std::array<Shard, kShards> shards_;
};

}  // namespace allot
