// Tests of the JSON codec: every kind of wrong input is refused with kInvalidRequest and a
// message naming the field, the right inputs come out with their defaults applied, the
// encoders produce exactly the contract's fields, and the adjust digest tells bodies apart.
#include "http/json_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/limits.h"

namespace allot::http {
namespace {

namespace json = boost::json;

// ---- Building request bodies ----

std::string lineJson(const std::string& fields = R"("goods_no":"G1","warehouse_no":"W1")",
                     const std::string& qty = "5") {
  return "{" + fields + R"(,"qty":)" + qty + "}";
}

std::string orderJson(const std::string& lines, const std::string& extra = "") {
  return R"({"dept_no":"D1","order_no":"O1","lines":[)" + lines + "]" + extra + "}";
}

// An order whose one line has `qty` as given (raw JSON).
std::string orderWithQty(const std::string& qty) {
  return orderJson(lineJson(R"("goods_no":"G1","warehouse_no":"W1")", qty));
}

// An order whose dept_no is `value` (raw JSON).
std::string orderWithDept(const std::string& value) {
  return R"({"dept_no":)" + value + R"(,"order_no":"O1","lines":[)" + lineJson() + "]}";
}

std::string orderWithOrderNo(const std::string& value) {
  return R"({"dept_no":"D1","order_no":)" + value + R"(,"lines":[)" + lineJson() + "]}";
}

// An order with `count` lines of distinct records.
std::string orderWithLines(std::size_t count) {
  std::string lines;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) lines += ",";
    lines += lineJson(R"("goods_no":"G)" + std::to_string(i) + R"(","warehouse_no":"W1")");
  }
  return orderJson(lines);
}

std::string adjustJson(const std::string& change, const std::string& ref = R"("R1")") {
  return R"({"dept_no":"D1","goods_no":"G1","warehouse_no":"W1","ref":)" + ref +
         (change.empty() ? "" : "," + change) + "}";
}

std::string quoted(const std::string& text) { return "\"" + text + "\""; }

// Nested arrays `depth` deep inside an ignored field: only the depth limit can refuse it.
std::string orderNested(std::size_t depth) {
  return orderJson(lineJson(), R"(,"extra":)" + std::string(depth, '[') + std::string(depth, ']'));
}

// ---- The table of wrong inputs ----

enum class Kind { kPreallocate, kOrderRef, kAdjust, kRecordQuery, kOrderQuery };

struct BadCase {
  std::string name;
  Kind kind;
  std::string input;
  std::string message_part;  // the message must contain this (the field, the rule)
};

std::optional<Error> parseError(Kind kind, const std::string& input) {
  const auto errorOf = [](const auto& result) -> std::optional<Error> {
    if (result) return std::nullopt;
    return result.error();
  };
  switch (kind) {
    case Kind::kPreallocate: return errorOf(parsePreallocateRequest(input));
    case Kind::kOrderRef: return errorOf(parseOrderRefRequest(input));
    case Kind::kAdjust: return errorOf(parseAdjustRequest(input));
    case Kind::kRecordQuery: return errorOf(parseRecordQuery(input));
    case Kind::kOrderQuery: return errorOf(parseOrderQuery(input));
  }
  return std::nullopt;
}

const std::string kFieldRule = "must be a string of 1-64 characters of [A-Za-z0-9_.-]";
const std::string kQtyRule = "lines[0].qty must be an integer 1..1000000000";

// ,"u0":0,"u1":0,... : keys the codec does not read.
std::string manyUnknownKeys(int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out += ",\"u" + std::to_string(i) + "\":0";
  return out;
}

std::vector<BadCase> preallocateBadCases() {
  const Kind k = Kind::kPreallocate;
  const std::string valid = orderJson(lineJson());
  return {
      {"EmptyBody", k, "", "not valid JSON"},
      {"NotJson", k, "{", "not valid JSON"},
      {"NotJsonWord", k, "hello", "not valid JSON"},
      {"TrailingGarbage", k, valid + "x", "not valid JSON"},
      {"TwoDocuments", k, valid + valid, "not valid JSON"},
      {"TrailingComma", k, orderJson(lineJson(), ","), "not valid JSON"},
      {"Comment", k, "/* c */" + valid, "not valid JSON"},
      {"InvalidUtf8", k, orderWithDept("\"D\xff\""), "not valid JSON"},
      {"BodyArray", k, "[" + valid + "]", "body must be a JSON object, not an array"},
      {"BodyString", k, R"("x")", "body must be a JSON object, not a string"},
      {"BodyNull", k, "null", "body must be a JSON object, not null"},
      {"TooDeep", k, orderNested(8), "deeper than 8"},
      {"DuplicateRootKey", k, orderJson(lineJson(), R"(,"order_no":"O2")"), "\"order_no\" twice"},
      {"DuplicateLineKey", k, orderJson(lineJson(R"("goods_no":"G1","warehouse_no":"W1","qty":1)")),
       "\"qty\" twice"},
      // Past the few keys compared in place, the scanner keeps an object's keys in a set.
      {"DuplicateAmongManyKeys", k, orderJson(lineJson(), manyUnknownKeys(40) + R"(,"u7":0)"),
       "\"u7\" twice"},
      {"DuplicateOfAnEarlyKeyAfterMany", k,
       orderJson(lineJson(), manyUnknownKeys(40) + R"(,"order_no":"O2")"), "\"order_no\" twice"},
      {"DuplicateInALineAfterManyRootKeys", k,
       R"({"dept_no":"D1",)" + manyUnknownKeys(40).substr(1) + R"(,"order_no":"O1","lines":[)" +
           lineJson(R"("qty":2)") + "]}",
       "\"qty\" twice"},
      {"TooLarge", k,
       orderJson(lineJson(), R"(,"pad":")" + std::string(limits::kRequestBodyBytesMax, 'a') + "\""),
       "exceeds 262144 bytes"},
      {"DeptMissing", k, R"({"order_no":"O1","lines":[)" + lineJson() + "]}",
       "dept_no is required"},
      {"DeptNumber", k, orderWithDept("12"), "dept_no " + kFieldRule},
      {"DeptNull", k, orderWithDept("null"), "dept_no " + kFieldRule + ", not null"},
      {"DeptBool", k, orderWithDept("true"), "dept_no " + kFieldRule + ", not a boolean"},
      {"DeptArray", k, orderWithDept(R"(["D1"])"), "dept_no " + kFieldRule + ", not an array"},
      {"DeptEmpty", k, orderWithDept(R"("")"), "dept_no " + kFieldRule},
      {"Dept65Chars", k, orderWithDept(quoted(std::string(65, 'd'))), "dept_no " + kFieldRule},
      {"DeptOpenBrace", k, orderWithDept(R"("D{1")"), "dept_no " + kFieldRule},
      {"DeptCloseBrace", k, orderWithDept(R"("D}1")"), "dept_no " + kFieldRule},
      {"DeptBar", k, orderWithDept(R"("D|1")"), "dept_no " + kFieldRule},
      {"DeptColon", k, orderWithDept(R"("D:1")"), "dept_no " + kFieldRule},
      {"DeptSpace", k, orderWithDept(R"("D 1")"), "dept_no " + kFieldRule},
      {"DeptUnicode", k, orderWithDept("\"D\xc3\xa9\""), "dept_no " + kFieldRule},
      {"DeptEscapedUnicode", k, orderWithDept(R"("D\u00e9")"), "dept_no " + kFieldRule},
      {"DeptControlChar", k, orderWithDept(R"("D\u0001")"), "dept_no " + kFieldRule},
      {"DeptTab", k, orderWithDept(R"("D\t1")"), "dept_no " + kFieldRule},
      {"DeptNul", k, orderWithDept(R"("D\u0000")"), "dept_no " + kFieldRule},
      {"OrderNoMissing", k, R"({"dept_no":"D1","lines":[)" + lineJson() + "]}",
       "order_no is required"},
      {"OrderNo65Chars", k, orderWithOrderNo(quoted(std::string(65, 'o'))),
       "order_no " + kFieldRule},
      {"OrderNoSlash", k, orderWithOrderNo(R"("O/1")"), "order_no " + kFieldRule},
      {"OrderNoNumber", k, orderWithOrderNo("7"), "order_no " + kFieldRule},
      {"LinesMissing", k, R"({"dept_no":"D1","order_no":"O1"})", "lines is required"},
      {"LinesObject", k, R"({"dept_no":"D1","order_no":"O1","lines":)" + lineJson() + "}",
       "lines must be an array of 1-200 lines, not an object"},
      {"LinesNull", k, R"({"dept_no":"D1","order_no":"O1","lines":null})",
       "lines must be an array"},
      {"LinesEmpty", k, orderJson(""), "lines must be an array of 1-200 lines, not 0"},
      {"Lines201", k, orderWithLines(201), "lines must be an array of 1-200 lines, not 201"},
      {"LineNumber", k, orderJson("5"), "lines[0] must be an object"},
      {"LineNull", k, orderJson(lineJson() + ",null"), "lines[1] must be an object, not null"},
      {"LineString", k, orderJson(R"("G1")"), "lines[0] must be an object, not a string"},
      {"GoodsMissing", k, orderJson(lineJson(R"("warehouse_no":"W1")")),
       "lines[0].goods_no is required"},
      {"WarehouseMissing", k, orderJson(lineJson(R"("goods_no":"G1")")),
       "lines[0].warehouse_no is required"},
      {"GoodsNumber", k, orderJson(lineJson(R"("goods_no":1,"warehouse_no":"W1")")),
       "lines[0].goods_no " + kFieldRule},
      {"StatusEmpty", k,
       orderJson(lineJson(R"("goods_no":"G1","warehouse_no":"W1","stock_status":"")")),
       "lines[0].stock_status " + kFieldRule},
      {"TypeNull", k,
       orderJson(lineJson(R"("goods_no":"G1","warehouse_no":"W1","stock_type":null)")),
       "lines[0].stock_type " + kFieldRule},
      {"LevelBrace", k,
       orderJson(lineJson(R"("goods_no":"G1","warehouse_no":"W1","goods_level":"{A}")")),
       "lines[0].goods_level " + kFieldRule},
      {"LineDeptOther", k,
       orderJson(lineJson(R"("dept_no":"D2","goods_no":"G1","warehouse_no":"W1")")),
       "lines[0].dept_no must equal the order's dept_no"},
      {"QtyMissing", k, orderJson(R"({"goods_no":"G1","warehouse_no":"W1"})"),
       "lines[0].qty is required"},
      {"QtyString", k, orderWithQty(R"("5")"), kQtyRule + ", not a string"},
      {"QtyZero", k, orderWithQty("0"), kQtyRule},
      {"QtyNegative", k, orderWithQty("-1"), kQtyRule},
      {"QtyAboveMax", k, orderWithQty("1000000001"), kQtyRule},
      {"QtyFraction", k, orderWithQty("1.5"), kQtyRule},
      {"QtyWholeDouble", k, orderWithQty("1.0"), kQtyRule},
      {"QtyExponent", k, orderWithQty("1e3"), kQtyRule},
      {"QtyBeyondInt64", k, orderWithQty("9223372036854775808"), kQtyRule},
      {"QtyBeyondUint64", k, orderWithQty("18446744073709551616"), kQtyRule},
      {"QtyBelowInt64", k, orderWithQty("-9223372036854775809"), kQtyRule},
      {"QtyHuge", k, orderWithQty("1" + std::string(400, '0')), kQtyRule},
      {"QtyBool", k, orderWithQty("true"), kQtyRule + ", not a boolean"},
      {"QtyNull", k, orderWithQty("null"), kQtyRule + ", not null"},
      {"QtyLeadingZero", k, orderWithQty("05"), "not valid JSON"},
      {"ShortageString", k, orderJson(lineJson(), R"(,"allow_shortage":"true")"),
       "allow_shortage must be true or false, not a string"},
      {"ShortageNumber", k, orderJson(lineJson(), R"(,"allow_shortage":1)"),
       "allow_shortage must be true or false"},
      {"ShortageNull", k, orderJson(lineJson(), R"(,"allow_shortage":null)"),
       "allow_shortage must be true or false, not null"},
      {"SameRecordTwice", k, orderJson(lineJson() + "," + lineJson()),
       "lines[1] names the same record as lines[0]"},
      {"SameRecordAfterDefaults", k,
       orderJson(
           lineJson() + "," + lineJson() + "," +
           lineJson(
               R"("goods_no":"G1","warehouse_no":"W1","stock_status":"1","stock_type":"1","goods_level":"A")")),
       "lines[1] names the same record as lines[0]"},
  };
}

std::vector<BadCase> otherBadCases() {
  const Kind r = Kind::kOrderRef;
  const Kind a = Kind::kAdjust;
  const Kind q = Kind::kRecordQuery;
  const Kind o = Kind::kOrderQuery;
  const std::string base = "dept_no=D1&goods_no=G1&warehouse_no=W1";
  return {
      {"RefNotJson", r, R"({"dept_no":"D1",)", "not valid JSON"},
      {"RefEmptyObject", r, "{}", "dept_no is required"},
      {"RefOrderMissing", r, R"({"dept_no":"D1"})", "order_no is required"},
      {"RefDeptNumber", r, R"({"dept_no":1,"order_no":"O1"})", "dept_no " + kFieldRule},
      {"RefOrder65", r, R"({"dept_no":"D1","order_no":")" + std::string(65, 'x') + "\"}",
       "order_no " + kFieldRule},
      {"RefOrderColon", r, R"({"dept_no":"D1","order_no":"a:b"})", "order_no " + kFieldRule},
      {"RefArray", r, R"([{"dept_no":"D1","order_no":"O1"}])", "body must be a JSON object"},
      {"AdjustBoth", a, adjustJson(R"("delta":1,"on_hand":2)"),
       "exactly one of delta and on_hand, not both"},
      {"AdjustNeither", a, adjustJson(""), "exactly one of delta and on_hand"},
      {"AdjustOnHandNegative", a, adjustJson(R"("on_hand":-1)"),
       "on_hand must be an integer 0..1000000000000"},
      {"AdjustOnHandAboveMax", a, adjustJson(R"("on_hand":1000000000001)"),
       "on_hand must be an integer 0..1000000000000"},
      {"AdjustOnHandDouble", a, adjustJson(R"("on_hand":3.0)"), "on_hand must be an integer"},
      {"AdjustDeltaAboveMax", a, adjustJson(R"("delta":1000000000001)"),
       "delta must be an integer -1000000000000..1000000000000"},
      {"AdjustDeltaBelowMin", a, adjustJson(R"("delta":-1000000000001)"),
       "delta must be an integer"},
      {"AdjustDeltaString", a, adjustJson(R"("delta":"5")"),
       "delta must be an integer -1000000000000..1000000000000, not a string"},
      {"AdjustDeltaNull", a, adjustJson(R"("delta":null)"), "delta must be an integer"},
      {"AdjustDeltaFraction", a, adjustJson(R"("delta":-2.5)"), "delta must be an integer"},
      {"AdjustDeltaUint64", a, adjustJson(R"("delta":10000000000000000000)"),
       "delta must be an integer"},
      {"AdjustRefMissing", a, R"({"dept_no":"D1","goods_no":"G1","warehouse_no":"W1","delta":1})",
       "ref is required"},
      {"AdjustRefEmpty", a, adjustJson(R"("delta":1)", R"("")"), "ref " + kFieldRule},
      {"AdjustRef65", a, adjustJson(R"("delta":1)", quoted(std::string(65, 'r'))),
       "ref " + kFieldRule},
      {"AdjustRefSpace", a, adjustJson(R"("delta":1)", R"("r 1")"), "ref " + kFieldRule},
      {"AdjustRefNumber", a, adjustJson(R"("delta":1)", "42"), "ref " + kFieldRule},
      {"AdjustDeptMissing", a, R"({"goods_no":"G1","warehouse_no":"W1","ref":"R1","delta":1})",
       "dept_no is required"},
      {"AdjustGoodsMissing", a, R"({"dept_no":"D1","warehouse_no":"W1","ref":"R1","delta":1})",
       "goods_no is required"},
      {"AdjustWarehouseMissing", a, R"({"dept_no":"D1","goods_no":"G1","ref":"R1","delta":1})",
       "warehouse_no is required"},
      {"AdjustTypeNumber", a,
       R"({"dept_no":"D1","goods_no":"G1","warehouse_no":"W1","stock_type":1,"ref":"R1","delta":1})",
       "stock_type " + kFieldRule},
      {"AdjustDuplicateDelta", a, adjustJson(R"("delta":1,"delta":2)"), "\"delta\" twice"},
      {"QueryEmpty", q, "", "dept_no is required"},
      {"QueryGoodsMissing", q, "dept_no=D1&warehouse_no=W1", "goods_no is required"},
      {"QueryWarehouseMissing", q, "dept_no=D1&goods_no=G1", "warehouse_no is required"},
      {"QueryRepeated", q, base + "&dept_no=D2", "dept_no is given twice"},
      {"QueryRepeatedEncodedName", q, base + "&goods%5Fno=G2", "goods_no is given twice"},
      {"QueryEmptyValue", q, "dept_no=&goods_no=G1&warehouse_no=W1", "dept_no " + kFieldRule},
      {"QueryNoValue", q, "dept_no&goods_no=G1&warehouse_no=W1", "dept_no " + kFieldRule},
      {"QueryEncodedBrace", q, "dept_no=D%7B1&goods_no=G1&warehouse_no=W1",
       "dept_no " + kFieldRule},
      {"QueryEncodedSpace", q, "dept_no=D1&goods_no=G%201&warehouse_no=W1",
       "goods_no " + kFieldRule},
      {"QueryPlus", q, "dept_no=D1&goods_no=G+1&warehouse_no=W1", "goods_no " + kFieldRule},
      {"QueryEncodedBar", q, "dept_no=D1&goods_no=G1&warehouse_no=W%7C1",
       "warehouse_no " + kFieldRule},
      {"QueryUnicode", q, "dept_no=D%C3%A9&goods_no=G1&warehouse_no=W1", "dept_no " + kFieldRule},
      {"QueryBadPercent", q, "dept_no=D%zz&goods_no=G1&warehouse_no=W1",
       "query string is malformed"},
      {"QueryTruncatedPercent", q, "dept_no=D1&goods_no=G1&warehouse_no=W%4",
       "query string is malformed"},
      {"Query65Chars", q, "dept_no=" + std::string(65, 'd') + "&goods_no=G1&warehouse_no=W1",
       "dept_no " + kFieldRule},
      {"QueryStatusEmpty", q, base + "&stock_status=", "stock_status " + kFieldRule},
      {"QueryLevelColon", q, base + "&goods_level=A%3A", "goods_level " + kFieldRule},
      {"OrderQueryEmpty", o, "", "dept_no is required"},
      {"OrderQueryOrderMissing", o, "dept_no=D1", "order_no is required"},
      {"OrderQueryRepeated", o, "dept_no=D1&order_no=O1&order_no=O1", "order_no is given twice"},
      {"OrderQueryBadOrder", o, "dept_no=D1&order_no=O%7D", "order_no " + kFieldRule},
  };
}

std::vector<BadCase> allBadCases() {
  std::vector<BadCase> cases = preallocateBadCases();
  for (BadCase& other : otherBadCases()) cases.push_back(std::move(other));
  return cases;
}

// Bodies may be 256 KiB; a failure report names the case instead of printing them.
void PrintTo(const BadCase& bad, std::ostream* out) { *out << bad.name; }

class BadRequestTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadRequestTest, IsRefusedWithAMessageNamingTheProblem) {
  const BadCase& bad = GetParam();
  const std::optional<Error> error = parseError(bad.kind, bad.input);
  ASSERT_TRUE(error.has_value()) << "accepted: " << bad.input.substr(0, 200);
  EXPECT_EQ(error->code, ErrorCode::kInvalidRequest);
  EXPECT_NE(error->message.find(bad.message_part), std::string::npos)
      << "message: " << error->message << "\nexpected to contain: " << bad.message_part;
  // A message never grows with the input.
  EXPECT_LT(error->message.size(), 200u) << error->message;
}

INSTANTIATE_TEST_SUITE_P(Codec, BadRequestTest, ::testing::ValuesIn(allBadCases()),
                         [](const auto& info) { return info.param.name; });

TEST(BadRequestTable, CoversEveryRequestKind) {
  std::size_t per_kind[5] = {};
  for (const BadCase& bad : allBadCases()) ++per_kind[static_cast<int>(bad.kind)];
  for (std::size_t count : per_kind) EXPECT_GE(count, 4u);
  EXPECT_GE(allBadCases().size(), 40u);
}

// ---- Right inputs ----

RecordKey key(std::string dept, std::string goods, std::string warehouse, std::string status = "1",
              std::string type = "1", std::string level = "A") {
  return RecordKey{std::move(dept),   std::move(goods), std::move(warehouse),
                   std::move(status), std::move(type),  std::move(level)};
}

TEST(ParsePreallocate, AppliesDefaultsAndCopiesDeptIntoLines) {
  const auto request = parsePreallocateRequest(orderJson(lineJson()));
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->dept_no, "D1");
  EXPECT_EQ(request->order_no, "O1");
  EXPECT_FALSE(request->allow_shortage);
  ASSERT_EQ(request->lines.size(), 1u);
  EXPECT_EQ(request->lines[0].key, key("D1", "G1", "W1", "1", "1", "A"));
  EXPECT_EQ(request->lines[0].qty, 5);
}

TEST(ParsePreallocate, ReadsEveryFieldAndIgnoresUnknownOnes) {
  const std::string body =
      R"( {"note":{"any":[1,2.5,null]},"dept_no":"dept-1.x_Y","order_no":"SO_2024.1-9",
    "allow_shortage":true,"lines":[
      {"goods_no":"G1","warehouse_no":"W1","stock_status":"2","stock_type":"3","goods_level":"B","qty":1,"x":"{|}"},
      {"dept_no":"dept-1.x_Y","goods_no":"G1","warehouse_no":"W1","qty":1000000000},
      {"goods_no":"G1","warehouse_no":"W2","goods_level":"B","qty":7}]} )";
  const auto request = parsePreallocateRequest(body);
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->dept_no, "dept-1.x_Y");
  EXPECT_EQ(request->order_no, "SO_2024.1-9");
  EXPECT_TRUE(request->allow_shortage);
  ASSERT_EQ(request->lines.size(), 3u);
  EXPECT_EQ(request->lines[0].key, key("dept-1.x_Y", "G1", "W1", "2", "3", "B"));
  EXPECT_EQ(request->lines[0].qty, 1);
  EXPECT_EQ(request->lines[1].key, key("dept-1.x_Y", "G1", "W1"));
  EXPECT_EQ(request->lines[1].qty, 1'000'000'000);
  EXPECT_EQ(request->lines[2].key, key("dept-1.x_Y", "G1", "W2", "1", "1", "B"));
}

TEST(ParsePreallocate, AcceptsManyUnknownKeysInEveryObject) {
  const std::string body = R"({"dept_no":"D1")" + manyUnknownKeys(300) +
                           R"(,"order_no":"O1","lines":[{"goods_no":"G1","warehouse_no":"W1")" +
                           manyUnknownKeys(300) + R"(,"qty":2}]})";
  auto request = parsePreallocateRequest(body);
  ASSERT_TRUE(request.has_value()) << request.error().message;
  EXPECT_EQ(request->order_no, "O1");
  ASSERT_EQ(request->lines.size(), 1u);
  EXPECT_EQ(request->lines[0].qty, 2);
}

TEST(ParsePreallocate, AcceptsTheLimitsExactly) {
  const std::string longest(limits::kFieldLengthMax, 'z');
  const auto longest_fields = parsePreallocateRequest(
      R"({"dept_no":")" + longest + R"(","order_no":")" + longest +
      R"(","allow_shortage":false,"lines":[)" +
      lineJson(R"("goods_no":")" + longest + R"(","warehouse_no":")" + longest + "\"") + "]}");
  ASSERT_TRUE(longest_fields) << longest_fields.error().message;
  EXPECT_EQ(longest_fields->lines[0].key.goods_no, longest);

  const auto most_lines = parsePreallocateRequest(orderWithLines(limits::kOrderLinesMax));
  ASSERT_TRUE(most_lines) << most_lines.error().message;
  ASSERT_EQ(most_lines->lines.size(), limits::kOrderLinesMax);
  EXPECT_EQ(most_lines->lines[199].key.goods_no, "G199");
}

TEST(ParsePreallocate, AcceptsNestingUpToTheDepthLimit) {
  // The body object and seven nested arrays are eight levels: the limit, not beyond it.
  const auto request = parsePreallocateRequest(orderNested(limits::kJsonDepthMax - 1));
  ASSERT_TRUE(request) << request.error().message;
}

// ---- The one-pass reader against the thorough parse ----

// Bodies of the preallocation request's shape, right and wrong in many ways at once: the keys
// in any order, some left out, repeated, escaped or unknown; values of every kind and length;
// lines of the same or other records and merchants; stray bytes. Each is as likely to be
// accepted as refused, so both readers see plenty of both.
class BodyMaker {
 public:
  explicit BodyMaker(std::uint32_t seed) : random_(seed) {}

  std::string body() {
    std::vector<std::string> members;
    if (chance(90)) members.push_back(member("dept_no", fieldValue("D1")));
    if (chance(90)) members.push_back(member("order_no", fieldValue("O1")));
    if (chance(95)) members.push_back(member("lines", linesValue()));
    if (chance(30)) members.push_back(member("allow_shortage", boolValue()));
    if (chance(10)) members.push_back(member("note", oddValue()));
    if (chance(5)) members.push_back(members.empty() ? member("x", "1") : members.front());
    std::string text = object(members);
    if (chance(10)) text = " \n" + text + "\n ";
    if (chance(5)) text += pick({"x", ",", "{}", "]"});
    if (chance(10) && !text.empty()) {  // one byte changed or removed
      const std::size_t at = below(text.size());
      if (chance(50)) {
        text.erase(at, 1);
      } else {
        text[at] = pick({"\"", ",", ":", "{", "}", "[", "]", "1", "a", "\\", " "})[0];
      }
    }
    return text;
  }

 private:
  bool chance(int percent) { return below(100) < static_cast<std::size_t>(percent); }
  std::size_t below(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(random_);
  }
  std::string pick(std::initializer_list<const char*> options) {
    return *(options.begin() + below(options.size()));
  }

  std::string member(const std::string& name, const std::string& value) {
    std::string key = "\"" + name + "\"";
    if (chance(3))
      key = "\"\\u00" + std::string(name[0] == 'd' ? "64" : "6f") + name.substr(1) + "\"";
    return key + (chance(10) ? " : " : ":") + value;
  }
  std::string object(std::vector<std::string> members) {
    std::shuffle(members.begin(), members.end(), random_);
    std::string text = "{";
    for (std::size_t i = 0; i < members.size(); ++i) text += (i > 0 ? "," : "") + members[i];
    return text + "}";
  }
  std::string fieldValue(const std::string& usual) {
    if (chance(85)) return "\"" + usual + "\"";
    switch (below(7)) {
      case 0: return "\"\"";
      case 1: return "\"" + std::string(limits::kFieldLengthMax, 'z') + "\"";
      case 2: return "\"" + std::string(limits::kFieldLengthMax + 1, 'z') + "\"";
      case 3: return "\"" + usual + " x\"";
      case 4: return "\"" + usual.substr(0, 1) + "\\u0031\"";  // escaped, yet a valid field
      case 5: return pick({"1", "null", "true", "[]", "{}", "\"a|b\""});
      default: return "\"" + usual + "-2._x\"";
    }
  }
  std::string qtyValue() {
    if (chance(80)) return pick({"1", "5", "7", "42", "1000000000"});
    return pick({"1", "5", "1000000000", "1000000001", "0", "-1", "5.0", "1e3",
                 "18446744073709551615", "\"5\"", "null", "7", "42"});
  }
  std::string boolValue() { return pick({"true", "false", "\"true\"", "1", "null"}); }
  std::string oddValue() { return pick({"1", "\"x\"", "[1,[2]]", "{\"a\":{}}", "null"}); }
  std::string lineValue() {
    std::vector<std::string> members;
    if (chance(95)) members.push_back(member("goods_no", fieldValue(chance(50) ? "G1" : "G2")));
    if (chance(95)) members.push_back(member("warehouse_no", fieldValue("W1")));
    if (chance(95)) members.push_back(member("qty", qtyValue()));
    if (chance(20)) members.push_back(member("stock_status", fieldValue("2")));
    if (chance(20)) members.push_back(member("stock_type", fieldValue("3")));
    if (chance(20)) members.push_back(member("goods_level", fieldValue("B")));
    if (chance(15)) members.push_back(member("dept_no", chance(70) ? "\"D1\"" : fieldValue("D2")));
    if (chance(8)) members.push_back(member("extra", oddValue()));
    if (chance(4) && !members.empty()) members.push_back(members.back());
    if (chance(3)) return oddValue();
    return object(members);
  }
  std::string linesValue() {
    if (chance(5)) return oddValue();
    const std::size_t count = chance(70) ? 1 : below(4);
    std::string text = "[";
    for (std::size_t i = 0; i < count; ++i) text += (i > 0 ? "," : "") + lineValue();
    return text + "]";
  }

  std::mt19937 random_;
};

void expectSameRequest(const PreallocateRequest& quick, const PreallocateRequest& thorough) {
  EXPECT_EQ(quick.dept_no, thorough.dept_no);
  EXPECT_EQ(quick.order_no, thorough.order_no);
  EXPECT_EQ(quick.allow_shortage, thorough.allow_shortage);
  ASSERT_EQ(quick.lines.size(), thorough.lines.size());
  for (std::size_t i = 0; i < quick.lines.size(); ++i) {
    EXPECT_EQ(quick.lines[i].key, thorough.lines[i].key) << "line " << i;
    EXPECT_EQ(quick.lines[i].qty, thorough.lines[i].qty) << "line " << i;
  }
}

// What the one-pass reader accepts, the thorough parse accepts too, with the same request;
// and the commonest bodies do go the one-pass way.
TEST(ParsePreallocate, TheOnePassReaderAcceptsOnlyWhatTheThoroughParseAcceptsAlike) {
  BodyMaker maker(20261201);
  int quick_count = 0;
  int thorough_only = 0;
  int refused = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string body = maker.body();
    const auto quick = detail::parsePreallocateRequestInOnePass(body);
    const auto thorough = detail::parsePreallocateRequestThoroughly(body);
    if (quick) {
      ++quick_count;
      ASSERT_TRUE(thorough) << body << "\n" << thorough.error().message;
      expectSameRequest(*quick, *thorough);
      if (HasFailure()) FAIL() << body;
    } else if (thorough) {
      ++thorough_only;
    } else {
      ++refused;
    }
    const auto combined = parsePreallocateRequest(body);
    ASSERT_EQ(combined.has_value(), thorough.has_value()) << body;
    if (!combined) {
      EXPECT_EQ(combined.error().message, thorough.error().message) << body;
    }
  }
  // Each outcome is common, so each comparison above ran many times.
  EXPECT_GT(quick_count, 2000);
  EXPECT_GT(thorough_only, 500);
  EXPECT_GT(refused, 2000);

  for (const std::string& usual :
       {orderJson(lineJson()), orderWithLines(3),
        orderJson(lineJson(), R"(,"allow_shortage":true)"), orderJson(lineJson()) + "\n",
        std::string(R"({"lines":[{"qty":3,"warehouse_no":"W1","dept_no":"D1","goods_no":"G"}],)"
                    R"("order_no":"O","dept_no":"D1"})")}) {
    EXPECT_TRUE(detail::parsePreallocateRequestInOnePass(usual)) << usual;
  }
}

TEST(ParseOrderRef, ReadsBothFields) {
  const auto ref = parseOrderRefRequest(R"({"order_no":"O-9","dept_no":"D1","reason":"x"})");
  ASSERT_TRUE(ref) << ref.error().message;
  EXPECT_EQ(ref->dept_no, "D1");
  EXPECT_EQ(ref->order_no, "O-9");
}

TEST(ParseAdjust, ReadsDeltaOrOnHandWithinTheLimits) {
  struct Case {
    std::string change;
    std::optional<std::int64_t> delta;
    std::optional<std::int64_t> on_hand;
  };
  const std::vector<Case> cases = {
      {R"("delta":5)", 5, std::nullopt},
      {R"("delta":-7)", -7, std::nullopt},
      {R"("delta":0)", 0, std::nullopt},
      {R"("delta":-0)", 0, std::nullopt},
      {R"("delta":1000000000000)", limits::kAdjustDeltaMax, std::nullopt},
      {R"("delta":-1000000000000)", -limits::kAdjustDeltaMax, std::nullopt},
      {R"("on_hand":0)", std::nullopt, 0},
      {R"("on_hand":1000000000000)", std::nullopt, limits::kOnHandMax},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.change);
    const auto request = parseAdjustRequest(adjustJson(c.change));
    ASSERT_TRUE(request) << request.error().message;
    EXPECT_EQ(request->key, key("D1", "G1", "W1"));
    EXPECT_EQ(request->ref, "R1");
    EXPECT_EQ(request->delta, c.delta);
    EXPECT_EQ(request->on_hand, c.on_hand);
  }
}

TEST(ParseAdjust, ReadsTheOptionalRecordFields) {
  const auto request = parseAdjustRequest(
      R"({"ref":"inbound-7","on_hand":3,"goods_level":"C","stock_type":"9","stock_status":"0",
          "warehouse_no":"W1","goods_no":"G1","dept_no":"D1"})");
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->key, key("D1", "G1", "W1", "0", "9", "C"));
  EXPECT_EQ(request->ref, "inbound-7");
}

TEST(ParseRecordQuery, AppliesDefaultsDecodesAndIgnoresUnknownParameters) {
  struct Case {
    std::string query;
    RecordKey expected;
  };
  const std::vector<Case> cases = {
      {"dept_no=D1&goods_no=G1&warehouse_no=W1", key("D1", "G1", "W1")},
      {"warehouse_no=W1&goods_no=G1&dept_no=D1&x=%7B&&flag", key("D1", "G1", "W1")},
      {"dept_no=D1&goods_no=G%2D1%2e2&warehouse_no=W%5f1", key("D1", "G-1.2", "W_1")},
      {"dept%5Fno=D1&goods_no=G1&warehouse_no=W1&stock_status=2&stock_type=3&goods_level=B",
       key("D1", "G1", "W1", "2", "3", "B")},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.query);
    const auto parsed = parseRecordQuery(c.query);
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(*parsed, c.expected);
  }
}

TEST(ParseOrderQuery, ReadsBothParameters) {
  const auto parsed = parseOrderQuery("order_no=SO%2D1&dept_no=D1&page=2");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->dept_no, "D1");
  EXPECT_EQ(parsed->order_no, "SO-1");
}

TEST(ParseMerchantPath, DecodesEscapesThenChecksTheField) {
  for (const auto& [segment, expected] : std::vector<std::pair<std::string, std::string>>{
           {"D1", "D1"}, {"D%31", "D1"}, {"%44%2d%5F.1", "D-_.1"}}) {
    const auto parsed = parseMerchantPath(segment);
    ASSERT_TRUE(parsed) << segment << ": " << parsed.error().message;
    EXPECT_EQ(*parsed, expected);
  }
  for (const std::string segment : {"", "D%2F1", "D%201", "D%3", "D%zz", "D/1", "%7Bx%7D"}) {
    const auto parsed = parseMerchantPath(segment);
    ASSERT_FALSE(parsed) << segment;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidRequest) << segment;
  }
}

// ---- The adjust digest ----

AdjustRequest adjust(RecordKey record, std::optional<std::int64_t> delta,
                     std::optional<std::int64_t> on_hand, std::string ref = "R1") {
  return AdjustRequest{std::move(record), std::move(ref), delta, on_hand};
}

TEST(AdjustDigest, IsEqualForTheSameMeaningWhateverTheSpelling) {
  const auto first = parseAdjustRequest(adjustJson(R"("delta":5)"));
  const auto second = parseAdjustRequest(
      R"({"delta":5,"goods_level":"A","stock_type":"1","stock_status":"1","ref":"R1",
          "warehouse_no":"W1","goods_no":"G1","dept_no":"D1","comment":"ignored"})");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(adjustDigest(*first), adjustDigest(*second));
  // The ref is the idempotency key, not part of the body's meaning.
  EXPECT_EQ(adjustDigest(adjust(key("D", "G", "W"), 5, std::nullopt, "R1")),
            adjustDigest(adjust(key("D", "G", "W"), 5, std::nullopt, "R2")));
}

TEST(AdjustDigest, DiffersWhenAnythingMeaningfulDiffers) {
  const std::vector<AdjustRequest> distinct = {
      adjust(key("D", "G", "W"), 5, std::nullopt),
      adjust(key("D", "G", "W"), 6, std::nullopt),
      adjust(key("D", "G", "W"), -5, std::nullopt),
      adjust(key("D", "G", "W"), std::nullopt, 5),
      adjust(key("D", "G", "W"), std::nullopt, 0),
      adjust(key("D", "G", "W"), 0, std::nullopt),
      adjust(key("D2", "G", "W"), 5, std::nullopt),
      adjust(key("D", "G2", "W"), 5, std::nullopt),
      adjust(key("D", "G", "W2"), 5, std::nullopt),
      adjust(key("D", "G", "W", "2"), 5, std::nullopt),
      adjust(key("D", "G", "W", "1", "2"), 5, std::nullopt),
      adjust(key("D", "G", "W", "1", "1", "B"), 5, std::nullopt),
      adjust(key("D", "G", "W", "11", "1", "A"), 5, std::nullopt),
      adjust(key("D", "G", "W", "1", "11", "A"), 5, std::nullopt),
  };
  for (std::size_t i = 0; i < distinct.size(); ++i) {
    for (std::size_t j = i + 1; j < distinct.size(); ++j) {
      EXPECT_NE(adjustDigest(distinct[i]), adjustDigest(distinct[j])) << i << " vs " << j;
    }
  }
}

// ---- Encoders ----

json::value parsed(const std::string& text) {
  json::error_code ec;
  json::value value = json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  return value;
}

LineOutcome outcome(RecordKey record, std::int64_t qty, std::int64_t allocated,
                    std::int64_t shortage) {
  return LineOutcome{std::move(record), qty, allocated, shortage};
}

TEST(EncodeOrderAnswer, WritesTheContractFieldsInOrder) {
  const OrderAnswer answer{"O1",
                           OrderStatus::kShortage,
                           true,
                           {outcome(key("D1", "G1", "W1"), 5, 3, 2),
                            outcome(key("D1", "G2", "W1", "2", "3", "B"), 1, 1, 0)}};
  EXPECT_EQ(
      encodeOrderAnswer(answer),
      R"({"order_no":"O1","status":"shortage","replayed":true,"lines":[)"
      R"({"dept_no":"D1","goods_no":"G1","warehouse_no":"W1","stock_status":"1","stock_type":"1","goods_level":"A","qty":5,"allocated":3,"shortage":2},)"
      R"({"dept_no":"D1","goods_no":"G2","warehouse_no":"W1","stock_status":"2","stock_type":"3","goods_level":"B","qty":1,"allocated":1,"shortage":0}]})");
}

TEST(EncodeOrderAnswer, EscapesWhatJsonMustEscape) {
  // The parsers admit none of these into an answer, but the encoder must not rely on it.
  const std::string odd = "a\"b\\c\nd\x01e";
  const OrderAnswer answer{
      odd, OrderStatus::kAllocated, false, {outcome(key(odd, "G1", "W1"), 1, 1, 0)}};
  const json::value encoded = parsed(encodeOrderAnswer(answer));
  EXPECT_EQ(encoded.at("order_no").as_string(), odd);
  EXPECT_EQ(encoded.at("lines").at(0).at("dept_no").as_string(), odd);
}

TEST(EncodeOrderAnswer, RoundTripsThroughTheRequestParser) {
  // The answer's lines, sent back as a request, name the same records and quantities.
  const auto request = parsePreallocateRequest(orderWithLines(3));
  ASSERT_TRUE(request);
  OrderAnswer answer{request->order_no, OrderStatus::kAllocated, false, {}};
  for (const LineRequest& line : request->lines)
    answer.lines.push_back(outcome(line.key, line.qty, line.qty, 0));
  const json::value encoded = parsed(encodeOrderAnswer(answer));
  json::object again = encoded.as_object();
  again["dept_no"] = request->dept_no;
  const auto reparsed = parsePreallocateRequest(json::serialize(again));
  ASSERT_TRUE(reparsed) << reparsed.error().message;
  ASSERT_EQ(reparsed->lines.size(), request->lines.size());
  for (std::size_t i = 0; i < request->lines.size(); ++i) {
    EXPECT_EQ(reparsed->lines[i].key, request->lines[i].key);
    EXPECT_EQ(reparsed->lines[i].qty, request->lines[i].qty);
  }
}

TEST(EncodeOrderView, HasNoReplayedAndNamesEveryStatus) {
  const std::vector<std::pair<OrderStatus, std::string>> statuses = {
      {OrderStatus::kAllocated, "allocated"},
      {OrderStatus::kShortage, "shortage"},
      {OrderStatus::kRolledBack, "rolled_back"},
      {OrderStatus::kDeducted, "deducted"},
  };
  for (const auto& [status, name] : statuses) {
    const OrderAnswer answer{"O1", status, true, {outcome(key("D1", "G1", "W1"), 2, 2, 0)}};
    EXPECT_EQ(
        parsed(encodeOrderView(answer)),
        parsed(
            R"({"order_no":"O1","status":")" + name +
            R"(","lines":[{"dept_no":"D1","goods_no":"G1","warehouse_no":"W1","stock_status":"1",)"
            R"("stock_type":"1","goods_level":"A","qty":2,"allocated":2,"shortage":0}]})"));
  }
}

TEST(EncodeEndAnswer, WritesOrderStatusAndReplayed) {
  EXPECT_EQ(encodeEndAnswer(EndAnswer{"O1", OrderStatus::kRolledBack, false}),
            R"({"order_no":"O1","status":"rolled_back","replayed":false})");
  EXPECT_EQ(encodeEndAnswer(EndAnswer{"O2", OrderStatus::kDeducted, true}),
            R"({"order_no":"O2","status":"deducted","replayed":true})");
}

TEST(EncodeRecord, WritesFieldsQuantitiesAvailableAndRoute) {
  EXPECT_EQ(
      encodeRecord(key("D1", "G1", "W1"), Quantities{10, 4, 2}, Route::kRedis),
      R"({"dept_no":"D1","goods_no":"G1","warehouse_no":"W1","stock_status":"1","stock_type":"1",)"
      R"("goods_level":"A","on_hand":10,"preallocated":4,"available":6,"shortage":2,"route":"redis"})");
  const json::value mysql = parsed(
      encodeRecord(key("D1", "G1", "W1"), Quantities{1'000'000'000'000, 0, 0}, Route::kMysql));
  EXPECT_EQ(mysql.at("route"), "mysql");
  EXPECT_EQ(mysql.at("available").as_int64(), 1'000'000'000'000);
}

TEST(EncodeRecord, RoundTripsThroughTheQueryParser) {
  const RecordKey record = key("D-1", "G.2", "W_3", "4", "5", "C");
  const json::value encoded = parsed(encodeRecord(record, Quantities{}, Route::kRedis));
  std::string query;
  for (const char* field :
       {"dept_no", "goods_no", "warehouse_no", "stock_status", "stock_type", "goods_level"}) {
    query += std::string(query.empty() ? "" : "&") + field + "=" +
             std::string(encoded.at(field).as_string());
  }
  const auto reparsed = parseRecordQuery(query);
  ASSERT_TRUE(reparsed) << reparsed.error().message;
  EXPECT_EQ(*reparsed, record);
}

TEST(EncodeError, WritesCodeNameAndEscapedMessage) {
  EXPECT_EQ(
      encodeError(Error{ErrorCode::kIdempotencyConflict, "ref R1 was used with another body"}),
      R"({"error":"idempotency_conflict","message":"ref R1 was used with another body"})");
  const json::value escaped =
      parsed(encodeError(Error{ErrorCode::kUnavailable, "quote \" back\\slash \n end"}));
  EXPECT_EQ(escaped.at("error"), "unavailable");
  EXPECT_EQ(escaped.at("message"), "quote \" back\\slash \n end");
}

TEST(EncodeError, KeepsTheAnswerValidJsonWhenTheMessageIsNotUtf8) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6",
       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6"},  // valid
      {"bad \xff byte", "bad ? byte"},
      {"overlong \xc0\xaf", "overlong ??"},
      {"surrogate \xed\xa0\x80", "surrogate ???"},
      {"truncated \xe2\x82", "truncated ??"},
      {"above max \xf4\x90\x80\x80", "above max ????"},
  };
  for (const auto& [message, expected] : cases) {
    const std::string encoded = encodeError(Error{ErrorCode::kInternal, message});
    json::error_code ec;
    const json::value value = json::parse(encoded, ec);  // strict: refuses invalid UTF-8
    ASSERT_FALSE(ec) << encoded;
    EXPECT_EQ(value.at("message"), expected.c_str());
    EXPECT_EQ(value.at("error"), "internal");
  }
}

TEST(EncodeRefusal, NamesTheShortLines) {
  const PreallocateRefusal refusal{{ShortLine{key("D1", "G1", "W1"), 5, 2},
                                    ShortLine{key("D1", "G7", "W2", "1", "1", "B"), 3, 0}}};
  const json::value value = parsed(encodeRefusal("O1", refusal));
  EXPECT_EQ(value.at("error"), "insufficient_stock");
  EXPECT_EQ(value.at("order_no"), "O1");
  const std::string message(value.at("message").as_string());
  EXPECT_NE(message.find("2 lines"), std::string::npos) << message;
  EXPECT_NE(message.find("goods_no G1 in warehouse_no W1"), std::string::npos) << message;
  EXPECT_NE(message.find("goods_no G7 in warehouse_no W2 (1/1/B) wants 3, available 0"),
            std::string::npos)
      << message;
  EXPECT_EQ(
      value.at("lines"),
      parsed(
          R"([{"dept_no":"D1","goods_no":"G1","warehouse_no":"W1","stock_status":"1","stock_type":"1",)"
          R"("goods_level":"A","qty":5,"available":2},)"
          R"({"dept_no":"D1","goods_no":"G7","warehouse_no":"W2","stock_status":"1","stock_type":"1",)"
          R"("goods_level":"B","qty":3,"available":0}])"));
}

TEST(EncodeRefusal, BoundsTheMessageButListsEveryLine) {
  PreallocateRefusal refusal;
  for (int i = 0; i < 200; ++i)
    refusal.short_lines.push_back(ShortLine{key("D1", "G" + std::to_string(i), "W1"), 2, 1});
  const json::value value = parsed(encodeRefusal("O1", refusal));
  const std::string message(value.at("message").as_string());
  EXPECT_NE(message.find("200 lines"), std::string::npos) << message;
  EXPECT_NE(message.find("and 190 more"), std::string::npos) << message;
  EXPECT_EQ(message.find("G10 "), std::string::npos) << message;
  EXPECT_EQ(value.at("lines").as_array().size(), 200u);
}

}  // namespace
}  // namespace allot::http
