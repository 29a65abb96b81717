#include "mysql/pending_order_scan.h"

#include <array>
#include <string_view>
#include <vector>

namespace allot::mysql {
namespace {

constexpr std::string_view kReason =
    "pending past its claim's lease: the call holding its lines ended without answering "
    "(pending-order scan)";

// The merchant filter: a NULL parameter matches every merchant.
Param merchantParam(const PendingScanOptions& options) {
  return options.dept_no ? Param{std::string_view(*options.dept_no)} : Param{nullptr};
}

}  // namespace

Result<PendingScanReport> PendingOrderScan::runOnce(const PendingScanOptions& options) {
  return pool_.withTransaction([&](Connection& connection) -> Result<PendingScanReport> {
    PendingScanReport pass;
    const std::array<Param, 3> due{Param{options.older_than_ms}, merchantParam(options),
                                   Param{static_cast<std::int64_t>(options.batch_size)}};
    ALLOT_TRY(rows, connection.query(
                        "SELECT dept_no, order_no FROM pending_orders WHERE seen_at <= "
                        "CURRENT_TIMESTAMP(6) - INTERVAL ? * 1000 MICROSECOND AND dept_no = "
                        "COALESCE(?, dept_no) ORDER BY seen_at LIMIT ? FOR UPDATE SKIP LOCKED",
                        due));
    pass.taken = rows.size();
    for (const auto& row : rows) {
      const std::string_view dept_no = row.text(0), order_no = row.text(1);
      const std::array<Param, 2> order{Param{dept_no}, Param{order_no}};
      // Answered: its commit's order event was applied before the hold that added the row.
      ALLOT_TRY(answered,
                connection.query("SELECT 1 FROM orders WHERE dept_no = ? AND order_no = ?", order));
      std::uint64_t recorded = 0;
      if (answered.empty()) {
        const std::array<Param, 3> task{Param{kReason}, Param{dept_no}, Param{order_no}};
        ALLOT_TRY(inserted,
                  connection.execute(
                      "INSERT INTO compensation_tasks (kind, dept_no, goods_no, warehouse_no, "
                      "stock_status, stock_type, goods_level, order_no, reason) SELECT "
                      "'release_undo', dept_no, goods_no, warehouse_no, stock_status, "
                      "stock_type, goods_level, order_no, ? FROM order_lines WHERE dept_no = ? "
                      "AND order_no = ? AND state = 'held' ORDER BY goods_no, warehouse_no, "
                      "stock_status, stock_type, goods_level LIMIT 1",
                      task));
        recorded = inserted;
      }
      ALLOT_TRY_VOID(connection.execute(
          "DELETE FROM pending_orders WHERE dept_no = ? AND order_no = ?", order));
      if (!answered.empty()) {
        ++pass.answered;
      } else if (recorded > 0) {
        ++pass.compensated;
      } else {
        ++pass.released;
      }
    }
    return pass;
  });
}

}  // namespace allot::mysql
