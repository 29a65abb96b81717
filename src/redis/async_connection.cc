// The pipelined connection: commands are written in RESP into one output buffer, written by
// one async_write at a time, and the replies are parsed by hiredis's reader as they arrive. Every
// handler holds the Impl alive and carries the connection's generation, so a handler of a socket
// that has since failed, or of a connection that was destroyed, does nothing.
#include "redis/async_connection.h"

#include <hiredis/hiredis.h>

#include <array>
#include <boost/asio.hpp>
#include <vector>

#include "core/decimal.h"

namespace allot::redis {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kReadChunkBytes = 64 * 1024;
constexpr std::chrono::milliseconds kTimeoutCheck{50};
constexpr std::chrono::milliseconds kReconnectBackoff{200};
// Commands in one call: bounds the argv arrays built for hiredis.
constexpr std::size_t kArgvMax = 4096;

struct ReaderDeleter {
  void operator()(redisReader* reader) const { redisReaderFree(reader); }
};
using ReaderPtr = std::unique_ptr<redisReader, ReaderDeleter>;

// One command in RESP, the protocol's array of bulk strings (binary safe).
void appendCommand(std::string& out, std::span<const std::string_view> argv) {
  out.push_back('*');
  appendDecimal(out, argv.size());
  out.append("\r\n");
  for (const std::string_view arg : argv) {
    out.push_back('$');
    appendDecimal(out, arg.size());
    out.append("\r\n").append(arg).append("\r\n");
  }
}

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};

}  // namespace

struct AsyncConnection::Impl : std::enable_shared_from_this<Impl> {
  enum class State { kIdle, kConnecting, kReady, kClosed };
  struct Pending {
    Callback done;
    std::chrono::steady_clock::time_point queued_at;
  };

  Impl(asio::io_context& context, NodeAddress node, ConnectionSettings connection_settings)
      : io(context),
        address(std::move(node)),
        name(address.name()),
        settings(std::move(connection_settings)),
        socket(io),
        resolver(io),
        timer(io) {}

  asio::io_context& io;
  const NodeAddress address;
  const std::string name;
  const ConnectionSettings settings;
  tcp::socket socket;
  tcp::resolver resolver;
  asio::steady_timer timer;
  ReaderPtr reader;
  State state = State::kIdle;
  std::uint64_t generation = 0;  // bumped by every connect and every failure
  std::chrono::steady_clock::time_point connect_started{};
  std::chrono::steady_clock::time_point failed_at{};
  bool timer_armed = false;
  bool writing = false;
  bool flush_posted = false;
  std::string out;      // formatted commands not yet handed to a write
  std::string written;  // the bytes of the write in progress
  std::array<char, kReadChunkBytes> input{};
  std::deque<Pending> queue;  // in the order their bytes are (or will be) written

  void enqueue(std::span<const std::string_view> argv, Callback done);
  void startConnect();
  void onConnected();
  void scheduleFlush();
  void flush();
  void readMore();
  void onInput(std::size_t bytes);
  void armTimer();
  void checkTimeouts();
  void fail(const std::string& why);
  void close();
  [[nodiscard]] Error unavailable(const std::string& why) const {
    return Error{ErrorCode::kUnavailable, "Redis " + name + ": " + why};
  }
};

void AsyncConnection::Impl::enqueue(std::span<const std::string_view> argv, Callback done) {
  if (state == State::kClosed) return;
  if (state == State::kIdle && std::chrono::steady_clock::now() - failed_at < kReconnectBackoff) {
    // The node failed a moment ago: answer at once rather than reconnect on every call.
    asio::post(io, [done = std::move(done), error = unavailable("connection failed; retrying "
                                                                "shortly")]() {
      done(std::unexpected(error));
    });
    return;
  }
  if (argv.empty() || argv.size() > kArgvMax) {
    asio::post(io, [done = std::move(done)]() {
      done(std::unexpected(Error{ErrorCode::kInternal, "a Redis command of no or too many words"}));
    });
    return;
  }
  appendCommand(out, argv);
  queue.push_back({std::move(done), std::chrono::steady_clock::now()});
  armTimer();
  if (state == State::kIdle) {
    startConnect();
  } else if (state == State::kReady) {
    scheduleFlush();
  }
}

void AsyncConnection::Impl::startConnect() {
  state = State::kConnecting;
  const auto my_generation = ++generation;
  connect_started = std::chrono::steady_clock::now();
  reader.reset(redisReaderCreate());
  if (!reader) {
    // Later, not now: the callbacks must never run inside command().
    asio::post(io, [self = shared_from_this(), my_generation] {
      if (self->generation == my_generation) self->fail("cannot allocate a reply reader");
    });
    return;
  }
  if (!settings.password.empty()) {
    // AUTH goes first on the new socket: before every command already queued.
    const std::array<std::string_view, 2> auth{"AUTH", settings.password};
    std::string formatted;
    appendCommand(formatted, auth);
    out.insert(0, formatted);
    auto self = weak_from_this();
    queue.push_front({[self](Result<Reply> reply) {
                        auto impl = self.lock();
                        if (!impl) return;
                        if (reply && reply->isError()) impl->fail("AUTH failed: " + reply->str);
                      },
                      connect_started});
  }
  resolver.async_resolve(
      address.host, std::to_string(address.port),
      [self = shared_from_this(), my_generation](const boost::system::error_code& error,
                                                 const tcp::resolver::results_type& results) {
        if (self->generation != my_generation || self->state != State::kConnecting) return;
        if (error) {
          self->fail("cannot resolve: " + error.message());
          return;
        }
        asio::async_connect(self->socket, results,
                            [self, my_generation](const boost::system::error_code& connect_error,
                                                  const tcp::endpoint&) {
                              if (self->generation != my_generation) return;
                              if (connect_error) {
                                self->fail("connect failed: " + connect_error.message());
                                return;
                              }
                              self->onConnected();
                            });
      });
}

void AsyncConnection::Impl::onConnected() {
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  socket.set_option(asio::socket_base::keep_alive(true), ignored);
  state = State::kReady;
  readMore();
  flush();
}

void AsyncConnection::Impl::scheduleFlush() {
  if (flush_posted || writing) return;
  flush_posted = true;
  // Later in this turn of the event loop more commands may come: they go in the same write.
  asio::post(io, [self = shared_from_this()] {
    self->flush_posted = false;
    self->flush();
  });
}

void AsyncConnection::Impl::flush() {
  if (state != State::kReady || writing || out.empty()) return;
  written.swap(out);
  out.clear();
  writing = true;
  asio::async_write(socket, asio::buffer(written),
                    [self = shared_from_this(), my_generation = generation](
                        const boost::system::error_code& error, std::size_t) {
                      if (self->generation != my_generation) return;
                      self->writing = false;
                      if (error) {
                        self->fail("write failed: " + error.message());
                        return;
                      }
                      self->flush();
                    });
}

void AsyncConnection::Impl::readMore() {
  socket.async_read_some(
      asio::buffer(input), [self = shared_from_this(), my_generation = generation](
                               const boost::system::error_code& error, std::size_t bytes) {
        if (self->generation != my_generation) return;
        if (error) {
          self->fail(error == asio::error::eof ? std::string("the server closed the connection")
                                               : "read failed: " + error.message());
          return;
        }
        self->onInput(bytes);
      });
}

void AsyncConnection::Impl::onInput(std::size_t bytes) {
  if (redisReaderFeed(reader.get(), input.data(), bytes) != REDIS_OK) {
    fail("cannot buffer a reply");
    return;
  }
  const auto my_generation = generation;
  while (true) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader.get(), &raw) != REDIS_OK) {
      fail(std::string("protocol error: ") + reader->errstr);
      return;
    }
    if (raw == nullptr) break;  // the rest of the reply has not arrived yet
    const std::unique_ptr<redisReply, ReplyDeleter> reply(static_cast<redisReply*>(raw));
    if (queue.empty()) {
      fail("a reply came for no command");
      return;
    }
    Callback done = std::move(queue.front().done);
    queue.pop_front();
    done(toReply(*reply));
    // The callback may have failed this connection (AUTH) or queued more commands.
    if (generation != my_generation) return;
  }
  readMore();
}

void AsyncConnection::Impl::armTimer() {
  if (timer_armed) return;
  timer_armed = true;
  timer.expires_after(kTimeoutCheck);
  timer.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    self->timer_armed = false;
    if (error || self->state == State::kClosed) return;
    self->checkTimeouts();
  });
}

void AsyncConnection::Impl::checkTimeouts() {
  const auto now = std::chrono::steady_clock::now();
  if (state == State::kConnecting && now - connect_started > settings.connect_timeout) {
    fail("connect timed out");
    return;
  }
  if (!queue.empty() && now - queue.front().queued_at > settings.command_timeout) {
    fail("no reply within " + std::to_string(settings.command_timeout.count()) + " ms");
    return;
  }
  if (!queue.empty() || state == State::kConnecting) armTimer();
}

void AsyncConnection::Impl::fail(const std::string& why) {
  if (state == State::kClosed) return;
  ++generation;
  state = State::kIdle;
  failed_at = std::chrono::steady_clock::now();
  boost::system::error_code ignored;
  resolver.cancel();
  socket.close(ignored);
  reader.reset();
  out.clear();
  written.clear();
  writing = false;
  // Every command sent may or may not have run: each caller decides what that means.
  std::deque<Pending> failed;
  failed.swap(queue);
  const Error error = unavailable(why);
  for (auto& pending : failed) pending.done(std::unexpected(error));
}

void AsyncConnection::Impl::close() {
  state = State::kClosed;
  ++generation;
  boost::system::error_code ignored;
  resolver.cancel();
  socket.close(ignored);
  timer.cancel();
  queue.clear();  // the owners of the callbacks are going away too: nobody to tell
}

AsyncConnection::AsyncConnection(asio::io_context& io, NodeAddress address,
                                 ConnectionSettings settings)
    : impl_(std::make_shared<Impl>(io, std::move(address), std::move(settings))) {}

AsyncConnection::~AsyncConnection() { impl_->close(); }

void AsyncConnection::command(std::span<const std::string_view> argv, Callback done) {
  impl_->enqueue(argv, std::move(done));
}

std::size_t AsyncConnection::inFlight() const { return impl_->queue.size(); }

const NodeAddress& AsyncConnection::address() const { return impl_->address; }

}  // namespace allot::redis
