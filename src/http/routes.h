// The routes of the contract: each handler parses and validates its input with the JSON
// codec, calls one service function and encodes the answer. Transport-free, so tests can
// drive it without sockets; server.cc feeds it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "domain/counters.h"
#include "domain/merchant_router.h"
#include "domain/ports.h"
#include "domain/stock_api.h"

namespace allot::http {

struct HttpRequestView {
  std::string_view method;
  std::string_view target;         // path and query, as received
  std::string_view authorization;  // the Authorization header, may be empty
  std::string_view body;
};

struct HttpAnswer {
  int status = 200;
  std::string body;
  std::string_view content_type = "application/json";  // always a literal
};

// What a reconciliation run reports (API.md 7).
struct ReconcileCounts {
  std::int64_t checked = 0;
  std::int64_t mismatched = 0;
  std::int64_t repaired = 0;
  std::int64_t failed = 0;  // could not be compared (not counted in checked)
};

struct RouterOptions {
  std::string api_token;    // when set, every /v1 call (but admin) needs it as a bearer token
  std::string admin_token;  // /v1/admin needs it; admin is refused when it is empty
  Route default_route = Route::kRedis;
  // More Prometheus text appended to /metrics (the workers' gauges and counters).
  std::function<std::string()> extra_metrics;
  // The route of a merchant, for the "route" field of GET /v1/stock and adjust answers
  // (default_route when not set).
  std::function<Route(const std::string& dept_no)> route_of;
  // GET and PUT /v1/admin/merchants/{dept_no}; the endpoints answer 503 when not set.
  std::function<Result<MerchantRouteView>(const std::string& dept_no)> merchant_route;
  std::function<Result<MerchantRouteView>(const std::string& dept_no, Route route)> switch_route;
  // Runs a reconciliation now, of one merchant or of all (POST /v1/admin/reconcile).
  std::function<Result<ReconcileCounts>(const std::optional<std::string>& dept_no)> reconcile;
};

// The endpoints, for per-endpoint metrics.
enum class Endpoint : std::uint8_t {
  kAdjust,
  kStock,
  kPreallocate,
  kRollback,
  kDeduct,
  kOrder,
  kAdmin,
  kHealth,
  kReady,
  kMetrics,
  kOther,
  kCount
};

class Router {
 public:
  Router(StockApi& service, ServiceCounters& counters, RouterOptions options);

  [[nodiscard]] HttpAnswer handle(const HttpRequestView& request);
  // The non-blocking path of a network thread: a single-line pre-allocation that `fast` can
  // serve. False when the request is not for it (then handle() must serve it, on a worker);
  // otherwise `done` runs later, exactly once, with the answer, or with nullopt when the
  // request must still go to handle() (nothing was changed). The request is read during the
  // call only.
  [[nodiscard]] bool handleAsync(const HttpRequestView& request, AsyncPreallocator& fast,
                                 std::function<void(std::optional<HttpAnswer>)> done);
  // An answer for a request that could not be parsed at all (the server calls this).
  [[nodiscard]] HttpAnswer malformed(std::string_view reason);

 private:
  [[nodiscard]] HttpAnswer dispatch(Endpoint endpoint, const HttpRequestView& request,
                                    std::string_view query);
  [[nodiscard]] HttpAnswer adjust(std::string_view body);
  [[nodiscard]] HttpAnswer stock(std::string_view query);
  [[nodiscard]] HttpAnswer preallocate(std::string_view body);
  [[nodiscard]] static HttpAnswer preallocateAnswer(const std::string& order_no,
                                                    const Result<PreallocateOutcome>& outcome);
  [[nodiscard]] HttpAnswer endOrder(std::string_view body, bool rollback);
  [[nodiscard]] HttpAnswer order(std::string_view query);
  [[nodiscard]] HttpAnswer admin(const HttpRequestView& request, std::string_view path);
  [[nodiscard]] HttpAnswer merchant(const HttpRequestView& request, std::string_view dept_no);
  [[nodiscard]] Route routeOf(const std::string& dept_no) const;
  [[nodiscard]] HttpAnswer ready();
  [[nodiscard]] HttpAnswer metrics();
  [[nodiscard]] bool authorized(std::string_view authorization, const std::string& token) const;
  void count(Endpoint endpoint, int status);

  StockApi& service_;
  ServiceCounters& counters_;
  RouterOptions options_;
  static constexpr std::array<int, 9> kStatuses = {200, 400, 401, 404, 405, 409, 500, 503, 0};
  std::array<std::array<std::atomic<std::uint64_t>, kStatuses.size()>,
             static_cast<std::size_t>(Endpoint::kCount)>
      requests_{};
};

}  // namespace allot::http
