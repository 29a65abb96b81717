// The connection pool: bounded checkout with a deadline, lazy replacement of broken
// connections, and the transaction runner with its deadlock retry.
#include "mysql/pool.h"

#include <thread>
#include <utility>

#include "core/assert.h"
#include "core/limits.h"

namespace allot::mysql {

// ---- Lease ----

Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), connection_(std::move(other.connection_)) {}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    giveBack();
    pool_ = std::exchange(other.pool_, nullptr);
    connection_ = std::move(other.connection_);
  }
  return *this;
}

Lease::~Lease() { giveBack(); }

void Lease::giveBack() {
  if (pool_ != nullptr && connection_) pool_->giveBack(std::move(connection_));
  pool_ = nullptr;
}

// ---- Pool ----

Result<std::unique_ptr<Pool>> Pool::create(const MysqlOptions& options) {
  ALLOT_TRY_VOID(validateOptions(options));
  static_assert(kDefaultPoolSize <= limits::kMysqlPoolSizeMax);
  std::unique_ptr<Pool> pool(new Pool(options));
  ALLOT_TRY(first, Connection::open(options));
  pool->idle_.push_back(std::move(first));
  pool->open_ = 1;
  return pool;
}

Pool::~Pool() {
  std::lock_guard lock(mutex_);
  // A lease outliving its pool would return a connection into freed memory.
  ALLOT_ASSERT(open_ == idle_.size());
}

PoolStats Pool::stats() const {
  std::lock_guard lock(mutex_);
  return PoolStats{options_.pool_size, open_, idle_.size(), checkout_timeouts_,
                   connections_dropped_};
}

Result<Lease> Pool::acquire() {
  return acquire(std::chrono::milliseconds(options_.checkout_timeout_ms));
}

Result<Lease> Pool::acquire(std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      lock.unlock();
      connection = checked(std::move(connection));
      if (connection) return Lease(this, std::move(connection));
      lock.lock();  // it was dead and its slot is free again: go round
      continue;
    }
    if (open_ < options_.pool_size) {
      ++open_;  // reserve the slot, then connect without holding the lock
      lock.unlock();
      auto opened = Connection::open(options_);
      if (!opened) {
        dropSlot(false);
        return std::unexpected(opened.error());
      }
      return Lease(this, std::move(*opened));
    }
    if (returned_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= options_.pool_size) {
      ++checkout_timeouts_;
      return fail(ErrorCode::kUnavailable, "no mysql connection became free within " +
                                               std::to_string(wait.count()) + " ms (pool of " +
                                               std::to_string(options_.pool_size) + ")");
    }
  }
}

std::unique_ptr<Connection> Pool::checked(std::unique_ptr<Connection> connection) {
  const auto idle_for = std::chrono::steady_clock::now() - connection->lastUsed();
  if (idle_for < std::chrono::milliseconds(options_.idle_check_after_ms)) return connection;
  if (connection->ping()) return connection;
  // The server or the network closed it while it sat idle; the slot is reopened lazily.
  connection.reset();
  dropSlot(true);
  return nullptr;
}

void Pool::dropSlot(bool dropped_a_connection) {
  {
    std::lock_guard lock(mutex_);
    ALLOT_ASSERT(open_ > 0);
    --open_;
    if (dropped_a_connection) ++connections_dropped_;
  }
  returned_.notify_one();
}

void Pool::giveBack(std::unique_ptr<Connection> connection) {
  // A caller that left a transaction open must not hand its locks and half-done writes to
  // the next caller: roll it back, and drop the connection if even that fails.
  if (!connection->broken() && connection->inTransaction()) {
    static_cast<void>(connection->rollback());
    if (connection->inTransaction()) connection.reset();
  }
  if (!connection || connection->broken()) {
    connection.reset();
    dropSlot(true);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(connection));
  }
  returned_.notify_one();
}

Result<void> Pool::runTransaction(const std::function<Result<void>(Connection&)>& body) {
  ALLOT_TRY(lease, acquire());
  Connection& connection = *lease;
  for (int attempt = 1;; ++attempt) {
    ALLOT_TRY_VOID(connection.begin());
    Result<void> done = body(connection);
    if (done) {
      done = connection.commit();
      if (done) return {};
    }
    // Read before ROLLBACK, which resets it.
    const bool retryable = connection.lastFailureRetryable();
    Error error = done.error();
    // InnoDB has already rolled back a deadlocked transaction; for every other failure this
    // ROLLBACK undoes what the attempt did. If it fails, the connection is broken or the
    // pool's own rollback on return deals with it; the caller hears the first error.
    if (!connection.rollback() || !retryable) return std::unexpected(std::move(error));
    if (attempt >= kTransactionAttemptsMax) {
      return fail(ErrorCode::kUnavailable, "mysql transaction gave up after " +
                                               std::to_string(attempt) +
                                               " attempts: " + error.message);
    }
    // Deadlock victims that restart at once tend to collide again; a short pause that grows
    // with each attempt lets the winner finish first.
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * attempt));
  }
}

}  // namespace allot::mysql
