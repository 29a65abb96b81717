// `allot-bench plot`: draws the results of several runs as one SVG, two bar charts side by
// side (throughput in requests a second, p99 latency in milliseconds), one bar per run,
// labelled with its scenario and its route (or label). Plain SVG text: no plotting library.
#pragma once

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace allot::bench {

[[nodiscard]] std::string plotSvg(const std::vector<boost::json::object>& results,
                                  const std::string& title);

}  // namespace allot::bench
