#include "domain/order.h"

#include <algorithm>
#include <charconv>

#include "domain/ports.h"

namespace allot {

std::string_view orderStatusName(OrderStatus status) {
  switch (status) {
    case OrderStatus::kPending: return "pending";
    case OrderStatus::kAllocated: return "allocated";
    case OrderStatus::kShortage: return "shortage";
    case OrderStatus::kRolledBack: return "rolled_back";
    case OrderStatus::kDeducted: return "deducted";
  }
  return "pending";
}

char orderStatusCode(OrderStatus status) {
  switch (status) {
    case OrderStatus::kPending: return 'P';
    case OrderStatus::kAllocated: return 'A';
    case OrderStatus::kShortage: return 'S';
    case OrderStatus::kRolledBack: return 'R';
    case OrderStatus::kDeducted: return 'D';
  }
  return 'P';
}

std::optional<OrderStatus> orderStatusFromCode(std::string_view code) {
  if (code.size() != 1) return std::nullopt;
  switch (code.front()) {
    case 'P': return OrderStatus::kPending;
    case 'A': return OrderStatus::kAllocated;
    case 'S': return OrderStatus::kShortage;
    case 'R': return OrderStatus::kRolledBack;
    case 'D': return OrderStatus::kDeducted;
    default: return std::nullopt;
  }
}

std::string_view routeName(Route route) { return route == Route::kRedis ? "redis" : "mysql"; }

namespace {

void appendKeyFields(std::string& out, const RecordKey& key) {
  out.append(key.goods_no).append("|").append(key.warehouse_no).append("|");
  out.append(key.stock_status).append("|").append(key.stock_type).append("|");
  out.append(key.goods_level);
}

// Splits one stored line into exactly `count` '|'-separated fields.
bool splitFields(std::string_view line, std::vector<std::string_view>& fields, std::size_t count) {
  fields.clear();
  while (true) {
    const auto bar = line.find('|');
    fields.push_back(line.substr(0, bar));
    if (bar == std::string_view::npos) break;
    line.remove_prefix(bar + 1);
  }
  return fields.size() == count;
}

bool parseInt(std::string_view text, std::int64_t& out) {
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && !text.empty();
}

// Decodes the record part (first five fields) of a stored line.
bool decodeKey(std::string_view dept_no, const std::vector<std::string_view>& fields,
               RecordKey& key) {
  key = RecordKey{std::string(dept_no),   std::string(fields[0]), std::string(fields[1]),
                  std::string(fields[2]), std::string(fields[3]), std::string(fields[4])};
  return isValidField(key.goods_no) && isValidField(key.warehouse_no) &&
         isValidField(key.stock_status) && isValidField(key.stock_type) &&
         isValidField(key.goods_level);
}

template <typename Line, typename Decode>
Result<std::vector<Line>> decodeLines(std::string_view blob, std::size_t field_count,
                                      Decode decode) {
  std::vector<Line> lines;
  std::vector<std::string_view> fields;
  while (!blob.empty()) {
    const auto newline = blob.find('\n');
    const auto line = blob.substr(0, newline);
    Line decoded;
    if (!splitFields(line, fields, field_count) || !decode(fields, decoded)) {
      return fail(ErrorCode::kInternal, "malformed stored order line: " + std::string(line));
    }
    lines.push_back(std::move(decoded));
    if (newline == std::string_view::npos) break;
    blob.remove_prefix(newline + 1);
  }
  return lines;
}

}  // namespace

namespace {

// One requested line, after a '\n' unless it is the first: goods|...|level|qty.
void appendLineRequest(std::string& out, const RecordKey& key, std::int64_t qty) {
  if (!out.empty()) out.push_back('\n');
  appendKeyFields(out, key);
  out.append("|").append(std::to_string(qty));
}

}  // namespace

std::string encodeLineRequests(const std::vector<LineRequest>& lines) {
  std::string out;
  for (const auto& line : lines) appendLineRequest(out, line.key, line.qty);
  return out;
}

Result<std::vector<LineRequest>> decodeLineRequests(std::string_view dept_no,
                                                    std::string_view blob) {
  return decodeLines<LineRequest>(blob, 6, [&](const auto& fields, LineRequest& line) {
    return decodeKey(dept_no, fields, line.key) && parseInt(fields[5], line.qty);
  });
}

std::string encodeLineOutcomes(const std::vector<LineOutcome>& lines) {
  std::string out;
  for (const auto& line : lines) {
    if (!out.empty()) out.push_back('\n');
    appendKeyFields(out, line.key);
    out.append("|").append(std::to_string(line.qty));
    out.append("|").append(std::to_string(line.allocated));
    out.append("|").append(std::to_string(line.shortage));
  }
  return out;
}

Result<std::vector<LineOutcome>> decodeLineOutcomes(std::string_view dept_no,
                                                    std::string_view blob) {
  return decodeLines<LineOutcome>(blob, 8, [&](const auto& fields, LineOutcome& line) {
    return decodeKey(dept_no, fields, line.key) && parseInt(fields[5], line.qty) &&
           parseInt(fields[6], line.allocated) && parseInt(fields[7], line.shortage);
  });
}

std::string encodeLineRecord(const RecordKey& key) {
  std::string out;
  appendKeyFields(out, key);
  return out;
}

Result<OrderAnswer> replayedAnswer(const std::string& dept_no, const std::string& order_no,
                                   OrderStatus stored, std::string_view answer_blob) {
  ALLOT_TRY(lines, decodeLineOutcomes(dept_no, answer_blob));
  auto status = stored;
  if (status == OrderStatus::kDeducted) {  // the first answer was allocated or shortage
    const bool any_shortage =
        std::any_of(lines.begin(), lines.end(), [](const auto& line) { return line.shortage > 0; });
    status = any_shortage ? OrderStatus::kShortage : OrderStatus::kAllocated;
  }
  return OrderAnswer{order_no, status, true, std::move(lines)};
}

Error orderConflict(const std::string& order_no) {
  return Error{ErrorCode::kIdempotencyConflict,
               "order " + order_no + " was already placed with other lines"};
}

Error orderRolledBack(const std::string& order_no) {
  return Error{ErrorCode::kOrderRolledBack, "order " + order_no + " was rolled back"};
}

std::string linesDigest(const std::vector<LineRequest>& lines) {
  std::vector<const LineRequest*> sorted;
  sorted.reserve(lines.size());
  for (const LineRequest& line : lines) sorted.push_back(&line);
  std::sort(sorted.begin(), sorted.end(),
            [](const LineRequest* a, const LineRequest* b) { return a->key < b->key; });
  std::string out;
  for (const LineRequest* line : sorted) appendLineRequest(out, line->key, line->qty);
  return out;
}

std::string lineDigest(const RecordKey& key, std::int64_t qty) {
  std::string out;
  appendLineRequest(out, key, qty);
  return out;
}

}  // namespace allot
