// One sample of the Prometheus text exposition with its HELP and TYPE lines, shared by every
// part of /metrics (the routes' counters and the workers' gauges).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace allot::http {

// type is "counter" or "gauge".
inline void appendMetric(std::string& out, std::string_view name, std::string_view type,
                         std::string_view help, std::int64_t value) {
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type, value);
}

// A counter read from an atomic counter of the service or a worker.
inline void appendCounter(std::string& out, std::string_view name, std::string_view help,
                          std::uint64_t value) {
  appendMetric(out, name, "counter", help, static_cast<std::int64_t>(value));
}

}  // namespace allot::http
