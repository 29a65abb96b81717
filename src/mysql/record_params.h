// The six record fields as bound parameters, in the column order every table uses
// (dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level), followed by any
// extra parameters. The strings are views into `key`, which must outlive the statement.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "domain/record_key.h"
#include "mysql/connection.h"

namespace allot::mysql {

template <typename... Extra>
[[nodiscard]] auto keyParams(const RecordKey& key, Extra... extra) {
  return std::array<Param, 6 + sizeof...(Extra)>{Param{std::string_view(key.dept_no)},
                                                 Param{std::string_view(key.goods_no)},
                                                 Param{std::string_view(key.warehouse_no)},
                                                 Param{std::string_view(key.stock_status)},
                                                 Param{std::string_view(key.stock_type)},
                                                 Param{std::string_view(key.goods_level)},
                                                 Param{extra}...};
}

// The record of a merchant's row whose columns from `first` on are goods_no, warehouse_no,
// stock_status, stock_type and goods_level.
[[nodiscard]] inline RecordKey recordKeyOf(const std::string& dept_no, const Row& row,
                                           std::size_t first) {
  return RecordKey{dept_no,
                   std::string(row.text(first)),
                   std::string(row.text(first + 1)),
                   std::string(row.text(first + 2)),
                   std::string(row.text(first + 3)),
                   std::string(row.text(first + 4))};
}

}  // namespace allot::mysql
