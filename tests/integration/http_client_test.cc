// HttpClient and allotctl against a tiny Beast server started inside the test on 127.0.0.1,
// port 0. The server's behaviour per request is scripted (answer, answer then close, close
// without answering, never answer), which makes the client's keep-alive reuse, its single
// transparent reconnect, its timeouts and sendRaw observable. No allotd is needed.
#include "cli/http_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/allotctl.h"

namespace allot::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// What the server does with a request it has read.
enum class Action {
  kAnswer,          // answer and keep the connection open
  kAnswerAndClose,  // answer (still saying keep-alive), then close: an idle-timeout close
  kDrop,            // close without answering
  kHang,            // never answer, keep the connection open
};

struct Reply {
  int status = 200;
  std::string body = R"({"ok":true})";
  Action action = Action::kAnswer;
  bool connection_close = false;  // send "Connection: close"
};

struct SeenRequest {
  int connection = 0;  // 1 for the first accepted connection, and so on
  std::string method;
  std::string target;
  std::string body;
  std::string authorization;
  std::string content_type;
  std::string host;
};

using Handler = std::function<Reply(int request_number)>;  // 1 for the first request

class TinyServer {
 public:
  explicit TinyServer(Handler handler)
      : handler_(std::move(handler)), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, acceptLoop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TinyServer() {
    io_.stop();
    thread_.join();
  }
  TinyServer(const TinyServer&) = delete;
  TinyServer& operator=(const TinyServer&) = delete;

  std::uint16_t port() const { return port_; }
  Endpoint endpoint() const { return Endpoint{"127.0.0.1", port_}; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connectionsAccepted() const { return accepted_.load(); }
  int connectionsClosed() const { return closed_.load(); }
  int malformedRequests() const { return malformed_.load(); }
  std::vector<SeenRequest> requests() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  asio::awaitable<void> acceptLoop() {
    while (true) {
      tcp::socket socket = co_await acceptor_.async_accept(asio::use_awaitable);
      asio::co_spawn(io_, serve(std::move(socket), ++accepted_), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket, int connection) {
    beast::flat_buffer buffer;
    boost::system::error_code error;
    while (true) {
      http::request<http::string_body> request;
      co_await http::async_read(socket, buffer, request,
                                asio::redirect_error(asio::use_awaitable, error));
      if (error) {
        if (error != http::error::end_of_stream) co_await answerMalformed(socket);
        break;
      }
      const Reply reply = handler_(record(request, connection));
      if (reply.action == Action::kHang) {
        hung_.push_back(std::move(socket));  // held open until the server stops
        co_return;
      }
      if (reply.action == Action::kDrop) break;
      http::response<http::string_body> response{static_cast<http::status>(reply.status), 11};
      response.set(http::field::content_type, "application/json");
      response.body() = reply.body;
      response.keep_alive(!reply.connection_close);
      response.prepare_payload();
      co_await http::async_write(socket, response,
                                 asio::redirect_error(asio::use_awaitable, error));
      if (error || reply.action == Action::kAnswerAndClose || reply.connection_close) break;
    }
    socket.shutdown(tcp::socket::shutdown_both, error);
    socket.close(error);
    ++closed_;
  }

  asio::awaitable<void> answerMalformed(tcp::socket& socket) {
    ++malformed_;
    static constexpr std::string_view kAnswer =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad";
    boost::system::error_code ignored;
    co_await asio::async_write(socket, asio::buffer(kAnswer.data(), kAnswer.size()),
                               asio::redirect_error(asio::use_awaitable, ignored));
  }

  int record(const http::request<http::string_body>& request, int connection) {
    std::lock_guard lock(mutex_);
    seen_.push_back(SeenRequest{
        connection, std::string(request.method_string()), std::string(request.target()),
        request.body(), std::string(request[http::field::authorization]),
        std::string(request[http::field::content_type]), std::string(request[http::field::host])});
    return static_cast<int>(seen_.size());
  }

  Handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<tcp::socket> hung_;  // touched only on the server thread
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<int> closed_{0};
  std::atomic<int> malformed_{0};
  mutable std::mutex mutex_;
  std::vector<SeenRequest> seen_;
  std::thread thread_;
};

// Waits for a condition another thread makes true, failing after the deadline.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds deadline = 5s) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

Reply answer(std::string body = R"({"ok":true})", int status = 200) {
  return Reply{status, std::move(body), Action::kAnswer, false};
}

// A port with nothing listening: bound once by the test, then released.
std::uint16_t closedPort() {
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

TEST(ParseBaseUrlTest, AcceptsHostAndPortOnly) {
  const struct {
    std::string url;
    std::string host;
    std::uint16_t port;
  } good[] = {
      {"http://127.0.0.1:8080", "127.0.0.1", 8080},   {"http://127.0.0.1:8080/", "127.0.0.1", 8080},
      {"http://localhost", "localhost", 80},          {"http://[::1]:9000", "::1", 9000},
      {"http://allot.example:1", "allot.example", 1},
  };
  for (const auto& c : good) {
    const auto endpoint = parseBaseUrl(c.url);
    ASSERT_TRUE(endpoint.has_value()) << c.url << ": " << endpoint.error().message;
    EXPECT_EQ(endpoint->host, c.host) << c.url;
    EXPECT_EQ(endpoint->port, c.port) << c.url;
  }
  const std::string bad[] = {"",
                             "127.0.0.1:8080",
                             "https://127.0.0.1:8443",
                             "http://",
                             "http://h:0",
                             "http://h:65536",
                             "http://h:99999",
                             "http://h:",
                             "http://h:x",
                             "http://h:8080/v1",
                             "http://h:8080?x=1",
                             "http://h:8080#f",
                             "http://user:pw@h:8080",
                             "http://h :8080"};
  for (const std::string& url : bad) {
    const auto endpoint = parseBaseUrl(url);
    EXPECT_FALSE(endpoint.has_value()) << "accepted \"" << url << "\"";
    if (!endpoint) {
      EXPECT_EQ(endpoint.error().code, ErrorCode::kInvalidRequest) << url;
    }
  }
}

TEST(HttpClientTest, ReusesOneKeepAliveConnection) {
  TinyServer server([](int n) { return answer(R"({"n":)" + std::to_string(n) + "}"); });
  HttpClient client(server.endpoint(), "secret-token");
  const auto first = client.get("/v1/stock?dept_no=D");
  const auto second = client.post("/v1/preallocations", R"({"a":1})");
  const auto third = client.put("/v1/admin/merchants/D", R"({"route":"redis"})");
  ASSERT_TRUE(first && second && third);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, R"({"n":1})");
  EXPECT_EQ(third->body, R"({"n":3})");
  EXPECT_EQ(third->content_type, "application/json");
  EXPECT_EQ(server.connectionsAccepted(), 1);

  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  const std::string host = "127.0.0.1:" + std::to_string(server.port());
  const struct {
    std::string method, target, body, content_type;
  } expected[] = {{"GET", "/v1/stock?dept_no=D", "", ""},
                  {"POST", "/v1/preallocations", R"({"a":1})", "application/json"},
                  {"PUT", "/v1/admin/merchants/D", R"({"route":"redis"})", "application/json"}};
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].connection, 1);
    EXPECT_EQ(seen[i].method, expected[i].method);
    EXPECT_EQ(seen[i].target, expected[i].target);
    EXPECT_EQ(seen[i].body, expected[i].body);
    EXPECT_EQ(seen[i].content_type, expected[i].content_type);
    EXPECT_EQ(seen[i].authorization, "Bearer secret-token");
    EXPECT_EQ(seen[i].host, host);
  }
}

TEST(HttpClientTest, ErrorStatusesAreAnswersNotErrors) {
  TinyServer server([](int) { return answer(R"({"error":"not_found","message":"x"})", 404); });
  HttpClient client(server.endpoint());
  const auto response = client.get("/v1/stock");
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(server.requests().at(0).authorization, "");  // no token, no header
}

TEST(HttpClientTest, ReconnectsTransparentlyAfterTheServerClosedAnIdleConnection) {
  TinyServer server([](int) { return Reply{200, "{}", Action::kAnswerAndClose, false}; });
  HttpClient client(server.endpoint());
  ASSERT_TRUE(client.get("/first"));
  ASSERT_TRUE(eventually([&] { return server.connectionsClosed() == 1; }));

  const auto second = client.post("/second", R"({"b":2})");
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(server.connectionsAccepted(), 2);
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 2u);  // the request on the stale connection never reached a handler
  EXPECT_EQ(seen[1].target, "/second");
  EXPECT_EQ(seen[1].body, R"({"b":2})");
  EXPECT_EQ(seen[1].connection, 2);
}

TEST(HttpClientTest, ConnectionCloseHeaderEndsTheConnection) {
  TinyServer server([](int) { return Reply{200, "{}", Action::kAnswer, true}; });
  HttpClient client(server.endpoint());
  for (int i = 0; i < 3; ++i) {
    const auto response = client.get("/x");
    ASSERT_TRUE(response.has_value()) << response.error().message;
  }
  EXPECT_EQ(server.connectionsAccepted(), 3);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(HttpClientTest, ResendsOnlyOnceAndOnlyOnAReusedConnection) {
  // The first request is answered; every later one is dropped without an answer.
  TinyServer server([](int n) { return n == 1 ? answer() : Reply{200, "", Action::kDrop, false}; });
  HttpClient client(server.endpoint());
  ASSERT_TRUE(client.get("/ok"));
  const auto dropped = client.post("/dropped", "{}");
  ASSERT_FALSE(dropped.has_value());
  EXPECT_EQ(dropped.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(server.requests().size(), 3u);  // the stale attempt and exactly one resend
  EXPECT_EQ(server.connectionsAccepted(), 2);

  // Now without a kept-alive connection: a drop on a fresh connection is not resent.
  const auto fresh = client.post("/dropped-again", "{}");
  ASSERT_FALSE(fresh.has_value());
  EXPECT_EQ(fresh.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(server.requests().size(), 4u);
  EXPECT_EQ(server.connectionsAccepted(), 3);
}

TEST(HttpClientTest, ASilentServerTimesOutAsUnavailable) {
  TinyServer server([](int n) { return n == 1 ? Reply{200, "", Action::kHang, false} : answer(); });
  HttpClient client(server.endpoint(), {}, 200ms);
  const auto started = std::chrono::steady_clock::now();
  const auto hung = client.get("/hang");
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(hung.has_value());
  EXPECT_EQ(hung.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(hung.error().message.find("200 ms"), std::string::npos) << hung.error().message;
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 5s);
  EXPECT_EQ(server.requests().size(), 1u);  // a timeout is never resent

  // The client recovers on a new connection.
  const auto next = client.get("/after");
  ASSERT_TRUE(next.has_value()) << next.error().message;
  EXPECT_EQ(server.connectionsAccepted(), 2);
}

TEST(HttpClientTest, UnreachableServerIsUnavailable) {
  HttpClient client(Endpoint{"127.0.0.1", closedPort()}, {}, 2s);
  const auto response = client.get("/v1/stock");
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(response.error().message.find("connecting"), std::string::npos)
      << response.error().message;
}

TEST(HttpClientTest, RejectsBadMethodsAndTargetsWithoutSending) {
  TinyServer server([](int) { return answer(); });
  HttpClient client(server.endpoint());
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"FROB", "/x"}, {"GET", ""}, {"GET", "x"}, {"GET", "http://elsewhere/"}}) {
    const auto response = client.request(method, target);
    ASSERT_FALSE(response.has_value()) << method << " " << target;
    EXPECT_EQ(response.error().code, ErrorCode::kInvalidRequest);
  }
  EXPECT_EQ(server.connectionsAccepted(), 0);
}

TEST(HttpClientTest, AcceptsBodiesUpToTheLimitOnly) {
  TinyServer server(
      [](int n) { return answer(std::string(kResponseBodyBytesMax + (n == 2 ? 1 : 0), 'x')); });
  HttpClient client(server.endpoint());
  const auto at_limit = client.get("/big");
  ASSERT_TRUE(at_limit.has_value()) << at_limit.error().message;
  EXPECT_EQ(at_limit->body.size(), kResponseBodyBytesMax);
  const auto over_limit = client.get("/too-big");
  ASSERT_FALSE(over_limit.has_value());
  EXPECT_NE(over_limit.error().message.find("exceeds"), std::string::npos)
      << over_limit.error().message;
  EXPECT_EQ(server.requests().size(), 2u);  // not resent: the server did answer
}

TEST(HttpClientTest, SendRawUsesAFreshConnectionAndReadsOneAnswer) {
  TinyServer server([](int n) {
    return n == 3 ? Reply{200, "", Action::kDrop, false} : answer(R"({"raw":true})");
  });
  HttpClient client(server.endpoint());
  ASSERT_TRUE(client.get("/keep-alive"));  // request 1, connection 1

  const auto raw = client.sendRaw("GET /raw HTTP/1.1\r\nHost: x\r\n\r\n");  // request 2
  ASSERT_TRUE(raw.has_value()) << raw.error().message;
  EXPECT_EQ(raw->status, 200);
  EXPECT_EQ(raw->body, R"({"raw":true})");
  EXPECT_EQ(server.connectionsAccepted(), 2);
  EXPECT_EQ(server.requests().at(1).target, "/raw");
  EXPECT_EQ(server.requests().at(1).connection, 2);

  const auto malformed = client.sendRaw("NOT HTTP AT ALL\r\n\r\n");
  ASSERT_TRUE(malformed.has_value()) << malformed.error().message;
  EXPECT_EQ(malformed->status, 400);
  EXPECT_EQ(server.malformedRequests(), 1);

  const auto dropped = client.sendRaw("POST /drop HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  ASSERT_FALSE(dropped.has_value());  // request 3: closed without an answer
  EXPECT_EQ(dropped.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(dropped.error().message.find("without a response"), std::string::npos)
      << dropped.error().message;

  // The kept-alive connection was left alone by all of this.
  ASSERT_TRUE(client.get("/again"));
  EXPECT_EQ(server.requests().back().connection, 1);
}

struct CtlRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

CtlRun runCtl(std::vector<std::string> args) {
  args.insert(args.begin(), "allotctl");
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  std::ostringstream out;
  std::ostringstream err;
  CtlRun run;
  run.exit_code = runAllotctl(static_cast<int>(argv.size()), argv.data(), out, err);
  run.out = out.str();
  run.err = err.str();
  return run;
}

TEST(AllotctlTest, ExitCodesAndOutputFollowTheAnswer) {
  const std::string record =
      R"({"dept_no":"D","goods_no":"G","warehouse_no":"W","stock_status":"1","stock_type":"1",
          "goods_level":"A","on_hand":7,"preallocated":2,"available":5,"shortage":0,
          "route":"redis"})";
  const std::string refusal = R"({"error":"insufficient_stock","message":"short: G"})";
  TinyServer server([&](int n) { return n == 2 ? answer(refusal, 409) : answer(record); });
  const std::vector<std::string> stock = {"--url", server.url(),  "--token", "api",
                                          "stock", "--dept",      "D",       "--goods",
                                          "G",     "--warehouse", "W"};
  const CtlRun ok = runCtl(stock);
  EXPECT_EQ(ok.exit_code, kExitOk) << ok.err;
  EXPECT_NE(ok.out.find("on_hand  preallocated  available  shortage  route"), std::string::npos)
      << ok.out;
  EXPECT_EQ(server.requests().at(0).authorization, "Bearer api");
  EXPECT_EQ(server.requests().at(0).target, "/v1/stock?dept_no=D&goods_no=G&warehouse_no=W");

  const CtlRun refused = runCtl(
      {"--url", server.url(), "preallocate", "--dept", "D", "--order", "O", "--line", "G:W=9"});
  EXPECT_EQ(refused.exit_code, kExitApiError);
  EXPECT_EQ(refused.err, "error: insufficient_stock: short: G\n");
  EXPECT_EQ(refused.out, "");

  std::vector<std::string> json_stock = stock;
  json_stock.push_back("--json");
  const CtlRun raw = runCtl(json_stock);
  EXPECT_EQ(raw.exit_code, kExitOk);
  EXPECT_EQ(raw.out, record + "\n");
}

TEST(AllotctlTest, AdminCommandsUseTheAdminToken) {
  TinyServer server([](int) { return answer(R"({"dept_no":"D","route":"mysql"})"); });
  const CtlRun run = runCtl({"--url", server.url(), "--token", "api", "--admin-token", "adm",
                             "route", "set", "D", "mysql"});
  EXPECT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_EQ(run.out, "dept_no  D\nroute    mysql\n");
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(seen[0].authorization, "Bearer adm");
}

TEST(AllotctlTest, NoAnswerExitsWithThree) {
  const CtlRun refused = runCtl({"--url", "http://127.0.0.1:" + std::to_string(closedPort()),
                                 "order", "--dept", "D", "--order", "O"});
  EXPECT_EQ(refused.exit_code, kExitUnreachable);
  EXPECT_EQ(refused.err.rfind("error: unavailable: ", 0), 0u) << refused.err;

  TinyServer server([](int) { return Reply{200, "", Action::kHang, false}; });
  const CtlRun silent = runCtl(
      {"--url", server.url(), "--timeout-ms", "150", "order", "--dept", "D", "--order", "O"});
  EXPECT_EQ(silent.exit_code, kExitUnreachable);
  EXPECT_NE(silent.err.find("150 ms"), std::string::npos) << silent.err;
}

}  // namespace
}  // namespace allot::cli
