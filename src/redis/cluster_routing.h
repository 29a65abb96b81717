// The pure half of Redis Cluster routing: the slot map read from CLUSTER SLOTS and the
// redirect errors (MOVED, ASK, TRYAGAIN, ...) a node answers with. No I/O here, so all of it
// is unit-tested against hand-built replies.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "redis/connection.h"
#include "redis/reply.h"

namespace allot::redis {

inline constexpr std::size_t kSlotCount = 16384;

// Which master serves each slot. Replicas are not tracked: every call goes to a master.
class SlotMap {
 public:
  SlotMap();
  // Standalone Redis: one node serves every slot.
  [[nodiscard]] static SlotMap singleNode(const NodeAddress& node);

  // The master serving `slot`, or nullptr while no master does (cluster not fully covered).
  [[nodiscard]] const NodeAddress* owner(std::uint16_t slot) const;
  // The masters that serve at least one slot.
  [[nodiscard]] std::vector<NodeAddress> masters() const;
  // Records that `node` serves `slot` (as a MOVED reply says), adding it as a master if new.
  void assign(std::uint16_t slot, const NodeAddress& node);

 private:
  std::vector<NodeAddress> nodes_;         // every master ever assigned a slot
  std::vector<std::size_t> slots_served_;  // per entry of nodes_
  std::vector<std::int32_t> owner_index_;  // per slot, an index into nodes_ or -1
};

// Builds the map from a CLUSTER SLOTS reply given by `asked`. A node entry whose host is empty
// (or "?") means "the node you asked", so `asked`'s host is used for it.
[[nodiscard]] Result<SlotMap> parseClusterSlots(const Reply& reply, const NodeAddress& asked);

struct Redirect {
  enum class Kind {
    kMoved,       // the slot lives elsewhere for good: update the map, retry at target
    kAsk,         // the slot is migrating: retry once at target, preceded by ASKING
    kRetryLater,  // TRYAGAIN, CLUSTERDOWN, LOADING: not executed; retry after a pause
  };
  Kind kind = Kind::kRetryLater;
  std::uint16_t slot = 0;  // kMoved and kAsk only
  NodeAddress target;      // kMoved and kAsk only
};

// The redirect an error reply from `asked` carries, or nothing when the reply is a result
// (including an ordinary error reply, which is the caller's answer).
[[nodiscard]] std::optional<Redirect> parseRedirect(const Reply& reply, const NodeAddress& asked);

}  // namespace allot::redis
