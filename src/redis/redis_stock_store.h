// The HotStore on Redis: each call is one Lua script (or, for loading, one WATCH/MULTI/EXEC
// session) on the slot of the record or of the order. Script replies are decoded here and
// nowhere else; a reply of an unexpected shape is a kInternal error, never a guess.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "domain/ports.h"
#include "redis/client.h"

namespace allot::redis {

struct StoreOptions {
  std::int64_t retention_seconds = 7 * 24 * 3600;  // anti-duplicate keys and tombstones
  std::int64_t order_lease_ms = 30'000;
  // Told the outbox stream after every script that may have appended to it, so the
  // write-back reads it without waiting for its sweep. Must be cheap and never block on I/O.
  std::function<void(const std::string& stream)> on_outbox_append;
};

class RedisStockStore final : public HotStore {
 public:
  RedisStockStore(Client& client, StoreOptions options);
  ~RedisStockStore() override;

  Result<ClaimOutcome> claimOrder(const OrderRef& order, const std::string& lines_blob,
                                  const std::string& digest, const std::string& token,
                                  std::int64_t now_ms) override;
  Result<CommitOutcome> commitOrder(const OrderRef& order, OrderStatus status,
                                    const std::string& answer_blob,
                                    const std::string& token) override;
  Result<void> abortOrder(const OrderRef& order, const std::string& token) override;
  Result<EndOutcome> endOrder(const OrderRef& order, ReleaseKind kind) override;
  Result<void> markOrderReleased(const OrderRef& order) override;
  Result<std::optional<StoredOrder>> readOrder(const OrderRef& order) override;

  Result<HoldOutcome> hold(const RecordKey& key, const std::string& order_no, std::int64_t qty,
                           bool allow_shortage) override;
  Result<std::vector<HoldOutcome>> holdBatch(const RecordKey& key,
                                             const std::vector<HoldRequest>& requests) override;
  Result<ReleaseOutcome> release(const RecordKey& key, const std::string& order_no,
                                 ReleaseKind kind) override;
  Result<HotAdjustOutcome> adjust(const RecordKey& key, const std::string& ref,
                                  AdjustChange change) override;
  Result<std::optional<Quantities>> readRecord(const RecordKey& key) override;
  Result<bool> loadRecord(const RecordKey& key, const Quantities& from_db) override;
  Result<void> ping() override;

  // ---- The route switch (workers/route_switch.h); not part of the HotStore port ----

  // Takes the record out of Redis and fences it; the counters it had, if it was loaded.
  // drop_holds: its live-hold entries go too (the switch back to Redis loads them all again).
  [[nodiscard]] Result<std::optional<Quantities>> evictRecord(const RecordKey& key,
                                                              bool drop_holds = false);
  // loadRecord that also lifts the fence: the switch back to Redis.
  [[nodiscard]] Result<bool> reloadRecord(const RecordKey& key, const Quantities& from_db);
  // Writes an order and its lines as the database has them (replacing Redis's copy).
  struct LoadedLine {
    RecordKey key;
    std::int64_t allocated = 0;
    std::int64_t shortage = 0;
    enum class State { kHeld, kReleased, kDeducted } state = State::kHeld;
  };
  // The record-level keys of an order's lines only (line_load.lua), as loadOrder writes them:
  // for the lines of an order the database holds with no answer (a straggler's), whose claim
  // stays as Redis has it.
  [[nodiscard]] Result<void> loadLines(const std::string& order_no, bool rolled_back,
                                       const std::vector<LoadedLine>& lines);
  [[nodiscard]] Result<void> loadOrder(const OrderRef& order, OrderStatus status,
                                       const std::string& lines_blob, const std::string& digest,
                                       const std::string& answer_blob,
                                       const std::vector<LoadedLine>& lines);

  // ---- The order layout before buckets (workers/order_layout.h) ----

  // Moves the orders kept under old keys ord:{dept|order_no} to the bucketed layout, with
  // their fields and expiry instant, and deletes the old keys: three pipelined round trips for
  // all of `old_keys` (reads, order_migrate.lua, DEL). Returns how many were moved; a key that
  // is not such a key, not a hash, or gone already is left alone. A failure leaves every order
  // under its old key, its new one or both, so the move can be run again.
  [[nodiscard]] Result<std::size_t> moveLegacyOrders(std::span<const std::string> old_keys);

 private:
  struct Scripts;

  [[nodiscard]] Result<bool> load(const RecordKey& key, const Quantities& from_db, bool unfence);

  // evalScript for a script that may append to the outbox stream keys[stream_at]. Each caller
  // names the position: a key added to a script's list must not move the stream it reports.
  [[nodiscard]] Result<Reply> evalAppending(const Script& script,
                                            const std::vector<std::string>& keys,
                                            const std::vector<std::string>& args,
                                            std::size_t stream_at);

  Client& client_;
  StoreOptions options_;
  std::unique_ptr<Scripts> scripts_;
};

}  // namespace allot::redis
