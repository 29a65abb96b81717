#include "result.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace allot::bench {

namespace json = boost::json;

namespace {

double perSecond(std::uint64_t count, double seconds) {
  return seconds > 0 ? static_cast<double>(count) / seconds : 0.0;
}

json::object invariantsJson(const InvariantReport& invariants) {
  json::array failures;
  for (const auto& failure : invariants.failures) failures.emplace_back(failure);
  return json::object{
      {"checked", invariants.checked},
      {"ok", invariants.ok},
      {"stock_total", invariants.stock_total},
      {"demand", invariants.demand},
      {"allocated_answers", invariants.allocated_answers},
      {"expected_allocated", invariants.expected_allocated},
      {"preallocated_total", invariants.preallocated_total},
      {"oversell", invariants.oversell},
      {"negative_fields", invariants.negative_fields},
      {"mismatched_records", invariants.mismatched_records},
      {"failures", std::move(failures)},
  };
}

}  // namespace

double jsonNumber(const json::object& object, std::string_view key) {
  const auto* value = object.if_contains(key);
  if (value == nullptr) return 0.0;
  if (value->is_double()) return value->as_double();
  if (value->is_int64()) return static_cast<double>(value->as_int64());
  if (value->is_uint64()) return static_cast<double>(value->as_uint64());
  return 0.0;
}

std::string jsonText(const json::object& object, std::string_view key) {
  const auto* value = object.if_contains(key);
  return value != nullptr && value->is_string() ? std::string(value->as_string()) : "";
}

namespace {

// Short names for the summary below.
double number(const json::object& object, std::string_view key) { return jsonNumber(object, key); }
std::string text(const json::object& object, std::string_view key) { return jsonText(object, key); }

}  // namespace

json::object resultJson(const RunInfo& info, const EngineReport& report,
                        const InvariantReport& invariants) {
  const auto& tally = report.tally;
  const double seconds = report.measured_seconds;
  json::object errors;
  std::uint64_t server_errors = 0;
  for (const auto& entry : tally.statuses) {
    if (entry.status >= 500) server_errors += entry.count;
    if (entry.status >= 200 && entry.status < 300) continue;
    const auto key = entry.code.empty() ? std::to_string(entry.status)
                                        : fmt::format("{} {}", entry.status, entry.code);
    errors[key] = entry.count;
  }
  if (tally.transport_errors > 0) errors["transport"] = tally.transport_errors;
  return json::object{
      {"tool", "allot-bench"},
      {"scenario", info.scenario},
      {"label", info.label},
      {"route", invariants.route},
      {"url", info.url},
      {"dept_no", info.dept_no},
      {"connections", info.connections},
      {"threads", info.threads},
      {"warmup_s", info.warmup_seconds},
      {"measured_s", seconds},
      {"timed_out", report.timed_out},
      {"orders", tally.orders},
      {"answers", tally.answers},
      {"measured_answers", tally.measured_answers},
      {"measured_2xx", tally.measured_2xx},
      {"throughput_rps", perSecond(tally.measured_answers, seconds)},
      {"ok_rps", perSecond(tally.measured_2xx, seconds)},
      {"holds_per_s", perSecond(tally.measured_holds, seconds)},
      {"replayed", tally.replayed},
      {"server_errors", server_errors},
      {"latency_ms", json::object{{"p50", tally.latency.percentileMs(0.50)},
                                  {"p99", tally.latency.percentileMs(0.99)},
                                  {"p999", tally.latency.percentileMs(0.999)},
                                  {"mean", tally.latency.meanMs()},
                                  {"max", tally.latency.maxMs()}}},
      {"errors", std::move(errors)},
      {"invariants", invariantsJson(invariants)},
  };
}

std::string resultText(const json::object& result) {
  const auto& latency = result.at("latency_ms").as_object();
  std::string out = fmt::format(
      "scenario {}  route {}{}  connections {}  threads {}  measured {:.1f} s\n"
      "throughput {:.0f} req/s ({:.0f} 2xx/s), holds {:.0f}/s\n"
      "latency ms: p50 {:.3f}  p99 {:.3f}  p999 {:.3f}  mean {:.3f}  max {:.3f}\n",
      text(result, "scenario"), text(result, "route"),
      text(result, "label").empty() ? "" : "  label " + text(result, "label"),
      number(result, "connections"), number(result, "threads"), number(result, "measured_s"),
      number(result, "throughput_rps"), number(result, "ok_rps"), number(result, "holds_per_s"),
      number(latency, "p50"), number(latency, "p99"), number(latency, "p999"),
      number(latency, "mean"), number(latency, "max"));
  const auto& errors = result.at("errors").as_object();
  out += "non-2xx:";
  if (errors.empty()) out += " none";
  for (const auto& [key, value] : errors)
    out += fmt::format(" [{}] {}", std::string(key), value.as_uint64());
  out += '\n';
  const auto& invariants = result.at("invariants").as_object();
  if (!invariants.at("checked").as_bool()) return out + "invariants: not checked\n";
  out += fmt::format(
      "invariants: {}  oversell {}  allocated in answers {}  preallocated {}  stock {}  demand "
      "{}\n",
      invariants.at("ok").as_bool() ? "OK" : "FAILED", number(invariants, "oversell"),
      number(invariants, "allocated_answers"), number(invariants, "preallocated_total"),
      number(invariants, "stock_total"), number(invariants, "demand"));
  for (const auto& failure : invariants.at("failures").as_array()) {
    out += fmt::format("  {}\n", std::string(failure.as_string()));
  }
  if (result.at("timed_out").as_bool()) out += "the run timed out and was stopped\n";
  return out;
}

Result<void> writeJsonFile(const std::string& path, const json::object& result) {
  std::ofstream file(path, std::ios::trunc);
  file << json::serialize(result) << '\n';
  if (!file) return fail(ErrorCode::kUnavailable, "cannot write " + path);
  return {};
}

Result<json::object> readJsonFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return fail(ErrorCode::kInvalidRequest, "cannot read " + path);
  std::stringstream content;
  content << file.rdbuf();
  boost::system::error_code error;
  auto value = json::parse(content.str(), error);
  if (error || !value.is_object())
    return fail(ErrorCode::kInvalidRequest, path + ": not a JSON object");
  return std::move(value.as_object());
}

}  // namespace allot::bench
