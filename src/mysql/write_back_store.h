// The MariaDB side of the write-back: applies a batch of outbox events of one Redis stream to
// the database of record in ONE transaction, together with the stream's applied position
// (outbox_positions), so a crash at any point neither loses an event nor applies one twice.
//
// Events whose id is not above the stored position are skipped (ids compare numerically as
// "ms-seq"), so re-reading a stream after a crash between COMMIT and XTRIM is harmless.
//
// An event that can never apply (malformed, or one whose change the schema's CHECK refuses,
// or an adjust the ledger refuses) must not block its stream forever: it is written to
// outbox_dead_letters in the same transaction, logged and counted, and the stream moves on.
// Only failures that may pass on their own (lost connection, deadlock) fail the batch, which
// the worker retries.
//
// Event semantics: hold adds to preallocated/shortage and upserts its order line (held); a
// hold with st (A | S, a "fused" hold) is a whole single-line order held and committed in one
// step, so it also writes what that order's order event would have: the orders row (status,
// lines_digest of the one line requested, qty = a + s) and line_no 1 on its line; any other
// hold also notes its order in pending_orders (its claim is pending: pending_order_scan.h),
// which the order event deletes;
// rollback releases (line released); deduct also takes on_hand (line deducted); undo releases
// and DELETES the line, because undo only reverses a refused order, which Redis forgets too;
// adjust is MysqlLedger's per-ref change (applyAdjustmentIn); order upserts the order row and
// its answered lines (a line's state is owned by the record events, which may come later or
// earlier from another stream).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "mysql/pool.h"

namespace allot::mysql {

// A stream entry id "ms-seq", compared numerically.
struct StreamId {
  std::uint64_t ms = 0;
  std::uint64_t seq = 0;

  [[nodiscard]] static std::optional<StreamId> parse(std::string_view text);
  [[nodiscard]] std::string text() const;
  // The smallest id after this one (for XTRIM MINID, which keeps ids >= its threshold).
  [[nodiscard]] StreamId next() const;
  auto operator<=>(const StreamId&) const = default;
};

// One outbox entry as read from the stream: its id and its field/value pairs.
struct OutboxEvent {
  std::string id;
  std::vector<std::pair<std::string, std::string>> fields;
};

// One fused hold of a `holds` outbox entry (order_hold.lua appends one entry per call, its
// field b = "order:allocated:shortage:status,...": none of ':' and ',' can occur in an order).
struct FusedHold {
  std::string_view order_no;
  std::int64_t allocated = 0;
  std::int64_t shortage = 0;
  std::string_view status;  // A or S
};
// The holds of a `holds` entry's b field, in order; kInvalidRequest when it is malformed.
[[nodiscard]] Result<std::vector<FusedHold>> parseFusedHolds(std::string_view batch);

struct StreamPosition {
  std::string last_id;  // empty: nothing applied yet
  std::int64_t events_applied = 0;
};

struct BatchOutcome {
  std::size_t applied = 0;        // events whose change is now in the database
  std::size_t skipped = 0;        // already applied before (at or below the stored position)
  std::size_t dead_lettered = 0;  // could never apply: recorded in outbox_dead_letters
  std::string last_id;            // the stream's position after the batch
  std::vector<std::string> dead_letter_reasons;  // "id: reason", for the caller's log
};

class WriteBackStore {
 public:
  explicit WriteBackStore(Pool& pool) : pool_(pool) {}

  // The stored position of a stream (empty last_id when none).
  [[nodiscard]] Result<StreamPosition> readPosition(const std::string& stream);
  // The stored last ids of many streams, in one query (chunked): stream -> last_id, for the
  // streams that have a position.
  [[nodiscard]] Result<std::map<std::string, std::string>> readPositions(
      const std::vector<std::string>& streams);

  // Applies events (ascending ids, as XRANGE returns them) in one transaction with the new
  // position. A failure rolls everything back: kUnavailable when a retry may succeed.
  [[nodiscard]] Result<BatchOutcome> applyBatch(const std::string& stream,
                                                const std::vector<OutboxEvent>& events);
  // The batches of several streams in one transaction (one commit for many streams: the
  // order events of a busy minute spread over thousands of slots' streams). The outcomes are
  // in the order of `batches`; all or none are committed.
  struct StreamBatch {
    std::string stream;
    std::vector<OutboxEvent> events;
  };
  [[nodiscard]] Result<std::vector<BatchOutcome>> applyBatches(
      const std::vector<StreamBatch>& batches);

 private:
  Pool& pool_;
};

}  // namespace allot::mysql
