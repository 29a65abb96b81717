// The six record fields as bound parameters, in the column order every table uses
// (dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level), followed by any
// extra parameters. The strings are views into `key`, which must outlive the statement.
#pragma once

#include <array>
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

}  // namespace allot::mysql
