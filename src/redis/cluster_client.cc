// Routing and retries for every Client call. A call is tried on the master that owns its
// slot; the reply decides what happens next: a result is returned, MOVED updates the map and
// goes to the new owner, ASK goes to the importing node once with ASKING, TRYAGAIN /
// CLUSTERDOWN / LOADING pause and retry. None of those replies means the command ran, so the
// retries are safe even for scripts that write. A transport failure is different: the command
// may or may not have run, so it is never retried here; the caller gets kUnavailable and
// retries with its idempotency key.
#include "redis/cluster_client.h"

#include <algorithm>
#include <map>
#include <thread>
#include <utility>

#include "core/assert.h"
#include "core/limits.h"

namespace allot::redis {
namespace {

// Redis Cluster is specified for up to 1000 nodes; more names than that means a bug or a
// hostile reply, and each name would cost a pool.
constexpr std::size_t kNodesMax = 1000;
// Grows linearly per retry: 20 + 40 + ... + 100 ms stays well under a command timeout.
constexpr std::chrono::milliseconds kRetryPause{20};
// Many threads see the same MOVED during a resharding; one reload serves them all.
constexpr std::chrono::milliseconds kRefreshIntervalMin{100};

Result<Reply> send(NodeConnection& connection, bool asking, const std::vector<std::string>& argv) {
  if (asking) {
    ALLOT_TRY(reply, connection.command({"ASKING"}));
    if (reply.isError()) return reply;
  }
  return connection.command(argv);
}

// The connection a withConnection session sees: the node's own, plus a look at every reply
// so that a MOVED met inside the session still corrects the slot map, and the caller's retry
// of the session goes to the new owner.
class ObservedConnection final : public Connection {
 public:
  ObservedConnection(NodeConnection& inner, std::function<void(const Redirect&)> on_moved)
      : inner_(inner), on_moved_(std::move(on_moved)) {}

  Result<Reply> command(const std::vector<std::string>& argv) override {
    auto reply = inner_.command(argv);
    if (!reply || !reply->isError()) return reply;
    const auto redirect = parseRedirect(*reply, inner_.address());
    if (redirect && redirect->kind == Redirect::Kind::kMoved) on_moved_(*redirect);
    return reply;
  }

 private:
  NodeConnection& inner_;
  std::function<void(const Redirect&)> on_moved_;
};

std::optional<std::uint16_t> slotOf(std::string_view routing_key) {
  if (routing_key.empty()) return std::nullopt;
  return keyHashSlot(routing_key);
}

}  // namespace

ClusterClient::ClusterClient(ClusterClientSettings settings, SlotMap slot_map)
    : settings_(std::move(settings)), slot_map_(std::move(slot_map)) {
  ALLOT_ASSERT(!settings_.seeds.empty());
  ALLOT_ASSERT(settings_.connections_per_node_max > 0 &&
               settings_.connections_per_node_max <= limits::kRedisPoolSizeMax);
}

Result<std::unique_ptr<ClusterClient>> ClusterClient::create(ClusterClientSettings settings) {
  const bool cluster = settings.cluster;
  SlotMap initial = cluster ? SlotMap() : SlotMap::singleNode(settings.seeds.front());
  // The constructor is private so that only create() can make a client; make_unique cannot
  // reach it.
  std::unique_ptr<ClusterClient> client(new ClusterClient(std::move(settings), std::move(initial)));
  if (!cluster) return client;

  std::string errors;
  for (const NodeAddress& seed : client->settings_.seeds) {
    auto map = client->loadSlotMap(seed);
    if (map) {
      std::unique_lock lock(client->slot_map_mutex_);
      client->slot_map_ = std::move(*map);
      return client;
    }
    errors += (errors.empty() ? "" : "; ") + map.error().message;
  }
  return fail(ErrorCode::kUnavailable, "Redis Cluster: no seed gave a slot map: " + errors);
}

Result<Reply> ClusterClient::command(std::string_view routing_key,
                                     const std::vector<std::string>& argv) {
  const auto slot = slotOf(routing_key);
  ALLOT_TRY(target, ownerOf(slot));
  return route(
      slot, std::move(target), Redirects::kFollow,
      [&argv](NodeConnection& connection, bool asking) { return send(connection, asking, argv); });
}

Result<Reply> ClusterClient::evalScript(const Script& script, const std::vector<std::string>& keys,
                                        const std::vector<std::string>& args) {
  std::optional<std::uint16_t> slot;
  if (!keys.empty()) {
    slot = keyHashSlot(keys.front());
    for (const std::string& key : keys) {
      if (keyHashSlot(key) != *slot) {
        return fail(ErrorCode::kInternal,
                    "script " + script.name() + ": keys span more than one hash slot");
      }
    }
  }
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.insert(argv.end(), {"EVALSHA", script.sha1(), std::to_string(keys.size())});
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());

  const Attempt attempt = [&](NodeConnection& connection, bool asking) -> Result<Reply> {
    ALLOT_TRY(reply, send(connection, asking, argv));
    if (!reply.isNoScript()) return reply;
    // The node's script cache is empty (restart, failover, SCRIPT FLUSH): load the body on
    // this very node and run it again, once.
    ALLOT_TRY(loaded, connection.command({"SCRIPT", "LOAD", script.body()}));
    if (loaded.isError()) return loaded;
    if (!loaded.isString() || loaded.str != script.sha1()) {
      return fail(ErrorCode::kInternal, "script " + script.name() + ": SCRIPT LOAD returned '" +
                                            loaded.str + "', expected " + script.sha1());
    }
    return send(connection, asking, argv);
  };
  ALLOT_TRY(target, ownerOf(slot));
  return route(slot, std::move(target), Redirects::kFollow, attempt);
}

Result<Reply> ClusterClient::withConnection(std::string_view routing_key,
                                            const std::function<Result<Reply>(Connection&)>& fn) {
  ALLOT_TRY(target, ownerOf(slotOf(routing_key)));
  ALLOT_TRY(pool, poolFor(target));
  auto lease = pool->checkout();
  if (!lease) {
    refreshSlotMap();
    return std::unexpected(lease.error());
  }
  ObservedConnection session(**lease, [this](const Redirect& moved) { noteMoved(moved); });
  auto result = fn(session);
  if ((*lease)->broken()) {
    pool->dropIdle();
    refreshSlotMap();
  }
  if (!result) {
    // fn gave up part-way: whatever it left on the connection must not reach the next user.
    lease->drop();
  } else if ((*lease)->holdsTransactionState() && !(*lease)->resetTransactionState()) {
    lease->drop();
  }
  return result;
}

std::vector<Result<Reply>> ClusterClient::pipeline(const std::vector<RoutedCommand>& commands) {
  std::vector<Result<Reply>> answers(commands.size());
  // The commands of each node, in their given order (by node name, so the nodes are visited
  // in a fixed order).
  std::map<std::string, std::pair<NodeAddress, std::vector<std::size_t>>> by_node;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    auto owner = ownerOf(slotOf(commands[i].routing_key));
    if (!owner) {
      answers[i] = std::unexpected(owner.error());
      continue;
    }
    auto& [node, indices] = by_node[owner->name()];
    if (indices.empty()) node = std::move(*owner);
    indices.push_back(i);
  }
  std::vector<std::size_t> redirected;
  for (const auto& [name, node_commands] : by_node) {
    pipelineOnNode(node_commands.first, node_commands.second, commands, answers, redirected);
  }
  // Rare (a resharding or a failover): each one alone, with command()'s redirect handling.
  for (const std::size_t i : redirected) {
    answers[i] = command(commands[i].routing_key, commands[i].argv);
  }
  return answers;
}

void ClusterClient::pipelineOnNode(const NodeAddress& node, const std::vector<std::size_t>& indices,
                                   const std::vector<RoutedCommand>& commands,
                                   std::vector<Result<Reply>>& answers,
                                   std::vector<std::size_t>& redirected) {
  auto fail_from = [&](std::size_t first, const Error& error) {
    for (std::size_t k = first; k < indices.size(); ++k)
      answers[indices[k]] = std::unexpected(error);
  };
  auto pool = poolFor(node);
  if (!pool) return fail_from(0, pool.error());
  auto lease = (*pool)->checkout();
  if (!lease) {
    refreshSlotMap();
    return fail_from(0, lease.error());
  }
  std::vector<const std::vector<std::string>*> chunk;
  for (std::size_t first = 0; first < indices.size(); first += limits::kRedisPipelineCommandsMax) {
    const std::size_t count = std::min(limits::kRedisPipelineCommandsMax, indices.size() - first);
    chunk.clear();
    for (std::size_t k = first; k < first + count; ++k) chunk.push_back(&commands[indices[k]].argv);
    auto replies = (**lease).pipeline(chunk);
    if (!replies) {
      lease->drop();
      (*pool)->dropIdle();
      refreshSlotMap();
      return fail_from(first, replies.error());
    }
    for (std::size_t k = 0; k < count; ++k) {
      Reply& reply = (*replies)[k];
      const auto redirect = parseRedirect(reply, node);
      if (!redirect) {
        answers[indices[first + k]] = std::move(reply);
        continue;
      }
      if (redirect->kind == Redirect::Kind::kMoved) noteMoved(*redirect);
      redirected.push_back(indices[first + k]);
    }
  }
}

Result<std::vector<Reply>> ClusterClient::commandOnMasters(const std::vector<std::string>& argv) {
  std::vector<NodeAddress> masters;
  {
    std::shared_lock lock(slot_map_mutex_);
    masters = slot_map_.masters();
  }
  if (masters.empty()) return fail(ErrorCode::kUnavailable, "Redis: no master is known");
  std::vector<Reply> replies;
  replies.reserve(masters.size());
  for (NodeAddress& master : masters) {
    // A MOVED here is the node's answer for a key it does not own (EXISTS key on every
    // master, say); following it would ask the owner twice.
    ALLOT_TRY(reply, route(std::nullopt, std::move(master), Redirects::kReturn,
                           [&argv](NodeConnection& connection, bool asking) {
                             return send(connection, asking, argv);
                           }));
    replies.push_back(std::move(reply));
  }
  return replies;
}

Result<Reply> ClusterClient::route(std::optional<std::uint16_t> slot, NodeAddress target,
                                   Redirects redirects, const Attempt& attempt) {
  bool asking = false;
  for (int hop = 0;; ++hop) {
    const bool last_hop = hop == limits::kRedisRedirectsMax;
    ALLOT_TRY(pool, poolFor(target));
    auto lease = pool->checkout();
    if (!lease) {
      // Nothing was sent, so trying the slot's owner again is safe if a failover moved it.
      refreshSlotMap();
      if (!slot || asking || last_hop) return std::unexpected(lease.error());
      auto owner = ownerOf(slot);
      if (!owner || *owner == target) return std::unexpected(lease.error());
      target = std::move(*owner);
      continue;
    }
    auto reply = attempt(**lease, asking);
    if (!reply) {
      lease->drop();
      pool->dropIdle();
      refreshSlotMap();
      return reply;
    }
    const auto redirect = parseRedirect(*reply, target);
    if (!redirect) return reply;
    if (redirects == Redirects::kReturn && redirect->kind != Redirect::Kind::kRetryLater) {
      return reply;
    }
    if (last_hop) {
      return fail(ErrorCode::kUnavailable, "Redis: still redirected after " + std::to_string(hop) +
                                               " retries: " + reply->str);
    }
    asking = false;
    switch (redirect->kind) {
      case Redirect::Kind::kMoved:
        noteMoved(*redirect);
        target = redirect->target;
        break;
      case Redirect::Kind::kAsk:
        target = redirect->target;
        asking = true;
        break;
      case Redirect::Kind::kRetryLater:
        std::this_thread::sleep_for(kRetryPause * (hop + 1));
        if (slot) {
          ALLOT_TRY(owner, ownerOf(slot));
          target = std::move(owner);
        }
        break;
    }
  }
}

Result<NodeAddress> ClusterClient::ownerOf(std::optional<std::uint16_t> slot) {
  for (int tries = 0; tries < 2; ++tries) {
    if (tries > 0) refreshSlotMap();
    std::shared_lock lock(slot_map_mutex_);
    if (!slot) {
      const std::vector<NodeAddress> masters = slot_map_.masters();
      if (!masters.empty()) return masters[next_master_.fetch_add(1) % masters.size()];
    } else if (const NodeAddress* owner = slot_map_.owner(*slot)) {
      return *owner;
    }
  }
  return fail(ErrorCode::kUnavailable,
              slot ? "Redis Cluster: no master serves slot " + std::to_string(*slot)
                   : std::string("Redis: no master is known"));
}

Result<NodePool*> ClusterClient::poolFor(const NodeAddress& node) {
  const std::string name = node.name();
  std::lock_guard lock(pools_mutex_);
  auto found = pools_.find(name);
  if (found == pools_.end()) {
    if (pools_.size() >= kNodesMax) {
      return fail(ErrorCode::kUnavailable, "Redis: more than " + std::to_string(kNodesMax) +
                                               " nodes named; refusing " + name);
    }
    found = pools_
                .emplace(name, std::make_unique<NodePool>(node, settings_.connection,
                                                          settings_.connections_per_node_max))
                .first;
  }
  return found->second.get();
}

void ClusterClient::noteMoved(const Redirect& moved) {
  ALLOT_ASSERT(moved.kind == Redirect::Kind::kMoved);
  {
    std::unique_lock lock(slot_map_mutex_);
    slot_map_.assign(moved.slot, moved.target);
  }
  // One slot moved usually means a resharding or a failover that moved many.
  refreshSlotMap();
}

void ClusterClient::refreshSlotMap() {
  if (!settings_.cluster) return;
  std::unique_lock refresh_lock(refresh_mutex_, std::try_to_lock);
  if (!refresh_lock.owns_lock()) return;  // another thread is reloading right now
  const auto now = std::chrono::steady_clock::now();
  if (now - last_refresh_ < kRefreshIntervalMin) return;
  last_refresh_ = now;

  std::vector<NodeAddress> candidates;
  {
    std::shared_lock lock(slot_map_mutex_);
    candidates = slot_map_.masters();
  }
  for (const NodeAddress& seed : settings_.seeds) {
    if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end()) {
      candidates.push_back(seed);
    }
  }
  // The refresh runs on a caller's thread: with every node unreachable it must not cost
  // that caller a connect timeout per node, so it stops after one command timeout.
  const auto deadline = now + settings_.connection.command_timeout;
  for (const NodeAddress& candidate : candidates) {
    if (std::chrono::steady_clock::now() >= deadline) return;
    auto map = loadSlotMap(candidate);
    if (!map) continue;  // try the next node; a failed refresh leaves the old map in place
    std::unique_lock lock(slot_map_mutex_);
    slot_map_ = std::move(*map);
    return;
  }
}

// A connection of its own rather than a pooled one: a refresh is often needed exactly when
// the pools are exhausted or failing, and must not wait behind them. Refreshes are rare
// (kRefreshIntervalMin) and one at a time (refresh_mutex_), so this costs little.
Result<SlotMap> ClusterClient::loadSlotMap(const NodeAddress& node) {
  ALLOT_TRY(connection, NodeConnection::open(node, settings_.connection));
  ALLOT_TRY(reply, connection->command({"CLUSTER", "SLOTS"}));
  if (reply.isError()) {
    return fail(ErrorCode::kUnavailable, "Redis " + node.name() + ": CLUSTER SLOTS: " + reply.str);
  }
  ALLOT_TRY(map, parseClusterSlots(reply, node));
  if (map.masters().empty()) {
    return fail(ErrorCode::kUnavailable,
                "Redis " + node.name() + ": CLUSTER SLOTS lists no master");
  }
  return map;
}

}  // namespace allot::redis
