// A bounded pool of blocking connections to one Redis node. Connections are opened lazily,
// up to connections_max, lent out one caller at a time, and returned after use; a broken one
// (I/O error, timeout, protocol error) is closed instead, which frees its place. A checkout
// waits at most command_timeout for a free place, then fails with kUnavailable.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "core/result.h"
#include "redis/connection.h"

namespace allot::redis {

class NodePool {
 public:
  // A connection on loan. Going out of scope returns it, unless it broke, was dropped, or
  // may still carry WATCH/MULTI state, in which cases it is closed.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    [[nodiscard]] NodeConnection& operator*() const { return *connection_; }
    [[nodiscard]] NodeConnection* operator->() const { return connection_.get(); }
    // Closes the connection on return instead of pooling it.
    void drop() { dropped_ = true; }

   private:
    friend class NodePool;
    Lease(NodePool* pool, std::unique_ptr<NodeConnection> connection);

    NodePool* pool_;
    std::unique_ptr<NodeConnection> connection_;
    bool dropped_ = false;
  };

  NodePool(NodeAddress address, ConnectionSettings settings, std::size_t connections_max);
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;

  [[nodiscard]] Result<Lease> checkout();
  // Closes every idle connection: after one connection failed, the others to the same node
  // (a restarted server, say) are likely dead too, and each would fail one more caller.
  void dropIdle();

  [[nodiscard]] const NodeAddress& address() const { return address_; }

 private:
  // Takes back a lent connection; nullptr when it was closed instead.
  void giveBack(std::unique_ptr<NodeConnection> connection);

  const NodeAddress address_;
  const ConnectionSettings settings_;
  const std::size_t connections_max_;

  std::mutex mutex_;
  std::condition_variable place_freed_;
  std::vector<std::unique_ptr<NodeConnection>> idle_;  // guarded by mutex_
  std::size_t open_count_ = 0;  // idle plus lent plus being opened; guarded by mutex_
};

}  // namespace allot::redis
