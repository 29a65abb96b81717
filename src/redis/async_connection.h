// A pipelined, asynchronous connection to one Redis node, for the hot path. Commands given
// while a write is in progress, or in the same turn of the event loop, go out together in
// one write, and their replies are read together and handed out in order: one socket wake-up
// in Redis and in allotd for many commands, where the pooled blocking connections pay one
// each.
//
// Single-threaded by design: it lives on one Asio io_context run by one thread (a network
// thread of the HTTP server), and every call and every callback happens on that thread, so
// it needs no lock. It connects on first use and again after any failure; a transport
// failure or a reply that does not come within command_timeout fails every command in flight
// with kUnavailable (their outcome is unknown) and closes the socket. After a failed connect
// it refuses commands for a short back-off instead of retrying on every call.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"
#include "redis/connection.h"
#include "redis/reply.h"

namespace boost::asio {
class io_context;
}

namespace allot::redis {

class AsyncConnection {
 public:
  using Callback = std::function<void(Result<Reply>)>;

  AsyncConnection(boost::asio::io_context& io, NodeAddress address, ConnectionSettings settings);
  AsyncConnection(const AsyncConnection&) = delete;
  AsyncConnection& operator=(const AsyncConnection&) = delete;
  ~AsyncConnection();

  // Queues one command (binary safe). `done` runs later, never inside this call, with the
  // reply (an error reply from Redis is a Reply of type kError) or a kUnavailable Error.
  void command(std::span<const std::string_view> argv, Callback done);

  // Commands sent and not yet answered, plus those waiting for the connection.
  [[nodiscard]] std::size_t inFlight() const;
  [[nodiscard]] const NodeAddress& address() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with the handlers in flight, which check it is alive
};

}  // namespace allot::redis
