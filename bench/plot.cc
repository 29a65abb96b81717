#include "plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "result.h"

namespace allot::bench {

namespace json = boost::json;

namespace {

constexpr int kLabelWidth = 260;
constexpr int kPanelWidth = 330;
constexpr int kPanelGap = 40;
constexpr int kBarHeight = 18;
constexpr int kBarGap = 8;
constexpr int kTop = 60;
constexpr int kMargin = 16;
constexpr const char* kColors[] = {"#4878d0", "#ee854a", "#6acc64", "#d65f5f",
                                   "#956cb4", "#8c613c", "#dc7ec0", "#797979"};

struct Bar {
  std::string label;
  std::string series;  // the route or label: bars of one series share a colour
  double throughput = 0.0;
  double p99_ms = 0.0;
};

std::string escaped(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

// A round number at least `value`, for the axis end (1, 2 or 5 times a power of ten).
double niceCeiling(double value) {
  if (value <= 0) return 1.0;
  const double power = std::pow(10.0, std::floor(std::log10(value)));
  for (double step : {1.0, 2.0, 5.0, 10.0}) {
    if (step * power >= value) return step * power;
  }
  return 10.0 * power;
}

std::string panel(const std::vector<Bar>& bars, const std::vector<std::string>& series, int x0,
                  const std::string& title, double Bar::*value, const char* unit) {
  double most = 0.0;
  for (const auto& bar : bars) most = std::max(most, bar.*value);
  const double axis = niceCeiling(most);
  const int height = static_cast<int>(bars.size()) * (kBarHeight + kBarGap);
  std::string out = fmt::format(R"(<text x="{}" y="{}" font-weight="bold">{}</text>)"
                                "\n"
                                R"(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#333"/>)"
                                "\n",
                                x0, kTop - 20, escaped(title), x0, kTop - 4, x0, kTop + height);
  for (int tick = 0; tick <= 4; ++tick) {
    const double x = x0 + kPanelWidth * tick / 4.0;
    out += fmt::format(R"(<line x1="{:.1f}" y1="{}" x2="{:.1f}" y2="{}" stroke="#ddd"/>)"
                       R"(<text x="{:.1f}" y="{}" font-size="10" text-anchor="middle">{:g}</text>)"
                       "\n",
                       x, kTop - 4, x, kTop + height, x, kTop + height + 14, axis * tick / 4.0);
  }
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const auto& bar = bars[i];
    const int y = kTop + static_cast<int>(i) * (kBarHeight + kBarGap);
    const double width = axis > 0 ? kPanelWidth * (bar.*value) / axis : 0.0;
    const auto colour = static_cast<std::size_t>(
        std::find(series.begin(), series.end(), bar.series) - series.begin());
    out +=
        fmt::format(R"(<rect x="{}" y="{}" width="{:.1f}" height="{}" fill="{}"/>)"
                    R"(<text x="{:.1f}" y="{}" font-size="10">{:.{}f} {}</text>)"
                    "\n",
                    x0, y, width, kBarHeight, kColors[colour % std::size(kColors)], x0 + width + 4,
                    y + kBarHeight - 5, bar.*value, bar.*value >= 100 ? 0 : 2, unit);
  }
  return out;
}

}  // namespace

std::string plotSvg(const std::vector<json::object>& results, const std::string& title) {
  std::vector<Bar> bars;
  std::vector<std::string> series;
  for (const auto& result : results) {
    Bar bar;
    bar.series = jsonText(result, "label");
    if (bar.series.empty()) bar.series = jsonText(result, "route");
    bar.label = fmt::format("{} · {}", jsonText(result, "scenario"), bar.series);
    bar.throughput = jsonNumber(result, "throughput_rps");
    if (const auto* latency = result.if_contains("latency_ms"); latency && latency->is_object()) {
      bar.p99_ms = jsonNumber(latency->as_object(), "p99");
    }
    if (std::find(series.begin(), series.end(), bar.series) == series.end()) {
      series.push_back(bar.series);
    }
    bars.push_back(std::move(bar));
  }
  const int rows = static_cast<int>(bars.size());
  const int width = kMargin * 2 + kLabelWidth + kPanelWidth * 2 + kPanelGap + 70;
  const int height = kTop + rows * (kBarHeight + kBarGap) + 40;
  std::string out = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">)"
      "\n"
      R"(<rect width="100%" height="100%" fill="white"/>)"
      "\n"
      R"(<text x="{}" y="20" font-size="14" font-weight="bold">{}</text>)"
      "\n",
      width, height, kMargin, escaped(title));
  for (int i = 0; i < rows; ++i) {
    const int y = kTop + i * (kBarHeight + kBarGap) + kBarHeight - 5;
    out +=
        fmt::format(R"(<text x="{}" y="{}" text-anchor="end">{}</text>)"
                    "\n",
                    kMargin + kLabelWidth - 8, y, escaped(bars[static_cast<std::size_t>(i)].label));
  }
  const int first_panel = kMargin + kLabelWidth;
  out += panel(bars, series, first_panel, "throughput (requests/s)", &Bar::throughput, "/s");
  out += panel(bars, series, first_panel + kPanelWidth + kPanelGap + 40, "p99 latency (ms)",
               &Bar::p99_ms, "ms");
  out += "</svg>\n";
  return out;
}

}  // namespace allot::bench
