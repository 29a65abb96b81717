// The one implementation of Client. Standalone Redis is handled as a one-node cluster: a
// slot map in which that node serves every slot and which is never refreshed; in cluster
// mode the map comes from CLUSTER SLOTS and follows MOVED replies.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "redis/client.h"
#include "redis/cluster_routing.h"
#include "redis/connection.h"
#include "redis/node_pool.h"

namespace allot::redis {

struct ClusterClientSettings {
  ConnectionSettings connection;
  std::size_t connections_per_node_max = 1;
  std::vector<NodeAddress> seeds;
  bool cluster = false;
};

class ClusterClient final : public Client {
 public:
  // Cluster mode loads the slot map from the first seed that answers CLUSTER SLOTS.
  [[nodiscard]] static Result<std::unique_ptr<ClusterClient>> create(
      ClusterClientSettings settings);

  [[nodiscard]] bool isCluster() const override { return settings_.cluster; }
  [[nodiscard]] Result<Reply> command(std::string_view routing_key,
                                      const std::vector<std::string>& argv) override;
  [[nodiscard]] Result<Reply> evalScript(const Script& script, const std::vector<std::string>& keys,
                                         const std::vector<std::string>& args) override;
  [[nodiscard]] Result<Reply> withConnection(
      std::string_view routing_key, const std::function<Result<Reply>(Connection&)>& fn) override;
  [[nodiscard]] std::vector<Result<Reply>> pipeline(
      const std::vector<RoutedCommand>& commands) override;
  [[nodiscard]] Result<std::vector<Reply>> commandOnMasters(
      const std::vector<std::string>& argv) override;

 private:
  // One try of a call on one connection. `asking` is true when the call follows an ASK
  // redirect, so every command it sends must be preceded by ASKING.
  using Attempt = std::function<Result<Reply>(NodeConnection& connection, bool asking)>;

  explicit ClusterClient(ClusterClientSettings settings, SlotMap slot_map);

  // Whether MOVED and ASK are followed (calls routed by slot) or are the answer (calls
  // addressed to one particular node, as commandOnMasters makes).
  enum class Redirects { kFollow, kReturn };

  // Runs `attempt` at `target`, following redirects; `slot` (when known) re-resolves the
  // target after a pause or a failed connect.
  [[nodiscard]] Result<Reply> route(std::optional<std::uint16_t> slot, NodeAddress target,
                                    Redirects redirects, const Attempt& attempt);
  [[nodiscard]] Result<NodeAddress> ownerOf(std::optional<std::uint16_t> slot);
  // One node's share of a pipeline: `indices` into `commands`, answers into `answers`; the
  // indices of redirected commands are added to `redirected`.
  void pipelineOnNode(const NodeAddress& node, const std::vector<std::size_t>& indices,
                      const std::vector<RoutedCommand>& commands,
                      std::vector<Result<Reply>>& answers, std::vector<std::size_t>& redirected);
  [[nodiscard]] Result<NodePool*> poolFor(const NodeAddress& node);
  // Records the new owner a MOVED names, then refreshes the whole map.
  void noteMoved(const Redirect& moved);
  // Reloads the slot map unless another thread is doing it or did it a moment ago.
  void refreshSlotMap();
  [[nodiscard]] Result<SlotMap> loadSlotMap(const NodeAddress& node);

  const ClusterClientSettings settings_;

  std::shared_mutex slot_map_mutex_;
  SlotMap slot_map_;  // guarded by slot_map_mutex_

  std::mutex pools_mutex_;
  std::map<std::string, std::unique_ptr<NodePool>> pools_;  // by node name; guarded

  std::mutex refresh_mutex_;
  std::chrono::steady_clock::time_point last_refresh_;  // guarded by refresh_mutex_

  std::atomic<std::size_t> next_master_{0};  // round robin for calls without a key
};

}  // namespace allot::redis
