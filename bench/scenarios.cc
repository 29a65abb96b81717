#include "scenarios.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <charconv>
#include <functional>
#include <mutex>
#include <thread>

namespace allot::bench {

namespace json = boost::json;

namespace {

constexpr int kOrderDigits = 12;
constexpr int kGoodsDigits = 5;
constexpr std::uint32_t kRecordsMax = 99'999;  // what kGoodsDigits can name
constexpr int kSetUpThreads = 8;
constexpr std::size_t kFailuresShownMax = 10;

struct NamedScenario {
  Scenario scenario;
  std::string_view name;
};
constexpr NamedScenario kScenarios[] = {
    {Scenario::kHot, "hot"},
    {Scenario::kFlashSale, "flash-sale"},
    {Scenario::kUniform, "uniform"},
    {Scenario::kMultiLine, "multi-line"},
    {Scenario::kRetryStorm, "retry-storm"},
    {Scenario::kConstant, "constant"},
};

std::string goodsNo(std::uint32_t record) { return fmt::format("G{:0{}}", record, kGoodsDigits); }

// Writes `value` as `width` decimal digits (zero-padded) over text[offset, offset + width).
void writeDigits(std::string& text, std::size_t offset, int width, std::uint64_t value) {
  for (int i = width - 1; i >= 0; --i) {
    text[offset + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

std::string requestHead(const ScenarioOptions& options, std::string_view target,
                        std::size_t body_bytes) {
  std::string head =
      fmt::format("POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\n", target,
                  options.host, options.port);
  if (!options.token.empty()) head += fmt::format("Authorization: Bearer {}\r\n", options.token);
  head += fmt::format("Content-Length: {}\r\n\r\n", body_bytes);
  return head;
}

// POST /v1/preallocations with `lines` lines of qty 1; the order number and the goods
// numbers are fixed-width digits patched into a copy of one prebuilt request.
class OrderWorkload final : public Workload {
 public:
  explicit OrderWorkload(const ScenarioOptions& options) : options_(options) {
    std::string body = fmt::format(R"({{"dept_no":"{}","order_no":"O{:0{}}","lines":[)",
                                   options.dept_no, 0, kOrderDigits);
    for (int line = 0; line < options.lines; ++line) {
      if (line > 0) body += ',';
      body += fmt::format(R"({{"goods_no":"{}","warehouse_no":"W1","qty":1}})", goodsNo(0));
    }
    body += "]}";
    request_ = requestHead(options, "/v1/preallocations", body.size()) + body;
    order_offset_ = request_.find("\"order_no\":\"O") + 13;
    std::size_t at = order_offset_;
    for (int line = 0; line < options.lines; ++line) {
      at = request_.find("\"goods_no\":\"G", at) + 13;
      goods_offsets_.push_back(at);
    }
  }

  int copies() const override { return options_.scenario == Scenario::kRetryStorm ? 2 : 1; }
  std::uint32_t recordCount() const override { return options_.records; }

  void prepare(std::uint64_t sequence, std::uint64_t random, RequestSlot& slot) const override {
    slot.request.assign(request_);
    writeDigits(slot.request, order_offset_, kOrderDigits, sequence);
    // Uniform and multi-line pick a random record (multi-line: and the records after it);
    // the other scenarios have one record.
    const auto first = static_cast<std::uint32_t>(random % options_.records);
    slot.lines = options_.lines;
    for (int line = 0; line < options_.lines; ++line) {
      const auto record = (first + static_cast<std::uint32_t>(line)) % options_.records;
      slot.records[static_cast<std::size_t>(line)] = record;
      writeDigits(slot.request, goods_offsets_[static_cast<std::size_t>(line)], kGoodsDigits,
                  record);
    }
  }

  void account(const RequestSlot& slot, const Response& response, bool measured,
               Tally& tally) const override {
    if (response.status != 200) return;
    if (response.body.find("\"replayed\":true") != std::string_view::npos) {
      ++tally.replayed;
      return;
    }
    // Lines come back in the order they were sent, each with "allocated": N (qty 1, all or
    // nothing, so N is 1). The status field ("status":"allocated") has no colon after it.
    constexpr std::string_view kKey = "\"allocated\":";
    std::size_t at = 0;
    int line = 0;
    while ((at = response.body.find(kKey, at)) != std::string_view::npos) {
      at += kKey.size();
      std::int64_t allocated = 0;
      std::from_chars(response.body.data() + at, response.body.data() + response.body.size(),
                      allocated);
      if (line < slot.lines) {
        tally.allocated_by_record[slot.records[static_cast<std::size_t>(line)]] += allocated;
      }
      tally.allocated_total += allocated;
      if (allocated != 1) ++tally.answer_mismatches;
      ++line;
    }
    if (line != slot.lines) ++tally.answer_mismatches;
    if (measured) tally.measured_holds += static_cast<std::uint64_t>(slot.lines);
  }

 private:
  ScenarioOptions options_;
  std::string request_;
  std::size_t order_offset_ = 0;
  std::vector<std::size_t> goods_offsets_;
};

// The HTTP ceiling: the same POST to any server, counting only statuses.
class ConstantWorkload final : public Workload {
 public:
  explicit ConstantWorkload(const ScenarioOptions& options)
      : request_(requestHead(options, options.target, options.body.size()) + options.body) {}

  void prepare(std::uint64_t, std::uint64_t, RequestSlot& slot) const override {
    if (slot.request.empty()) slot.request = request_;
  }
  void account(const RequestSlot&, const Response&, bool, Tally&) const override {}

 private:
  std::string request_;
};

// Calls `visit(client, record)` for every record, from a few threads with one keep-alive
// client each. The first failure is returned (the others still run to their end).
Result<void> forEachRecord(
    const ScenarioOptions& options,
    const std::function<Result<void>(cli::HttpClient&, std::uint32_t)>& visit) {
  std::atomic<std::uint32_t> next{0};
  std::mutex mutex;
  std::optional<Error> first_error;
  std::vector<std::thread> threads;
  const int count = static_cast<int>(std::min<std::uint32_t>(kSetUpThreads, options.records));
  for (int t = 0; t < count; ++t) {
    threads.emplace_back([&] {
      cli::HttpClient client(cli::Endpoint{options.host, options.port}, options.token);
      for (auto record = next++; record < options.records; record = next++) {
        auto result = visit(client, record);
        if (!result) {
          std::lock_guard lock(mutex);
          if (!first_error) first_error = result.error();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  if (first_error) return std::unexpected(*first_error);
  return {};
}

std::int64_t field(const json::object& record, std::string_view name) {
  const auto* value = record.if_contains(name);
  return value != nullptr && value->is_int64() ? value->as_int64() : -1;
}

std::string stringField(const json::object& record, std::string_view name) {
  const auto* value = record.if_contains(name);
  return value != nullptr && value->is_string() ? std::string(value->as_string()) : "";
}

Result<json::object> parseObject(const cli::HttpResponse& response, std::string_view what) {
  boost::system::error_code error;
  auto parsed = json::parse(response.body, error);
  if (response.status != 200 || error || !parsed.is_object()) {
    return fail(ErrorCode::kUnavailable,
                fmt::format("{}: HTTP {}: {}", what, response.status, response.body));
  }
  return std::move(parsed.as_object());
}

}  // namespace

std::optional<Scenario> parseScenario(std::string_view name) {
  for (const auto& entry : kScenarios) {
    if (entry.name == name) return entry.scenario;
  }
  return std::nullopt;
}

std::string_view scenarioName(Scenario scenario) {
  for (const auto& entry : kScenarios) {
    if (entry.scenario == scenario) return entry.name;
  }
  return "?";
}

const std::vector<std::string>& scenarioNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& entry : kScenarios) out.emplace_back(entry.name);
    return out;
  }();
  return names;
}

ScenarioOptions defaultsFor(Scenario scenario) {
  ScenarioOptions options;
  options.scenario = scenario;
  options.stock = 1'000'000'000;  // ample: no run holds that many
  switch (scenario) {
    case Scenario::kFlashSale: options.stock = 1'000; break;
    case Scenario::kUniform: options.records = 10'000; break;
    case Scenario::kMultiLine:
      options.records = 1'000;
      options.lines = 5;
      break;
    default: break;
  }
  return options;
}

std::unique_ptr<Workload> makeWorkload(const ScenarioOptions& options) {
  if (options.scenario == Scenario::kConstant) return std::make_unique<ConstantWorkload>(options);
  return std::make_unique<OrderWorkload>(options);
}

Result<std::string> setUpRecords(const ScenarioOptions& options) {
  if (options.records == 0 || options.records > kRecordsMax) {
    return fail(ErrorCode::kInvalidRequest, fmt::format("records must be 1..{}", kRecordsMax));
  }
  if (options.lines < 1 || options.lines > kLinesPerOrderMax ||
      static_cast<std::uint32_t>(options.lines) > options.records) {
    return fail(ErrorCode::kInvalidRequest,
                fmt::format("lines must be 1..{} and at most the records", kLinesPerOrderMax));
  }
  std::mutex mutex;
  std::string route;
  auto result =
      forEachRecord(options, [&](cli::HttpClient& client, std::uint32_t record) -> Result<void> {
        const auto body = fmt::format(
            R"({{"dept_no":"{}","goods_no":"{}","warehouse_no":"W1","on_hand":{},"ref":"setup-{}"}})",
            options.dept_no, goodsNo(record), options.stock, goodsNo(record));
        ALLOT_TRY(response, client.post("/v1/stock/adjust", body));
        ALLOT_TRY(object, parseObject(response, "POST /v1/stock/adjust"));
        std::lock_guard lock(mutex);
        if (route.empty()) route = stringField(object, "route");
        return {};
      });
  if (!result) return std::unexpected(result.error());
  return route;
}

InvariantReport checkInvariants(const ScenarioOptions& options, const Tally& tally) {
  InvariantReport report;
  report.checked = true;
  report.stock_total = options.stock * options.records;
  report.demand = static_cast<std::int64_t>(tally.orders) * options.lines;
  report.allocated_answers = tally.allocated_total;
  std::mutex mutex;
  auto note = [&](std::string failure) {
    std::lock_guard lock(mutex);
    report.ok = false;
    if (report.failures.size() < kFailuresShownMax) report.failures.push_back(std::move(failure));
  };
  auto result =
      forEachRecord(options, [&](cli::HttpClient& client, std::uint32_t record) -> Result<void> {
        const auto target = fmt::format("/v1/stock?dept_no={}&goods_no={}&warehouse_no=W1",
                                        options.dept_no, goodsNo(record));
        ALLOT_TRY(response, client.get(target));
        ALLOT_TRY(object, parseObject(response, "GET /v1/stock"));
        const auto on_hand = field(object, "on_hand");
        const auto preallocated = field(object, "preallocated");
        const auto available = field(object, "available");
        const auto shortage = field(object, "shortage");
        const auto answered =
            record < tally.allocated_by_record.size() ? tally.allocated_by_record[record] : 0;
        std::lock_guard lock(mutex);
        if (report.route.empty()) report.route = stringField(object, "route");
        report.preallocated_total += preallocated;
        const int negative = (on_hand < 0) + (preallocated < 0) + (available < 0) + (shortage < 0);
        report.negative_fields += negative;
        report.oversell += std::max<std::int64_t>(0, preallocated - on_hand);
        const bool mismatched = preallocated != answered || on_hand != options.stock ||
                                available != on_hand - preallocated || shortage != 0 ||
                                negative > 0;
        if (mismatched) {
          ++report.mismatched_records;
          report.ok = false;
          if (report.failures.size() < kFailuresShownMax) {
            report.failures.push_back(fmt::format(
                "{}: on_hand {} preallocated {} available {} shortage {}, answers allocated {}",
                goodsNo(record), on_hand, preallocated, available, shortage, answered));
          }
        }
        return {};
      });
  if (!result) note(fmt::format("reading the records back failed: {}", result.error().message));
  report.oversell = std::max(report.oversell, report.allocated_answers - report.stock_total);
  if (report.oversell > 0) note(fmt::format("oversell: {} units", report.oversell));
  if (options.scenario == Scenario::kFlashSale) {
    report.expected_allocated = std::min(report.demand, report.stock_total);
    if (report.allocated_answers != report.expected_allocated) {
      note(fmt::format("allocated in answers {} != min(demand {}, stock {})",
                       report.allocated_answers, report.demand, report.stock_total));
    }
  }
  if (report.preallocated_total != report.allocated_answers) {
    note(fmt::format("preallocated {} != allocated in 200 answers {}", report.preallocated_total,
                     report.allocated_answers));
  }
  if (tally.answer_mismatches > 0) {
    note(fmt::format("{} 200 answers did not match their request", tally.answer_mismatches));
  }
  if (tally.transport_errors > 0) {
    note(fmt::format("{} requests lost in transport: their holds are unknown",
                     tally.transport_errors));
  }
  return report;
}

}  // namespace allot::bench
