// The scenarios of allot-bench: the requests each one sends, the records it sets up before
// the run (POST /v1/stock/adjust) and the invariants it checks after (GET /v1/stock).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/http_client.h"
#include "core/result.h"
#include "load_engine.h"

namespace allot::bench {

enum class Scenario { kHot, kFlashSale, kUniform, kMultiLine, kRetryStorm, kConstant };

[[nodiscard]] std::optional<Scenario> parseScenario(std::string_view name);
[[nodiscard]] std::string_view scenarioName(Scenario scenario);
[[nodiscard]] const std::vector<std::string>& scenarioNames();

struct ScenarioOptions {
  Scenario scenario = Scenario::kHot;
  std::string dept_no;  // unique per run
  std::uint32_t records = 1;
  std::int64_t stock = 0;  // on_hand of every record
  int lines = 1;           // lines per order (qty 1 each)
  // The server, and for `constant` the path and body to POST.
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::string token;
  std::string target = "/";
  std::string body;
};

// The defaults of a scenario (records, stock, lines) before the command line changes them.
[[nodiscard]] ScenarioOptions defaultsFor(Scenario scenario);

[[nodiscard]] std::unique_ptr<Workload> makeWorkload(const ScenarioOptions& options);

// Creates every record of the run with its stock; the route the server reports is returned.
[[nodiscard]] Result<std::string> setUpRecords(const ScenarioOptions& options);

struct InvariantReport {
  bool checked = false;
  bool ok = true;
  std::string route;
  std::int64_t stock_total = 0;          // on_hand over all records at set-up
  std::int64_t demand = 0;               // units asked for (orders x lines, qty 1)
  std::int64_t allocated_answers = 0;    // sum of allocated over first 200 answers
  std::int64_t expected_allocated = -1;  // flash-sale: min(demand, stock); else -1 (not fixed)
  std::int64_t preallocated_total = 0;   // sum of preallocated over GET /v1/stock
  std::int64_t oversell = 0;
  std::int64_t negative_fields = 0;
  std::int64_t mismatched_records = 0;
  std::vector<std::string> failures;
};

// Reads every record back and compares it with the answers counted in `tally`.
[[nodiscard]] InvariantReport checkInvariants(const ScenarioOptions& options, const Tally& tally);

}  // namespace allot::bench
