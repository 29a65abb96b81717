// allotd --role: an allotd of role api serves the contract without writing back, and an allotd
// of role writeback (health and metrics only) applies the outbox to the database. Runs alone
// (RUN_SERIAL): no other allotd may write the shared Redis back meanwhile, or the database
// would converge without the writeback role.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "mysql/mysql_ledger.h"
#include "support/allotd_process.h"
#include "support/api_client.h"
#include "support/servers.h"
#include "support/test_env.h"

namespace allot::testing {
namespace {

std::unique_ptr<AllotdProcess> startWithRole(const std::string& role) {
  auto options = allotdOptions();
  options.extra_env.emplace_back("ALLOT_ROLE", role);
  auto started = AllotdProcess::start(options);
  if (!started) {
    ADD_FAILURE() << "allotd --role " << role << ": " << started.error().message;
    return nullptr;
  }
  return std::move(*started);
}

TEST(RolesTest, AnApiAllotdLeavesTheWriteBackToAWriteBackAllotd) {
  auto api_process = startWithRole("api");
  ASSERT_NE(api_process, nullptr);
  ApiClient api(api_process->endpoint());
  const auto dept = uniqueName("role");
  const auto key = makeKey(dept, "G1", "W1");
  ASSERT_TRUE(hasQuantities(api.adjustDelta(key, "r1", 20), Quantities{20, 0, 0}));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(isOk(api.preallocate(dept, "o" + std::to_string(i), {{key, 2}})));
  }
  ASSERT_TRUE(isOk(api.deduct(dept, "o0")));
  const Quantities expected{18, 8, 0};
  ASSERT_TRUE(hasQuantities(api.stock(key), expected));

  auto ledger = openLedger();
  ASSERT_NE(ledger, nullptr);
  auto row = [&] {
    auto found = ledger->findRecord(key);
    return found && *found ? **found : Quantities{-1, -1, -1};
  };
  // The api allotd writes nothing back: the row has only the adjust, applied directly.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(row(), (Quantities{20, 0, 0}));
  EXPECT_EQ(api.metric("allot_writeback_batches_total"), 0.0);

  auto writer = startWithRole("writeback");
  ASSERT_NE(writer, nullptr);
  ApiClient writer_client(writer->endpoint());
  EXPECT_EQ(writer_client.call("GET", "/readyz").status, 200);
  EXPECT_TRUE(isError(writer_client.stock(key), 404, "not_found"));
  EXPECT_TRUE(waitFor([&] { return row() == expected; }, std::chrono::seconds(20)))
      << "the database row never reached the Redis quantities";
  // The counters move just after the commit that the row shows, so wait for them too.
  double applied = 0;
  EXPECT_TRUE(waitFor(
      [&] {
        applied = writer_client.metric("allot_writeback_events_applied_total").value_or(0);
        return applied >= 7.0;  // the adjust, 5 holds and the deduct, on the record's stream
      },
      std::chrono::seconds(10)))
      << "the writeback allotd counted " << applied << " events applied";
}

}  // namespace
}  // namespace allot::testing
