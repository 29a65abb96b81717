// One blocking hiredis connection to one Redis node, owned by RAII, and the node addresses it
// is opened with. Every hiredis failure becomes a kUnavailable Error and marks the connection
// broken: hiredis contexts cannot be used again after an I/O, timeout or protocol error, so a
// broken connection is dropped by its pool rather than reused.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "redis/client.h"
#include "redis/reply.h"

struct redisContext;
struct redisReply;

namespace allot::redis {

struct NodeAddress {
  std::string host;
  int port = 0;

  // "host:port", or "[host]:port" for an IPv6 literal.
  [[nodiscard]] std::string name() const;
  friend bool operator==(const NodeAddress&, const NodeAddress&) = default;
};

// "host:port" or "[ipv6]:port"; kInvalidRequest names what is wrong.
[[nodiscard]] Result<NodeAddress> parseNodeAddress(std::string_view text);

struct ConnectionSettings {
  std::string password;  // AUTH when not empty
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{2000};
};

// Copies a hiredis reply tree into a plain Reply. RESP3 types are never requested (we speak
// RESP2), so meeting one is an impossible reply: kInternal.
[[nodiscard]] Result<Reply> toReply(const redisReply& reply);

class NodeConnection final : public Connection {
 public:
  [[nodiscard]] static Result<std::unique_ptr<NodeConnection>> open(
      const NodeAddress& address, const ConnectionSettings& settings);

  NodeConnection(const NodeConnection&) = delete;
  NodeConnection& operator=(const NodeConnection&) = delete;
  ~NodeConnection() override;

  // Sends argv (binary safe) and waits for the reply, at most command_timeout. An error
  // reply from Redis is a Reply of type kError; only transport failures are Errors.
  [[nodiscard]] Result<Reply> command(const std::vector<std::string>& argv) override;
  // Writes every command, then reads their replies in order: one round trip for all. A
  // transport failure fails the whole call (and breaks the connection): which commands ran is
  // then unknown. The caller bounds how many commands it sends at once.
  [[nodiscard]] Result<std::vector<Reply>> pipeline(
      const std::vector<const std::vector<std::string>*>& commands);

  // True after any transport failure: the connection must not be used again.
  [[nodiscard]] bool broken() const { return broken_; }
  // True when a WATCH or MULTI sent on this connection may still be in effect, so the next
  // user of the connection would inherit it.
  [[nodiscard]] bool holdsTransactionState() const { return in_multi_ || watching_; }
  // Sends DISCARD and/or UNWATCH to end any transaction state; false when that did not
  // succeed cleanly, in which case the caller must drop the connection.
  [[nodiscard]] bool resetTransactionState();

  [[nodiscard]] const NodeAddress& address() const { return address_; }

 private:
  struct ContextDeleter {
    void operator()(redisContext* context) const;
  };
  using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

  NodeConnection(ContextPtr context, NodeAddress address);
  // The two halves of a command: append it to the output buffer, read its reply.
  [[nodiscard]] Result<void> append(const std::vector<std::string>& argv);
  [[nodiscard]] Result<Reply> receive(std::string_view command_name);
  void trackTransactionState(std::string_view command_name, const Reply& reply);
  [[nodiscard]] Error transportError(std::string_view what);

  ContextPtr context_;
  NodeAddress address_;
  std::string node_name_;  // address_.name(), kept for error messages
  bool broken_ = false;
  bool in_multi_ = false;
  bool watching_ = false;
};

}  // namespace allot::redis
