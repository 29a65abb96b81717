// The MerchantRouter's rules with fakes: which path serves a merchant, the gate around a
// switch (calls in flight finish first, later calls wait and then take the new route), and a
// failed switch leaving the merchant refused until it is switched again.
#include "domain/merchant_router.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <thread>

namespace allot {
namespace {

// A path that names itself in every answer, and can hold a call until released.
class NamedPath final : public StockApi {
 public:
  explicit NamedPath(std::string name) : name_(std::move(name)) {}

  Result<PreallocateOutcome> preallocate(const PreallocateRequest&) override {
    return fail(ErrorCode::kInternal, "not used");
  }
  Result<EndAnswer> rollback(const OrderRef& order) override {
    calls_.fetch_add(1);
    if (block_.load()) release_.get_future().wait();
    return EndAnswer{order.order_no, OrderStatus::kRolledBack, false};
  }
  Result<EndAnswer> deduct(const OrderRef&) override { return fail(ErrorCode::kInternal, "x"); }
  Result<OrderAnswer> findOrder(const OrderRef&) override {
    return fail(ErrorCode::kNotFound, name_);
  }
  Result<Quantities> adjust(const AdjustRequest&, const std::string&) override {
    return fail(ErrorCode::kInternal, "not used");
  }
  Result<Quantities> readRecord(const RecordKey&) override {
    calls_.fetch_add(1);
    return Quantities{name_ == "redis" ? 1 : 2, 0, 0};
  }
  Result<void> checkReady() override { return {}; }

  void blockNextCalls() { block_ = true; }
  void releaseCalls() { release_.set_value(); }
  [[nodiscard]] int calls() const { return calls_.load(); }

 private:
  std::string name_;
  std::atomic<int> calls_{0};
  std::atomic<bool> block_{false};
  std::promise<void> release_;
};

class MemoryRouteTable final : public RouteTable {
 public:
  Result<std::optional<StoredRoute>> findRoute(const std::string& dept_no) override {
    const bool hold = hold_reads_.exchange(false);
    if (hold && !hold_after_reading_) waitForRelease();
    std::optional<StoredRoute> answer;
    {
      std::lock_guard lock(mutex_);
      reads_++;
      auto found = routes_.find(dept_no);
      if (found != routes_.end()) answer = found->second;
    }
    if (hold && hold_after_reading_) waitForRelease();
    return answer;
  }
  Result<void> saveRoute(const std::string& dept_no, const StoredRoute& route) override {
    std::lock_guard lock(mutex_);
    routes_[dept_no] = route;
    return {};
  }
  Result<void> forgetRoute(const std::string& dept_no) override {
    std::lock_guard lock(mutex_);
    routes_.erase(dept_no);
    return {};
  }
  int reads() {
    std::lock_guard lock(mutex_);
    return reads_;
  }
  // The next read waits until releaseRead(), before it reads or (after_reading) with what it
  // read in hand, as a slow answer of the database would; readStarted() waits until it has
  // begun.
  void holdNextRead(bool after_reading = false) {
    hold_after_reading_ = after_reading;
    hold_reads_ = true;
  }
  void readStarted() { reading_.get_future().wait(); }
  void releaseRead() { release_reads_.set_value(); }

 private:
  std::atomic<bool> hold_reads_{false};
  std::promise<void> reading_, release_reads_;
  std::mutex mutex_;
  std::map<std::string, StoredRoute> routes_;
  int reads_ = 0;
  std::atomic<bool> hold_after_reading_{false};

  void waitForRelease() {
    reading_.set_value();
    release_reads_.get_future().wait();
  }
};

constexpr std::int64_t kRedisAnswer = 1;
constexpr std::int64_t kMysqlAnswer = 2;

RecordKey recordOf(const std::string& dept) { return RecordKey{dept, "G", "W", "1", "1", "A"}; }

class MerchantRouterTest : public ::testing::Test {
 protected:
  // A move that does what RouteSwitch does to the table, and counts itself.
  RouteMove recordingMove(bool succeed = true) {
    return [this, succeed](const std::string& dept, Route from, Route to) -> Result<void> {
      moves_.fetch_add(1);
      ALLOT_TRY_VOID(table_.saveRoute(dept, StoredRoute{from, true}));
      if (!succeed) return fail(ErrorCode::kUnavailable, "drain timed out");
      return table_.saveRoute(dept, StoredRoute{to, false});
    };
  }
  std::int64_t served(MerchantRouter& router, const std::string& dept) {
    auto quantities = router.readRecord(recordOf(dept));
    return quantities ? quantities->on_hand : -1;
  }

  NamedPath redis_{"redis"};
  NamedPath mysql_{"mysql"};
  MemoryRouteTable table_;
  std::atomic<int> moves_{0};
};

TEST_F(MerchantRouterTest, AMerchantNeverConfiguredTakesTheDefaultRoute) {
  MerchantRouter router(redis_, mysql_, table_, recordingMove(), {Route::kMysql, 1000, 100, 100});
  EXPECT_EQ(served(router, "D1"), kMysqlAnswer);
  auto view = router.view("D1");
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->route, Route::kMysql);
  EXPECT_FALSE(view->configured);
  EXPECT_EQ(router.routeOf("D1"), Route::kMysql);
}

// The fast path's admission: only a merchant whose route is known, fresh and Redis, never
// waiting; an admitted call counts as in flight, so a switch waits for it.
TEST_F(MerchantRouterTest, TheNonBlockingAdmissionTakesOnlyAFreshRedisRoute) {
  MerchantRouter router(redis_, mysql_, table_, recordingMove(), {Route::kRedis, 1000, 100, 200});
  EXPECT_FALSE(router.tryAdmitRedis("D1")) << "never read: the ordinary path reads it";
  EXPECT_EQ(served(router, "D1"), kRedisAnswer);
  ASSERT_TRUE(router.tryAdmitRedis("D1"));
  // A switch now waits for the admitted call, and fails when it never leaves.
  auto blocked = router.switchRoute("D1", Route::kMysql);
  EXPECT_FALSE(blocked.has_value());
  router.leave("D1");
  ASSERT_TRUE(router.switchRoute("D1", Route::kMysql).has_value());
  EXPECT_FALSE(router.tryAdmitRedis("D1")) << "a merchant on the MySQL path";
  ASSERT_TRUE(table_.saveRoute("D2", StoredRoute{Route::kRedis, true}).has_value());
  (void)router.view("D2");
  EXPECT_FALSE(router.tryAdmitRedis("D2")) << "a merchant between routes";
}

TEST_F(MerchantRouterTest, AStaleRouteIsNotAdmittedWithoutWaiting) {
  MerchantRouter router(redis_, mysql_, table_, recordingMove(), {Route::kRedis, 50, 100, 100});
  EXPECT_EQ(served(router, "D1"), kRedisAnswer);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));  // older than refresh_ms
  EXPECT_FALSE(router.tryAdmitRedis("D1"));
}

// The table is read without the shard's lock: while one caller waits for the database, the
// non-blocking admission and leave of the same merchant go on.
TEST_F(MerchantRouterTest, ReadingTheTableDoesNotHoldUpTheNonBlockingAdmission) {
  MerchantRouter router(redis_, mysql_, table_, recordingMove(), {Route::kRedis, 50, 100, 100});
  EXPECT_EQ(served(router, "D1"), kRedisAnswer);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  table_.holdNextRead();
  auto slow = std::async(std::launch::async, [&] { return served(router, "D1"); });
  table_.readStarted();
  // Answered while the read still waits (stale, so refused): with the lock held across the
  // read it would wait for releaseRead(), which only this thread calls.
  auto admitted = std::async(std::launch::async, [&] { return router.tryAdmitRedis("D1"); });
  const bool answered = admitted.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  table_.releaseRead();
  EXPECT_TRUE(answered) << "the admission waited for the table read";
  EXPECT_FALSE(admitted.get());
  EXPECT_EQ(slow.get(), kRedisAnswer);
  EXPECT_TRUE(router.tryAdmitRedis("D1"));
  router.leave("D1");
}

// A hung database holds up the one caller reading a merchant's route: the others wait for
// that read only call_wait_ms, then answer 503 (to retry), instead of as long as the read
// hangs. They are not served the stale route meanwhile.
TEST_F(MerchantRouterTest, AHungRouteReadHoldsUpOneCallerAndTheOthersAnswer503) {
  MerchantRouter router(redis_, mysql_, table_, recordingMove(), {Route::kRedis, 50, 100, 100});
  EXPECT_EQ(served(router, "D1"), kRedisAnswer);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));  // stale: the next call reads
  table_.holdNextRead();
  auto reader = std::async(std::launch::async, [&] { return served(router, "D1"); });
  table_.readStarted();
  auto waiter = std::async(std::launch::async, [&] { return router.readRecord(recordOf("D1")); });
  const bool answered = waiter.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  const int served_while_hung = redis_.calls();
  table_.releaseRead();
  ASSERT_TRUE(answered) << "the second call waited for the hung read";
  EXPECT_EQ(served_while_hung, 1) << "the stale route was served";
  auto refused = waiter.get();
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message.find("being read"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(reader.get(), kRedisAnswer);
  EXPECT_EQ(served(router, "D1"), kRedisAnswer);
}

TEST_F(MerchantRouterTest, ASwitchMovesOnlyThatMerchantAndASecondOneIsANoOp) {
  MerchantRouter router(redis_, mysql_, table_, recordingMove(), {});
  EXPECT_EQ(served(router, "D1"), kRedisAnswer);
  auto switched = router.switchRoute("D1", Route::kMysql);
  ASSERT_TRUE(switched.has_value()) << switched.error().message;
  EXPECT_EQ(switched->route, Route::kMysql);
  EXPECT_TRUE(switched->configured);
  EXPECT_FALSE(switched->switching);
  EXPECT_EQ(served(router, "D1"), kMysqlAnswer);
  EXPECT_EQ(served(router, "D2"), kRedisAnswer);
  ASSERT_TRUE(router.switchRoute("D1", Route::kMysql).has_value());
  EXPECT_EQ(moves_.load(), 1);
}

TEST_F(MerchantRouterTest, ASwitchWaitsForTheCallsInFlightAndLaterCallsTakeTheNewRoute) {
  MerchantRouter router(redis_, mysql_, table_, recordingMove(), {Route::kRedis, 1000, 5000, 5000});
  redis_.blockNextCalls();
  auto in_flight = std::async(std::launch::async, [&] { return router.rollback({"D1", "O1"}); });
  while (redis_.calls() == 0) std::this_thread::yield();
  auto switching =
      std::async(std::launch::async, [&] { return router.switchRoute("D1", Route::kMysql); });
  // The switch cannot move anything while the call is on the Redis path.
  EXPECT_EQ(switching.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  EXPECT_EQ(moves_.load(), 0);
  // A call arriving now waits for the switch instead of taking the old route.
  auto waiting = std::async(std::launch::async, [&] { return served(router, "D1"); });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  redis_.releaseCalls();
  ASSERT_TRUE(in_flight.get().has_value());
  ASSERT_TRUE(switching.get().has_value());
  EXPECT_EQ(waiting.get(), kMysqlAnswer);
  EXPECT_EQ(moves_.load(), 1);
}

// The switch reads the table again once the data has moved: until that read is done, a call
// waits. It must not take the route cached before the switch (fresh still, and the path the
// merchant has just left), not even on the non-blocking admission.
TEST_F(MerchantRouterTest, NoCallTakesTheOldRouteWhileTheSwitchReadsTheNewOne) {
  MerchantRouter router(redis_, mysql_, table_,
                        [this](const std::string& dept, Route from, Route to) -> Result<void> {
                          ALLOT_TRY_VOID(table_.saveRoute(dept, StoredRoute{from, true}));
                          ALLOT_TRY_VOID(table_.saveRoute(dept, StoredRoute{to, false}));
                          table_.holdNextRead();  // the switch's own read, next
                          return {};
                        },
                        {Route::kRedis, 60'000, 5000, 5000});
  EXPECT_EQ(served(router, "D1"), kRedisAnswer);
  auto switching =
      std::async(std::launch::async, [&] { return router.switchRoute("D1", Route::kMysql); });
  table_.readStarted();
  auto call = std::async(std::launch::async, [&] { return served(router, "D1"); });
  const bool answered_during_read =
      call.wait_for(std::chrono::milliseconds(200)) == std::future_status::ready;
  const bool admitted_during_read = router.tryAdmitRedis("D1");
  if (admitted_during_read) router.leave("D1");
  table_.releaseRead();
  ASSERT_TRUE(switching.get().has_value());
  EXPECT_FALSE(answered_during_read) << "a call was served while the switch read the table";
  EXPECT_FALSE(admitted_during_read) << "the fast path was admitted on the old route";
  EXPECT_EQ(call.get(), kMysqlAnswer);
  EXPECT_EQ(redis_.calls(), 1);
}

// A read of the table that begins while a switch drains (the admin's GET, say) and answers
// only after the switch has finished holds the route from before it. It must not land as the
// fresh route, nor hold up the switch's own read.
TEST_F(MerchantRouterTest, AReadThatAnswersAfterASwitchDoesNotBringBackTheOldRoute) {
  MerchantRouter router(redis_, mysql_, table_, recordingMove(),
                        {Route::kRedis, 60'000, 1000, 5000});
  EXPECT_EQ(served(router, "D1"), kRedisAnswer);
  redis_.blockNextCalls();
  auto in_flight = std::async(std::launch::async, [&] { return router.rollback({"D1", "O1"}); });
  while (redis_.calls() < 2) std::this_thread::yield();
  auto switching =
      std::async(std::launch::async, [&] { return router.switchRoute("D1", Route::kMysql); });
  while (router.tryAdmitRedis("D1")) {  // until the switch has closed the gate
    router.leave("D1");
    std::this_thread::yield();
  }
  table_.holdNextRead(true);
  auto slow_view = std::async(std::launch::async, [&] { return router.view("D1"); });
  table_.readStarted();
  redis_.releaseCalls();
  ASSERT_TRUE(in_flight.get().has_value());
  auto switched = switching.get();
  table_.releaseRead();
  auto viewed = slow_view.get();
  ASSERT_TRUE(switched.has_value()) << switched.error().message;
  EXPECT_EQ(switched->route, Route::kMysql);
  ASSERT_TRUE(viewed.has_value()) << viewed.error().message;
  EXPECT_EQ(viewed->route, Route::kMysql);
  EXPECT_EQ(served(router, "D1"), kMysqlAnswer);
  EXPECT_FALSE(router.tryAdmitRedis("D1"));
}

TEST_F(MerchantRouterTest, AFailedSwitchLeavesTheMerchantRefusedUntilSwitchedAgain) {
  MerchantRouter failing(redis_, mysql_, table_, recordingMove(false), {});
  auto failed = failing.switchRoute("D1", Route::kMysql);
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, ErrorCode::kUnavailable);
  auto refused = failing.readRecord(recordOf("D1"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(failing.view("D1")->switching);

  MerchantRouter retried(redis_, mysql_, table_, recordingMove(true), {});
  EXPECT_TRUE(retried.view("D1")->switching);
  ASSERT_TRUE(retried.switchRoute("D1", Route::kMysql).has_value());
  EXPECT_EQ(served(retried, "D1"), kMysqlAnswer);
}

TEST_F(MerchantRouterTest, ASwitchByAnotherProcessIsSeenAfterTheRefreshInterval) {
  MerchantRouter router(redis_, mysql_, table_, recordingMove(), {Route::kRedis, 50, 100, 100});
  EXPECT_EQ(served(router, "D1"), kRedisAnswer);
  ASSERT_TRUE(table_.saveRoute("D1", StoredRoute{Route::kMysql, false}).has_value());
  const int reads = table_.reads();
  EXPECT_EQ(served(router, "D1"), kRedisAnswer);  // cached
  EXPECT_EQ(table_.reads(), reads);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(served(router, "D1"), kMysqlAnswer);
}

}  // namespace
}  // namespace allot
