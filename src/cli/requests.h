// The HTTP calls allotctl makes, built from already-parsed arguments: method, target and JSON
// body for each endpoint of docs/api.md, plus the parsing of order line specs. Pure functions
// with no I/O, so that tests can check every request allotctl would send.
//
// Bodies are built with Boost.JSON and targets with Boost.URL, never by pasting user input
// into text, so no argument can change the shape of a request. Field contents (the character
// set of dept_no, goods_no ...) are the server's to judge: allotctl checks only the structure
// it owns (the line spec syntax, quantities, the number of lines).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace allot::cli {

// The six fields that name a record; the last three are sent only when given, so the server
// applies its own defaults.
struct RecordFields {
  std::string dept_no;
  std::string goods_no;
  std::string warehouse_no;
  std::optional<std::string> stock_status;
  std::optional<std::string> stock_type;
  std::optional<std::string> goods_level;
};

// One order line: "GOODS:WAREHOUSE=QTY" or "GOODS:WAREHOUSE:STATUS:TYPE:LEVEL=QTY".
struct LineSpec {
  std::string goods_no;
  std::string warehouse_no;
  std::optional<std::string> stock_status;
  std::optional<std::string> stock_type;
  std::optional<std::string> goods_level;
  std::int64_t qty = 0;

  bool operator==(const LineSpec&) const = default;
};

// How allotctl prints a successful answer.
enum class AnswerShape {
  kRecord,    // one record's fields and quantities, as a one-row table
  kOrder,     // an order with its lines, as a heading and a table
  kOrderEnd,  // the answer of rollback and deduct: one line
  kFields,    // anything else: aligned "name value" lines
};

struct ApiCall {
  std::string method;
  std::string target;  // path and query, already percent-encoded
  std::string body;    // JSON text; empty for GET
  bool admin = false;  // authorised with the admin token instead of the API token
  AnswerShape shape = AnswerShape::kFields;
  // The call's own default for --timeout-ms when it is longer than the global one (0: none).
  std::int64_t timeout_ms = 0;
};

// A route switch drains the merchant's write-back and waits for its compensation (each up
// to 30 s), then drains again after the eviction (up to 30 s more): `route set` waits this
// long for its answer unless --timeout-ms says otherwise.
inline constexpr std::int64_t kRouteSetTimeoutMs = 150'000;

// An adjustment either adds a signed delta to on_hand or sets on_hand outright.
struct StockChange {
  enum class Kind { kDelta, kOnHand };
  Kind kind = Kind::kDelta;
  std::int64_t value = 0;
};

[[nodiscard]] Result<LineSpec> parseLineSpec(std::string_view spec);
// A lines file is a JSON array of line objects, an object with such a "lines" array (a whole
// preallocation body), or JSON Lines: one line object per text line. A line object has the
// API's names: goods_no, warehouse_no, stock_status?, stock_type?, goods_level?, qty.
[[nodiscard]] Result<std::vector<LineSpec>> parseLinesFile(std::string_view content);

[[nodiscard]] ApiCall adjustCall(const RecordFields& record, StockChange change,
                                 std::string_view ref);
[[nodiscard]] ApiCall stockCall(const RecordFields& record);
// Fails when there are no lines or more than limits::kOrderLinesMax.
[[nodiscard]] Result<ApiCall> preallocateCall(std::string_view dept_no, std::string_view order_no,
                                              const std::vector<LineSpec>& lines,
                                              bool allow_shortage);
[[nodiscard]] ApiCall rollbackCall(std::string_view dept_no, std::string_view order_no);
[[nodiscard]] ApiCall deductCall(std::string_view dept_no, std::string_view order_no);
[[nodiscard]] ApiCall orderCall(std::string_view dept_no, std::string_view order_no);
[[nodiscard]] ApiCall routeGetCall(std::string_view dept_no);
[[nodiscard]] ApiCall routeSetCall(std::string_view dept_no, std::string_view route);
[[nodiscard]] ApiCall reconcileCall(const std::optional<std::string>& dept_no);

}  // namespace allot::cli
