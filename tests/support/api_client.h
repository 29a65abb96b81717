// The allot HTTP API as the integration tests call it: request builders for the endpoints of
// API.md, an answer type that keeps the raw body next to its parsed JSON (so a failed
// expectation can print exactly what the server said), and gtest predicates for the shapes
// the contract promises. Built on allot::cli::HttpClient; one ApiClient per thread.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/http_client.h"
#include "domain/quantities.h"
#include "domain/record_key.h"
#include "support/allotd_process.h"

namespace allot::testing {

struct ApiResponse {
  int status = 0;  // 0 when no HTTP answer arrived (see transport_error)
  std::string body;
  std::string content_type;
  boost::json::value json;      // null unless the body parsed as JSON
  std::string transport_error;  // set when status is 0

  [[nodiscard]] const boost::json::object* object() const { return json.if_object(); }
  // The "error" code of an error body, or "" when there is none.
  [[nodiscard]] std::string errorCode() const;
  [[nodiscard]] std::optional<std::int64_t> integer(std::string_view field) const;
  [[nodiscard]] std::optional<std::string> string(std::string_view field) const;
  [[nodiscard]] std::optional<bool> boolean(std::string_view field) const;
  // "HTTP 409 {...}" or "no answer: ..." for failure messages.
  [[nodiscard]] std::string describe() const;
};

// One line of a preallocation: the record (its dept_no is the order's) and a quantity.
struct Line {
  RecordKey key;
  std::int64_t qty = 0;
};

[[nodiscard]] RecordKey makeKey(std::string dept_no, std::string goods_no,
                                std::string warehouse_no);

// Request bodies and targets. Every record field is sent explicitly.
[[nodiscard]] boost::json::object recordJson(const RecordKey& key);
[[nodiscard]] boost::json::object lineJson(const Line& line);
[[nodiscard]] std::string adjustDeltaBody(const RecordKey& key, std::string_view ref,
                                          std::int64_t delta);
[[nodiscard]] std::string adjustOnHandBody(const RecordKey& key, std::string_view ref,
                                           std::int64_t on_hand);
[[nodiscard]] std::string preallocateBody(std::string_view dept_no, std::string_view order_no,
                                          const std::vector<Line>& lines,
                                          std::optional<bool> allow_shortage = std::nullopt);
[[nodiscard]] std::string orderRefBody(std::string_view dept_no, std::string_view order_no);
// Percent-encodes everything outside [A-Za-z0-9_.~-].
[[nodiscard]] std::string queryEscape(std::string_view value);
[[nodiscard]] std::string stockTarget(const RecordKey& key);
[[nodiscard]] std::string orderTarget(std::string_view dept_no, std::string_view order_no);

// The sum of every sample of the metric `name` (any labels) in a Prometheus text exposition;
// nullopt when the metric does not appear.
[[nodiscard]] std::optional<double> metricSum(std::string_view exposition, std::string_view name);

class ApiClient {
 public:
  explicit ApiClient(cli::Endpoint endpoint, std::string bearer_token = {});

  ApiResponse call(std::string_view method, std::string_view target, std::string_view body = {},
                   const std::vector<std::pair<std::string, std::string>>& headers = {});
  ApiResponse sendRaw(std::string_view bytes);

  ApiResponse adjustDelta(const RecordKey& key, std::string_view ref, std::int64_t delta);
  ApiResponse adjustOnHand(const RecordKey& key, std::string_view ref, std::int64_t on_hand);
  ApiResponse stock(const RecordKey& key);
  ApiResponse preallocate(std::string_view dept_no, std::string_view order_no,
                          const std::vector<Line>& lines,
                          std::optional<bool> allow_shortage = std::nullopt);
  ApiResponse rollback(std::string_view dept_no, std::string_view order_no);
  ApiResponse deduct(std::string_view dept_no, std::string_view order_no);
  ApiResponse order(std::string_view dept_no, std::string_view order_no);
  // GET /metrics and metricSum(); nullopt (and a test failure) when /metrics did not answer.
  std::optional<double> metric(std::string_view name);

 private:
  cli::HttpClient http_;
};

// Writes `request` as it is on a new connection to `endpoint` and returns every byte received
// until allotd closes it (so the request should end with "Connection: close"). Fails the
// current test and returns what it has on a socket error.
[[nodiscard]] std::string rawExchange(const cli::Endpoint& endpoint, std::string_view request);

// A 200 whose body is a JSON object.
[[nodiscard]] ::testing::AssertionResult isOk(const ApiResponse& response);
// The error shape of API.md: the status, and a JSON object whose "error" is `code` and whose
// "message" is a string.
[[nodiscard]] ::testing::AssertionResult isError(const ApiResponse& response, int status,
                                                 std::string_view code);
// A stock or adjust answer carrying these quantities, with available = on_hand - preallocated.
[[nodiscard]] ::testing::AssertionResult hasQuantities(const ApiResponse& response,
                                                       const Quantities& expected);
// The quantities of a stock or adjust answer, when all four fields are integers.
[[nodiscard]] std::optional<Quantities> quantitiesOf(const ApiResponse& response);
// The entry of the answer's "lines" that names `key` (dept_no is not compared: lines may
// leave it to the order), or nullptr.
[[nodiscard]] const boost::json::object* findLine(const ApiResponse& response,
                                                  const RecordKey& key);
// A line of a preallocation answer (or order view) with this qty, allocated and shortage.
[[nodiscard]] ::testing::AssertionResult hasLine(const ApiResponse& response, const RecordKey& key,
                                                 std::int64_t qty, std::int64_t allocated,
                                                 std::int64_t shortage);

// Base fixture of the tests that share one allotd (SharedAllotd). Prints the tail of the
// server's log when a test fails.
class AllotdTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  [[nodiscard]] AllotdProcess& allotd() { return *allotd_; }
  [[nodiscard]] ApiClient& api() { return *api_; }
  // A fresh dept_no for this test.
  [[nodiscard]] static std::string newDept();
  // A record of `dept_no` with a fresh goods_no and on_hand stocked through an adjust
  // (nothing is stocked when on_hand is 0); fails the test when the adjust is refused.
  [[nodiscard]] RecordKey newRecord(const std::string& dept_no, std::int64_t on_hand);

 private:
  AllotdProcess* allotd_ = nullptr;
  std::optional<ApiClient> api_;
};

}  // namespace allot::testing
