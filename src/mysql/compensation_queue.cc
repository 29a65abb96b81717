#include "mysql/compensation_queue.h"

#include <string>
#include <string_view>
#include <vector>

namespace allot::mysql {

namespace {

constexpr std::size_t kReasonLengthMax = 512;  // the column's size

constexpr std::string_view kSelectDue =
    "SELECT id, attempts, kind, dept_no, goods_no, warehouse_no, stock_status, stock_type, "
    "goods_level, order_no, reason FROM compensation_tasks WHERE state = 'pending' AND "
    "next_attempt_at <= CURRENT_TIMESTAMP(6) ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED";
constexpr std::string_view kSelectDueOfMerchant =
    "SELECT id, attempts, kind, dept_no, goods_no, warehouse_no, stock_status, stock_type, "
    "goods_level, order_no, reason FROM compensation_tasks WHERE dept_no = ? AND state = "
    "'pending' AND next_attempt_at <= CURRENT_TIMESTAMP(6) ORDER BY next_attempt_at LIMIT ? "
    "FOR UPDATE SKIP LOCKED";

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
      item.task.key =
          RecordKey{std::string(row.text(3)), std::string(row.text(4)), std::string(row.text(5)),
                    std::string(row.text(6)), std::string(row.text(7)), std::string(row.text(8))};
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

}  // namespace allot::mysql
