// Connections are opened outside the pool's lock, so one slow connect never blocks callers
// that could use an idle connection; a place is reserved first so the bound still holds.
#include "redis/node_pool.h"

#include <chrono>
#include <utility>

#include "core/assert.h"

namespace allot::redis {

NodePool::Lease::Lease(NodePool* pool, std::unique_ptr<NodeConnection> connection)
    : pool_(pool), connection_(std::move(connection)) {
  ALLOT_ASSERT(pool_ != nullptr && connection_ != nullptr);
}

NodePool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), connection_(std::move(other.connection_)), dropped_(other.dropped_) {}

NodePool::Lease::~Lease() {
  if (connection_ == nullptr) return;  // moved from
  const bool reusable =
      !dropped_ && !connection_->broken() && !connection_->holdsTransactionState();
  if (!reusable) connection_.reset();
  pool_->giveBack(std::move(connection_));
}

NodePool::NodePool(NodeAddress address, ConnectionSettings settings, std::size_t connections_max)
    : address_(std::move(address)),
      settings_(std::move(settings)),
      connections_max_(connections_max) {
  ALLOT_ASSERT(connections_max_ > 0);
}

Result<NodePool::Lease> NodePool::checkout() {
  {
    std::unique_lock lock(mutex_);
    const auto deadline = std::chrono::steady_clock::now() + settings_.command_timeout;
    const bool available = place_freed_.wait_until(
        lock, deadline, [&] { return !idle_.empty() || open_count_ < connections_max_; });
    if (!available) {
      return fail(ErrorCode::kUnavailable, "Redis " + address_.name() + ": all " +
                                               std::to_string(connections_max_) +
                                               " connections busy");
    }
    if (!idle_.empty()) {
      // Last in, first out: the most recently used connection is the likeliest to be alive.
      std::unique_ptr<NodeConnection> connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(connection));
    }
    ++open_count_;
  }
  auto connection = NodeConnection::open(address_, settings_);
  if (!connection) {
    giveBack(nullptr);
    return std::unexpected(connection.error());
  }
  return Lease(this, std::move(*connection));
}

void NodePool::dropIdle() {
  std::vector<std::unique_ptr<NodeConnection>> closing;
  {
    std::lock_guard lock(mutex_);
    ALLOT_ASSERT(open_count_ >= idle_.size());
    open_count_ -= idle_.size();
    closing.swap(idle_);
  }
  place_freed_.notify_all();
  // `closing` goes out of scope here, outside the lock: closing sockets can take a while.
}

void NodePool::giveBack(std::unique_ptr<NodeConnection> connection) {
  {
    std::lock_guard lock(mutex_);
    ALLOT_ASSERT(open_count_ > 0);
    if (connection != nullptr) {
      idle_.push_back(std::move(connection));
    } else {
      --open_count_;
    }
    ALLOT_ASSERT(idle_.size() <= open_count_ && open_count_ <= connections_max_);
  }
  place_freed_.notify_one();
}

}  // namespace allot::redis
