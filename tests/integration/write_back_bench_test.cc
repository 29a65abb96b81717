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
  EXPECT_EQ(runProcess({ALLOT_WRITE_BACK_BENCH_PATH, "--redis-url", redis, "--mysql-url",
                        mysqlUrl(), "--hot-events", "3000", "--streams", "40",
                        "--events-per-stream", "2", "--batch", "500", "--form", form}),
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
