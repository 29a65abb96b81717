// The HTTP/1.1 server: Boost.Beast on an Asio io_context run by a pool of threads, one
// coroutine per connection, keep-alive, bounded headers and bodies. Handlers run the
// (blocking) service calls on the io_context's threads, so the thread count bounds the calls
// in flight; the connection count is not bounded by it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/result.h"
#include "http/routes.h"

namespace allot::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0: pick a free port (see HttpServer::port)
  std::size_t threads = 64;
  std::int64_t idle_timeout_ms = 60'000;
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
