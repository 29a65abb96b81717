// allotctl's pure parts: line specs and lines files, the calls built from a command line
// (method, target, JSON body, which token), usage errors, and the readable output format.
// Nothing here opens a socket: usage errors must be caught before anything is sent.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/allotctl.h"
#include "cli/output.h"
#include "cli/requests.h"
#include "core/limits.h"
#include "support/test_env.h"

namespace allot::cli {
namespace {

namespace json = boost::json;

LineSpec line(std::string goods, std::string warehouse, std::int64_t qty) {
  LineSpec spec;
  spec.goods_no = std::move(goods);
  spec.warehouse_no = std::move(warehouse);
  spec.qty = qty;
  return spec;
}

LineSpec fullLine(std::string goods, std::string warehouse, std::string status, std::string type,
                  std::string level, std::int64_t qty) {
  LineSpec spec = line(std::move(goods), std::move(warehouse), qty);
  spec.stock_status = std::move(status);
  spec.stock_type = std::move(type);
  spec.goods_level = std::move(level);
  return spec;
}

TEST(LineSpecTest, ParsesShortAndFullSpecs) {
  const struct {
    std::string spec;
    LineSpec expected;
  } cases[] = {
      {"G:W=5", line("G", "W", 5)},
      {"G:W=1", line("G", "W", 1)},
      {"G:W:S:T:L=5", fullLine("G", "W", "S", "T", "L", 5)},
      {"sku-1.a_b:WH.2=1000000000", line("sku-1.a_b", "WH.2", 1'000'000'000)},
      {"G:W:1:1:A=7", fullLine("G", "W", "1", "1", "A", 7)},
  };
  for (const auto& c : cases) {
    const auto parsed = parseLineSpec(c.spec);
    ASSERT_TRUE(parsed.has_value()) << c.spec << ": " << parsed.error().message;
    EXPECT_EQ(*parsed, c.expected) << c.spec;
  }
}

TEST(LineSpecTest, RejectsMalformedSpecs) {
  const std::string bad[] = {
      "",
      "G:W",
      "G:W=",
      "=5",
      "G=5",
      "G:W=0",
      "G:W=-1",
      "G:W=1000000001",
      "G:W=5x",
      "G:W= 5",
      "G:W=+5",
      "G:W=1.5",
      "G:W=99999999999999999999",
      ":W=5",
      "G:=5",
      "G:W:S=5",
      "G:W:S:T=5",
      "G:W:S:T:L:X=5",
      "G::S:T:L=5",
      "G:W:S:T:=5",
      "G:W=5=6",
  };
  for (const std::string& spec : bad) {
    const auto parsed = parseLineSpec(spec);
    ASSERT_FALSE(parsed.has_value()) << "accepted \"" << spec << "\"";
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidRequest) << spec;
    EXPECT_NE(parsed.error().message.find(spec), std::string::npos)
        << "the message should name the spec: " << parsed.error().message;
  }
}

TEST(LinesFileTest, AcceptsTheThreeLayouts) {
  const std::vector<LineSpec> two = {line("G1", "W1", 5), fullLine("G2", "W1", "2", "1", "B", 3)};
  const std::string layouts[] = {
      R"([{"goods_no":"G1","warehouse_no":"W1","qty":5},
          {"goods_no":"G2","warehouse_no":"W1","stock_status":"2","stock_type":"1",
           "goods_level":"B","qty":3}])",
      R"({"dept_no":"D","order_no":"O","lines":[{"goods_no":"G1","warehouse_no":"W1","qty":5},
          {"goods_no":"G2","warehouse_no":"W1","stock_status":"2","stock_type":"1",
           "goods_level":"B","qty":3}]})",
      "{\"goods_no\":\"G1\",\"warehouse_no\":\"W1\",\"qty\":5}\n\n"
      "{\"goods_no\":\"G2\",\"warehouse_no\":\"W1\",\"stock_status\":\"2\",\"stock_type\":\"1\","
      "\"goods_level\":\"B\",\"qty\":3}\r\n",
  };
  for (const std::string& content : layouts) {
    const auto parsed = parseLinesFile(content);
    ASSERT_TRUE(parsed.has_value()) << content << ": " << parsed.error().message;
    EXPECT_EQ(*parsed, two) << content;
  }
  const auto single = parseLinesFile(R"({"goods_no":"G1","warehouse_no":"W1","qty":5})");
  ASSERT_TRUE(single.has_value());
  EXPECT_EQ(*single, std::vector<LineSpec>{line("G1", "W1", 5)});
}

TEST(LinesFileTest, RejectsBadLines) {
  const struct {
    std::string content;
    std::string message_part;
  } cases[] = {
      {R"([{"goods_no":"G","warehouse_no":"W"}])", "qty"},
      {R"([{"goods_no":"G","warehouse_no":"W","qty":"5"}])", "qty"},
      {R"([{"goods_no":"G","warehouse_no":"W","qty":0}])", "outside"},
      {R"([{"goods_no":"G","warehouse_no":"W","qty":1.5}])", "qty"},
      {R"([{"goods_no":"G","warehouse_no":"W","qty":5,"qyt":1}])", "qyt"},
      {R"([{"goods_no":5,"warehouse_no":"W","qty":5}])", "goods_no"},
      {R"([{"goods_no":"G","qty":5}])", "warehouse_no"},
      {R"([{"goods_no":"G","warehouse_no":"W","stock_status":1,"qty":5}])", "stock_status"},
      {R"([{"goods_no":"G","warehouse_no":"W","qty":5},"x"])", "line 2"},
      {"{\"goods_no\":\"G\",\"warehouse_no\":\"W\",\"qty\":5}\nnot json\n", "line 2"},
      {"42", "lines file"},
      {R"({"lines":"G:W=5"})", "lines file"},
  };
  for (const auto& c : cases) {
    const auto parsed = parseLinesFile(c.content);
    ASSERT_FALSE(parsed.has_value()) << "accepted " << c.content;
    EXPECT_NE(parsed.error().message.find(c.message_part), std::string::npos)
        << c.content << " -> " << parsed.error().message;
  }
}

// Clears the environment allotctl reads, so a developer's shell cannot change the results.
class CommandLineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"ALLOT_URL", "ALLOT_API_TOKEN", "ALLOT_ADMIN_TOKEN"}) {
      ::unsetenv(name);
    }
  }

  struct Parsed {
    std::optional<Invocation> invocation;
    int exit_code = -1;
    std::string out;
    std::string err;
  };

  static Parsed parse(std::vector<std::string> args) {
    args.insert(args.begin(), "allotctl");
    std::vector<const char*> argv;
    for (const std::string& arg : args) argv.push_back(arg.c_str());
    std::ostringstream out;
    std::ostringstream err;
    auto result = parseCommandLine(static_cast<int>(argv.size()), argv.data(), out, err);
    Parsed parsed;
    if (auto* invocation = std::get_if<Invocation>(&result)) {
      parsed.invocation = std::move(*invocation);
    } else {
      parsed.exit_code = std::get<int>(result);
    }
    parsed.out = out.str();
    parsed.err = err.str();
    return parsed;
  }
};

TEST_F(CommandLineTest, BuildsEveryCall) {
  const struct {
    std::vector<std::string> args;
    std::string method;
    std::string target;
    std::string body;  // JSON, compared as values; empty for none
    bool admin;
  } cases[] = {
      {{"stock", "--dept", "D", "--goods", "G", "--warehouse", "W"},
       "GET",
       "/v1/stock?dept_no=D&goods_no=G&warehouse_no=W",
       "",
       false},
      {{"stock", "--dept", "D", "--goods", "G", "--warehouse", "W", "--status", "2", "--type", "3",
        "--level", "B"},
       "GET",
       "/v1/stock?dept_no=D&goods_no=G&warehouse_no=W&stock_status=2&stock_type=3&goods_level=B",
       "",
       false},
      {{"stock", "--dept", "a b&c=d+e", "--goods", "G", "--warehouse", "W"},
       "GET",
       "/v1/stock?dept_no=a%20b%26c%3Dd%2Be&goods_no=G&warehouse_no=W",
       "",
       false},
      {{"adjust", "--dept", "D", "--goods", "G", "--warehouse", "W", "--delta", "-3", "--ref",
        "r1"},
       "POST",
       "/v1/stock/adjust",
       R"({"dept_no":"D","goods_no":"G","warehouse_no":"W","delta":-3,"ref":"r1"})",
       false},
      {{"adjust", "--dept", "D", "--goods", "G", "--warehouse", "W", "--level", "B", "--on-hand",
        "100", "--ref", "r\"2"},
       "POST",
       "/v1/stock/adjust",
       R"({"dept_no":"D","goods_no":"G","warehouse_no":"W","goods_level":"B","on_hand":100,
           "ref":"r\"2"})",
       false},
      {{"preallocate", "--dept", "D", "--order", "O", "--line", "G1:W=5", "--line", "G2:W:2:1:B=3"},
       "POST",
       "/v1/preallocations",
       R"({"dept_no":"D","order_no":"O","lines":[{"goods_no":"G1","warehouse_no":"W","qty":5},
           {"goods_no":"G2","warehouse_no":"W","stock_status":"2","stock_type":"1",
            "goods_level":"B","qty":3}]})",
       false},
      {{"preallocate", "--dept", "D", "--order", "O", "--line", "G:W=5", "--allow-shortage"},
       "POST",
       "/v1/preallocations",
       R"({"dept_no":"D","order_no":"O","lines":[{"goods_no":"G","warehouse_no":"W","qty":5}],
           "allow_shortage":true})",
       false},
      {{"rollback", "--dept", "D", "--order", "O"},
       "POST",
       "/v1/preallocations/rollback",
       R"({"dept_no":"D","order_no":"O"})",
       false},
      {{"deduct", "--dept", "D", "--order", "O"},
       "POST",
       "/v1/preallocations/deduct",
       R"({"dept_no":"D","order_no":"O"})",
       false},
      {{"order", "--dept", "D", "--order", "O-1"},
       "GET",
       "/v1/preallocations?dept_no=D&order_no=O-1",
       "",
       false},
      {{"route", "get", "D"}, "GET", "/v1/admin/merchants/D", "", true},
      {{"route", "get", "a/b?c"}, "GET", "/v1/admin/merchants/a%2Fb%3Fc", "", true},
      {{"route", "set", "D", "mysql"},
       "PUT",
       "/v1/admin/merchants/D",
       R"({"route":"mysql"})",
       true},
      {{"reconcile"}, "POST", "/v1/admin/reconcile", "{}", true},
      {{"reconcile", "--dept", "D"}, "POST", "/v1/admin/reconcile", R"({"dept_no":"D"})", true},
  };
  for (const auto& c : cases) {
    const std::string shown = ::testing::PrintToString(c.args);
    const Parsed parsed = parse(c.args);
    ASSERT_TRUE(parsed.invocation.has_value()) << shown << ": " << parsed.err;
    const ApiCall& call = parsed.invocation->call;
    EXPECT_EQ(call.method, c.method) << shown;
    EXPECT_EQ(call.target, c.target) << shown;
    EXPECT_EQ(call.admin, c.admin) << shown;
    if (c.body.empty()) {
      EXPECT_EQ(call.body, "") << shown;
    } else {
      EXPECT_EQ(json::parse(call.body), json::parse(c.body)) << shown << " sent " << call.body;
    }
  }
}

TEST_F(CommandLineTest, ReadsGlobalOptionsFromFlagsAndEnvironment) {
  const Parsed defaults = parse({"order", "--dept", "D", "--order", "O"});
  ASSERT_TRUE(defaults.invocation.has_value()) << defaults.err;
  EXPECT_EQ(defaults.invocation->endpoint.host, "127.0.0.1");
  EXPECT_EQ(defaults.invocation->endpoint.port, 8080);
  EXPECT_EQ(defaults.invocation->options.timeout_ms, kDefaultTimeoutMs);
  EXPECT_FALSE(defaults.invocation->options.json);

  ::setenv("ALLOT_URL", "http://10.1.2.3:9000", 1);
  ::setenv("ALLOT_API_TOKEN", "api-secret", 1);
  ::setenv("ALLOT_ADMIN_TOKEN", "admin-secret", 1);
  const Parsed from_env = parse({"order", "--dept", "D", "--order", "O"});
  ASSERT_TRUE(from_env.invocation.has_value()) << from_env.err;
  EXPECT_EQ(from_env.invocation->endpoint.host, "10.1.2.3");
  EXPECT_EQ(from_env.invocation->endpoint.port, 9000);
  EXPECT_EQ(from_env.invocation->options.token, "api-secret");
  EXPECT_EQ(from_env.invocation->options.admin_token, "admin-secret");

  // Flags win over the environment, and global flags may follow the subcommand.
  const Parsed flags = parse({"--url", "http://localhost:7000/", "order", "--dept", "D", "--order",
                              "O", "--json", "--token", "t", "--timeout-ms", "250"});
  ASSERT_TRUE(flags.invocation.has_value()) << flags.err;
  EXPECT_EQ(flags.invocation->endpoint.host, "localhost");
  EXPECT_EQ(flags.invocation->endpoint.port, 7000);
  EXPECT_EQ(flags.invocation->options.token, "t");
  EXPECT_TRUE(flags.invocation->options.json);
  EXPECT_EQ(flags.invocation->options.timeout_ms, 250);

  // A route switch may take a minute: its own default is longer, unless the flag is given.
  const Parsed route_set = parse({"route", "set", "D", "mysql"});
  ASSERT_TRUE(route_set.invocation.has_value()) << route_set.err;
  EXPECT_EQ(route_set.invocation->options.timeout_ms, kRouteSetTimeoutMs);
  const Parsed route_set_flag = parse({"route", "set", "D", "mysql", "--timeout-ms", "250"});
  ASSERT_TRUE(route_set_flag.invocation.has_value()) << route_set_flag.err;
  EXPECT_EQ(route_set_flag.invocation->options.timeout_ms, 250);
  const Parsed route_get = parse({"route", "get", "D"});
  ASSERT_TRUE(route_get.invocation.has_value()) << route_get.err;
  EXPECT_EQ(route_get.invocation->options.timeout_ms, kDefaultTimeoutMs);
}

TEST_F(CommandLineTest, UsageErrorsExitWithTwoAndSendNothing) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"stock", "--dept", "D", "--goods", "G"},
      {"adjust", "--dept", "D", "--goods", "G", "--warehouse", "W", "--ref", "r"},
      {"adjust", "--dept", "D", "--goods", "G", "--warehouse", "W", "--ref", "r", "--delta", "1",
       "--on-hand", "2"},
      {"adjust", "--dept", "D", "--goods", "G", "--warehouse", "W", "--delta", "1"},
      {"adjust", "--dept", "D", "--goods", "G", "--warehouse", "W", "--ref", "r", "--delta", "x"},
      {"preallocate", "--dept", "D", "--order", "O"},
      {"preallocate", "--dept", "D", "--order", "O", "--line", "G:W"},
      {"preallocate", "--dept", "D", "--order", "O", "--line", "G:W=0"},
      {"preallocate", "--dept", "D", "--order", "O", "--line", "G:W:S=1"},
      {"preallocate", "--dept", "D", "--order", "O", "--line", "G:W=1", "--lines-file", "x"},
      {"preallocate", "--dept", "D", "--order", "O", "--lines-file", "/nonexistent/lines"},
      {"preallocate", "--order", "O", "--line", "G:W=1"},
      {"rollback", "--dept", "D"},
      {"route"},
      {"route", "set", "D", "postgres"},
      {"route", "get"},
      {"stock", "--dept", "D", "--goods", "G", "--warehouse", "W", "--url", "https://h:1"},
      {"stock", "--dept", "D", "--goods", "G", "--warehouse", "W", "--url", "http://h:0"},
      {"stock", "--dept", "D", "--goods", "G", "--warehouse", "W", "--url", "http://h/v1"},
      {"stock", "--dept", "D", "--goods", "G", "--warehouse", "W", "--timeout-ms", "0"},
  };
  for (const auto& args : cases) {
    const Parsed parsed = parse(args);
    EXPECT_FALSE(parsed.invocation.has_value()) << ::testing::PrintToString(args);
    EXPECT_EQ(parsed.exit_code, kExitUsage) << ::testing::PrintToString(args);
    EXPECT_FALSE(parsed.err.empty()) << ::testing::PrintToString(args);
  }
}

TEST_F(CommandLineTest, TooManyLinesIsAUsageError) {
  std::vector<std::string> args = {"preallocate", "--dept", "D", "--order", "O"};
  for (std::size_t i = 0; i <= limits::kOrderLinesMax; ++i) {
    args.push_back("--line");
    args.push_back("G" + std::to_string(i) + ":W=1");
  }
  const Parsed parsed = parse(args);
  EXPECT_EQ(parsed.exit_code, kExitUsage);
  EXPECT_NE(parsed.err.find("1 to 200 lines"), std::string::npos) << parsed.err;
  args.resize(args.size() - 2);  // exactly the maximum
  EXPECT_TRUE(parse(args).invocation.has_value());
}

TEST_F(CommandLineTest, ReadsALinesFile) {
  const std::string path =
      ::testing::TempDir() + allot::testing::uniqueName("allotctl-lines") + ".json";
  {
    std::ofstream file(path);
    file << R"([{"goods_no":"G1","warehouse_no":"W","qty":2}])";
  }
  const Parsed parsed = parse({"preallocate", "--dept", "D", "--order", "O", "--lines-file", path});
  std::remove(path.c_str());
  ASSERT_TRUE(parsed.invocation.has_value()) << parsed.err;
  EXPECT_EQ(json::parse(parsed.invocation->call.body), json::parse(R"({"dept_no":"D","order_no":"O",
                            "lines":[{"goods_no":"G1","warehouse_no":"W","qty":2}]})"));
}

TEST_F(CommandLineTest, HelpExitsWithZero) {
  const Parsed parsed = parse({"--help"});
  EXPECT_EQ(parsed.exit_code, kExitOk);
  EXPECT_NE(parsed.out.find("preallocate"), std::string::npos) << parsed.out;
}

TEST(OutputTest, RendersAlignedTables) {
  Table table;
  table.headers = {"name", "qty"};
  table.right_aligned = {false, true};
  table.rows = {{"a", "5"}, {"longer", "1000"}};
  EXPECT_EQ(renderTable(table),
            "name     qty\n"
            "a          5\n"
            "longer  1000\n");
}

TEST(OutputTest, FormatsEachAnswerShape) {
  const struct {
    AnswerShape shape;
    std::string body;
    std::string expected;
  } cases[] = {
      {AnswerShape::kRecord,
       R"({"dept_no":"D","goods_no":"G","warehouse_no":"W","stock_status":"1","stock_type":"1",
           "goods_level":"A","route":"redis","on_hand":100,"preallocated":10,"available":90,
           "shortage":0})",
       "dept_no  goods_no  warehouse_no  stock_status  stock_type  goods_level  on_hand  "
       "preallocated  available  shortage  route\n"
       "D        G         W             1             1           A                100  "
       "          10         90         0  redis\n"},
      {AnswerShape::kOrder,
       R"({"order_no":"O1","status":"shortage","replayed":true,"lines":[
           {"dept_no":"D","goods_no":"G1","warehouse_no":"W","stock_status":"1",
            "stock_type":"1","goods_level":"A","qty":5,"allocated":5,"shortage":0},
           {"dept_no":"D","goods_no":"G22","warehouse_no":"W","stock_status":"1",
            "stock_type":"1","goods_level":"A","qty":12,"allocated":2,"shortage":10}]})",
       "order O1  status shortage  (replayed)\n"
       "goods_no  warehouse_no  stock_status  stock_type  goods_level  qty  allocated  shortage\n"
       "G1        W             1             1           A              5          5         0\n"
       "G22       W             1             1           A             12          2        10\n"},
      {AnswerShape::kOrderEnd, R"({"order_no":"O1","status":"rolled_back","replayed":false})",
       "order O1: rolled_back\n"},
      {AnswerShape::kOrderEnd, R"({"order_no":"O1","status":"deducted","replayed":true})",
       "order O1: deducted (replayed)\n"},
      {AnswerShape::kFields, R"({"checked":12,"mismatched":1,"repaired":1})",
       "checked     12\n"
       "mismatched  1\n"
       "repaired    1\n"},
      {AnswerShape::kFields, R"({"dept_no":"D","route":"mysql"})",
       "dept_no  D\n"
       "route    mysql\n"},
      {AnswerShape::kRecord, "not json", "not json\n"},
      {AnswerShape::kOrder, "[1,2]\n", "[1,2]\n"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(formatAnswer(c.shape, c.body), c.expected) << c.body;
  }
}

TEST(OutputTest, FormatsErrors) {
  const struct {
    int status;
    std::string body;
    std::string expected;
  } cases[] = {
      {404, R"({"error":"not_found","message":"no such record"})",
       "error: not_found: no such record\n"},
      {401, R"({"error":"unauthorized"})", "error: unauthorized: (no message)\n"},
      {409,
       R"({"error":"insufficient_stock","message":"2 lines short","short_lines":[
           {"goods_no":"G1","warehouse_no":"W","qty":5,"available":1},
           {"goods_no":"G2","warehouse_no":"W","qty":7,"available":0}]})",
       "error: insufficient_stock: 2 lines short\n"
       "short_lines:\n"
       "goods_no  warehouse_no  qty  available\n"
       "G1        W               5          1\n"
       "G2        W               7          0\n"},
      {502, "<html>\nBad gateway</html>", "error: http_502: <html> Bad gateway</html>\n"},
      {500, "", "error: http_500: (empty body)\n"},
      {400, R"({"message":"no code"})", "error: http_400: {\"message\":\"no code\"}\n"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(formatApiError(c.status, c.body), c.expected) << c.body;
  }
}

}  // namespace
}  // namespace allot::cli
