#include "mysql/pending_order_scan.h"

#include <array>
#include <string_view>
#include <vector>

namespace allot::mysql {
namespace {

constexpr std::string_view kReason =
    "pending past its claim's lease: the call holding its lines ended without answering "
    "(pending-order scan)";

constexpr std::string_view kSelectDue =
    "SELECT dept_no, order_no FROM pending_orders WHERE seen_at <= CURRENT_TIMESTAMP(6) - "
    "INTERVAL ? * 1000 MICROSECOND ORDER BY seen_at LIMIT ? FOR UPDATE SKIP LOCKED";
// One merchant's: read along the primary key from its first column, so that only that
// merchant's rows are read and locked, in the order the write-back locks them (a scan in
// seen_at order would lock every merchant's older rows on its way, and a concurrent scan of
// another merchant would skip them).
constexpr std::string_view kSelectDueOfMerchant =
    "SELECT dept_no, order_no FROM pending_orders WHERE dept_no = ? AND seen_at <= "
    "CURRENT_TIMESTAMP(6) - INTERVAL ? * 1000 MICROSECOND ORDER BY order_no LIMIT ? FOR UPDATE "
    "SKIP LOCKED";

}  // namespace

Result<PendingScanReport> PendingOrderScan::runOnce(const PendingScanOptions& options) {
  return pool_.withTransaction([&](Connection& connection) -> Result<PendingScanReport> {
    PendingScanReport pass;
    std::vector<Param> due;
    if (options.dept_no) due.emplace_back(std::string_view(*options.dept_no));
    due.emplace_back(options.older_than_ms);
    due.emplace_back(static_cast<std::int64_t>(options.batch_size));
    ALLOT_TRY(rows, connection.query(options.dept_no ? kSelectDueOfMerchant : kSelectDue, due));
    pass.taken = rows.size();
    for (const auto& row : rows) {
      const std::string_view dept_no = row.text(0), order_no = row.text(1);
      const std::array<Param, 2> order{Param{dept_no}, Param{order_no}};
      // Answered: its commit's order event was applied before the hold that added the row. A
      // tombstone is no answer: the MySQL path's rollback of an order it did not know (a
      // straggler's, left held there by a switch) released nothing.
      ALLOT_TRY(answered,
                connection.query("SELECT 1 FROM orders WHERE dept_no = ? AND order_no = ? AND "
                                 "(status <> 'rolled_back' OR lines_digest IS NOT NULL)",
                                 order));
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
