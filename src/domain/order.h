// Orders: the requests and answers of pre-allocation, the order state machine and the compact
// text encoding in which an order's lines are stored (in Redis and in the database).
//
//   (none) --preallocate--> pending --all lines held--> allocated | shortage
//   pending --a line short, no allow_shortage--> (none)   (lines reversed, order forgotten)
//   allocated | shortage | pending --rollback--> rolled_back   (terminal, a tombstone)
//   (none) --rollback--> rolled_back                         (a tombstone refuses late holds)
//   allocated | shortage --deduct--> deducted                (terminal)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.h"
#include "domain/quantities.h"
#include "domain/record_key.h"

namespace allot {

enum class OrderStatus { kPending, kAllocated, kShortage, kRolledBack, kDeducted };

[[nodiscard]] std::string_view orderStatusName(OrderStatus status);
// One-letter code used in storage: P A S R D.
[[nodiscard]] char orderStatusCode(OrderStatus status);
[[nodiscard]] std::optional<OrderStatus> orderStatusFromCode(std::string_view code);

struct LineRequest {
  RecordKey key;  // key.dept_no is the order's dept_no
  std::int64_t qty = 0;
};

struct PreallocateRequest {
  std::string dept_no;
  std::string order_no;
  std::vector<LineRequest> lines;
  bool allow_shortage = false;
};

struct LineOutcome {
  RecordKey key;
  std::int64_t qty = 0;
  std::int64_t allocated = 0;
  std::int64_t shortage = 0;
};

struct OrderAnswer {
  std::string order_no;
  OrderStatus status = OrderStatus::kAllocated;
  bool replayed = false;
  std::vector<LineOutcome> lines;
};

struct ShortLine {
  RecordKey key;
  std::int64_t qty = 0;
  std::int64_t available = 0;
};

// A refused all-or-nothing order: nothing stays held. Not an Error, because the caller needs
// the short lines, and it is a normal business answer.
struct PreallocateRefusal {
  std::vector<ShortLine> short_lines;
};

using PreallocateOutcome = std::variant<OrderAnswer, PreallocateRefusal>;

struct OrderRef {
  std::string dept_no;
  std::string order_no;
};

struct EndAnswer {  // rollback and deduct
  std::string order_no;
  OrderStatus status = OrderStatus::kRolledBack;
  bool replayed = false;
};

struct AdjustRequest {
  RecordKey key;
  std::string ref;
  std::optional<std::int64_t> delta;  // exactly one of delta and on_hand is set
  std::optional<std::int64_t> on_hand;
};

// Line storage: one line per '\n', fields separated by '|' (neither can occur in a field).
// Request lines: goods|warehouse|status|type|level|qty.
// Outcome lines: goods|warehouse|status|type|level|qty|allocated|shortage.
[[nodiscard]] std::string encodeLineRequests(const std::vector<LineRequest>& lines);
[[nodiscard]] Result<std::vector<LineRequest>> decodeLineRequests(std::string_view dept_no,
                                                                  std::string_view blob);
[[nodiscard]] std::string encodeLineOutcomes(const std::vector<LineOutcome>& lines);
[[nodiscard]] Result<std::vector<LineOutcome>> decodeLineOutcomes(std::string_view dept_no,
                                                                  std::string_view blob);
// The order-insensitive identity of an order's lines: a retry with the same lines in
// another order is the same order.
[[nodiscard]] std::string linesDigest(const std::vector<LineRequest>& lines);
// linesDigest of the one line {key, qty}, without building the vector.
[[nodiscard]] std::string lineDigest(const RecordKey& key, std::int64_t qty);
// The record part of a stored line: goods|warehouse|status|type|level.
[[nodiscard]] std::string encodeLineRecord(const RecordKey& key);

// The answer to a retry of an order that was answered before: its first answer, marked
// replayed. A deducted order answers with the status its first answer had.
[[nodiscard]] Result<OrderAnswer> replayedAnswer(const std::string& dept_no,
                                                 const std::string& order_no, OrderStatus stored,
                                                 std::string_view answer_blob);
// The refusals every path answers with the same words.
[[nodiscard]] Error orderConflict(const std::string& order_no);
[[nodiscard]] Error orderRolledBack(const std::string& order_no);

}  // namespace allot
