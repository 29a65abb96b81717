// hiredis behind RAII: the context is freed by its unique_ptr, every reply by its own, and
// every hiredis return code is checked (a NULL reply means the context is unusable).
#include "redis/connection.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstddef>
#include <utility>

#include "core/assert.h"
#include "core/decimal.h"

namespace allot::redis {
namespace {

constexpr int kPortMax = 65535;

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

timeval toTimeval(std::chrono::milliseconds duration) {
  const auto count = duration.count();
  return timeval{.tv_sec = static_cast<time_t>(count / 1000),
                 .tv_usec = static_cast<suseconds_t>((count % 1000) * 1000)};
}

bool equalsIgnoreCase(std::string_view left, std::string_view right) {
  return std::ranges::equal(left, right, [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
}

bool isStatus(const Reply& reply, std::string_view text) {
  return reply.type == Reply::Type::kStatus && reply.str == text;
}

}  // namespace

std::string NodeAddress::name() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<NodeAddress> parseNodeAddress(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") {
      return fail(ErrorCode::kInvalidRequest,
                  "Redis address '" + std::string(text) + "' must be [ipv6]:port");
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fail(ErrorCode::kInvalidRequest,
                  "Redis address '" + std::string(text) + "' has no :port");
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (host.empty()) {
    return fail(ErrorCode::kInvalidRequest,
                "Redis address '" + std::string(text) + "' has no host");
  }
  const auto port = readDecimal<int>(port_text);
  if (!port || *port < 1 || *port > kPortMax) {
    return fail(ErrorCode::kInvalidRequest,
                "Redis address '" + std::string(text) + "' needs a port from 1 to 65535");
  }
  return NodeAddress{std::string(host), *port};
}

Result<Reply> toReply(const redisReply& reply) {
  Reply out;
  switch (reply.type) {
    case REDIS_REPLY_NIL: out.type = Reply::Type::kNil; return out;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = reply.integer;
      return out;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = reply.type == REDIS_REPLY_STRING   ? Reply::Type::kString
                 : reply.type == REDIS_REPLY_STATUS ? Reply::Type::kStatus
                                                    : Reply::Type::kError;
      out.str.assign(reply.str, reply.len);
      return out;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(reply.elements);
      for (std::size_t i = 0; i < reply.elements; ++i) {
        ALLOT_TRY(element, toReply(*reply.element[i]));
        out.elements.push_back(std::move(element));
      }
      return out;
    default:
      return fail(ErrorCode::kInternal,
                  "Redis sent a reply of unexpected type " + std::to_string(reply.type));
  }
}

void NodeConnection::ContextDeleter::operator()(redisContext* context) const { redisFree(context); }

NodeConnection::NodeConnection(ContextPtr context, NodeAddress address)
    : context_(std::move(context)), address_(std::move(address)), node_name_(address_.name()) {}

NodeConnection::~NodeConnection() = default;

Result<std::unique_ptr<NodeConnection>> NodeConnection::open(const NodeAddress& address,
                                                             const ConnectionSettings& settings) {
  const std::string name = address.name();
  ContextPtr context(redisConnectWithTimeout(address.host.c_str(), address.port,
                                             toTimeval(settings.connect_timeout)));
  if (context == nullptr) {
    return fail(ErrorCode::kUnavailable, "Redis " + name + ": cannot allocate a connection");
  }
  if (context->err != 0) {
    return fail(ErrorCode::kUnavailable, "Redis " + name + ": connect failed: " + context->errstr);
  }
  // The same timeout bounds every later read and write, so a stalled server costs one
  // command_timeout, never a hung thread.
  if (redisSetTimeout(context.get(), toTimeval(settings.command_timeout)) != REDIS_OK) {
    return fail(ErrorCode::kUnavailable,
                "Redis " + name + ": cannot set timeout: " + context->errstr);
  }
  // Keep-alive lets the kernel notice a peer that vanished without closing the socket.
  if (redisEnableKeepAlive(context.get()) != REDIS_OK) {
    return fail(ErrorCode::kUnavailable,
                "Redis " + name + ": cannot enable keep-alive: " + context->errstr);
  }
  std::unique_ptr<NodeConnection> connection(new NodeConnection(std::move(context), address));
  if (!settings.password.empty()) {
    ALLOT_TRY(reply, connection->command({"AUTH", settings.password}));
    if (!isStatus(reply, "OK")) {
      return fail(ErrorCode::kUnavailable, "Redis " + name + ": AUTH failed: " + reply.str);
    }
  }
  return connection;
}

Result<Reply> NodeConnection::command(const std::vector<std::string>& argv) {
  ALLOT_TRY_VOID(append(argv));
  return receive(argv.front());
}

Result<std::vector<Reply>> NodeConnection::pipeline(
    const std::vector<const std::vector<std::string>*>& commands) {
  for (const std::vector<std::string>* argv : commands) ALLOT_TRY_VOID(append(*argv));
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (const std::vector<std::string>* argv : commands) {
    ALLOT_TRY(reply, receive(argv->front()));
    replies.push_back(std::move(reply));
  }
  return replies;
}

Result<void> NodeConnection::append(const std::vector<std::string>& argv) {
  ALLOT_ASSERT(!argv.empty());
  ALLOT_ASSERT(argv.size() <= static_cast<std::size_t>(INT_MAX));
  if (broken_) return std::unexpected(transportError("connection already failed"));
  std::vector<const char*> pointers;
  std::vector<std::size_t> lengths;
  pointers.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const std::string& argument : argv) {
    pointers.push_back(argument.data());
    lengths.push_back(argument.size());
  }
  // Only buffers the command (hiredis writes the buffer when the first reply is read); it
  // fails only when memory runs out.
  if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()), pointers.data(),
                             lengths.data()) != REDIS_OK) {
    return std::unexpected(transportError(argv.front()));
  }
  return {};
}

Result<Reply> NodeConnection::receive(std::string_view command_name) {
  void* raw_reply = nullptr;
  if (redisGetReply(context_.get(), &raw_reply) != REDIS_OK || raw_reply == nullptr) {
    return std::unexpected(transportError(command_name));
  }
  ReplyPtr raw(static_cast<redisReply*>(raw_reply));
  auto reply = toReply(*raw);
  if (!reply) {
    // The stream may hold more of a reply we did not understand; never read from it again.
    broken_ = true;
    return reply;
  }
  trackTransactionState(command_name, *reply);
  return reply;
}

bool NodeConnection::resetTransactionState() {
  if (in_multi_) {
    // DISCARD ends the MULTI and also forgets every WATCHed key.
    auto reply = command({"DISCARD"});
    if (!reply || !isStatus(*reply, "OK")) return false;
  }
  if (watching_) {
    auto reply = command({"UNWATCH"});
    if (!reply || !isStatus(*reply, "OK")) return false;
  }
  return !holdsTransactionState();
}

// Mirrors the server's transaction state from the commands this connection sent. Inside
// MULTI every other command is only queued, so only EXEC and DISCARD change anything.
void NodeConnection::trackTransactionState(std::string_view command_name, const Reply& reply) {
  if (in_multi_) {
    if (equalsIgnoreCase(command_name, "EXEC") || equalsIgnoreCase(command_name, "DISCARD")) {
      in_multi_ = false;
      watching_ = false;
    }
    return;
  }
  if (reply.isError()) return;
  if (equalsIgnoreCase(command_name, "MULTI")) {
    in_multi_ = true;
  } else if (equalsIgnoreCase(command_name, "WATCH")) {
    watching_ = true;
  } else if (equalsIgnoreCase(command_name, "UNWATCH") || equalsIgnoreCase(command_name, "RESET")) {
    watching_ = false;
  }
}

Error NodeConnection::transportError(std::string_view what) {
  broken_ = true;
  std::string reason = context_->err != 0 ? context_->errstr : "no reply";
  return Error{ErrorCode::kUnavailable,
               "Redis " + node_name_ + ": " + std::string(what) + " failed: " + reason};
}

}  // namespace allot::redis
