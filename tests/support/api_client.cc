// Request builders and answer predicates for the integration tests (see api_client.h).
#include "support/api_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <iostream>
#include <sstream>

#include "support/test_env.h"

namespace allot::testing {
namespace {

namespace json = boost::json;

constexpr std::size_t kDescribeBodyMax = 2000;

const json::value* field(const json::value& value, std::string_view name) {
  const auto* object = value.if_object();
  if (object == nullptr) return nullptr;
  return object->if_contains(name);
}

}  // namespace

std::string ApiResponse::errorCode() const { return string("error").value_or(""); }

std::optional<std::int64_t> ApiResponse::integer(std::string_view name) const {
  const auto* value = field(json, name);
  if (value == nullptr) return std::nullopt;
  if (value->is_int64()) return value->as_int64();
  if (value->is_uint64() && value->as_uint64() <= INT64_MAX) {
    return static_cast<std::int64_t>(value->as_uint64());
  }
  return std::nullopt;
}

std::optional<std::string> ApiResponse::string(std::string_view name) const {
  const auto* value = field(json, name);
  if (value == nullptr || !value->is_string()) return std::nullopt;
  return std::string(value->as_string());
}

std::optional<bool> ApiResponse::boolean(std::string_view name) const {
  const auto* value = field(json, name);
  if (value == nullptr || !value->is_bool()) return std::nullopt;
  return value->as_bool();
}

std::string ApiResponse::describe() const {
  if (status == 0) return "no answer: " + transport_error;
  std::string text = "HTTP " + std::to_string(status) + " " + body.substr(0, kDescribeBodyMax);
  if (body.size() > kDescribeBodyMax) text += "...";
  return text;
}

RecordKey makeKey(std::string dept_no, std::string goods_no, std::string warehouse_no) {
  RecordKey key;
  key.dept_no = std::move(dept_no);
  key.goods_no = std::move(goods_no);
  key.warehouse_no = std::move(warehouse_no);
  return key;
}

json::object recordJson(const RecordKey& key) {
  return json::object{{"dept_no", key.dept_no},           {"goods_no", key.goods_no},
                      {"warehouse_no", key.warehouse_no}, {"stock_status", key.stock_status},
                      {"stock_type", key.stock_type},     {"goods_level", key.goods_level}};
}

json::object lineJson(const Line& line) {
  json::object object = recordJson(line.key);
  object.erase("dept_no");
  object["qty"] = line.qty;
  return object;
}

std::string adjustDeltaBody(const RecordKey& key, std::string_view ref, std::int64_t delta) {
  json::object body = recordJson(key);
  body["ref"] = ref;
  body["delta"] = delta;
  return json::serialize(body);
}

std::string adjustOnHandBody(const RecordKey& key, std::string_view ref, std::int64_t on_hand) {
  json::object body = recordJson(key);
  body["ref"] = ref;
  body["on_hand"] = on_hand;
  return json::serialize(body);
}

std::string preallocateBody(std::string_view dept_no, std::string_view order_no,
                            const std::vector<Line>& lines, std::optional<bool> allow_shortage) {
  json::array array;
  for (const auto& line : lines) array.push_back(lineJson(line));
  json::object body{{"dept_no", dept_no}, {"order_no", order_no}, {"lines", std::move(array)}};
  if (allow_shortage) body["allow_shortage"] = *allow_shortage;
  return json::serialize(body);
}

std::string orderRefBody(std::string_view dept_no, std::string_view order_no) {
  return json::serialize(json::object{{"dept_no", dept_no}, {"order_no", order_no}});
}

std::string queryEscape(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    const bool plain = (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
                       (byte >= '0' && byte <= '9') || c == '_' || c == '.' || c == '~' || c == '-';
    if (plain) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0x0f]);
    }
  }
  return out;
}

std::string stockTarget(const RecordKey& key) {
  return "/v1/stock?dept_no=" + queryEscape(key.dept_no) +
         "&goods_no=" + queryEscape(key.goods_no) +
         "&warehouse_no=" + queryEscape(key.warehouse_no) +
         "&stock_status=" + queryEscape(key.stock_status) +
         "&stock_type=" + queryEscape(key.stock_type) +
         "&goods_level=" + queryEscape(key.goods_level);
}

std::string orderTarget(std::string_view dept_no, std::string_view order_no) {
  return "/v1/preallocations?dept_no=" + queryEscape(dept_no) +
         "&order_no=" + queryEscape(order_no);
}

std::optional<double> metricSum(std::string_view exposition, std::string_view name) {
  std::optional<double> sum;
  std::size_t start = 0;
  while (start < exposition.size()) {
    std::size_t end = exposition.find('\n', start);
    if (end == std::string_view::npos) end = exposition.size();
    const std::string_view line = exposition.substr(start, end - start);
    start = end + 1;
    if (!line.starts_with(name) || line.size() == name.size()) continue;
    const char next = line[name.size()];
    if (next != ' ' && next != '{') continue;  // a longer name sharing this prefix
    // The value follows the name (or its closing label brace) after one space; an optional
    // timestamp may follow it.
    const std::size_t labels_end = next == '{' ? line.find('}') : name.size();
    if (labels_end == std::string_view::npos) continue;
    std::string_view rest = line.substr(labels_end + (next == '{' ? 1 : 0));
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    rest = rest.substr(0, rest.find(' '));
    double value = 0;
    const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
    if (ec != std::errc() || ptr != rest.data() + rest.size()) continue;
    sum = sum.value_or(0) + value;
  }
  return sum;
}

ApiClient::ApiClient(cli::Endpoint endpoint, std::string bearer_token)
    : http_(std::move(endpoint), std::move(bearer_token)) {}

namespace {
ApiResponse toResponse(const Result<cli::HttpResponse>& result) {
  ApiResponse response;
  if (!result) {
    response.transport_error = result.error().message;
    return response;
  }
  response.status = result->status;
  response.body = result->body;
  response.content_type = result->content_type;
  boost::system::error_code error;
  json::value parsed = json::parse(response.body, error);
  if (!error) response.json = std::move(parsed);
  return response;
}
}  // namespace

ApiResponse ApiClient::call(std::string_view method, std::string_view target, std::string_view body,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
  return toResponse(http_.request(method, target, body, headers));
}

ApiResponse ApiClient::sendRaw(std::string_view bytes) { return toResponse(http_.sendRaw(bytes)); }

ApiResponse ApiClient::adjustDelta(const RecordKey& key, std::string_view ref, std::int64_t delta) {
  return call("POST", "/v1/stock/adjust", adjustDeltaBody(key, ref, delta));
}

ApiResponse ApiClient::adjustOnHand(const RecordKey& key, std::string_view ref,
                                    std::int64_t on_hand) {
  return call("POST", "/v1/stock/adjust", adjustOnHandBody(key, ref, on_hand));
}

ApiResponse ApiClient::stock(const RecordKey& key) { return call("GET", stockTarget(key)); }

ApiResponse ApiClient::preallocate(std::string_view dept_no, std::string_view order_no,
                                   const std::vector<Line>& lines,
                                   std::optional<bool> allow_shortage) {
  return call("POST", "/v1/preallocations",
              preallocateBody(dept_no, order_no, lines, allow_shortage));
}

ApiResponse ApiClient::rollback(std::string_view dept_no, std::string_view order_no) {
  return call("POST", "/v1/preallocations/rollback", orderRefBody(dept_no, order_no));
}

ApiResponse ApiClient::deduct(std::string_view dept_no, std::string_view order_no) {
  return call("POST", "/v1/preallocations/deduct", orderRefBody(dept_no, order_no));
}

ApiResponse ApiClient::order(std::string_view dept_no, std::string_view order_no) {
  return call("GET", orderTarget(dept_no, order_no));
}

std::optional<double> ApiClient::metric(std::string_view name) {
  const ApiResponse response = call("GET", "/metrics");
  if (response.status != 200) {
    ADD_FAILURE() << "GET /metrics: " << response.describe();
    return std::nullopt;
  }
  return metricSum(response.body, name);
}

std::string rawExchange(const cli::Endpoint& endpoint, std::string_view request) {
  std::string received;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ADD_FAILURE() << "socket: " << std::strerror(errno);
    return received;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(endpoint.port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    ADD_FAILURE() << "connect: " << std::strerror(errno);
    ::close(fd);
    return received;
  }
  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      ADD_FAILURE() << "the connection was reset while the request was still being sent: "
                    << std::strerror(errno);
      ::close(fd);
      return received;
    }
    sent += static_cast<std::size_t>(n);
  }
  std::array<char, 4096> chunk{};
  for (;;) {
    const ssize_t n = ::recv(fd, chunk.data(), chunk.size(), 0);
    if (n < 0) ADD_FAILURE() << "the answer was lost to a reset: " << std::strerror(errno);
    if (n <= 0) break;
    received.append(chunk.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return received;
}

::testing::AssertionResult isOk(const ApiResponse& response) {
  if (response.status != 200) {
    return ::testing::AssertionFailure() << "expected 200, got " << response.describe();
  }
  if (response.object() == nullptr) {
    return ::testing::AssertionFailure()
           << "a 200 whose body is not a JSON object: " << response.describe();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult isError(const ApiResponse& response, int status, std::string_view code) {
  if (response.status != status || response.errorCode() != code) {
    return ::testing::AssertionFailure()
           << "expected " << status << " " << code << ", got " << response.describe();
  }
  if (!response.string("message")) {
    return ::testing::AssertionFailure()
           << "error body without a string \"message\": " << response.describe();
  }
  if (!response.content_type.starts_with("application/json")) {
    return ::testing::AssertionFailure()
           << "error body with Content-Type '" << response.content_type << "'";
  }
  return ::testing::AssertionSuccess();
}

std::optional<Quantities> quantitiesOf(const ApiResponse& response) {
  const auto on_hand = response.integer("on_hand");
  const auto preallocated = response.integer("preallocated");
  const auto shortage = response.integer("shortage");
  if (!on_hand || !preallocated || !shortage) return std::nullopt;
  return Quantities{*on_hand, *preallocated, *shortage};
}

::testing::AssertionResult hasQuantities(const ApiResponse& response, const Quantities& expected) {
  if (response.status != 200) {
    return ::testing::AssertionFailure() << "expected 200, got " << response.describe();
  }
  const auto actual = quantitiesOf(response);
  const auto available = response.integer("available");
  if (!actual || !available) {
    return ::testing::AssertionFailure()
           << "missing on_hand/preallocated/available/shortage: " << response.describe();
  }
  if (*actual != expected || *available != expected.available()) {
    return ::testing::AssertionFailure()
           << "expected on_hand " << expected.on_hand << ", preallocated " << expected.preallocated
           << ", available " << expected.available() << ", shortage " << expected.shortage
           << "; got " << response.describe();
  }
  return ::testing::AssertionSuccess();
}

const json::object* findLine(const ApiResponse& response, const RecordKey& key) {
  const auto* lines = field(response.json, "lines");
  if (lines == nullptr || !lines->is_array()) return nullptr;
  const json::object wanted = recordJson(key);
  for (const auto& line : lines->as_array()) {
    const auto* object = line.if_object();
    if (object == nullptr) continue;
    bool same = true;
    for (const auto& [name, value] : wanted) {
      if (name == "dept_no") continue;
      const auto* actual = object->if_contains(name);
      same = same && actual != nullptr && *actual == value;
    }
    if (same) return object;
  }
  return nullptr;
}

::testing::AssertionResult hasLine(const ApiResponse& response, const RecordKey& key,
                                   std::int64_t qty, std::int64_t allocated,
                                   std::int64_t shortage) {
  const auto* line = findLine(response, key);
  if (line == nullptr) {
    return ::testing::AssertionFailure()
           << "no line for " << key.index() << " in " << response.describe();
  }
  const json::object expected{{"qty", qty}, {"allocated", allocated}, {"shortage", shortage}};
  for (const auto& [name, value] : expected) {
    const auto* actual = line->if_contains(name);
    if (actual == nullptr || !actual->is_number() || *actual != value) {
      return ::testing::AssertionFailure()
             << "line " << key.index() << ": expected " << name << " " << json::serialize(value)
             << ", got " << json::serialize(*line) << " in " << response.describe();
    }
  }
  return ::testing::AssertionSuccess();
}

void AllotdTest::SetUp() {
  allotd_ = SharedAllotd::get();
  ASSERT_NE(allotd_, nullptr);
  api_.emplace(allotd_->endpoint(), allotd_->apiToken());
}

void AllotdTest::TearDown() {
  if (HasFailure() && allotd_ != nullptr) {
    std::cerr << "---- tail of the allotd log (" << allotd_->logPath() << ") ----\n"
              << allotd_->logTail(40) << "\n----\n";
  }
}

std::string AllotdTest::newDept() { return uniqueName("d"); }

RecordKey AllotdTest::newRecord(const std::string& dept_no, std::int64_t on_hand) {
  RecordKey key = makeKey(dept_no, uniqueName("g"), "W1");
  if (on_hand > 0) {
    const ApiResponse answer = api().adjustDelta(key, uniqueName("stock"), on_hand);
    EXPECT_TRUE(hasQuantities(answer, Quantities{on_hand, 0, 0})) << "stocking " << key.index();
  }
  return key;
}

}  // namespace allot::testing
