// Builds allotctl's HTTP calls and parses order line specs; see requests.h.
#include "cli/requests.h"

#include <algorithm>
#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>
#include <charconv>
#include <utility>

#include "core/limits.h"

namespace allot::cli {

namespace {

namespace json = boost::json;

// Built with append: GCC 12 at -O3 reports a false -Wrestrict on "\"" + std::string(...)
// (GCC bug 105329).
std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.append(1, '"').append(text).append(1, '"');
  return out;
}

// "/path?k=v&...", every value percent-encoded down to the unreserved characters. Encoding
// '+' too matters: many servers decode a '+' in a query as a space.
std::string targetWithQuery(std::string_view path,
                            const std::vector<std::pair<std::string_view, std::string>>& params) {
  boost::urls::url url;
  url.set_path(path);
  for (const auto& [name, value] : params) {
    const std::string encoded = boost::urls::encode(value, boost::urls::unreserved_chars);
    url.encoded_params().append({name, boost::urls::pct_string_view(encoded)});
  }
  return std::string(url.buffer());
}

std::string merchantTarget(std::string_view dept_no) {
  boost::urls::url url;
  url.set_path("/v1/admin/merchants");
  url.segments().push_back(dept_no);  // percent-encodes '/', '?', '#' and the like
  return std::string(url.buffer());
}

void putOptional(json::object& body, std::string_view name,
                 const std::optional<std::string>& value) {
  if (value.has_value()) body[name] = *value;
}

json::object recordBody(const RecordFields& record) {
  json::object body;
  body["dept_no"] = record.dept_no;
  body["goods_no"] = record.goods_no;
  body["warehouse_no"] = record.warehouse_no;
  putOptional(body, "stock_status", record.stock_status);
  putOptional(body, "stock_type", record.stock_type);
  putOptional(body, "goods_level", record.goods_level);
  return body;
}

json::object lineBody(const LineSpec& line) {
  json::object body;
  body["goods_no"] = line.goods_no;
  body["warehouse_no"] = line.warehouse_no;
  putOptional(body, "stock_status", line.stock_status);
  putOptional(body, "stock_type", line.stock_type);
  putOptional(body, "goods_level", line.goods_level);
  body["qty"] = line.qty;
  return body;
}

std::string orderBody(std::string_view dept_no, std::string_view order_no) {
  json::object body;
  body["dept_no"] = dept_no;
  body["order_no"] = order_no;
  return json::serialize(body);
}

Result<std::int64_t> checkQty(std::int64_t value) {
  if (value < limits::kLineQtyMin || value > limits::kLineQtyMax) {
    return fail(ErrorCode::kInvalidRequest, "quantity " + std::to_string(value) + " is outside " +
                                                std::to_string(limits::kLineQtyMin) + ".." +
                                                std::to_string(limits::kLineQtyMax));
  }
  return value;
}

Result<std::int64_t> parseQty(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size()) {
    return fail(ErrorCode::kInvalidRequest, "quantity " + quoted(text) + " is not an integer");
  }
  return checkQty(value);
}

// Splits on ':' into the record fields of a line; two or five non-empty parts.
Result<std::vector<std::string>> splitRecordPart(std::string_view text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t colon = text.find(':', start);
    parts.emplace_back(text.substr(start, colon - start));
    if (parts.back().empty()) {
      return fail(ErrorCode::kInvalidRequest, "a line has an empty field");
    }
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  if (parts.size() != 2 && parts.size() != 5) {
    return fail(ErrorCode::kInvalidRequest,
                "a line names GOODS:WAREHOUSE or GOODS:WAREHOUSE:STATUS:TYPE:LEVEL, got " +
                    std::to_string(parts.size()) + " fields");
  }
  return parts;
}

Result<std::string> stringMember(const json::object& line, std::string_view name) {
  const json::value* value = line.if_contains(name);
  if (value == nullptr || !value->is_string()) {
    return fail(ErrorCode::kInvalidRequest, quoted(name) + " must be a string");
  }
  return std::string(value->as_string());
}

Result<LineSpec> lineFromJson(const json::value& value) {
  if (!value.is_object()) return fail(ErrorCode::kInvalidRequest, "a line must be an object");
  const json::object& line = value.as_object();
  for (const auto& member : line) {
    static constexpr std::string_view kKnown[] = {"goods_no",   "warehouse_no", "stock_status",
                                                  "stock_type", "goods_level",  "qty"};
    if (std::find(std::begin(kKnown), std::end(kKnown), member.key()) == std::end(kKnown)) {
      return fail(ErrorCode::kInvalidRequest, "unknown line field " + quoted(member.key()));
    }
  }
  LineSpec spec;
  ALLOT_TRY(goods_no, stringMember(line, "goods_no"));
  ALLOT_TRY(warehouse_no, stringMember(line, "warehouse_no"));
  spec.goods_no = std::move(goods_no);
  spec.warehouse_no = std::move(warehouse_no);
  for (auto [name, field] :
       {std::pair{"stock_status", &spec.stock_status}, std::pair{"stock_type", &spec.stock_type},
        std::pair{"goods_level", &spec.goods_level}}) {
    if (!line.contains(name)) continue;
    ALLOT_TRY(text, stringMember(line, name));
    *field = std::move(text);
  }
  const json::value* qty = line.if_contains("qty");
  if (qty == nullptr || !qty->is_int64()) {
    return fail(ErrorCode::kInvalidRequest, "\"qty\" must be an integer");
  }
  ALLOT_TRY(checked_qty, checkQty(qty->as_int64()));
  spec.qty = checked_qty;
  return spec;
}

Result<std::vector<LineSpec>> linesFromJsonArray(const json::array& array) {
  std::vector<LineSpec> lines;
  for (const json::value& element : array) {
    auto line = lineFromJson(element);
    if (!line) {
      return fail(ErrorCode::kInvalidRequest,
                  "line " + std::to_string(lines.size() + 1) + ": " + line.error().message);
    }
    lines.push_back(std::move(*line));
  }
  return lines;
}

Result<std::vector<LineSpec>> linesFromJsonLines(std::string_view content) {
  std::vector<LineSpec> lines;
  std::size_t number = 0;
  while (!content.empty()) {
    const std::size_t newline = content.find('\n');
    const std::string_view text = content.substr(0, newline);
    content = newline == std::string_view::npos ? std::string_view{} : content.substr(newline + 1);
    ++number;
    if (text.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    boost::system::error_code error;
    const json::value value = json::parse(text, error);
    auto line = error ? fail(ErrorCode::kInvalidRequest, "not JSON: " + error.message())
                      : lineFromJson(value);
    if (!line) {
      return fail(ErrorCode::kInvalidRequest,
                  "line " + std::to_string(number) + ": " + line.error().message);
    }
    lines.push_back(std::move(*line));
  }
  return lines;
}

}  // namespace

Result<LineSpec> parseLineSpec(std::string_view spec) {
  const std::size_t equals = spec.find('=');
  if (equals == std::string_view::npos) {
    return fail(ErrorCode::kInvalidRequest, "line " + quoted(spec) + " has no \"=QTY\"");
  }
  auto parts = splitRecordPart(spec.substr(0, equals));
  if (!parts) {
    return fail(ErrorCode::kInvalidRequest, "line " + quoted(spec) + ": " + parts.error().message);
  }
  auto qty = parseQty(spec.substr(equals + 1));
  if (!qty) {
    return fail(ErrorCode::kInvalidRequest, "line " + quoted(spec) + ": " + qty.error().message);
  }
  LineSpec line;
  line.goods_no = std::move((*parts)[0]);
  line.warehouse_no = std::move((*parts)[1]);
  if (parts->size() == 5) {
    line.stock_status = std::move((*parts)[2]);
    line.stock_type = std::move((*parts)[3]);
    line.goods_level = std::move((*parts)[4]);
  }
  line.qty = *qty;
  return line;
}

Result<std::vector<LineSpec>> parseLinesFile(std::string_view content) {
  boost::system::error_code error;
  const json::value whole = json::parse(content, error);
  if (error) return linesFromJsonLines(content);  // several JSON texts, one per line
  if (whole.is_array()) return linesFromJsonArray(whole.as_array());
  if (whole.is_object()) {
    const json::value* lines = whole.as_object().if_contains("lines");
    if (lines == nullptr) {  // a single line object: JSON Lines with one line
      ALLOT_TRY(line, lineFromJson(whole));
      return std::vector<LineSpec>{std::move(line)};
    }
    if (lines->is_array()) return linesFromJsonArray(lines->as_array());
  }
  return fail(ErrorCode::kInvalidRequest,
              "a lines file holds a JSON array of lines, an object with \"lines\", or one line "
              "object per text line");
}

ApiCall adjustCall(const RecordFields& record, StockChange change, std::string_view ref) {
  json::object body = recordBody(record);
  body[change.kind == StockChange::Kind::kDelta ? "delta" : "on_hand"] = change.value;
  body["ref"] = ref;
  return ApiCall{"POST", "/v1/stock/adjust", json::serialize(body), false, AnswerShape::kRecord};
}

ApiCall stockCall(const RecordFields& record) {
  std::vector<std::pair<std::string_view, std::string>> params = {
      {"dept_no", record.dept_no},
      {"goods_no", record.goods_no},
      {"warehouse_no", record.warehouse_no}};
  if (record.stock_status) params.emplace_back("stock_status", *record.stock_status);
  if (record.stock_type) params.emplace_back("stock_type", *record.stock_type);
  if (record.goods_level) params.emplace_back("goods_level", *record.goods_level);
  return ApiCall{"GET", targetWithQuery("/v1/stock", params), {}, false, AnswerShape::kRecord};
}

Result<ApiCall> preallocateCall(std::string_view dept_no, std::string_view order_no,
                                const std::vector<LineSpec>& lines, bool allow_shortage) {
  if (lines.empty() || lines.size() > limits::kOrderLinesMax) {
    return fail(ErrorCode::kInvalidRequest, "an order has 1 to " +
                                                std::to_string(limits::kOrderLinesMax) +
                                                " lines, got " + std::to_string(lines.size()));
  }
  json::object body;
  body["dept_no"] = dept_no;
  body["order_no"] = order_no;
  json::array& line_array = body["lines"].emplace_array();
  for (const LineSpec& line : lines) line_array.push_back(lineBody(line));
  if (allow_shortage) body["allow_shortage"] = true;
  return ApiCall{"POST", "/v1/preallocations", json::serialize(body), false, AnswerShape::kOrder};
}

ApiCall rollbackCall(std::string_view dept_no, std::string_view order_no) {
  return ApiCall{"POST", "/v1/preallocations/rollback", orderBody(dept_no, order_no), false,
                 AnswerShape::kOrderEnd};
}

ApiCall deductCall(std::string_view dept_no, std::string_view order_no) {
  return ApiCall{"POST", "/v1/preallocations/deduct", orderBody(dept_no, order_no), false,
                 AnswerShape::kOrderEnd};
}

ApiCall orderCall(std::string_view dept_no, std::string_view order_no) {
  const std::string target =
      targetWithQuery("/v1/preallocations",
                      {{"dept_no", std::string(dept_no)}, {"order_no", std::string(order_no)}});
  return ApiCall{"GET", target, {}, false, AnswerShape::kOrder};
}

ApiCall routeGetCall(std::string_view dept_no) {
  return ApiCall{"GET", merchantTarget(dept_no), {}, true, AnswerShape::kFields};
}

ApiCall routeSetCall(std::string_view dept_no, std::string_view route) {
  json::object body;
  body["route"] = route;
  ApiCall call{"PUT", merchantTarget(dept_no), json::serialize(body), true, AnswerShape::kFields};
  call.timeout_ms = kRouteSetTimeoutMs;
  return call;
}

ApiCall reconcileCall(const std::optional<std::string>& dept_no) {
  json::object body;
  if (dept_no.has_value()) body["dept_no"] = *dept_no;
  return ApiCall{"POST", "/v1/admin/reconcile", json::serialize(body), true, AnswerShape::kFields};
}

}  // namespace allot::cli
