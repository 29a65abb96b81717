// The synchronous HTTP/1.1 client behind allotctl and the integration tests.
//
// Every network step is started as an asynchronous Beast operation and then driven to
// completion on a private io_context. The calls stay synchronous for the caller, but the steps
// get real deadlines: beast::tcp_stream applies expires_after() only to asynchronous
// operations, and a blocking read on a server that never answers would otherwise hang forever.
//
// One connection is kept alive between requests. A server may close an idle keep-alive
// connection at any time; the client notices only when the next request on it fails before a
// single byte of answer arrived. That request never reached the server's handler, so it is
// sent once more on a new connection (RFC 9112 section 9.3.1 allows exactly this retry).
#include "cli/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <optional>

#include "core/assert.h"

namespace allot::cli {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SystemError = boost::system::error_code;

constexpr int kHttp11 = 11;
constexpr std::string_view kUserAgent = "allotctl/0.1";

// A transport failure before a usable answer: the step that failed, and whether the request
// may be sent again because the server cannot have seen it.
struct Failure {
  SystemError error;
  std::string step;
  bool may_resend = false;
};

template <typename T>
using Attempt = std::expected<T, Failure>;

// Starts one asynchronous operation through `start` (which receives the completion handler)
// and runs the io_context until that operation has completed. Handlers left over from earlier
// operations (a cancelled deadline timer) may run first; they are harmless.
template <typename Start>
SystemError runToCompletion(asio::io_context& io, Start&& start) {
  std::optional<SystemError> outcome;
  io.restart();
  std::forward<Start>(start)([&outcome](SystemError error, auto&&...) { outcome = error; });
  while (!outcome.has_value() && io.run_one() != 0) {
  }
  ALLOT_ASSERT(outcome.has_value());  // a started operation always completes
  return *outcome;
}

// The errors with which a write or read fails on a connection the peer has already closed.
bool isClosedByPeer(const SystemError& error) {
  return error == http::error::end_of_stream || error == asio::error::eof ||
         error == asio::error::connection_reset || error == asio::error::broken_pipe ||
         error == asio::error::connection_aborted;
}

std::string hostAndPort(const Endpoint& endpoint) {
  // An IPv6 literal needs brackets to keep its colons apart from the port's.
  const bool ipv6 = endpoint.host.find(':') != std::string::npos;
  std::string out = ipv6 ? "[" + endpoint.host + "]" : endpoint.host;
  return out + ":" + std::to_string(endpoint.port);
}

void closeQuietly(beast::tcp_stream& stream) {
  // The peer may already be gone; a failed shutdown changes nothing for a socket we drop.
  SystemError ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
}

Error toError(const Failure& failure, const Endpoint& endpoint, std::chrono::milliseconds timeout) {
  const std::string where = hostAndPort(endpoint) + ": " + failure.step + ": ";
  if (failure.error == beast::error::timeout) {
    return Error{ErrorCode::kUnavailable,
                 where + "no progress within " + std::to_string(timeout.count()) + " ms"};
  }
  if (failure.error == http::error::end_of_stream) {
    return Error{ErrorCode::kUnavailable, where + "the server closed the connection"};
  }
  if (failure.error == http::error::body_limit) {
    return Error{ErrorCode::kInternal, where + "the response body exceeds " +
                                           std::to_string(kResponseBodyBytesMax) + " bytes"};
  }
  if (failure.error.category() == http::make_error_code(http::error::bad_version).category()) {
    return Error{ErrorCode::kInternal, where + "malformed response: " + failure.error.message()};
  }
  return Error{ErrorCode::kUnavailable, where + failure.error.message()};
}

// Reads one response from `stream`, keeping bytes that follow it in `buffer`.
Attempt<http::response<http::string_body>> readResponse(asio::io_context& io,
                                                        beast::tcp_stream& stream,
                                                        beast::flat_buffer& buffer,
                                                        std::chrono::milliseconds timeout) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::uint64_t{kResponseBodyBytesMax});
  parser.header_limit(kResponseHeaderBytesMax);
  stream.expires_after(timeout);
  const SystemError error = runToCompletion(
      io, [&](auto handler) { http::async_read(stream, buffer, parser, std::move(handler)); });
  if (error) {
    return std::unexpected(
        Failure{error, "reading the response", !parser.got_some() && isClosedByPeer(error)});
  }
  return parser.release();
}

HttpResponse toHttpResponse(http::response<http::string_body>&& message) {
  HttpResponse response;
  response.status = static_cast<int>(message.result_int());
  response.content_type = std::string(message[http::field::content_type]);
  response.body = std::move(message.body());
  return response;
}

Result<std::uint16_t> parsePort(std::string_view text) {
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size() || value == 0 ||
      value > 65535) {
    return fail(ErrorCode::kInvalidRequest, "invalid port \"" + std::string(text) + "\"");
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

Result<Endpoint> parseBaseUrl(std::string_view url) {
  const auto parsed = boost::urls::parse_uri(url);
  const std::string quoted = "\"" + std::string(url) + "\"";
  if (!parsed) return fail(ErrorCode::kInvalidRequest, "invalid URL " + quoted);
  if (parsed->scheme_id() != boost::urls::scheme::http) {
    return fail(ErrorCode::kInvalidRequest, "only http:// URLs are supported: " + quoted);
  }
  if (parsed->has_userinfo() || parsed->has_query() || parsed->has_fragment() ||
      !(parsed->path().empty() || parsed->path() == "/")) {
    return fail(ErrorCode::kInvalidRequest,
                "a base URL is http://host[:port] with no path or query: " + quoted);
  }
  Endpoint endpoint;
  endpoint.host = parsed->host_address();
  if (endpoint.host.empty() || parsed->host_type() == boost::urls::host_type::ipvfuture) {
    return fail(ErrorCode::kInvalidRequest, "missing or unsupported host in " + quoted);
  }
  endpoint.port = 80;
  if (parsed->has_port()) {
    ALLOT_TRY(port, parsePort(parsed->port()));
    endpoint.port = port;
  }
  return endpoint;
}

struct HttpClient::Impl {
  Endpoint endpoint;
  std::string bearer_token;
  std::chrono::milliseconds timeout;
  // Declared before the stream: the stream's socket must be destroyed before its io_context.
  asio::io_context io;
  std::optional<beast::tcp_stream> stream;  // engaged while a connection is kept alive
  beast::flat_buffer buffer;

  Attempt<beast::tcp_stream> connect();
  Attempt<HttpResponse> exchange(const http::request<http::string_body>& message);
  http::request<http::string_body> makeRequest(
      http::verb verb, std::string_view target, std::string_view body,
      const std::vector<std::pair<std::string, std::string>>& extra_headers) const;
  void dropConnection();
};

Attempt<beast::tcp_stream> HttpClient::Impl::connect() {
  // Resolution is a blocking call without our deadline: allot is addressed by IP literals,
  // which resolve without any lookup, and names fall back to the system resolver's timeouts.
  tcp::resolver resolver(io);
  SystemError error;
  const auto addresses = resolver.resolve(endpoint.host, std::to_string(endpoint.port), error);
  if (error) return std::unexpected(Failure{error, "resolving the host", false});
  beast::tcp_stream connection(io);
  connection.expires_after(timeout);
  error = runToCompletion(
      io, [&](auto handler) { connection.async_connect(addresses, std::move(handler)); });
  if (error) return std::unexpected(Failure{error, "connecting", false});
  // Small requests wait for nothing with Nagle off; a failure to set it only costs latency.
  connection.socket().set_option(tcp::no_delay(true), error);
  return connection;
}

Attempt<HttpResponse> HttpClient::Impl::exchange(const http::request<http::string_body>& message) {
  if (!stream.has_value()) {
    auto connection = connect();
    if (!connection) return std::unexpected(connection.error());
    stream.emplace(std::move(*connection));
    buffer.clear();
  }
  stream->expires_after(timeout);
  const SystemError write_error = runToCompletion(
      io, [&](auto handler) { http::async_write(*stream, message, std::move(handler)); });
  if (write_error) {
    dropConnection();
    return std::unexpected(
        Failure{write_error, "sending the request", isClosedByPeer(write_error)});
  }
  auto answer = readResponse(io, *stream, buffer, timeout);
  if (!answer) {
    dropConnection();
    return std::unexpected(answer.error());
  }
  if (!answer->keep_alive()) dropConnection();
  return toHttpResponse(std::move(*answer));
}

http::request<http::string_body> HttpClient::Impl::makeRequest(
    http::verb verb, std::string_view target, std::string_view body,
    const std::vector<std::pair<std::string, std::string>>& extra_headers) const {
  http::request<http::string_body> message{verb, target, kHttp11};
  message.set(http::field::host, hostAndPort(endpoint));
  message.set(http::field::user_agent, kUserAgent);
  message.set(http::field::accept, "application/json");
  if (!bearer_token.empty()) message.set(http::field::authorization, "Bearer " + bearer_token);
  if (!body.empty()) message.set(http::field::content_type, "application/json");
  // Later headers replace the defaults above, so a test can send a wrong token or type.
  for (const auto& [name, value] : extra_headers) message.set(name, value);
  message.body() = std::string(body);
  message.keep_alive(true);
  message.prepare_payload();
  return message;
}

void HttpClient::Impl::dropConnection() {
  if (stream.has_value()) closeQuietly(*stream);
  stream.reset();
  buffer.clear();
}

HttpClient::HttpClient(Endpoint endpoint, std::string bearer_token,
                       std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->endpoint = std::move(endpoint);
  impl_->bearer_token = std::move(bearer_token);
  impl_->timeout = timeout;
}

HttpClient::~HttpClient() {
  if (impl_) impl_->dropConnection();
}

HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

Result<HttpResponse> HttpClient::request(
    std::string_view method, std::string_view target, std::string_view body,
    const std::vector<std::pair<std::string, std::string>>& extra_headers) {
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    return fail(ErrorCode::kInvalidRequest, "unknown HTTP method " + std::string(method));
  }
  if (target.empty() || target.front() != '/') {
    return fail(ErrorCode::kInvalidRequest, "a request target starts with '/'");
  }
  const auto message = impl_->makeRequest(verb, target, body, extra_headers);
  const bool reused = impl_->stream.has_value();
  auto answer = impl_->exchange(message);
  // Only a kept-alive connection can be stale, and only one retry: a fresh connection that
  // fails the same way means the server itself drops requests.
  if (!answer && reused && answer.error().may_resend) answer = impl_->exchange(message);
  if (!answer) return std::unexpected(toError(answer.error(), impl_->endpoint, impl_->timeout));
  return std::move(*answer);
}

Result<HttpResponse> HttpClient::sendRaw(std::string_view bytes) {
  auto connection = impl_->connect();
  if (!connection) {
    return std::unexpected(toError(connection.error(), impl_->endpoint, impl_->timeout));
  }
  connection->expires_after(impl_->timeout);
  const SystemError write_error = runToCompletion(impl_->io, [&](auto handler) {
    asio::async_write(*connection, asio::buffer(bytes.data(), bytes.size()), std::move(handler));
  });
  // A server may answer and close before reading all of a malformed request, which fails the
  // write; its answer can still be waiting in the receive buffer, so read before giving up.
  beast::flat_buffer buffer;
  auto answer = readResponse(impl_->io, *connection, buffer, impl_->timeout);
  closeQuietly(*connection);
  if (!answer) {
    Failure failure = answer.error();
    if (write_error && !isClosedByPeer(write_error)) failure = {write_error, "sending", false};
    if (failure.may_resend) {
      return fail(ErrorCode::kUnavailable, hostAndPort(impl_->endpoint) +
                                               ": the server closed the connection without "
                                               "a response");
    }
    return std::unexpected(toError(failure, impl_->endpoint, impl_->timeout));
  }
  return toHttpResponse(std::move(*answer));
}

}  // namespace allot::cli
