#include "http/routes.h"

#include <fmt/format.h>

#include "http/error_mapping.h"
#include "http/json_codec.h"
#include "http/prometheus.h"

namespace allot::http {

namespace {

constexpr std::string_view kEndpointNames[] = {"adjust", "stock",   "preallocate", "rollback",
                                               "deduct", "order",   "admin",       "healthz",
                                               "readyz", "metrics", "other"};
static_assert(std::size(kEndpointNames) == static_cast<std::size_t>(Endpoint::kCount));

HttpAnswer errorAnswer(const Error& error) { return {httpStatus(error.code), encodeError(error)}; }

HttpAnswer errorAnswer(ErrorCode code, std::string message) {
  return errorAnswer(Error{code, std::move(message)});
}

struct RouteMatch {
  Endpoint endpoint;
  std::string_view method;  // the one method the path accepts; empty: the handler decides
};

RouteMatch matchPath(std::string_view path) {
  if (path == "/v1/stock/adjust") return {Endpoint::kAdjust, "POST"};
  if (path == "/v1/stock") return {Endpoint::kStock, "GET"};
  if (path == "/v1/preallocations/rollback") return {Endpoint::kRollback, "POST"};
  if (path == "/v1/preallocations/deduct") return {Endpoint::kDeduct, "POST"};
  if (path == "/v1/preallocations") return {Endpoint::kPreallocate, ""};
  if (path.starts_with("/v1/admin/")) return {Endpoint::kAdmin, ""};
  if (path == "/healthz") return {Endpoint::kHealth, "GET"};
  if (path == "/readyz") return {Endpoint::kReady, "GET"};
  if (path == "/metrics") return {Endpoint::kMetrics, "GET"};
  return {Endpoint::kOther, ""};
}

// Compares without an early exit, so the time taken does not reveal the matching prefix.
bool constantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

Router::Router(StockApi& service, ServiceCounters& counters, RouterOptions options)
    : service_(service), counters_(counters), options_(std::move(options)) {}

HttpAnswer Router::handle(const HttpRequestView& received) {
  // HEAD is GET without the body (RFC 9110 9.3.2), which the server leaves out: every route
  // sees GET.
  HttpRequestView request = received;
  if (request.method == "HEAD") request.method = "GET";
  const auto question = request.target.find('?');
  const auto path = request.target.substr(0, question);
  const auto query =
      question == std::string_view::npos ? std::string_view() : request.target.substr(question + 1);
  const auto match = matchPath(path);
  HttpAnswer answer;
  if (match.endpoint == Endpoint::kOther) {
    answer = errorAnswer(ErrorCode::kNotFound, "no such endpoint: " + std::string(path));
  } else if (!match.method.empty() && request.method != match.method) {
    answer = {405, encodeError({ErrorCode::kInvalidRequest,
                                fmt::format("{} accepts only {}", path, match.method)})};
  } else if (path.starts_with("/v1/") && match.endpoint != Endpoint::kAdmin &&
             !options_.api_token.empty() &&
             !authorized(request.authorization, options_.api_token)) {
    answer = errorAnswer(ErrorCode::kUnauthorized, "a valid bearer token is required");
  } else {
    answer = dispatch(match.endpoint, request, query);
  }
  count(match.endpoint, answer.status);
  return answer;
}

HttpAnswer Router::malformed(std::string_view reason) {
  auto answer = errorAnswer(ErrorCode::kInvalidRequest, std::string(reason));
  count(Endpoint::kOther, answer.status);
  return answer;
}

HttpAnswer Router::dispatch(Endpoint endpoint, const HttpRequestView& request,
                            std::string_view query) {
  switch (endpoint) {
    case Endpoint::kAdjust: return adjust(request.body);
    case Endpoint::kStock: return stock(query);
    case Endpoint::kPreallocate:
      if (request.method == "POST") return preallocate(request.body);
      if (request.method == "GET") return order(query);
      return {405, encodeError({ErrorCode::kInvalidRequest,
                                "/v1/preallocations accepts only GET and POST"})};
    case Endpoint::kRollback: return endOrder(request.body, true);
    case Endpoint::kDeduct: return endOrder(request.body, false);
    case Endpoint::kAdmin:
      return admin(request, request.target.substr(0, request.target.find('?')));
    case Endpoint::kHealth: return {200, R"({"status":"ok"})"};
    case Endpoint::kReady: return ready();
    case Endpoint::kMetrics: return metrics();
    case Endpoint::kOrder:
    case Endpoint::kOther:
    case Endpoint::kCount: break;
  }
  return errorAnswer(ErrorCode::kNotFound, "no such endpoint");
}

HttpAnswer Router::adjust(std::string_view body) {
  auto request = parseAdjustRequest(body);
  if (!request) return errorAnswer(request.error());
  auto quantities = service_.adjust(*request, adjustDigest(*request));
  if (!quantities) return errorAnswer(quantities.error());
  return {200, encodeRecord(request->key, *quantities, routeOf(request->key.dept_no))};
}

HttpAnswer Router::stock(std::string_view query) {
  auto key = parseRecordQuery(query);
  if (!key) return errorAnswer(key.error());
  auto quantities = service_.readRecord(*key);
  if (!quantities) return errorAnswer(quantities.error());
  return {200, encodeRecord(*key, *quantities, routeOf(key->dept_no))};
}

HttpAnswer Router::preallocate(std::string_view body) {
  auto request = parsePreallocateRequest(body);
  if (!request) return errorAnswer(request.error());
  return preallocateAnswer(request->order_no, service_.preallocate(*request));
}

HttpAnswer Router::preallocateAnswer(const std::string& order_no,
                                     const Result<PreallocateOutcome>& outcome) {
  if (!outcome) return errorAnswer(outcome.error());
  if (const auto* refusal = std::get_if<PreallocateRefusal>(&*outcome)) {
    return {httpStatus(ErrorCode::kInsufficientStock), encodeRefusal(order_no, *refusal)};
  }
  return {200, encodeOrderAnswer(std::get<OrderAnswer>(*outcome))};
}

bool Router::handleAsync(const HttpRequestView& request, AsyncPreallocator& fast,
                         std::function<void(std::optional<HttpAnswer>)> done) {
  // Only what the fast path can serve; everything else, errors included, is handle()'s.
  if (request.method != "POST" || request.target != "/v1/preallocations") return false;
  if (!options_.api_token.empty() && !authorized(request.authorization, options_.api_token)) {
    return false;
  }
  auto parsed = parsePreallocateRequest(request.body);
  if (!parsed || parsed->lines.size() != 1) return false;
  std::string order_no = parsed->order_no;
  return fast.preallocate(std::move(*parsed),
                          [this, order_no = std::move(order_no), done = std::move(done)](
                              std::optional<Result<PreallocateOutcome>> outcome) {
                            if (!outcome) {
                              done(std::nullopt);
                              return;
                            }
                            HttpAnswer answer = preallocateAnswer(order_no, *outcome);
                            count(Endpoint::kPreallocate, answer.status);
                            done(std::move(answer));
                          });
}

HttpAnswer Router::endOrder(std::string_view body, bool rollback) {
  auto order = parseOrderRefRequest(body);
  if (!order) return errorAnswer(order.error());
  auto answer = rollback ? service_.rollback(*order) : service_.deduct(*order);
  if (!answer) return errorAnswer(answer.error());
  return {200, encodeEndAnswer(*answer)};
}

HttpAnswer Router::order(std::string_view query) {
  auto order = parseOrderQuery(query);
  if (!order) return errorAnswer(order.error());
  auto answer = service_.findOrder(*order);
  if (!answer) return errorAnswer(answer.error());
  return {200, encodeOrderView(*answer)};
}

HttpAnswer Router::admin(const HttpRequestView& request, std::string_view path) {
  if (options_.admin_token.empty()) {
    return errorAnswer(ErrorCode::kUnauthorized,
                       "admin is disabled: no ALLOT_ADMIN_TOKEN is configured");
  }
  if (!authorized(request.authorization, options_.admin_token)) {
    return errorAnswer(ErrorCode::kUnauthorized, "a valid admin bearer token is required");
  }
  if (path == "/v1/admin/reconcile") {
    if (request.method != "POST") {
      return {405,
              encodeError({ErrorCode::kInvalidRequest, "/v1/admin/reconcile accepts only POST"})};
    }
    auto dept_no = parseReconcileRequest(request.body);
    if (!dept_no) return errorAnswer(dept_no.error());
    if (!options_.reconcile) return errorAnswer(ErrorCode::kUnavailable, "reconciliation is off");
    auto counts = options_.reconcile(*dept_no);
    if (!counts) return errorAnswer(counts.error());
    return {200,
            fmt::format(R"({{"checked":{},"mismatched":{},"repaired":{},"failed":{}}})",
                        counts->checked, counts->mismatched, counts->repaired, counts->failed)};
  }
  constexpr std::string_view kMerchants = "/v1/admin/merchants/";
  if (path.starts_with(kMerchants)) return merchant(request, path.substr(kMerchants.size()));
  return errorAnswer(ErrorCode::kNotFound, "no such admin endpoint: " + std::string(path));
}

HttpAnswer Router::merchant(const HttpRequestView& request, std::string_view dept_no) {
  if (request.method != "GET" && request.method != "PUT") {
    return {405, encodeError({ErrorCode::kInvalidRequest,
                              "/v1/admin/merchants/{dept_no} accepts only GET and PUT"})};
  }
  auto dept = parseMerchantPath(dept_no);
  if (!dept) return errorAnswer(dept.error());
  if (!options_.merchant_route || !options_.switch_route) {
    return errorAnswer(ErrorCode::kUnavailable, "merchant routing is off");
  }
  if (request.method == "GET") {
    auto view = options_.merchant_route(*dept);
    if (!view) return errorAnswer(view.error());
    return {200, encodeMerchantRoute(*view)};
  }
  auto route = parseRouteRequest(request.body);
  if (!route) return errorAnswer(route.error());
  auto view = options_.switch_route(*dept, *route);
  if (!view) return errorAnswer(view.error());
  return {200, encodeMerchantRoute(*view)};
}

Route Router::routeOf(const std::string& dept_no) const {
  return options_.route_of ? options_.route_of(dept_no) : options_.default_route;
}

HttpAnswer Router::ready() {
  if (auto ready = service_.checkReady(); !ready) {
    return {503, encodeError({ErrorCode::kUnavailable, ready.error().message})};
  }
  return {200, R"({"status":"ready"})"};
}

// "Bearer <token>": the scheme's name is case-insensitive (RFC 7235), then one or more spaces.
bool Router::authorized(std::string_view authorization, const std::string& token) const {
  constexpr std::string_view kBearer = "bearer";
  if (authorization.size() <= kBearer.size()) return false;
  for (std::size_t i = 0; i < kBearer.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != kBearer[i]) return false;
  }
  std::size_t at = kBearer.size();
  if (authorization[at] != ' ') return false;
  while (at < authorization.size() && authorization[at] == ' ') ++at;
  return constantTimeEquals(authorization.substr(at), token);
}

void Router::count(Endpoint endpoint, int status) {
  std::size_t slot = kStatuses.size() - 1;  // "other"
  for (std::size_t i = 0; i + 1 < kStatuses.size(); ++i) {
    if (kStatuses[i] == status) slot = i;
  }
  requests_[static_cast<std::size_t>(endpoint)][slot].fetch_add(1, std::memory_order_relaxed);
}

HttpAnswer Router::metrics() {
  std::string out;
  auto counter = [&out](std::string_view name, std::string_view help, std::uint64_t value) {
    appendCounter(out, name, help, value);
  };
  counter("allot_record_loads_total", "Records loaded from the database into Redis.",
          counters_.record_loads.load());
  counter("allot_orders_allocated_total", "Orders held and answered 200.",
          counters_.orders_allocated.load());
  counter("allot_orders_replayed_total", "Retries answered from the first answer.",
          counters_.orders_replayed.load());
  counter("allot_orders_refused_total", "All-or-nothing orders refused for lack of stock.",
          counters_.orders_refused.load());
  counter("allot_rollbacks_total", "Orders rolled back.", counters_.rollbacks.load());
  counter("allot_deducts_total", "Orders deducted.", counters_.deducts.load());
  counter("allot_adjusts_total", "Stock adjustments applied.", counters_.adjusts.load());
  counter("allot_hold_batches_total", "Coalesced hold calls to Redis (one script call each).",
          counters_.hold_batches.load());
  counter("allot_holds_batched_total", "Holds carried by the coalesced hold calls.",
          counters_.holds_batched.load());
  counter("allot_fast_batches_total",
          "Single-line fast path: script calls (each claims, holds and commits its orders).",
          counters_.fast_batches.load());
  counter("allot_fast_orders_total", "Single-line fast path: orders carried by those calls.",
          counters_.fast_orders.load());
  counter("allot_fast_fallbacks_total",
          "Single-line fast path: orders handed to the multi-step protocol instead.",
          counters_.fast_fallbacks.load());
  counter("allot_compensation_inline_retries_total",
          "Compensation stage 1: reverse operations retried inline.",
          counters_.reverse_retries.load());
  counter("allot_compensation_tasks_recorded_total",
          "Compensation stage 2: durable tasks recorded for reverses that kept failing.",
          counters_.compensations_recorded.load());
  counter("allot_compensation_tasks_unrecorded_total",
          "Reverses that could not even be recorded; left to the reconciliation scan.",
          counters_.compensations_unrecorded.load());
  counter("allot_compensation_tasks_applied_total",
          "Compensation stage 2: durable tasks applied by the compensation worker.",
          counters_.compensations_applied.load());
  counter("allot_compensation_attempts_failed_total",
          "Compensation task attempts that failed and were rescheduled.",
          counters_.compensation_attempts_failed.load());
  counter("allot_compensation_tasks_given_up_total",
          "Compensation tasks given up after their bound: left to an operator.",
          counters_.compensations_given_up.load());
  counter("allot_compensation_pending_orders_found_total",
          "Compensation stage 3: orders left pending past their claim's lease by a call that "
          "never answered, handed to the worker as undo tasks.",
          counters_.pending_orders_compensated.load());
  counter("allot_busy_waits_exhausted_total",
          "Calls answered 503 after waiting for a concurrent call on the same order.",
          counters_.busy_waits_exhausted.load());
  out +=
      "# HELP allot_http_requests_total HTTP requests by endpoint and status.\n"
      "# TYPE allot_http_requests_total counter\n";
  for (std::size_t e = 0; e < requests_.size(); ++e) {
    for (std::size_t s = 0; s < kStatuses.size(); ++s) {
      const auto value = requests_[e][s].load(std::memory_order_relaxed);
      if (value == 0) continue;
      out += fmt::format("allot_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n",
                         kEndpointNames[e],
                         kStatuses[s] == 0 ? "other" : std::to_string(kStatuses[s]), value);
    }
  }
  if (options_.extra_metrics) out += options_.extra_metrics();
  return {200, std::move(out), "text/plain; version=0.0.4"};
}

}  // namespace allot::http
