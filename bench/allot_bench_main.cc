// allot-bench: the load generator of allot (docs/bench.md).
//
//   allot-bench --url http://127.0.0.1:8080 --scenario hot --connections 64 --duration 10
//   allot-bench --scenario flash-sale --stock 1000 --json-out flash.json
//   allot-bench --scenario constant --url http://127.0.0.1:18090/ --body '{"ok":true}'
//   allot-bench plot --svg-out results.svg hot.json flash.json ...
//
// Exit status: 0 when the run finished and its invariants held, 1 when an invariant failed
// or the run timed out, 2 when the run could not start (bad arguments, set-up failed).
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <optional>

#include "cli/http_client.h"
#include "domain/record_key.h"
#include "load_engine.h"
#include "plot.h"
#include "result.h"
#include "scenarios.h"

namespace allot::bench {
namespace {

struct RunArguments {
  std::string url = "http://127.0.0.1:8080";
  std::string token;
  std::string scenario = "hot";
  std::string label;
  std::string json_out;
  std::string dept_prefix = "bench";
  std::string dept_no;  // exact, instead of a unique one from the prefix
  std::string body = R"({"order_no":"x","status":"allocated","replayed":false})";
  int connections = 64;
  int threads = 1;
  double duration_seconds = 10.0;
  double warmup_seconds = 1.0;
  std::uint64_t requests = 0;
  std::optional<std::uint32_t> records;
  std::optional<std::int64_t> stock;
  std::optional<std::int64_t> demand;
  std::optional<int> lines;
  bool quiet = false;
};

struct PlotArguments {
  std::string svg_out = "allot-bench.svg";
  std::string title = "allot-bench";
  std::vector<std::string> inputs;
};

// Splits "http://host:port/path" into the endpoint and the path ("/" when absent).
Result<std::pair<cli::Endpoint, std::string>> splitUrl(const std::string& url) {
  const auto scheme_end = url.find("://");
  const auto path_start = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
  const std::string base = url.substr(0, path_start);
  const std::string path = path_start == std::string::npos ? "/" : url.substr(path_start);
  ALLOT_TRY(endpoint, cli::parseBaseUrl(base));
  return std::pair{endpoint, path};
}

// A dept_no no earlier run used: the prefix, the time in milliseconds and the process id.
std::string uniqueDeptNo(const std::string& prefix) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return fmt::format("{}-{}-{}", prefix, now, ::getpid());
}

Result<ScenarioOptions> scenarioOptions(const RunArguments& args, Scenario scenario) {
  auto options = defaultsFor(scenario);
  ALLOT_TRY(split, splitUrl(args.url));
  options.host = split.first.host;
  options.port = split.first.port;
  options.target = split.second;
  options.token = args.token;
  options.body = args.body;
  options.dept_no = args.dept_no.empty() ? uniqueDeptNo(args.dept_prefix) : args.dept_no;
  if (args.records) options.records = *args.records;
  if (args.stock) options.stock = *args.stock;
  if (args.lines) options.lines = *args.lines;
  return options;
}

EngineOptions engineOptions(const RunArguments& args, const ScenarioOptions& scenario) {
  EngineOptions options;
  options.host = scenario.host;
  options.port = scenario.port;
  options.connections = args.connections;
  options.threads = args.threads;
  options.progress = !args.quiet;
  options.duration =
      std::chrono::milliseconds(static_cast<std::int64_t>(args.duration_seconds * 1000));
  options.warmup = std::chrono::milliseconds(static_cast<std::int64_t>(args.warmup_seconds * 1000));
  if (scenario.scenario == Scenario::kFlashSale) {
    // The demand is a number of single-unit orders: ten times the stock unless given.
    options.orders =
        static_cast<std::uint64_t>(args.demand.value_or(scenario.stock * scenario.records * 10));
  } else if (args.requests > 0) {
    options.orders = args.requests;
  }
  return options;
}

int run(const RunArguments& args) {
  const auto scenario = parseScenario(args.scenario);
  if (!scenario) {
    fmt::print(stderr, "allot-bench: unknown scenario '{}'\n", args.scenario);
    return 2;
  }
  auto options = scenarioOptions(args, *scenario);
  if (!options) {
    fmt::print(stderr, "allot-bench: {}\n", options.error().message);
    return 2;
  }
  if (*scenario != Scenario::kConstant) {
    auto route = setUpRecords(*options);
    if (!route) {
      fmt::print(stderr, "allot-bench: set-up failed: {}\n", route.error().message);
      return 2;
    }
  }
  const auto workload = makeWorkload(*options);
  const auto engine = engineOptions(args, *options);
  const auto report = runLoad(*workload, engine);
  InvariantReport invariants;
  if (*scenario != Scenario::kConstant) invariants = checkInvariants(*options, report.tally);
  const RunInfo info{std::string(scenarioName(*scenario)),
                     args.label,
                     args.url,
                     options->dept_no,
                     args.connections,
                     args.threads,
                     engine.orders ? 0.0 : args.warmup_seconds};
  const auto result = resultJson(info, report, invariants);
  fmt::print("{}", resultText(result));
  if (!args.json_out.empty()) {
    if (auto written = writeJsonFile(args.json_out, result); !written) {
      fmt::print(stderr, "allot-bench: {}\n", written.error().message);
      return 2;
    }
  }
  return invariants.ok && !report.timed_out ? 0 : 1;
}

int plot(const PlotArguments& args) {
  std::vector<boost::json::object> results;
  for (const auto& input : args.inputs) {
    auto result = readJsonFile(input);
    if (!result) {
      fmt::print(stderr, "allot-bench plot: {}\n", result.error().message);
      return 2;
    }
    results.push_back(std::move(*result));
  }
  std::ofstream file(args.svg_out, std::ios::trunc);
  file << plotSvg(results, args.title);
  if (!file) {
    fmt::print(stderr, "allot-bench plot: cannot write {}\n", args.svg_out);
    return 2;
  }
  return 0;
}

}  // namespace
}  // namespace allot::bench

int main(int argc, char** argv) {
  using namespace allot::bench;
  CLI::App app{"allot-bench: drives allotd (or any HTTP server) and checks what it answered"};
  RunArguments run_args;
  app.add_option("--url", run_args.url, "server base URL (constant: the URL to POST to)")
      ->capture_default_str();
  app.add_option("--token", run_args.token, "API bearer token (ALLOT_API_TOKEN)");
  app.add_option("--scenario", run_args.scenario, "what to send")
      ->check(CLI::IsMember(scenarioNames()))
      ->capture_default_str();
  app.add_option("--connections", run_args.connections, "keep-alive connections")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--threads", run_args.threads, "generator threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--duration", run_args.duration_seconds, "measured seconds (after the warm-up)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--warmup", run_args.warmup_seconds, "seconds before measuring")
      ->check(CLI::Range(0.0, 600.0))
      ->capture_default_str();
  app.add_option("--requests", run_args.requests, "orders to send instead of a duration");
  app.add_option("--records", run_args.records, "records (default per scenario)")
      ->check(CLI::Range(1, 99'999));
  app.add_option("--stock", run_args.stock, "on_hand of each record (default per scenario)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000'000'000}));
  app.add_option("--demand", run_args.demand, "flash-sale: orders of 1 unit (default 10 x stock)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000'000}));
  app.add_option("--lines", run_args.lines, "lines per order (multi-line: 5)")
      ->check(CLI::Range(1, 16));
  app.add_option("--label", run_args.label, "name of what is measured, in the JSON and the plot");
  app.add_option("--body", run_args.body, "constant: the body to POST")->capture_default_str();
  app.add_option("--dept-prefix", run_args.dept_prefix, "prefix of the run's unique dept_no")
      ->capture_default_str();
  app.add_option("--dept-no", run_args.dept_no,
                 "this exact dept_no instead of a unique one (its records and orders must not "
                 "exist yet; e.g. to measure memory with realistic names)")
      ->check([](const std::string& value) {
        return allot::isValidField(value)
                   ? std::string()
                   : std::string("must be 1-64 characters of [A-Za-z0-9_.-]");
      });
  app.add_option("--json-out", run_args.json_out, "write the result as JSON to this file");
  app.add_flag("--quiet", run_args.quiet, "no progress line");

  PlotArguments plot_args;
  auto* plot_command = app.add_subcommand("plot", "draw result JSON files as one SVG");
  plot_command->add_option("--svg-out", plot_args.svg_out, "the SVG to write")
      ->capture_default_str();
  plot_command->add_option("--title", plot_args.title, "the title")->capture_default_str();
  plot_command->add_option("results", plot_args.inputs, "result JSON files")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help is a "parse error" that exits 0; a wrong argument is status 2, as documented.
    return app.exit(error) == 0 ? 0 : 2;
  }
  if (plot_command->parsed()) return plot(plot_args);
  return run(run_args);
}
