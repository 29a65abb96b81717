// A bounded, thread-safe pool of MariaDB connections.
//
// At most options.pool_size connections exist at once (never more than
// limits::kMysqlPoolSizeMax). acquire() hands out an idle connection, opens a new one while
// the pool is below its size, or waits until one is returned; past the checkout deadline it
// fails with kUnavailable, so a saturated database slows callers down by a bounded amount
// instead of queueing them forever. A Lease returns its connection when it goes out of
// scope; a broken connection is dropped and its slot is refilled lazily by a later acquire().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <vector>

#include "core/result.h"
#include "mysql/connection.h"
#include "mysql/url.h"

namespace allot::mysql {

// Attempts of one transaction that hits a deadlock or a lock wait timeout.
inline constexpr int kTransactionAttemptsMax = 3;

class Pool;

// Exclusive use of one pooled connection; move-only.
class Lease {
 public:
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  Connection& operator*() const { return *connection_; }
  Connection* operator->() const { return connection_.get(); }

 private:
  friend class Pool;
  Lease(Pool* pool, std::unique_ptr<Connection> connection)
      : pool_(pool), connection_(std::move(connection)) {}
  void giveBack();

  Pool* pool_ = nullptr;
  std::unique_ptr<Connection> connection_;
};

struct PoolStats {
  std::size_t capacity = 0;
  std::size_t open = 0;  // idle + leased + being opened
  std::size_t idle = 0;
  std::uint64_t checkout_timeouts = 0;
  std::uint64_t connections_dropped = 0;  // broken ones, and idle ones that failed a ping
};

class Pool {
 public:
  // Validates the options and opens one connection, so a wrong address or password fails
  // here, at start-up, rather than on the first request.
  [[nodiscard]] static Result<std::unique_ptr<Pool>> create(const MysqlOptions& options);

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  // Every Lease must have been returned.
  ~Pool();

  // Waits up to options().checkout_timeout_ms for a free slot. Opening a new connection in a
  // free slot is bounded by connect_timeout_s instead.
  [[nodiscard]] Result<Lease> acquire();
  [[nodiscard]] Result<Lease> acquire(std::chrono::milliseconds wait);

  // Runs fn(Connection&) -> Result<T> inside START TRANSACTION ... COMMIT on one leased
  // connection. An error from fn (or from COMMIT) rolls the transaction back and is returned.
  // A deadlock or lock wait timeout reruns the whole transaction, up to
  // kTransactionAttemptsMax attempts, then fails with kUnavailable; fn must therefore be
  // safe to run again (it only talks to the database through the connection it is given).
  // A COMMIT whose reply was lost leaves the outcome unknown: kUnavailable, and the caller's
  // retry must be idempotent.
  template <typename Fn>
  [[nodiscard]] auto withTransaction(Fn&& fn) -> std::invoke_result_t<Fn&, Connection&>;

  [[nodiscard]] const MysqlOptions& options() const { return options_; }
  [[nodiscard]] PoolStats stats() const;

 private:
  explicit Pool(const MysqlOptions& options) : options_(options) {}
  friend class Lease;

  [[nodiscard]] Result<void> runTransaction(const std::function<Result<void>(Connection&)>& body);
  // Pings a connection that sat idle too long; nullptr when it turned out to be dead.
  [[nodiscard]] std::unique_ptr<Connection> checked(std::unique_ptr<Connection> connection);
  void giveBack(std::unique_ptr<Connection> connection);
  // Frees a slot (a connection was dropped, or opening one failed) and wakes a waiter.
  void dropSlot(bool dropped_a_connection);

  const MysqlOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable returned_;
  // Most recently returned last, and handed out first: under light load the same few
  // connections serve every call and skip the idle check.
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;
  std::uint64_t checkout_timeouts_ = 0;
  std::uint64_t connections_dropped_ = 0;
};

template <typename Fn>
auto Pool::withTransaction(Fn&& fn) -> std::invoke_result_t<Fn&, Connection&> {
  using Return = std::invoke_result_t<Fn&, Connection&>;
  std::optional<Return> answer;
  const Result<void> done = runTransaction([&](Connection& connection) -> Result<void> {
    answer.emplace(fn(connection));
    if (!answer->has_value()) return std::unexpected(answer->error());
    return {};
  });
  if (!done) return std::unexpected(done.error());
  return std::move(*answer);
}

}  // namespace allot::mysql
