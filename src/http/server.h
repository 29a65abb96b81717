// The HTTP/1.1 server: Boost.Beast, one coroutine per connection, keep-alive, bounded headers
// and bodies. Each network thread runs an io_context of its own, and accepted connections
// are dealt to them in turn, so a connection's work never crosses threads. The service calls
// block (they wait on Redis and MariaDB), so they run on a separate pool of `threads` workers
// and the connection's coroutine awaits them: slow calls never stall the network threads, so
// /healthz, new connections and reads keep being served. The worker count bounds the calls
// in flight.
//
// The exception is the fast path: when make_fast_path is set, each network thread gets its
// own AsyncPreallocator, and a request it can serve (Router::handleAsync) is served on the
// network thread without blocking and without a worker.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/result.h"
#include "domain/stock_api.h"
#include "http/routes.h"

namespace boost::asio {
class io_context;
}

namespace allot::http {

// Builds the fast path of one network thread, which lives on that thread's io_context.
using FastPathFactory = std::function<std::unique_ptr<AsyncPreallocator>(boost::asio::io_context&)>;

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;   // 0: pick a free port (see HttpServer::port)
  std::size_t threads = 64;    // workers for service calls
  std::size_t io_threads = 2;  // network threads
  std::int64_t idle_timeout_ms = 60'000;
  FastPathFactory make_fast_path;  // empty: every request goes to a worker
};

class HttpServer {
 public:
  HttpServer(Router& router, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving on background threads.
  [[nodiscard]] Result<void> start();
  [[nodiscard]] std::uint16_t port() const;
  // Stops accepting and ends every connection; returns when the threads have finished.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace allot::http
