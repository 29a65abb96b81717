// A small synchronous HTTP/1.1 client with one keep-alive connection, used by allotctl and by
// the integration tests. Not thread-safe: one client per thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace allot::cli {

// Client-side limits on what a server may send back. They are the client's own (the service's
// limits live in core/limits.h); the body limit leaves room for the largest answer allot gives
// (an order of kOrderLinesMax lines) many times over.
inline constexpr std::size_t kResponseBodyBytesMax = 8 * 1024 * 1024;
inline constexpr std::uint32_t kResponseHeaderBytesMax = 64 * 1024;

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string content_type;
};

struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
};

// Parses "http://host:port" (a trailing slash is allowed; no path, no https).
[[nodiscard]] Result<Endpoint> parseBaseUrl(std::string_view url);

class HttpClient {
 public:
  // bearer_token, when not empty, is sent as "Authorization: Bearer <token>".
  explicit HttpClient(Endpoint endpoint, std::string bearer_token = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request on the kept-alive connection (connecting first when needed, and
  // reconnecting once when the server had closed an idle connection). Transport failures
  // are kUnavailable errors; any HTTP status is a successful Result.
  [[nodiscard]] Result<HttpResponse> request(
      std::string_view method, std::string_view target, std::string_view body = {},
      const std::vector<std::pair<std::string, std::string>>& extra_headers = {});
  [[nodiscard]] Result<HttpResponse> get(std::string_view target) { return request("GET", target); }
  [[nodiscard]] Result<HttpResponse> post(std::string_view target, std::string_view body) {
    return request("POST", target, body);
  }
  [[nodiscard]] Result<HttpResponse> put(std::string_view target, std::string_view body) {
    return request("PUT", target, body);
  }
  // Writes bytes exactly as given on a fresh connection and reads one response: for tests of
  // malformed requests that a well-formed client cannot produce.
  [[nodiscard]] Result<HttpResponse> sendRaw(std::string_view bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace allot::cli
