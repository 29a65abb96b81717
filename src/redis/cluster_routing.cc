// Parsing of CLUSTER SLOTS and of redirect errors, following the Redis Cluster specification
// ("Redirection and resharding"). Every reply is validated: a malformed one is kInternal,
// never an assertion, because it comes from a server.
#include "redis/cluster_routing.h"

#include <algorithm>
#include <string>

#include "core/assert.h"
#include "core/decimal.h"

namespace allot::redis {
namespace {

// A node entry in CLUSTER SLOTS is [host, port, id, ...]; Redis 7 may put "?" or "" for a
// host it does not know the client can reach, which means "the address you used".
Result<NodeAddress> parseNodeEntry(const Reply& entry, const NodeAddress& asked) {
  if (!entry.isArray() || entry.elements.size() < 2 || !entry.elements[0].isString() ||
      !entry.elements[1].isInteger() || entry.elements[1].integer < 1 ||
      entry.elements[1].integer > 65535) {
    return fail(ErrorCode::kInternal, "CLUSTER SLOTS: malformed node entry");
  }
  const std::string& host = entry.elements[0].str;
  const bool unknown_host = host.empty() || host == "?";
  return NodeAddress{unknown_host ? asked.host : host, static_cast<int>(entry.elements[1].integer)};
}

std::optional<std::uint16_t> parseSlot(std::string_view text) {
  const auto value = readDecimal<unsigned>(text);
  if (!value || *value >= kSlotCount) return std::nullopt;
  return static_cast<std::uint16_t>(*value);
}

// "MOVED <slot> <host>:<port>" and "ASK <slot> <host>:<port>"; an empty host means the node
// that answered.
std::optional<Redirect> parseSlotRedirect(Redirect::Kind kind, std::string_view rest,
                                          const NodeAddress& asked) {
  const std::size_t space = rest.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto slot = parseSlot(rest.substr(0, space));
  std::string_view endpoint = rest.substr(space + 1);
  std::string address(endpoint);
  if (endpoint.starts_with(':')) address = asked.host + address;
  auto target = parseNodeAddress(address);
  if (!slot || !target) return std::nullopt;
  return Redirect{kind, *slot, std::move(*target)};
}

}  // namespace

SlotMap::SlotMap() : owner_index_(kSlotCount, -1) {}

SlotMap SlotMap::singleNode(const NodeAddress& node) {
  SlotMap map;
  map.nodes_.push_back(node);
  map.slots_served_.push_back(kSlotCount);
  std::fill(map.owner_index_.begin(), map.owner_index_.end(), 0);
  return map;
}

const NodeAddress* SlotMap::owner(std::uint16_t slot) const {
  ALLOT_ASSERT(slot < kSlotCount);
  const std::int32_t index = owner_index_[slot];
  return index < 0 ? nullptr : &nodes_[static_cast<std::size_t>(index)];
}

std::vector<NodeAddress> SlotMap::masters() const {
  std::vector<NodeAddress> serving;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (slots_served_[i] > 0) serving.push_back(nodes_[i]);
  }
  return serving;
}

void SlotMap::assign(std::uint16_t slot, const NodeAddress& node) {
  ALLOT_ASSERT(slot < kSlotCount);
  auto found = std::find(nodes_.begin(), nodes_.end(), node);
  if (found == nodes_.end()) {
    found = nodes_.insert(nodes_.end(), node);
    slots_served_.push_back(0);
  }
  const auto index = static_cast<std::int32_t>(found - nodes_.begin());
  const std::int32_t previous = owner_index_[slot];
  if (previous == index) return;
  if (previous >= 0) --slots_served_[static_cast<std::size_t>(previous)];
  ++slots_served_[static_cast<std::size_t>(index)];
  owner_index_[slot] = index;
  ALLOT_ASSERT(nodes_.size() == slots_served_.size());
}

Result<SlotMap> parseClusterSlots(const Reply& reply, const NodeAddress& asked) {
  if (!reply.isArray()) {
    return fail(ErrorCode::kInternal, "CLUSTER SLOTS: expected an array, got '" + reply.str + "'");
  }
  SlotMap map;
  for (const Reply& range : reply.elements) {
    // [start, end, master, replica...]
    if (!range.isArray() || range.elements.size() < 3 || !range.elements[0].isInteger() ||
        !range.elements[1].isInteger()) {
      return fail(ErrorCode::kInternal, "CLUSTER SLOTS: malformed slot range");
    }
    const std::int64_t first = range.elements[0].integer;
    const std::int64_t last = range.elements[1].integer;
    if (first < 0 || last < first || last >= static_cast<std::int64_t>(kSlotCount)) {
      return fail(ErrorCode::kInternal, "CLUSTER SLOTS: slot range out of bounds");
    }
    ALLOT_TRY(master, parseNodeEntry(range.elements[2], asked));
    for (std::int64_t slot = first; slot <= last; ++slot) {
      map.assign(static_cast<std::uint16_t>(slot), master);
    }
  }
  return map;
}

std::optional<Redirect> parseRedirect(const Reply& reply, const NodeAddress& asked) {
  if (!reply.isError()) return std::nullopt;
  const std::string_view text = reply.str;
  if (text.starts_with("MOVED ")) {
    return parseSlotRedirect(Redirect::Kind::kMoved, text.substr(6), asked);
  }
  if (text.starts_with("ASK ")) {
    return parseSlotRedirect(Redirect::Kind::kAsk, text.substr(4), asked);
  }
  for (const std::string_view prefix : {"TRYAGAIN", "CLUSTERDOWN", "LOADING"}) {
    if (text.starts_with(prefix)) return Redirect{Redirect::Kind::kRetryLater, 0, {}};
  }
  return std::nullopt;
}

}  // namespace allot::redis
