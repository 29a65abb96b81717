#include "mysql/compensation_queue.h"

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "mysql/mysql_path.h"
#include "mysql/record_params.h"

namespace allot::mysql {

namespace {

constexpr std::size_t kReasonLengthMax = 512;  // the column's size

const std::string kSelectTasks =
    "SELECT id, attempts, kind, dept_no, goods_no, warehouse_no, stock_status, stock_type, "
    "goods_level, order_no, reason FROM compensation_tasks WHERE ";
const std::string kSelectDue =
    kSelectTasks +
    "state = 'pending' AND next_attempt_at <= CURRENT_TIMESTAMP(6) ORDER BY id LIMIT ? FOR "
    "UPDATE SKIP LOCKED";
const std::string kSelectDueOfMerchant =
    kSelectTasks +
    "dept_no = ? AND state = 'pending' AND next_attempt_at <= CURRENT_TIMESTAMP(6) ORDER BY "
    "next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED";

}  // namespace

Result<std::vector<DueCompensation>> MysqlCompensationQueue::takeDue(
    std::size_t limit, std::int64_t lease_ms, const std::optional<std::string>& dept_no) {
  return pool_.withTransaction([&](Connection& connection) -> Result<std::vector<DueCompensation>> {
    std::vector<Param> params;
    if (dept_no) params.emplace_back(std::string_view(*dept_no));
    params.emplace_back(static_cast<std::int64_t>(limit));
    // One merchant's: a condition on dept_no the index starts with, so that only its rows
    // are read and locked.
    ALLOT_TRY(rows, connection.query(dept_no ? kSelectDueOfMerchant : kSelectDue, params));
    std::vector<DueCompensation> due;
    for (const auto& row : rows) {
      ALLOT_TRY(id, row.integer(0));
      ALLOT_TRY(attempts, row.integer(1));
      DueCompensation item;
      item.id = id;
      item.attempts = static_cast<int>(attempts);
      item.task.kind = std::string(row.text(2));
      item.task.key = recordKeyOf(std::string(row.text(3)), row, 4);
      item.task.order_no = std::string(row.text(9));
      item.task.reason = std::string(row.text(10));
      ALLOT_TRY_VOID(connection.execute(
          "UPDATE compensation_tasks SET next_attempt_at = CURRENT_TIMESTAMP(6) + "
          "INTERVAL ? * 1000 MICROSECOND WHERE id = ?",
          {lease_ms, id}));
      due.push_back(std::move(item));
    }
    return due;
  });
}

Result<void> MysqlCompensationQueue::complete(std::int64_t id) {
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY_VOID(
      lease->execute("UPDATE compensation_tasks SET state = 'done', attempts = attempts + 1 "
                     "WHERE id = ? AND state = 'pending'",
                     {id}));
  return {};
}

Result<void> MysqlCompensationQueue::retryLater(std::int64_t id, const std::string& reason,
                                                std::int64_t retry_after_ms, bool give_up) {
  const std::string clipped = reason.substr(0, kReasonLengthMax);
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY_VOID(lease->execute(
      "UPDATE compensation_tasks SET attempts = attempts + 1, reason = ?, state = ?, "
      "next_attempt_at = CURRENT_TIMESTAMP(6) + INTERVAL ? * 1000 MICROSECOND "
      "WHERE id = ? AND state = 'pending'",
      {std::string_view(clipped), std::string_view(give_up ? "failed" : "pending"), retry_after_ms,
       id}));
  return {};
}

Result<bool> MysqlCompensationQueue::releaseUnansweredInDatabase(const OrderRef& order) {
  return pool_.withTransaction([&](Connection& connection) -> Result<bool> {
    const std::array<Param, 2> ref{Param{std::string_view(order.dept_no)},
                                   Param{std::string_view(order.order_no)}};
    // Behind the merchant's fence, as a call of the MySQL path: a switch of the merchant waits
    // until this is done. Only a merchant switched to MySQL can have such an order (its
    // straggler ran on Redis before), and a switch gives it a route row: one without is taken
    // to be on Redis here, whatever the default.
    ALLOT_TRY(fence, enterMerchantFence(connection, order.dept_no, Route::kRedis));
    if (fence != FenceState::kOnMysql) return false;
    // The orders row is the MySQL path's lock of an order (a locking read of a missing row
    // takes none under READ COMMITTED): a placeholder row, deleted again below, holds off a
    // call of the same order until this commits.
    ALLOT_TRY(inserted,
              connection.execute("INSERT INTO orders (dept_no, order_no, status, lines_digest) "
                                 "VALUES (?, ?, 'rolled_back', NULL) ON DUPLICATE KEY UPDATE "
                                 "order_no = order_no",
                                 ref));
    const bool placeholder = inserted == 1;
    if (!placeholder) {
      // An answer is the order's own; a tombstone (a rollback the MySQL path took for an
      // order it did not know) leaves its lines to this.
      ALLOT_TRY(stored, connection.query("SELECT status, lines_digest FROM orders WHERE "
                                         "dept_no = ? AND order_no = ? FOR UPDATE",
                                         ref));
      if (stored.empty() || stored[0].text(0) != "rolled_back" || !stored[0].isNull(1)) {
        return false;
      }
    }
    // The orders row locked, as a rollback on the MySQL path does; the lines are deleted below.
    ALLOT_TRY_VOID(releaseHeldStock(connection, order, /*ship=*/false));
    // As an undo in Redis leaves it: the order is unknown again (or stays a tombstone).
    ALLOT_TRY_VOID(connection.execute(
        "DELETE FROM order_lines WHERE dept_no = ? AND order_no = ? AND state = 'held'", ref));
    if (placeholder) {
      ALLOT_TRY_VOID(
          connection.execute("DELETE FROM orders WHERE dept_no = ? AND order_no = ?", ref));
    }
    ALLOT_TRY_VOID(
        connection.execute("DELETE FROM pending_orders WHERE dept_no = ? AND order_no = ?", ref));
    return true;
  });
}

}  // namespace allot::mysql
