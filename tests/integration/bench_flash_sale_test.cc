// allot-bench as its users run it: a short flash-sale (8 connections, 200 units of stock,
// 2,000 single-unit orders) against a real allotd on each route. The load generator's own
// JSON result must show what the service promises: exactly the stock allocated, no oversell,
// the other orders refused with 409 insufficient_stock, and no 5xx.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/allotd_process.h"
#include "support/child_process.h"
#include "support/test_env.h"

namespace allot::testing {
namespace {

namespace json = boost::json;

constexpr int kStock = 200;
constexpr int kDemand = 2'000;

json::object readResult(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  boost::system::error_code error;
  auto value = json::parse(content.str(), error);
  if (error || !value.is_object()) {
    ADD_FAILURE() << path << " is not a JSON object: " << content.str();
    return {};
  }
  return value.as_object();
}

class BenchFlashSaleTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BenchFlashSaleTest, AllocatesExactlyTheStockAndNothingMore) {
  auto options = allotdOptions();
  options.extra_env.emplace_back("ALLOT_DEFAULT_ROUTE", GetParam());
  auto allotd = AllotdProcess::start(options);
  ASSERT_TRUE(allotd.has_value()) << allotd.error().message;
  const auto& endpoint = (*allotd)->endpoint();
  const auto result_path =
      std::filesystem::temp_directory_path() / (uniqueName("bench-flash-sale") + ".json");

  const int exit_status = runProcess(
      {ALLOT_BENCH_PATH, "--url", "http://" + endpoint.host + ":" + std::to_string(endpoint.port),
       "--scenario", "flash-sale", "--connections", "8", "--stock", std::to_string(kStock),
       "--demand", std::to_string(kDemand), "--quiet", "--json-out", result_path.string()});
  const auto result = readResult(result_path);
  std::filesystem::remove(result_path);
  EXPECT_EQ(exit_status, 0) << json::serialize(result) << "\n" << (*allotd)->logTail();
  ASSERT_FALSE(result.empty());

  EXPECT_EQ(result.at("scenario").as_string(), "flash-sale");
  EXPECT_EQ(result.at("route").as_string(), GetParam());
  EXPECT_EQ(result.at("orders").as_int64(), kDemand);
  EXPECT_EQ(result.at("server_errors").as_int64(), 0);
  const auto& invariants = result.at("invariants").as_object();
  EXPECT_TRUE(invariants.at("checked").as_bool());
  EXPECT_TRUE(invariants.at("ok").as_bool()) << json::serialize(invariants);
  EXPECT_EQ(invariants.at("oversell").as_int64(), 0);
  EXPECT_EQ(invariants.at("allocated_answers").as_int64(), kStock);
  EXPECT_EQ(invariants.at("preallocated_total").as_int64(), kStock);
  EXPECT_EQ(invariants.at("expected_allocated").as_int64(), kStock);
  // Every order beyond the stock is refused, and refused for the right reason.
  const auto& errors = result.at("errors").as_object();
  ASSERT_EQ(errors.size(), 1u) << json::serialize(errors);
  ASSERT_TRUE(errors.contains("409 insufficient_stock")) << json::serialize(errors);
  EXPECT_EQ(errors.at("409 insufficient_stock").as_int64(), kDemand - kStock);
}

INSTANTIATE_TEST_SUITE_P(Routes, BenchFlashSaleTest, ::testing::Values("redis", "mysql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace allot::testing
