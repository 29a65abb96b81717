// The server's connections. Each is a small state machine on its network thread: read into a
// buffer, let Beast's parser take what arrived (so requests that came together are served
// one after the other without another read), answer, write, and read again. Answers are
// written as one string, status line and headers included, in one write. The idle timeout
// is one timer per connection, re-armed only when it fires (an answered request just moves
// the deadline), so a request costs no timer operation.
#include "http/server.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "core/limits.h"

namespace allot::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Bytes asked of the socket per read; a request larger than this takes several reads.
constexpr std::size_t kReadChunkBytes = 16 * 1024;
// How long the answer to a request that could not be read may take to leave.
constexpr std::chrono::seconds kFarewellTimeout{5};
// How long a connection's input is still read and dropped after its last answer has left.
constexpr std::chrono::seconds kLingerTimeout{5};

std::string readFailureReason(const beast::error_code& error) {
  if (error == bhttp::error::body_limit) {
    return "request body exceeds " + std::to_string(limits::kRequestBodyBytesMax) + " bytes";
  }
  if (error == bhttp::error::header_limit) {
    return "request headers exceed " + std::to_string(limits::kRequestHeaderBytesMax) + " bytes";
  }
  return "malformed HTTP request: " + error.message();
}

// The whole answer as it goes on the wire; to a HEAD request, everything but the body (RFC
// 9110 9.3.2: the Content-Length a GET would have had). HTTP/1.1 connections persist unless
// they say close; HTTP/1.0 ones only when they asked for keep-alive (Beast's keep_alive()
// decides).
std::string wireAnswer(const HttpAnswer& answer, unsigned version, bool keep_alive,
                       bool head = false) {
  const auto status = static_cast<bhttp::status>(answer.status);
  const std::string_view reason = bhttp::obsolete_reason(status);
  std::string out;
  out.reserve(128 + answer.body.size());
  out.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out.append(std::to_string(answer.status)).append(" ").append(reason);
  out.append("\r\nServer: allotd\r\nContent-Type: ").append(answer.content_type);
  out.append("\r\nContent-Length: ").append(std::to_string(answer.body.size()));
  if (!keep_alive) {
    out.append("\r\nConnection: close");
  } else if (version == 10) {
    out.append("\r\nConnection: keep-alive");
  }
  out.append("\r\n\r\n");
  if (!head) out.append(answer.body);
  return out;
}

}  // namespace

// One network thread: its io_context, and its fast path (which lives on that io_context and
// is destroyed before it).
struct NetworkThread {
  asio::io_context io{1};
  std::unique_ptr<AsyncPreallocator> fast;
};

struct HttpServer::Impl {
  Router& router;
  ServerOptions options;
  asio::thread_pool workers{options.threads};
  std::vector<std::unique_ptr<NetworkThread>> network;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::uint16_t bound_port = 0;
  std::size_t next_thread = 0;

  Impl(Router& r, ServerOptions o)
      : router(r), options(std::move(o)), network(makeNetwork()), acceptor(network[0]->io) {}

  std::vector<std::unique_ptr<NetworkThread>> makeNetwork() {
    std::vector<std::unique_ptr<NetworkThread>> made;
    for (std::size_t i = 0; i < std::max<std::size_t>(options.io_threads, 1); ++i) {
      made.push_back(std::make_unique<NetworkThread>());
      if (options.make_fast_path) made.back()->fast = options.make_fast_path(made.back()->io);
    }
    return made;
  }

  void accept();
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Router& router, asio::thread_pool& workers, NetworkThread& thread, tcp::socket socket,
             std::chrono::milliseconds idle_timeout)
      : router_(router),
        workers_(workers),
        thread_(thread),
        socket_(std::move(socket)),
        timer_(thread.io),
        idle_timeout_(idle_timeout) {}

  void start() {
    deadline_ = Clock::now() + idle_timeout_;
    armTimer(idle_timeout_);
    nextRequest();
  }

 private:
  using Parser = bhttp::request_parser<bhttp::string_body>;

  void nextRequest() {
    parser_.emplace();
    parser_->body_limit(limits::kRequestBodyBytesMax);
    parser_->header_limit(static_cast<std::uint32_t>(limits::kRequestHeaderBytesMax));
    parseBuffered();
  }

  // Feeds the parser what is buffered; reads more when it needs more.
  void parseBuffered() {
    while (buffer_.size() > 0 && !parser_->is_done()) {
      beast::error_code error;
      const std::size_t used = parser_->put(buffer_.data(), error);
      buffer_.consume(used);
      if (error == bhttp::error::need_more) break;
      if (error) {
        refuse(error);
        return;
      }
    }
    if (parser_->is_done()) {
      serve();
      return;
    }
    readMore();
  }

  void readMore() {
    socket_.async_read_some(
        buffer_.prepare(kReadChunkBytes),
        [self = shared_from_this()](const beast::error_code& error, std::size_t bytes) {
          self->onRead(error, bytes);
        });
  }

  void onRead(const beast::error_code& error, std::size_t bytes) {
    if (error) {
      if (error == asio::error::eof && parser_->got_some()) {
        // The peer ended in the middle of a request: answer it, as Beast's read would.
        refuse(bhttp::error::partial_message);
      } else {
        close();  // end of stream, reset, or our own timeout closing the socket
      }
      return;
    }
    buffer_.commit(bytes);
    parseBuffered();
  }

  void serve() {
    auto& request = parser_->get();
    view_ = HttpRequestView{request.method_string(), request.target(),
                            request[bhttp::field::authorization], request.body()};
    keep_alive_ = request.keep_alive();
    version_ = request.version();
    head_ = request.method() == bhttp::verb::head;
    state_ = State::kServing;
    if (thread_.fast != nullptr) {
      auto resume = [self = shared_from_this()](std::optional<HttpAnswer> answer) {
        // Posted: never resumed inside the fast path's own callback.
        asio::post(self->thread_.io, [self, answer = std::move(answer)]() mutable {
          if (answer) {
            self->answer(std::move(*answer));
          } else {
            self->serveOnWorker();
          }
        });
      };
      if (router_.handleAsync(view_, *thread_.fast, std::move(resume))) return;
    }
    serveOnWorker();
  }

  // The blocking path: a worker runs the call; the answer comes back to this thread.
  void serveOnWorker() {
    asio::post(workers_, [self = shared_from_this()] {
      HttpAnswer answer = self->router_.handle(self->view_);
      asio::post(self->thread_.io,
                 [self, answer = std::move(answer)]() mutable { self->answer(std::move(answer)); });
    });
  }

  void answer(HttpAnswer answer) {
    write(wireAnswer(answer, version_, keep_alive_, head_), keep_alive_, idle_timeout_);
  }

  // A request that cannot be read to its end: the connection cannot be reused.
  void refuse(const beast::error_code& error) {
    write(wireAnswer(router_.malformed(readFailureReason(error)), 11, false), false,
          kFarewellTimeout);
  }

  void write(std::string wire, bool keep_alive, Clock::duration timeout) {
    out_ = std::move(wire);
    state_ = State::kWriting;
    deadline_ = Clock::now() + timeout;
    // The timer wakes at the idle timeout at the latest; a shorter deadline (the answer to a
    // request that could not be read) needs an earlier wake-up.
    if (timeout < idle_timeout_) armTimer(timeout);
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this(), keep_alive](const beast::error_code& error, std::size_t) {
          if (error) {
            self->close();
            return;
          }
          if (!keep_alive) {
            self->linger();
            return;
          }
          self->state_ = State::kReading;
          self->deadline_ = Clock::now() + self->idle_timeout_;
          self->nextRequest();
        });
  }

  void armTimer(Clock::duration after) {
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this()](const beast::error_code& error) {
      if (error || !self->socket_.is_open()) return;
      const auto now = Clock::now();
      if (self->state_ == State::kServing) {
        // A call in progress is bounded by the service itself; only reads and writes time out.
        self->armTimer(self->idle_timeout_);
      } else if (now < self->deadline_) {
        self->armTimer(self->deadline_ - now);
      } else {
        self->close();
      }
    });
  }

  // The last answer has left: end our side, then read and drop what the peer still sends
  // until it closes (or kLingerTimeout). Closing with its data unread would reset the
  // connection, and a reset can destroy the answer before the peer has read it: a client
  // still sending an oversized body would see a reset, not the 400 that says why.
  void linger() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    state_ = State::kLingering;
    deadline_ = Clock::now() + kLingerTimeout;
    armTimer(kLingerTimeout);
    drain();
  }

  void drain() {
    buffer_.clear();
    socket_.async_read_some(
        buffer_.prepare(kReadChunkBytes),
        [self = shared_from_this()](const beast::error_code& error, std::size_t) {
          if (error || Clock::now() >= self->deadline_) {
            self->close();  // the peer's end of stream (or reset), or time is up
            return;
          }
          self->drain();
        });
  }

  void close() {
    if (!socket_.is_open()) return;
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    socket_.close(ignored);
    timer_.cancel();
  }

  Router& router_;
  asio::thread_pool& workers_;
  NetworkThread& thread_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  const Clock::duration idle_timeout_;
  Clock::time_point deadline_{};
  beast::flat_buffer buffer_;
  std::optional<Parser> parser_;
  HttpRequestView view_;  // into parser_'s message, while it is served
  std::string out_;       // the answer being written
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;  // the request is a HEAD: its answer goes without the body
  // Reading: waiting for (the rest of) a request, deadline_ is the idle timeout. Serving: a
  // call is answering it. Writing: the answer goes out, deadline_ bounds it.
  enum class State { kReading, kServing, kWriting, kLingering };
  State state_ = State::kReading;
};

}  // namespace

void HttpServer::Impl::accept() {
  // Each connection goes to the next network thread in turn and stays there.
  NetworkThread& thread = *network[next_thread];
  next_thread = (next_thread + 1) % network.size();
  acceptor.async_accept(
      thread.io, [this, &thread](const beast::error_code& error, tcp::socket socket) {
        if (error == asio::error::operation_aborted || !acceptor.is_open()) return;
        if (error) {
          // E.g. too many open files: keep serving the connections we have, and try again
          // shortly instead of spinning on the error.
          auto pause =
              std::make_shared<asio::steady_timer>(network[0]->io, std::chrono::milliseconds(50));
          pause->async_wait([this, pause](const beast::error_code&) { accept(); });
          return;
        }
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        // The connection starts on its own thread; this one goes back to accepting.
        asio::post(thread.io, [this, &thread, socket = std::move(socket)]() mutable {
          std::make_shared<Connection>(router, workers, thread, std::move(socket),
                                       std::chrono::milliseconds(options.idle_timeout_ms))
              ->start();
        });
        accept();
      });
}

HttpServer::HttpServer(Router& router, ServerOptions options)
    : impl_(std::make_unique<Impl>(router, std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

Result<void> HttpServer::start() {
  beast::error_code error;
  const auto address = asio::ip::make_address(impl_->options.host, error);
  if (error) return fail(ErrorCode::kInvalidRequest, "bad listen host: " + impl_->options.host);
  const tcp::endpoint endpoint{address, impl_->options.port};
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), error);
  if (!error) acceptor.set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    return fail(ErrorCode::kUnavailable, "cannot listen on " + impl_->options.host + ":" +
                                             std::to_string(impl_->options.port) + ": " +
                                             error.message());
  }
  impl_->bound_port = acceptor.local_endpoint().port();
  asio::post(impl_->network[0]->io, [impl = impl_.get()] { impl->accept(); });
  for (auto& thread : impl_->network) {
    // Keeps a network thread without connections running until stop().
    auto* io = &thread->io;
    impl_->threads.emplace_back([io] {
      auto guard = asio::make_work_guard(*io);
      io->run();
    });
  }
  return {};
}

std::uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::stop() {
  if (!impl_ || impl_->threads.empty()) return;
  // The acceptor belongs to the first network thread: close it there, not from this thread.
  asio::post(impl_->network[0]->io, [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
    for (auto& thread : impl_->network) thread->io.stop();
  });
  for (auto& thread : impl_->threads) {
    if (thread.joinable()) thread.join();
  }
  impl_->threads.clear();
  impl_->workers.join();
}

}  // namespace allot::http
