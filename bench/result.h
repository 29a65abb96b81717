// The result of one allot-bench run: printed as a summary and written as JSON (the input of
// `allot-bench plot` and of bench/side-by-side).
#pragma once

#include <boost/json.hpp>
#include <string>

#include "core/result.h"
#include "load_engine.h"
#include "scenarios.h"

namespace allot::bench {

struct RunInfo {
  std::string scenario;
  std::string label;  // what was measured when the route does not say it (e.g. "nginx")
  std::string url;
  std::string dept_no;
  int connections = 0;
  int threads = 0;
  double warmup_seconds = 0.0;
};

[[nodiscard]] boost::json::object resultJson(const RunInfo& info, const EngineReport& report,
                                             const InvariantReport& invariants);
// The human-readable summary of the same result.
[[nodiscard]] std::string resultText(const boost::json::object& result);
[[nodiscard]] Result<void> writeJsonFile(const std::string& path,
                                         const boost::json::object& result);
[[nodiscard]] Result<boost::json::object> readJsonFile(const std::string& path);

// A member of a result as a number (0 when absent or not a number) or a string ("" likewise).
[[nodiscard]] double jsonNumber(const boost::json::object& object, std::string_view key);
[[nodiscard]] std::string jsonText(const boost::json::object& object, std::string_view key);

}  // namespace allot::bench
