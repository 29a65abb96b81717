// The JSON codec of the HTTP layer: it turns request bodies and query strings into validated
// domain requests and domain answers into the JSON of the service contract (docs/api.md).
//
// Every parse function is the edge of the system for its input: it checks every field against
// the record charset and the limits of core/limits.h, so the layers below may trust what they
// get. A bad input is a Result with ErrorCode::kInvalidRequest and a message that names the
// field and the problem ("lines[3].qty must be an integer 1..1000000000"); line indexes are
// 0-based, as in a JSON path. Unknown fields and parameters are ignored so that callers may
// send more than this version reads; a key repeated in one JSON object, or a query parameter
// this codec reads given twice, is refused, because which of the two values counts would be a
// guess.
//
// No exception leaves this file: Boost's are caught and turned into Error values.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "domain/merchant_router.h"
#include "domain/order.h"
#include "domain/ports.h"
#include "domain/quantities.h"
#include "domain/record_key.h"

namespace allot::http {

// POST /v1/preallocations. Each line's key.dept_no is the order's dept_no; the optional record
// fields take their defaults; the same record twice in one order is refused.
[[nodiscard]] Result<PreallocateRequest> parsePreallocateRequest(std::string_view body);

namespace detail {
// The two readers parsePreallocateRequest combines, for the tests that hold them equal: the
// one-pass reader of the commonest bodies (nullopt: it gave up), and the thorough parse that
// reads every body and words every refusal.
[[nodiscard]] std::optional<PreallocateRequest> parsePreallocateRequestInOnePass(
    std::string_view body);
[[nodiscard]] Result<PreallocateRequest> parsePreallocateRequestThoroughly(std::string_view body);
}  // namespace detail

// POST /v1/preallocations/rollback and /deduct: {"dept_no", "order_no"}.
[[nodiscard]] Result<OrderRef> parseOrderRefRequest(std::string_view body);

// POST /v1/stock/adjust: record fields, "ref", and exactly one of "delta" and "on_hand".
[[nodiscard]] Result<AdjustRequest> parseAdjustRequest(std::string_view body);

// POST /v1/admin/reconcile: an empty body or {} (every merchant) or {"dept_no"}.
[[nodiscard]] Result<std::optional<std::string>> parseReconcileRequest(std::string_view body);
// PUT /v1/admin/merchants/{dept_no}: {"route": "redis" | "mysql"}.
[[nodiscard]] Result<Route> parseRouteRequest(std::string_view body);
// The {dept_no} of an admin path, percent-decoded (RFC 3986: "D%31" is "D1") and then checked
// like every dept_no.
[[nodiscard]] Result<std::string> parseMerchantPath(std::string_view segment);
// GET and PUT /v1/admin/merchants/{dept_no}: {"dept_no", "route", "configured", "switching"}.
[[nodiscard]] std::string encodeMerchantRoute(const MerchantRouteView& view);

// GET
// /v1/stock?dept_no=..&goods_no=..&warehouse_no=..[&stock_status=..&stock_type=..&goods_level=..]
// `query` is the percent-encoded query string without the '?'.
[[nodiscard]] Result<RecordKey> parseRecordQuery(std::string_view query);

// GET /v1/preallocations?dept_no=..&order_no=..
[[nodiscard]] Result<OrderRef> parseOrderQuery(std::string_view query);

// The canonical meaning of an adjust body, for its idempotency check: equal for equal requests
// (whatever their JSON spelling), different otherwise. The ref is the key, not part of it.
[[nodiscard]] std::string adjustDigest(const AdjustRequest& request);

// Compact JSON answers, field names exactly as the contract spells them.
[[nodiscard]] std::string encodeOrderAnswer(const OrderAnswer& answer);  // POST preallocations
[[nodiscard]] std::string encodeOrderView(const OrderAnswer& answer);    // GET: no "replayed"
[[nodiscard]] std::string encodeEndAnswer(const EndAnswer& answer);      // rollback, deduct
[[nodiscard]] std::string encodeRecord(const RecordKey& key, const Quantities& quantities,
                                       Route route);
[[nodiscard]] std::string encodeError(const Error& error);
// The 409 insufficient_stock answer of an all-or-nothing order, naming its short lines.
[[nodiscard]] std::string encodeRefusal(const std::string& order_no,
                                        const PreallocateRefusal& refusal);

}  // namespace allot::http
