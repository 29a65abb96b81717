// Malformed requests, table by table: each must be answered 400 invalid_request (an unknown
// route 404 not_found) with the error body of API.md, and must change nothing: the quantities
// of the record it names stay as they were, and no order it names comes into being.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/limits.h"
#include "support/allotd_process.h"
#include "support/api_client.h"
#include "support/test_env.h"

namespace allot::testing {
namespace {

namespace json = boost::json;

[[maybe_unused]] auto* const kAllotd =
    ::testing::AddGlobalTestEnvironment(new SharedAllotd(allotdOptions()));

constexpr std::int64_t kOnHand = 100;
constexpr std::int64_t kHeld = 10;

struct Case {
  std::string name;
  std::string method;
  std::string target;
  std::string body;
  int status = 400;
  std::string code = "invalid_request";
  std::string order_no;  // an order this request names, which must stay unknown
};

template <typename Value>
json::object with(json::object object, std::string_view name, Value&& value) {
  object[name] = std::forward<Value>(value);
  return object;
}

json::object without(json::object object, std::string_view name) {
  object.erase(name);
  return object;
}

std::string text(const json::object& object) { return json::serialize(object); }

// A JSON array nested `depth` levels deep around the number 1.
std::string nested(std::size_t depth) {
  return std::string(depth, '[') + "1" + std::string(depth, ']');
}

class MalformedTest : public AllotdTest {
 protected:
  void SetUp() override {
    AllotdTest::SetUp();
    if (HasFatalFailure()) return;
    dept_ = newDept();
    key_ = newRecord(dept_, kOnHand);
    const ApiResponse hold = api().preallocate(dept_, uniqueName("o"), {{key_, kHeld}});
    ASSERT_TRUE(isOk(hold));
  }

  json::object validAdjust() const {
    return with(with(recordJson(key_), "ref", uniqueName("ref")), "delta", 1);
  }
  json::object validOrder(const std::string& order_no) const {
    return json::object{
        {"dept_no", dept_}, {"order_no", order_no}, {"lines", json::array{lineJson({key_, 1})}}};
  }
  // A valid order whose first line has `name` set to `value` (or removed, for null).
  json::object orderWithLine(const std::string& order_no, std::string_view name,
                             std::optional<json::value> value) const {
    json::object order = validOrder(order_no);
    json::object& line = order["lines"].as_array()[0].as_object();
    if (value) {
      line[name] = *value;
    } else {
      line.erase(name);
    }
    return order;
  }

  // Sends every case and checks its answer and that nothing changed.
  void expectRefused(const std::vector<Case>& cases) {
    ASSERT_GE(cases.size(), 1u);
    for (const auto& c : cases) {
      SCOPED_TRACE(c.name + " (" + c.method + " " + c.target.substr(0, 200) + ")");
      const ApiResponse answer = api().call(c.method, c.target, c.body);
      EXPECT_TRUE(isError(answer, c.status, c.code));
      EXPECT_TRUE(hasQuantities(api().stock(key_), Quantities{kOnHand, kHeld, 0}));
      if (!c.order_no.empty()) {
        EXPECT_TRUE(isError(api().order(dept_, c.order_no), 404, "not_found"));
      }
    }
  }

  std::string dept_;
  RecordKey key_;
};

TEST_F(MalformedTest, AdjustBodies) {
  const std::string target = "/v1/stock/adjust";
  const std::string long_field(limits::kFieldLengthMax + 1, 'g');
  const std::string long_ref(limits::kRefLengthMax + 1, 'r');
  const json::object valid = validAdjust();
  const std::vector<std::pair<std::string, std::string>> bodies = {
      {"truncated JSON", R"({"dept_no": "x",)"},
      {"empty body", ""},
      {"a JSON array", "[1, 2]"},
      {"a JSON string", R"("adjust")"},
      {"trailing garbage", text(valid) + " x"},
      {"delta as a string", text(with(valid, "delta", "5"))},
      {"fractional delta", text(with(valid, "delta", 1.5))},
      {"null delta", text(with(valid, "delta", nullptr))},
      {"delta beyond int64",
       R"({"dept_no":")" + dept_ + R"(","goods_no":")" + key_.goods_no +
           R"(","warehouse_no":"W1","ref":"r1","delta":9223372036854775808})"},
      {"delta and on_hand", text(with(valid, "on_hand", 5))},
      {"neither delta nor on_hand", text(without(valid, "delta"))},
      {"negative on_hand", text(with(without(valid, "delta"), "on_hand", -1))},
      {"on_hand over the limit",
       text(with(without(valid, "delta"), "on_hand", limits::kOnHandMax + 1))},
      {"missing ref", text(without(valid, "ref"))},
      {"empty ref", text(with(valid, "ref", ""))},
      {"ref as a number", text(with(valid, "ref", 7))},
      {"ref over the length limit", text(with(valid, "ref", long_ref))},
      {"dept_no with {", text(with(valid, "dept_no", dept_ + "{"))},
      {"goods_no with }", text(with(valid, "goods_no", key_.goods_no + "}"))},
      {"warehouse_no with |", text(with(valid, "warehouse_no", "W|1"))},
      {"goods_no with :", text(with(valid, "goods_no", key_.goods_no + ":1"))},
      {"goods_no with a space", text(with(valid, "goods_no", key_.goods_no + " "))},
      {"goods_no with non-ASCII", text(with(valid, "goods_no", key_.goods_no + "\xc3\xa9"))},
      {"goods_no over 64 characters", text(with(valid, "goods_no", long_field))},
      {"empty goods_no", text(with(valid, "goods_no", ""))},
      {"missing goods_no", text(without(valid, "goods_no"))},
      {"missing dept_no", text(without(valid, "dept_no"))},
      {"dept_no as a number", text(with(valid, "dept_no", 123))},
      {"empty stock_status", text(with(valid, "stock_status", ""))},
      {"goods_level with {", text(with(valid, "goods_level", "{A"))},
      {"stock_type as a number", text(with(valid, "stock_type", 1))},
  };
  std::vector<Case> cases;
  for (const auto& [name, body] : bodies) cases.push_back({name, "POST", target, body});
  expectRefused(cases);
}

TEST_F(MalformedTest, PreallocateBodies) {
  const std::string target = "/v1/preallocations";
  const std::string long_field(limits::kFieldLengthMax + 1, 'o');
  std::vector<Case> cases;
  const auto add = [&](std::string name,
                       const std::function<json::object(const std::string&)>& make) {
    const std::string order_no = uniqueName("bad");
    cases.push_back(
        {std::move(name), "POST", target, text(make(order_no)), 400, "invalid_request", order_no});
  };
  const auto line = [&](std::string_view field, std::optional<json::value> value) {
    return [this, field, value](const std::string& o) { return orderWithLine(o, field, value); };
  };
  add("qty 0", line("qty", json::value(0)));
  add("negative qty", line("qty", json::value(-1)));
  add("qty over 10^9", line("qty", json::value(limits::kLineQtyMax + 1)));
  add("fractional qty", line("qty", json::value(1.5)));
  add("qty as a string", line("qty", json::value("1")));
  add("missing qty", line("qty", std::nullopt));
  add("missing warehouse_no", line("warehouse_no", std::nullopt));
  add("goods_no with {", line("goods_no", json::value(key_.goods_no + "{")));
  add("stock_type with a space", line("stock_type", json::value("1 ")));
  add("goods_level with |", line("goods_level", json::value("A|")));
  add("empty lines",
      [&](const std::string& o) { return with(validOrder(o), "lines", json::array{}); });
  add("missing lines", [&](const std::string& o) { return without(validOrder(o), "lines"); });
  add("lines as an object", [&](const std::string& o) {
    return with(validOrder(o), "lines", lineJson({key_, 1}));
  });
  add("a line that is a number",
      [&](const std::string& o) { return with(validOrder(o), "lines", json::array{1}); });
  add("201 lines", [&](const std::string& o) {
    json::array lines;
    for (std::size_t i = 0; i <= limits::kOrderLinesMax; ++i) {
      lines.push_back(lineJson({makeKey(dept_, key_.goods_no + "-" + std::to_string(i), "W1"), 1}));
    }
    return with(validOrder(o), "lines", std::move(lines));
  });
  add("the same record twice", [&](const std::string& o) {
    return with(validOrder(o), "lines", json::array{lineJson({key_, 1}), lineJson({key_, 2})});
  });
  add("the same record twice, once with defaults omitted", [&](const std::string& o) {
    json::object bare{{"goods_no", key_.goods_no}, {"warehouse_no", key_.warehouse_no}, {"qty", 1}};
    return with(validOrder(o), "lines", json::array{lineJson({key_, 1}), bare});
  });
  add("allow_shortage as a string",
      [&](const std::string& o) { return with(validOrder(o), "allow_shortage", "yes"); });
  add("dept_no with |",
      [&](const std::string& o) { return with(validOrder(o), "dept_no", dept_ + "|x"); });
  add("missing dept_no", [&](const std::string& o) { return without(validOrder(o), "dept_no"); });
  add("JSON nested deeper than the limit", [&](const std::string& o) {
    return with(validOrder(o), "note", json::parse(nested(limits::kJsonDepthMax + 4)));
  });
  add("body over 256 KiB", [&](const std::string& o) {
    return with(validOrder(o), "note", std::string(limits::kRequestBodyBytesMax + 1024, 'p'));
  });
  const std::vector<std::pair<std::string, json::value>> bad_order_numbers = {
      {"missing order_no", nullptr},
      {"empty order_no", ""},
      {"order_no with :", "o:1"},
      {"order_no with a space", "o 1"},
      {"order_no over 64 characters", json::string(long_field)},
      {"order_no as a number", 42}};
  for (const auto& [name, value] : bad_order_numbers) {
    json::object order = validOrder("unused");
    if (value.is_null()) {
      order.erase("order_no");
    } else {
      order["order_no"] = value;
    }
    cases.push_back({name, "POST", target, text(order)});
  }
  expectRefused(cases);
}

// A client that sends an oversized body to its end before it reads gets the 400 that says
// why, not a reset: allotd answers once the limit is passed, then reads and drops the rest
// until the client closes, instead of closing with the client's data unread.
TEST_F(MalformedTest, AClientStillSendingAnOversizedBodyReadsItsAnswer) {
  constexpr std::size_t kBody = 8 * limits::kRequestBodyBytesMax;  // 2 MiB, far past the limit
  const std::string head =
      "POST /v1/preallocations HTTP/1.1\r\nHost: allot\r\n"
      "Authorization: Bearer " +
      allotd().apiToken() +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(kBody) + "\r\n\r\n";
  // The whole request first, as a simple client writes it, and only then the answer (a reset
  // while sending or reading fails the test).
  const std::string request = head + "{\"note\":\"" + std::string(kBody - 11, 'p') + "\"}";
  const std::string answer = rawExchange(allotd().endpoint(), request);
  ASSERT_FALSE(::testing::Test::HasFailure());
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 400 ")) << answer.substr(0, 200);
  EXPECT_NE(answer.find("\"invalid_request\""), std::string::npos) << answer;
  EXPECT_NE(answer.find("exceeds"), std::string::npos) << answer;
  EXPECT_TRUE(hasQuantities(api().stock(key_), Quantities{kOnHand, kHeld, 0}));
}

TEST_F(MalformedTest, RollbackAndDeductBodies) {
  std::vector<Case> cases;
  for (const std::string target : {"/v1/preallocations/rollback", "/v1/preallocations/deduct"}) {
    const std::string order_no = uniqueName("bad");
    const json::object valid{{"dept_no", dept_}, {"order_no", order_no}};
    const std::vector<std::pair<std::string, std::string>> bodies = {
        {"truncated JSON", R"({"dept_no":)"},
        {"missing order_no", text(without(valid, "order_no"))},
        {"missing dept_no", text(without(valid, "dept_no"))},
        {"order_no with }", text(with(valid, "order_no", order_no + "}"))},
        {"order_no as a number", text(with(valid, "order_no", 5))},
        {"dept_no with a space", text(with(valid, "dept_no", dept_ + " "))},
    };
    for (const auto& [name, body] : bodies) {
      cases.push_back({name, "POST", target, body, 400, "invalid_request", order_no});
    }
  }
  expectRefused(cases);
}

TEST_F(MalformedTest, QueryStrings) {
  const std::string dept = "dept_no=" + dept_;
  const std::string goods = "&goods_no=" + key_.goods_no;
  const std::string order = "&order_no=" + uniqueName("bad");
  const std::vector<std::pair<std::string, std::string>> targets = {
      {"stock without warehouse_no", "/v1/stock?" + dept + goods},
      {"stock without dept_no", "/v1/stock?goods_no=" + key_.goods_no + "&warehouse_no=W1"},
      {"stock without a query", "/v1/stock"},
      {"stock dept_no with {", "/v1/stock?dept_no=" + dept_ + "%7B" + goods + "&warehouse_no=W1"},
      {"stock empty goods_no", "/v1/stock?" + dept + "&goods_no=&warehouse_no=W1"},
      {"stock stock_status with a space",
       "/v1/stock?" + dept + goods + "&warehouse_no=W1&stock_status=1%20"},
      {"stock goods_level with |",
       "/v1/stock?" + dept + goods + "&warehouse_no=W1&goods_level=A%7C"},
      {"stock warehouse_no with :", "/v1/stock?" + dept + goods + "&warehouse_no=W%3A1"},
      {"stock goods_no over 64 characters",
       "/v1/stock?" + dept + "&goods_no=" + std::string(65, 'g') + "&warehouse_no=W1"},
      {"order view without order_no", "/v1/preallocations?" + dept},
      {"order view without dept_no", "/v1/preallocations?" + order.substr(1)},
      {"order view order_no with :", "/v1/preallocations?" + dept + "&order_no=o%3A1"},
      {"order view empty dept_no", "/v1/preallocations?dept_no=" + order},
      {"order view order_no with }", "/v1/preallocations?" + dept + "&order_no=o%7D"},
  };
  std::vector<Case> cases;
  for (const auto& [name, target] : targets) cases.push_back({name, "GET", target, ""});
  expectRefused(cases);
}

TEST_F(MalformedTest, UnknownRoutes) {
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/v1/nowhere"},
      {"POST", "/v1/preallocations/cancel"},
      {"GET", "/v2/stock?dept_no=" + dept_ + "&goods_no=" + key_.goods_no + "&warehouse_no=W1"},
      {"POST", "/v1/stock/adjust/extra"},
  };
  std::vector<Case> cases;
  for (const auto& [method, target] : routes) {
    cases.push_back({"unknown route", method, target, text(validAdjust()), 404, "not_found"});
  }
  expectRefused(cases);
}

}  // namespace
}  // namespace allot::testing
