// write-back-bench as it is run for docs/bench.md, on small numbers: it must fill the outbox,
// see every event applied, and find the database as it filled it (its own exit status says
// so), on standalone Redis and on the Cluster.
#include <gtest/gtest.h>

#include <string>

#include "support/child_process.h"
#include "support/test_env.h"

namespace allot::testing {
namespace {

class WriteBackBenchTest : public ::testing::TestWithParam<bool> {};

TEST_P(WriteBackBenchTest, AppliesEveryEventItWrote) {
  const std::string redis = GetParam() ? redisClusterUrl() : redisUrl();
  EXPECT_EQ(runProcess({ALLOT_WRITE_BACK_BENCH_PATH, "--redis-url", redis, "--mysql-url",
                        mysqlUrl(), "--hot-events", "3000", "--streams", "40",
                        "--events-per-stream", "2", "--batch", "500"}),
            0);
}

INSTANTIATE_TEST_SUITE_P(Redis, WriteBackBenchTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Cluster" : "Standalone"; });

}  // namespace
}  // namespace allot::testing
