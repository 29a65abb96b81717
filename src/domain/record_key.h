// The inventory record index of the seed: six fields name one stock counter. The first three
// form the Redis hash tag, so every key of a record lands in one cluster slot. The field
// charset excludes every character that has meaning in a key ({ } | : and spaces), so no
// input can break a hash tag or make two records share a key.
#pragma once

#include <compare>
#include <string>
#include <string_view>

namespace allot {

inline constexpr std::string_view kDefaultStockStatus = "1";
inline constexpr std::string_view kDefaultStockType = "1";
inline constexpr std::string_view kDefaultGoodsLevel = "A";

// True for 1-64 characters of [A-Za-z0-9_.-].
[[nodiscard]] bool isValidField(std::string_view value);

struct RecordKey {
  std::string dept_no;
  std::string goods_no;
  std::string warehouse_no;
  std::string stock_status{kDefaultStockStatus};
  std::string stock_type{kDefaultStockType};
  std::string goods_level{kDefaultGoodsLevel};

  // "dept|goods|warehouse": the hash tag, without braces.
  [[nodiscard]] std::string hashTag() const;
  // "{dept|goods|warehouse}|status|type|level": the seed's record index.
  [[nodiscard]] std::string index() const;
  // index() appended to out, and its length: for keys built in one allocation.
  void appendIndex(std::string& out) const;
  [[nodiscard]] std::size_t indexSize() const;
  // Parses index() back; false on a malformed string.
  [[nodiscard]] static bool parseIndex(std::string_view index, RecordKey& out);

  auto operator<=>(const RecordKey&) const = default;
};

}  // namespace allot
