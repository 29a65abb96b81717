#include "domain/record_key.h"

#include <array>

#include "core/limits.h"

namespace allot {

bool isValidField(std::string_view value) {
  if (value.empty() || value.size() > limits::kFieldLengthMax) return false;
  for (char c : value) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string RecordKey::hashTag() const {
  std::string tag;
  tag.reserve(dept_no.size() + goods_no.size() + warehouse_no.size() + 2);
  tag.append(dept_no).append("|").append(goods_no).append("|").append(warehouse_no);
  return tag;
}

std::size_t RecordKey::indexSize() const {
  return dept_no.size() + goods_no.size() + warehouse_no.size() + stock_status.size() +
         stock_type.size() + goods_level.size() + 7;
}

void RecordKey::appendIndex(std::string& out) const {
  out.append("{").append(dept_no).append("|").append(goods_no).append("|");
  out.append(warehouse_no).append("}|").append(stock_status).append("|");
  out.append(stock_type).append("|").append(goods_level);
}

std::string RecordKey::index() const {
  std::string out;
  out.reserve(indexSize());
  appendIndex(out);
  return out;
}

namespace {

// Splits text on '|' into exactly parts.size() pieces; false on any other count.
template <std::size_t N>
bool splitExact(std::string_view text, std::array<std::string_view, N>& parts) {
  for (std::size_t i = 0; i < N; ++i) {
    const auto bar = text.find('|');
    const bool last = i + 1 == N;
    if (last != (bar == std::string_view::npos)) return false;
    parts[i] = text.substr(0, bar);
    if (!last) text.remove_prefix(bar + 1);
  }
  return true;
}

}  // namespace

bool RecordKey::parseIndex(std::string_view index, RecordKey& out) {
  // "{d|g|w}|s|t|l"
  if (index.empty() || index.front() != '{') return false;
  const auto close = index.find('}');
  if (close == std::string_view::npos || close + 1 >= index.size() || index[close + 1] != '|') {
    return false;
  }
  std::array<std::string_view, 3> tag;
  std::array<std::string_view, 3> rest;
  if (!splitExact(index.substr(1, close - 1), tag)) return false;
  if (!splitExact(index.substr(close + 2), rest)) return false;
  for (auto part : {tag[0], tag[1], tag[2], rest[0], rest[1], rest[2]}) {
    if (!isValidField(part)) return false;
  }
  out = RecordKey{std::string(tag[0]),  std::string(tag[1]),  std::string(tag[2]),
                  std::string(rest[0]), std::string(rest[1]), std::string(rest[2])};
  return true;
}

}  // namespace allot
