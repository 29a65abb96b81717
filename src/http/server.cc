#include "http/server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "core/limits.h"

namespace allot::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  Router& router;
  ServerOptions options;
  asio::io_context io{static_cast<int>(options.io_threads)};
  asio::thread_pool workers{options.threads};
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  std::uint16_t bound_port = 0;

  Impl(Router& r, ServerOptions o) : router(r), options(std::move(o)) {}

  asio::awaitable<void> accept();
  asio::awaitable<void> session(tcp::socket socket);
};

namespace {

bhttp::response<bhttp::string_body> toResponse(HttpAnswer answer, unsigned version,
                                               bool keep_alive) {
  bhttp::response<bhttp::string_body> response{static_cast<bhttp::status>(answer.status), version};
  response.set(bhttp::field::server, "allotd");
  response.set(bhttp::field::content_type, answer.content_type);
  response.keep_alive(keep_alive);
  response.body() = std::move(answer.body);
  response.prepare_payload();
  return response;
}

std::string readFailureReason(const beast::error_code& error) {
  if (error == bhttp::error::body_limit) {
    return "request body exceeds " + std::to_string(limits::kRequestBodyBytesMax) + " bytes";
  }
  if (error == bhttp::error::header_limit) {
    return "request headers exceed " + std::to_string(limits::kRequestHeaderBytesMax) + " bytes";
  }
  return "malformed HTTP request: " + error.message();
}

}  // namespace

asio::awaitable<void> HttpServer::Impl::session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  while (true) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(limits::kRequestBodyBytesMax);
    parser.header_limit(static_cast<std::uint32_t>(limits::kRequestHeaderBytesMax));
    stream.expires_after(std::chrono::milliseconds(options.idle_timeout_ms));
    auto [read_error, read_bytes] =
        co_await bhttp::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    if (read_error) {
      const bool answerable =
          read_error != bhttp::error::end_of_stream && read_error != asio::error::eof &&
          read_error != beast::error::timeout && read_error != asio::error::connection_reset;
      if (answerable) {
        // The request cannot be read to its end, so the connection cannot be reused.
        auto response = toResponse(router.malformed(readFailureReason(read_error)), 11, false);
        stream.expires_after(std::chrono::seconds(5));
        co_await bhttp::async_write(stream, response, asio::as_tuple(asio::use_awaitable));
      }
      break;
    }
    auto& request = parser.get();
    const auto authorization = request[bhttp::field::authorization];
    const HttpRequestView view{request.method_string(), request.target(), authorization,
                               request.body()};
    const bool keep_alive = request.keep_alive();
    // Run the (blocking) call on a worker; this coroutine resumes on the network threads.
    HttpAnswer answer = co_await asio::co_spawn(
        workers, [&]() -> asio::awaitable<HttpAnswer> { co_return router.handle(view); },
        asio::use_awaitable);
    auto response = toResponse(std::move(answer), request.version(), keep_alive);
    stream.expires_after(std::chrono::milliseconds(options.idle_timeout_ms));
    auto [write_error, written] =
        co_await bhttp::async_write(stream, response, asio::as_tuple(asio::use_awaitable));
    if (write_error || !keep_alive) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> HttpServer::Impl::accept() {
  while (acceptor.is_open()) {
    auto [error, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (error) {
      if (error == asio::error::operation_aborted) break;
      // E.g. too many open files: keep serving the connections we have, and try again
      // shortly instead of spinning on the error.
      asio::steady_timer pause(io, std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    socket.set_option(tcp::no_delay(true));
    asio::co_spawn(io, session(std::move(socket)), asio::detached);
  }
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
  asio::co_spawn(impl_->io, impl_->accept(), asio::detached);
  for (std::size_t i = 0; i < impl_->options.io_threads; ++i) {
    impl_->threads.emplace_back([this] { impl_->io.run(); });
  }
  return {};
}

std::uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::stop() {
  if (!impl_ || impl_->threads.empty()) return;
  // The acceptor belongs to the io_context's threads: close it there, not from this thread.
  asio::post(impl_->io, [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
    impl_->io.stop();
  });
  for (auto& thread : impl_->threads) {
    if (thread.joinable()) thread.join();
  }
  impl_->threads.clear();
  impl_->workers.join();
}

}  // namespace allot::http
