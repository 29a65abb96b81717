// write-back-bench as it is run for docs/bench.md, on small numbers: it must fill the outbox,
// see every event applied, and find the database as it filled it (its own exit status says
// so), on standalone Redis and on the Cluster, in both forms of the hold event.
#include <gtest/gtest.h>

#include <string>
#include <tuple>

#include "support/child_process.h"
#include "support/test_env.h"

namespace allot::testing {
namespace {

class WriteBackBenchTest : public ::testing::TestWithParam<std::tuple<bool, std::string>> {};

TEST_P(WriteBackBenchTest, AppliesEveryEventItWrote) {
  const auto& [cluster, form] = GetParam();
  const std::string redis = cluster ? redisClusterUrl() : redisUrl();
  // The standalone server and the Cluster share one database, and stream positions are kept
  // by stream name: the two runs must not write the same slots' streams at once, or each
  // would skip the other's events (one database serves one Redis deployment). A run writes
  // the slots from --first-slot to --first-slot + --streams (the hot record's).
  EXPECT_EQ(
      runProcess({ALLOT_WRITE_BACK_BENCH_PATH, "--redis-url", redis, "--mysql-url", mysqlUrl(),
                  "--hot-events", "3000", "--streams", "40", "--events-per-stream", "2", "--batch",
                  "500", "--form", form, "--first-slot", cluster ? "8192" : "0"}),
      0);
}

INSTANTIATE_TEST_SUITE_P(Forms, WriteBackBenchTest,
                         ::testing::Combine(::testing::Bool(), ::testing::Values("plain", "fused")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "Cluster_"
                                                                      : "Standalone_") +
                                  std::get<1>(info.param);
                         });

}  // namespace
}  // namespace allot::testing
