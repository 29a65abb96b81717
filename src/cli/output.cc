// Formats allotctl's answers and errors; see output.h.
#include "cli/output.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <span>

namespace allot::cli {

namespace {

namespace json = boost::json;

// Preferred column orders; fields not named here follow in the order the server sent them.
constexpr std::array<std::string_view, 11> kRecordColumns = {
    "dept_no", "goods_no",     "warehouse_no", "stock_status", "stock_type", "goods_level",
    "on_hand", "preallocated", "available",    "shortage",     "route"};
constexpr std::array<std::string_view, 8> kLineColumns = {
    "goods_no",    "warehouse_no", "stock_status", "stock_type",
    "goods_level", "qty",          "allocated",    "shortage"};
// How much of a body that is not an API error is echoed in the error line.
constexpr std::size_t kErrorSnippetBytesMax = 200;

bool isScalar(const json::value& value) { return !value.is_object() && !value.is_array(); }

std::string cellText(const json::value& value) {
  if (value.is_string()) return std::string(value.as_string());
  if (value.is_null()) return "-";
  return json::serialize(value);  // numbers, booleans and (unexpected) nested values
}

std::string fieldText(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  return value == nullptr ? std::string("-") : cellText(*value);
}

bool isReplayed(const json::object& answer) {
  const json::value* replayed = answer.if_contains("replayed");
  return replayed != nullptr && replayed->is_bool() && replayed->as_bool();
}

bool isListOfObjects(const json::value& value) {
  if (!value.is_array() || value.as_array().empty()) return false;
  const json::array& array = value.as_array();
  return std::all_of(array.begin(), array.end(),
                     [](const json::value& element) { return element.is_object(); });
}

// The scalar fields of `objects`, preferred ones first, each once, without `skipped` ones.
std::vector<std::string> columnNames(std::span<const json::object* const> objects,
                                     std::span<const std::string_view> preferred,
                                     std::span<const std::string_view> skipped) {
  std::vector<std::string> names;
  const auto add = [&](std::string_view name) {
    if (std::find(skipped.begin(), skipped.end(), name) != skipped.end()) return;
    if (std::find(names.begin(), names.end(), name) != names.end()) return;
    const bool present = std::any_of(objects.begin(), objects.end(), [&](const json::object* o) {
      const json::value* value = o->if_contains(name);
      return value != nullptr && isScalar(*value);
    });
    if (present) names.emplace_back(name);
  };
  for (std::string_view name : preferred) add(name);
  for (const json::object* object : objects) {
    for (const auto& member : *object) add(member.key());
  }
  return names;
}

Table tableOf(std::span<const json::object* const> objects,
              std::span<const std::string_view> preferred,
              std::span<const std::string_view> skipped) {
  Table table;
  table.headers = columnNames(objects, preferred, skipped);
  table.right_aligned.assign(table.headers.size(), true);
  for (const json::object* object : objects) {
    std::vector<std::string> row;
    for (std::size_t column = 0; column < table.headers.size(); ++column) {
      const json::value* value = object->if_contains(table.headers[column]);
      if (value != nullptr && !value->is_number() && !value->is_null()) {
        table.right_aligned[column] = false;
      }
      row.push_back(value == nullptr ? "-" : cellText(*value));
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

std::vector<const json::object*> objectsOf(const json::array& array) {
  std::vector<const json::object*> objects;
  for (const json::value& element : array) objects.push_back(&element.as_object());
  return objects;
}

// Every list of objects in `object` (other than `skipped`) as "name:" and a table.
std::string nestedTables(const json::object& object, std::string_view skipped) {
  std::string out;
  for (const auto& member : object) {
    if (member.key() == skipped || !isListOfObjects(member.value())) continue;
    out += std::string(member.key()) + ":\n";
    out += renderTable(tableOf(objectsOf(member.value().as_array()), kLineColumns, {}));
  }
  return out;
}

std::string formatRecord(const json::object& answer) {
  const json::object* only[] = {&answer};
  return renderTable(tableOf(only, kRecordColumns, {})) + nestedTables(answer, {});
}

std::string formatOrder(const json::object& answer) {
  std::string out = "order " + fieldText(answer, "order_no") + "  status " +
                    fieldText(answer, "status") + (isReplayed(answer) ? "  (replayed)\n" : "\n");
  const json::value* lines = answer.if_contains("lines");
  if (lines != nullptr && isListOfObjects(*lines)) {
    static constexpr std::string_view kSkipped[] = {"dept_no"};  // the order's own dept_no
    out += renderTable(tableOf(objectsOf(lines->as_array()), kLineColumns, kSkipped));
  }
  return out + nestedTables(answer, "lines");
}

std::string formatOrderEnd(const json::object& answer) {
  return "order " + fieldText(answer, "order_no") + ": " + fieldText(answer, "status") +
         (isReplayed(answer) ? " (replayed)\n" : "\n");
}

std::string formatFields(const json::object& answer) {
  Table table;
  table.headers = {"name", "value"};
  table.right_aligned = {false, false};
  table.show_headers = false;
  for (const auto& member : answer) {
    if (isScalar(member.value())) {
      table.rows.push_back({std::string(member.key()), cellText(member.value())});
    }
  }
  return renderTable(table) + nestedTables(answer, {});
}

std::string withNewline(std::string text) {
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

}  // namespace

std::string renderTable(const Table& table) {
  std::vector<std::size_t> widths(table.headers.size(), 0);
  for (std::size_t column = 0; column < widths.size(); ++column) {
    widths[column] = table.show_headers ? table.headers[column].size() : 0;
    for (const auto& row : table.rows)
      widths[column] = std::max(widths[column], row[column].size());
  }
  const auto renderRow = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (std::size_t column = 0; column < widths.size(); ++column) {
      const std::string padding(widths[column] - cells[column].size(), ' ');
      if (column > 0) line += "  ";
      line += table.right_aligned[column] ? padding + cells[column] : cells[column] + padding;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    return line + "\n";
  };
  std::string out = table.show_headers ? renderRow(table.headers) : std::string{};
  for (const auto& row : table.rows) out += renderRow(row);
  return out;
}

std::string formatAnswer(AnswerShape shape, std::string_view body) {
  boost::system::error_code error;
  const json::value answer = json::parse(body, error);
  if (error || !answer.is_object()) return withNewline(std::string(body));
  switch (shape) {
    case AnswerShape::kRecord: return formatRecord(answer.as_object());
    case AnswerShape::kOrder: return formatOrder(answer.as_object());
    case AnswerShape::kOrderEnd: return formatOrderEnd(answer.as_object());
    case AnswerShape::kFields: return formatFields(answer.as_object());
  }
  return withNewline(std::string(body));
}

std::string formatApiError(int status, std::string_view body) {
  boost::system::error_code error;
  const json::value answer = json::parse(body, error);
  if (!error && answer.is_object() && answer.as_object().contains("error")) {
    const json::object& object = answer.as_object();
    const json::value* message = object.if_contains("message");
    std::string out = "error: " + cellText(object.at("error")) + ": " +
                      (message == nullptr ? std::string("(no message)") : cellText(*message)) +
                      "\n";
    return out + nestedTables(object, {});
  }
  std::string snippet(body.substr(0, std::min(body.size(), kErrorSnippetBytesMax)));
  std::replace(snippet.begin(), snippet.end(), '\n', ' ');
  if (snippet.empty()) snippet = "(empty body)";
  return "error: http_" + std::to_string(status) + ": " + snippet + "\n";
}

}  // namespace allot::cli
