// The Redis client of allot: standalone or Redis Cluster behind one interface. Thread-safe:
// a bounded pool of blocking hiredis connections per node. In cluster mode every call is
// routed by the hash slot of its routing key; MOVED refreshes the slot map and retries, ASK
// is followed once with ASKING, TRYAGAIN/CLUSTERDOWN back off briefly and retry, all within
// limits::kRedisRedirectsMax. Transport failures and timeouts are kUnavailable errors; error
// replies from Redis itself are returned as Reply values of type kError.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "redis/reply.h"

namespace allot::redis {

struct ClientOptions {
  std::vector<std::string> seeds;  // "host:port"; more than one means Redis Cluster
  std::string password;            // AUTH when not empty
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{2000};
  std::size_t pool_size_per_node = 64;
};

// "redis://host:port" or "redis://host:port,host:port,..." (cluster seeds);
// "redis://:password@host:port" is accepted too.
[[nodiscard]] Result<ClientOptions> parseRedisUrl(std::string_view url);

// CRC16 (XMODEM) of the key's hash tag, mod 16384, as Redis Cluster computes it.
[[nodiscard]] std::uint16_t keyHashSlot(std::string_view key);
// A short string whose hash slot is `slot`, found once at start-up: "{" + slotTag(s) + "}"
// inside a key puts that key in slot s. Used for per-slot keys such as the outbox stream.
[[nodiscard]] const std::string& slotTag(std::uint16_t slot);

// A Lua script, identified by the SHA1 of its body (computed locally).
class Script {
 public:
  Script(std::string name, std::string body);
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& body() const { return body_; }
  [[nodiscard]] const std::string& sha1() const { return sha1_; }

 private:
  std::string name_;
  std::string body_;
  std::string sha1_;
};

// A command and the key that routes it (empty: any node), for Client::pipeline.
struct RoutedCommand {
  std::string routing_key;
  std::vector<std::string> argv;
};

// One blocking connection, lent out by Client::withConnection for multi-command sessions
// such as WATCH ... MULTI ... EXEC.
class Connection {
 public:
  virtual ~Connection() = default;
  [[nodiscard]] virtual Result<Reply> command(const std::vector<std::string>& argv) = 0;
};

class Client {
 public:
  virtual ~Client() = default;

  // Connects to the seeds; in cluster mode loads the slot map (CLUSTER SLOTS).
  [[nodiscard]] static Result<std::unique_ptr<Client>> connect(const ClientOptions& options);

  [[nodiscard]] virtual bool isCluster() const = 0;

  // Runs one command on the node that owns keyHashSlot(routing_key); an empty routing key
  // means any node (standalone: the server).
  [[nodiscard]] virtual Result<Reply> command(std::string_view routing_key,
                                              const std::vector<std::string>& argv) = 0;

  // EVALSHA on the node owning keys[0]; on NOSCRIPT loads the script and retries, so a
  // restarted or flushed server is transparent. All keys must share one slot.
  [[nodiscard]] virtual Result<Reply> evalScript(const Script& script,
                                                 const std::vector<std::string>& keys,
                                                 const std::vector<std::string>& args) = 0;

  // Lends one pooled connection to the node owning routing_key for the duration of fn. A
  // redirect inside fn is returned as the error reply it is (callers retry the whole session).
  [[nodiscard]] virtual Result<Reply> withConnection(
      std::string_view routing_key, const std::function<Result<Reply>(Connection&)>& fn) = 0;

  // Runs many commands, pipelined: the commands for one node are written together and their
  // replies read together, one round trip per limits::kRedisPipelineCommandsMax commands (the
  // nodes one after the other). The answers are in the order of `commands`, one each. A
  // redirect (MOVED, ASK, TRYAGAIN) is followed for its command alone, as command() follows
  // it; a transport failure fails that node's commands from the first one not answered (they
  // may or may not have run), never the other nodes'. For idempotent commands (reads, trims):
  // the write-back's XRANGE and XTRIM of many streams.
  [[nodiscard]] virtual std::vector<Result<Reply>> pipeline(
      const std::vector<RoutedCommand>& commands) = 0;

  // Runs one command on every master (standalone: the one server), e.g. for SCAN or INFO.
  [[nodiscard]] virtual Result<std::vector<Reply>> commandOnMasters(
      const std::vector<std::string>& argv) = 0;
};

}  // namespace allot::redis
