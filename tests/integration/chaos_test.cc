// kill -9 chaos: a real allotd is killed without warning at random moments of a mixed load
// (single- and multi-line preallocations, some with allow_shortage, rollbacks, deducts,
// adjusts, replays, rollbacks of unknown orders) over several records of one dept_no, and
// restarted each time. Clients run on several threads; a request that got no answer (a
// transport error at the kill) is retried with the same order_no or ref once allotd is back,
// and a 503 is retried later, as API.md allows. Every answer is tracked.
//
// After the last restart every request has a final answer, the write-back is drained (by a
// WriteBack in this process, next to allotd's own), and then:
//   (1) every record's on_hand, preallocated and shortage are equal in Redis and MariaDB, and
//       equal to what the tracked answers add up to (no hold lost, none invented);
//   (2) every order's status and lines are equal in Redis and MariaDB;
//   (3) every order answered 200 is there with the lines of that answer (allocated/shortage,
//       or rolled_back/deducted when this test ended it), refused orders left nothing, and a
//       replay or retry answered 200 equals what was held.
//
// A preallocation killed between its claim and its commit stays pending until its lease
// (limits::kOrderLeaseMs) expires; its retries answer 503 until then, so the test lasts
// about that lease plus the load.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/limits.h"
#include "domain/order.h"
#include "mysql/mysql_ledger.h"
#include "mysql/write_back_store.h"
#include "redis/client.h"
#include "redis/redis_stock_store.h"
#include "support/allotd_process.h"
#include "support/api_client.h"
#include "support/test_env.h"
#include "workers/write_back.h"

namespace allot::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr int kClients = 8;
constexpr int kKills = 5;
constexpr int kRecords = 6;
// Little stock, so that refusals and shortages are common once the first holds took it.
constexpr std::int64_t kInitialStock = 60;
constexpr int kLinesPerOrderMax = 3;
constexpr int kLineQtyMax = 4;
// Requests answered since the last restart before the next kill may come: each kill lands in
// a running load, not in a restart.
constexpr int kOpsBetweenKillsMin = 150;
constexpr int kKillDelayMaxMs = 400;
constexpr std::chrono::milliseconds kTransportRetryBackoff{20};
// A dead allotd is restarted within its readiness deadline (30 s); a request still without an
// answer by then is put aside like a 503 (and fails the test if it never gets one).
constexpr std::chrono::seconds kTransportRetryDeadline{40};
constexpr std::chrono::milliseconds kDeferredRetryBackoff{100};
// Pending orders of the last kill become claimable after their lease; then a retry finishes.
constexpr std::chrono::milliseconds kSettleDeadline{limits::kOrderLeaseMs + 10'000};
constexpr std::chrono::seconds kLoadPhaseDeadline{30};
constexpr std::chrono::seconds kVerifyDeadline{10};
constexpr std::chrono::milliseconds kVerifyRetryTick{200};
constexpr std::size_t kReportedMax = 40;
// How far back a client looks for a refused order to roll back (leaving a tombstone).
constexpr std::size_t kRefusedScanMax = 8;

// One line of an order as an answer, Redis or the database states it (keyed by goods_no: all
// records of the test share warehouse W1 and the default status, type and level).
struct LineState {
  std::int64_t qty = 0, allocated = 0, shortage = 0;
  std::string state;  // "held" | "released" | "deducted" ("" in answers)
  bool operator==(const LineState&) const = default;
};
using Lines = std::map<std::string, LineState>;

std::string describe(const Lines& lines) {
  std::string text = "[";
  for (const auto& [goods, line] : lines) {
    text += " " + goods + ":" + std::to_string(line.qty) + "/" + std::to_string(line.allocated) +
            "/" + std::to_string(line.shortage) + (line.state.empty() ? "" : "/" + line.state);
  }
  return text + " ]";
}

std::string describe(const std::optional<Quantities>& q) {
  if (!q) return "(absent)";
  return "on_hand " + std::to_string(q->on_hand) + ", preallocated " +
         std::to_string(q->preallocated) + ", shortage " + std::to_string(q->shortage);
}

// Problems found anywhere, kept for one failure message (the first few in full).
class Violations {
 public:
  void add(const std::string& what) {
    std::lock_guard lock(mutex_);
    ++count_;
    if (shown_.size() < kReportedMax) shown_.push_back(what);
  }
  [[nodiscard]] int count() {
    std::lock_guard lock(mutex_);
    return count_;
  }
  [[nodiscard]] std::string report() {
    std::lock_guard lock(mutex_);
    std::string text = std::to_string(count_) + " violations";
    for (const auto& line : shown_) text += "\n  " + line;
    return text;
  }

 private:
  std::mutex mutex_;
  int count_ = 0;
  std::vector<std::string> shown_;
};

struct SharedState {
  std::atomic<bool> stop_load{false};
  std::atomic<int> answered{0};  // requests with a final answer, all clients
  std::atomic<int> transport_retries{0};
  std::atomic<int> deferred{0};  // 503 answers put aside for a later retry
  Violations violations;

  // The first few 503 messages, printed with the statistics: why requests were put aside.
  void note503(const ApiResponse& answer) {
    std::lock_guard lock(samples_mutex);
    if (samples_503.size() < kSamples503Max) samples_503.push_back(answer.body);
  }
  static constexpr std::size_t kSamples503Max = 3;
  std::mutex samples_mutex;
  std::vector<std::string> samples_503;  // guarded by samples_mutex
};

// What the test knows of an order from the answers it got.
// kUnknown: an answer that broke the contract (already a violation); such an order is only
// compared between the two stores.
enum class Fate { kUnanswered, kHeld, kRefused, kRolledBack, kDeducted, kTombstone, kUnknown };

struct OrderTrack {
  std::string order_no;
  std::vector<Line> request;
  bool allow_shortage = false;
  Fate fate = Fate::kUnanswered;
  std::string status;  // "allocated" | "shortage" as answered 200
  Lines lines;         // as answered 200 (state "")
};

struct AdjustTrack {
  RecordKey key;
  std::string ref;
  std::int64_t delta = 0;
  bool answered = false;
  bool applied = false;
};

// The lines of a preallocation answer or order view, or nullopt when malformed.
std::optional<Lines> answerLines(const ApiResponse& response) {
  const auto* object = response.object();
  const auto* lines = object != nullptr ? object->if_contains("lines") : nullptr;
  if (lines == nullptr || !lines->is_array()) return std::nullopt;
  Lines out;
  for (const auto& value : lines->as_array()) {
    const auto* line = value.if_object();
    if (line == nullptr) return std::nullopt;
    const auto* goods = line->if_contains("goods_no");
    const auto* qty = line->if_contains("qty");
    const auto* allocated = line->if_contains("allocated");
    const auto* shortage = line->if_contains("shortage");
    if (goods == nullptr || !goods->is_string() || qty == nullptr || !qty->is_int64() ||
        allocated == nullptr || !allocated->is_int64() || shortage == nullptr ||
        !shortage->is_int64()) {
      return std::nullopt;
    }
    out[std::string(goods->as_string())] =
        LineState{qty->as_int64(), allocated->as_int64(), shortage->as_int64(), ""};
  }
  return out;
}

// One client thread: its own connection, random choices from its own seed, and the orders and
// adjusts it sent (no other thread touches them, so no lock).
class ChaosClient {
 public:
  ChaosClient(int index, const AllotdProcess& allotd, std::string dept,
              const std::vector<RecordKey>& records, std::uint64_t seed, SharedState& shared)
      : index_(index),
        api_(allotd.endpoint(), allotd.apiToken()),
        dept_(std::move(dept)),
        records_(records),
        random_(seed),
        shared_(shared),
        prefix_(uniqueName("c" + std::to_string(index))) {}

  void runLoad() {
    while (!shared_.stop_load.load()) step();
  }

  // Retries what was put aside (503) until everything has a final answer or the deadline.
  void settle(Clock::time_point deadline) {
    while (!deferred_.empty() && Clock::now() < deadline) {
      std::vector<Deferred> still;
      for (const Deferred& item : deferred_) {
        if (!retry(item)) still.push_back(item);
      }
      deferred_ = std::move(still);
      if (!deferred_.empty()) std::this_thread::sleep_for(kDeferredRetryBackoff);
    }
    for (const Deferred& item : deferred_) {
      shared_.violations.add("client " + std::to_string(index_) + ": no final answer by the " +
                             "deadline for " + describeDeferred(item));
    }
  }

  [[nodiscard]] const std::vector<OrderTrack>& orders() const { return orders_; }
  [[nodiscard]] const std::vector<AdjustTrack>& adjusts() const { return adjusts_; }

 private:
  enum class Kind { kPreallocate, kRollback, kDeduct, kAdjust };
  struct Deferred {
    Kind kind;
    std::size_t index;  // into orders_ or adjusts_
  };

  int below(int bound) { return std::uniform_int_distribution<int>(0, bound - 1)(random_); }

  void step() {
    const int roll = below(100);
    if (roll < 50 || held_.empty()) {
      preallocateNew();
    } else if (roll < 62) {
      endHeld(Kind::kRollback);
    } else if (roll < 74) {
      endHeld(Kind::kDeduct);
    } else if (roll < 88) {
      adjustNew();
    } else if (roll < 94) {
      replayHeld();
    } else {
      rollbackNeverHeld();
    }
    ++shared_.answered;
  }

  // Sends until an HTTP answer arrives: a transport error means allotd died or is starting.
  template <typename Call>
  ApiResponse send(Call call) {
    const auto deadline = Clock::now() + kTransportRetryDeadline;
    while (true) {
      ApiResponse response = call();
      if (response.status != 0 || Clock::now() >= deadline) return response;
      ++shared_.transport_retries;
      std::this_thread::sleep_for(kTransportRetryBackoff);
    }
  }

  void preallocateNew() {
    OrderTrack order;
    order.order_no = prefix_ + "-" + std::to_string(orders_.size());
    order.allow_shortage = below(100) < 30;
    std::vector<int> picked(kRecords);
    for (int i = 0; i < kRecords; ++i) picked[i] = i;
    std::shuffle(picked.begin(), picked.end(), random_);
    const int line_count = 1 + below(kLinesPerOrderMax);
    for (int i = 0; i < line_count; ++i) {
      order.request.push_back(Line{records_[picked[i]], 1 + below(kLineQtyMax)});
    }
    orders_.push_back(std::move(order));
    const std::size_t index = orders_.size() - 1;
    if (!resolvePreallocate(index)) defer({Kind::kPreallocate, index});
  }

  // True when the order got a final answer (recorded in its track).
  bool resolvePreallocate(std::size_t index) {
    OrderTrack& order = orders_[index];
    const ApiResponse answer = send([&] {
      return api_.preallocate(dept_, order.order_no, order.request, order.allow_shortage);
    });
    if (isUnavailable(answer)) {
      if (answer.status == 503) shared_.note503(answer);
      return false;
    }
    if (answer.status == 409 && answer.errorCode() == "insufficient_stock" &&
        !order.allow_shortage) {
      order.fate = Fate::kRefused;
      return true;
    }
    const auto lines = answer.status == 200 ? answerLines(answer) : std::nullopt;
    const auto status = answer.string("status");
    if (!lines || !status || !validHold(order, *status, *lines)) {
      violation(order.order_no, "preallocate answered " + answer.describe());
      order.fate = Fate::kUnknown;
      return true;
    }
    order.fate = Fate::kHeld;
    order.status = *status;
    order.lines = *lines;
    held_.push_back(index);
    return true;
  }

  // An answer's lines are exactly the requested ones, each split into allocated + shortage,
  // with shortage only when allowed, and the status agrees.
  static bool validHold(const OrderTrack& order, const std::string& status, const Lines& lines) {
    if (lines.size() != order.request.size()) return false;
    bool short_any = false;
    for (const Line& line : order.request) {
      const auto found = lines.find(line.key.goods_no);
      if (found == lines.end()) return false;
      const LineState& got = found->second;
      if (got.qty != line.qty || got.allocated < 0 || got.shortage < 0 ||
          got.allocated + got.shortage != line.qty) {
        return false;
      }
      short_any = short_any || got.shortage > 0;
    }
    if (short_any && !order.allow_shortage) return false;
    return status == (short_any ? "shortage" : "allocated");
  }

  void endHeld(Kind kind) {
    const std::size_t pick = static_cast<std::size_t>(below(static_cast<int>(held_.size())));
    const std::size_t index = held_[pick];
    held_[pick] = held_.back();
    held_.pop_back();
    if (!resolveEnd(kind, index)) defer({kind, index});
  }

  bool resolveEnd(Kind kind, std::size_t index) {
    OrderTrack& order = orders_[index];
    const bool rollback = kind == Kind::kRollback;
    const ApiResponse answer = send([&] {
      return rollback ? api_.rollback(dept_, order.order_no) : api_.deduct(dept_, order.order_no);
    });
    if (isUnavailable(answer)) return false;
    const std::string expected = rollback ? "rolled_back" : "deducted";
    if (answer.status != 200 || answer.string("status") != expected) {
      violation(order.order_no,
                (rollback ? "rollback" : "deduct") + std::string(" answered ") + answer.describe());
    }
    const bool held_before = order.fate == Fate::kHeld;
    order.fate = !rollback ? Fate::kDeducted : held_before ? Fate::kRolledBack : Fate::kTombstone;
    return true;
  }

  // A rollback of an order this client never held: a fresh order_no or a refused one. It
  // leaves a bare tombstone.
  void rollbackNeverHeld() {
    std::size_t index = orders_.size();
    for (std::size_t i = 0; i < kRefusedScanMax && i < orders_.size(); ++i) {
      const std::size_t candidate = orders_.size() - 1 - i;
      if (orders_[candidate].fate == Fate::kRefused && !tombstoned_.contains(candidate)) {
        index = candidate;
      }
    }
    if (index == orders_.size()) {
      OrderTrack order;
      order.order_no = prefix_ + "-t" + std::to_string(orders_.size());
      order.fate = Fate::kRefused;  // never held: a rollback leaves a tombstone
      orders_.push_back(std::move(order));
    }
    tombstoned_.insert(index);
    if (!resolveEnd(Kind::kRollback, index)) defer({Kind::kRollback, index});
  }

  void adjustNew() {
    AdjustTrack adjust;
    adjust.key = records_[static_cast<std::size_t>(below(kRecords))];
    adjust.ref = prefix_ + "-a" + std::to_string(adjusts_.size());
    adjust.delta = below(100) < 35 ? -(1 + below(6)) : 1 + below(12);
    adjusts_.push_back(std::move(adjust));
    const std::size_t index = adjusts_.size() - 1;
    if (!resolveAdjust(index)) defer({Kind::kAdjust, index});
  }

  bool resolveAdjust(std::size_t index) {
    AdjustTrack& adjust = adjusts_[index];
    const ApiResponse answer =
        send([&] { return api_.adjustDelta(adjust.key, adjust.ref, adjust.delta); });
    if (isUnavailable(answer)) return false;
    adjust.answered = true;
    if (answer.status == 200 && quantitiesOf(answer).has_value()) {
      adjust.applied = true;
    } else if (!(answer.status == 409 && answer.errorCode() == "insufficient_stock" &&
                 adjust.delta < 0)) {
      violation(adjust.ref, "adjust " + std::to_string(adjust.delta) + " of " + adjust.key.index() +
                                " answered " + answer.describe());
    }
    return true;
  }

  // The same request again: it must replay exactly what was held.
  void replayHeld() {
    const OrderTrack& order =
        orders_[held_[static_cast<std::size_t>(below(static_cast<int>(held_.size())))]];
    const ApiResponse answer = send([&] {
      return api_.preallocate(dept_, order.order_no, order.request, order.allow_shortage);
    });
    if (isUnavailable(answer)) return;  // changes nothing either way
    const auto lines = answer.status == 200 ? answerLines(answer) : std::nullopt;
    if (!lines || *lines != order.lines || answer.string("status") != order.status ||
        answer.boolean("replayed") != true) {
      violation(order.order_no, "replay of " + order.status + " " + describe(order.lines) +
                                    " answered " + answer.describe());
    }
  }

  bool retry(const Deferred& item) {
    switch (item.kind) {
      case Kind::kPreallocate: return resolvePreallocate(item.index);
      case Kind::kRollback:
      case Kind::kDeduct: return resolveEnd(item.kind, item.index);
      case Kind::kAdjust: return resolveAdjust(item.index);
    }
    return true;
  }

  std::string describeDeferred(const Deferred& item) const {
    if (item.kind == Kind::kAdjust) return "adjust " + adjusts_[item.index].ref;
    const char* what = item.kind == Kind::kPreallocate ? "preallocate "
                       : item.kind == Kind::kRollback  ? "rollback "
                                                       : "deduct ";
    return what + orders_[item.index].order_no;
  }

  // 503, or no answer at all by the transport deadline: retried later with the same request.
  static bool isUnavailable(const ApiResponse& answer) {
    return answer.status == 0 || (answer.status == 503 && answer.errorCode() == "unavailable");
  }

  void defer(Deferred item) {
    ++shared_.deferred;
    deferred_.push_back(item);
  }

  void violation(const std::string& name, const std::string& what) {
    shared_.violations.add("client " + std::to_string(index_) + " " + name + ": " + what);
  }

  const int index_;
  ApiClient api_;
  const std::string dept_;
  const std::vector<RecordKey>& records_;
  std::mt19937_64 random_;
  SharedState& shared_;
  const std::string prefix_;
  std::vector<OrderTrack> orders_;
  std::set<std::size_t> tombstoned_;  // orders_ indices rolled back as never held
  std::vector<AdjustTrack> adjusts_;
  std::vector<std::size_t> held_;  // orders_ indices answered 200 and not ended
  std::vector<Deferred> deferred_;
};

// MariaDB's view of the test's records and orders.
class DbReader {
 public:
  explicit DbReader(mysql::Pool& pool) : pool_(pool) {}

  Result<std::optional<Quantities>> record(const RecordKey& key) {
    ALLOT_TRY(lease, pool_.acquire());
    ALLOT_TRY(rows, lease->query("SELECT on_hand, preallocated, shortage FROM stock WHERE "
                                 "dept_no = ? AND goods_no = ? AND warehouse_no = ? AND "
                                 "stock_status = ? AND stock_type = ? AND goods_level = ?",
                                 {key.dept_no, key.goods_no, key.warehouse_no, key.stock_status,
                                  key.stock_type, key.goods_level}));
    if (rows.empty()) return std::optional<Quantities>();
    ALLOT_TRY(on_hand, rows[0].integer(0));
    ALLOT_TRY(preallocated, rows[0].integer(1));
    ALLOT_TRY(shortage, rows[0].integer(2));
    return std::optional<Quantities>(Quantities{on_hand, preallocated, shortage});
  }

  // "none" when the order has no row.
  Result<std::string> orderStatus(const std::string& dept, const std::string& order_no) {
    ALLOT_TRY(lease, pool_.acquire());
    ALLOT_TRY(rows, lease->query("SELECT status FROM orders WHERE dept_no = ? AND order_no = ?",
                                 {dept, order_no}));
    if (rows.empty()) return std::string("none");
    return std::string(rows[0].text(0));
  }

  Result<Lines> orderLines(const std::string& dept, const std::string& order_no) {
    ALLOT_TRY(lease, pool_.acquire());
    ALLOT_TRY(rows, lease->query("SELECT goods_no, qty, allocated, shortage, state FROM "
                                 "order_lines WHERE dept_no = ? AND order_no = ?",
                                 {dept, order_no}));
    Lines out;
    for (const auto& row : rows) {
      ALLOT_TRY(qty, row.integer(1));
      ALLOT_TRY(allocated, row.integer(2));
      ALLOT_TRY(shortage, row.integer(3));
      out[std::string(row.text(0))] = LineState{qty, allocated, shortage, std::string(row.text(4))};
    }
    return out;
  }

 private:
  mysql::Pool& pool_;
};

// What an order looks like in one store: its status ("none" when absent) and lines.
struct OrderView {
  std::string status;
  Lines lines;
  bool operator==(const OrderView&) const = default;
};

std::string describe(const OrderView& view) { return view.status + " " + describe(view.lines); }

std::string lineStateFor(std::string_view status) {
  if (status == "deducted") return "deducted";
  if (status == "rolled_back") return "released";
  return "held";
}

// The view the tracked answers promise, or nullopt when the test cannot know it.
std::optional<OrderView> expectedView(const OrderTrack& order) {
  auto with = [&](const std::string& status) {
    OrderView view{status, order.lines};
    for (auto& [goods, line] : view.lines) line.state = lineStateFor(status);
    return view;
  };
  switch (order.fate) {
    case Fate::kHeld: return with(order.status);
    case Fate::kRolledBack: return with("rolled_back");
    case Fate::kDeducted: return with("deducted");
    case Fate::kRefused: return OrderView{"none", {}};
    case Fate::kTombstone: return OrderView{"rolled_back", {}};
    case Fate::kUnanswered:
    case Fate::kUnknown: return std::nullopt;
  }
  return std::nullopt;
}

class ChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // allotd runs on the Redis Cluster when ctest asks for it; read the same Redis.
    const char* on_cluster = std::getenv("ALLOT_TEST_ALLOTD_ON_CLUSTER");
    const bool cluster = on_cluster != nullptr && std::string_view(on_cluster) == "1";
    auto redis_options = redis::parseRedisUrl(cluster ? redisClusterUrl() : redisUrl());
    ASSERT_TRUE(redis_options.has_value()) << redis_options.error().message;
    auto client = redis::Client::connect(*redis_options);
    ASSERT_TRUE(client.has_value()) << client.error().message;
    redis_ = std::move(*client);
    hot_ = std::make_unique<redis::RedisStockStore>(*redis_, redis::StoreOptions{});
    auto mysql_options = mysql::parseMysqlUrl(mysqlUrl());
    ASSERT_TRUE(mysql_options.has_value()) << mysql_options.error().message;
    auto ledger = mysql::MysqlLedger::open(*mysql_options);
    ASSERT_TRUE(ledger.has_value()) << ledger.error().message;
    ledger_ = std::move(*ledger);
    store_ = std::make_unique<mysql::WriteBackStore>(ledger_->pool());
    write_back_ = std::make_unique<workers::WriteBack>(*redis_, *store_);
    db_ = std::make_unique<DbReader>(ledger_->pool());
    auto allotd = AllotdProcess::start(allotdOptions());
    ASSERT_TRUE(allotd.has_value()) << allotd.error().message;
    allotd_ = std::move(*allotd);
  }

  void TearDown() override {
    if (HasFailure() && allotd_ != nullptr) {
      std::cerr << "---- tail of the allotd log (" << allotd_->logPath() << ") ----\n"
                << allotd_->logTail(40) << "\n----\n";
    }
  }

  // Waits until `count` more requests were answered since `mark`, or the deadline.
  static bool waitAnswered(const SharedState& shared, int mark, int count,
                           Clock::time_point deadline) {
    while (shared.answered.load() < mark + count) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

  // kRecords records of `dept`, each stocked with kInitialStock (fails the test otherwise).
  std::vector<RecordKey> stockRecords(const std::string& dept) {
    ApiClient api(allotd_->endpoint(), allotd_->apiToken());
    std::vector<RecordKey> records;
    for (int i = 0; i < kRecords; ++i) {
      records.push_back(makeKey(dept, "G" + std::to_string(i), "W1"));
      EXPECT_TRUE(hasQuantities(api.adjustDelta(records.back(), uniqueName("init"), kInitialStock),
                                Quantities{kInitialStock, 0, 0}));
    }
    return records;
  }

  int killAndRestart(SharedState& shared, std::mt19937_64& random, Clock::time_point deadline);
  std::vector<std::string> drainAndCompare(const std::string& dept,
                                           const std::vector<RecordKey>& records,
                                           const std::map<std::string, Quantities>& expected,
                                           const std::vector<const OrderTrack*>& orders);
  // Every difference between Redis, MariaDB and the tracked answers, as text.
  std::vector<std::string> differences(const std::string& dept,
                                       const std::vector<RecordKey>& records,
                                       const std::map<std::string, Quantities>& expected,
                                       const std::vector<const OrderTrack*>& orders);

  std::unique_ptr<redis::Client> redis_;
  std::unique_ptr<redis::RedisStockStore> hot_;
  std::unique_ptr<mysql::MysqlLedger> ledger_;
  std::unique_ptr<mysql::WriteBackStore> store_;
  std::unique_ptr<workers::WriteBack> write_back_;
  std::unique_ptr<DbReader> db_;
  std::unique_ptr<AllotdProcess> allotd_;
};

std::vector<std::string> ChaosTest::differences(const std::string& dept,
                                                const std::vector<RecordKey>& records,
                                                const std::map<std::string, Quantities>& expected,
                                                const std::vector<const OrderTrack*>& orders) {
  std::vector<std::string> out;
  for (const RecordKey& key : records) {
    auto in_redis = hot_->readRecord(key);
    auto in_db = db_->record(key);
    if (!in_redis || !in_db) {
      out.push_back(key.goods_no + ": read failed: " +
                    (in_redis ? in_db.error().message : in_redis.error().message));
      continue;
    }
    if (*in_redis != *in_db) {
      out.push_back("(1) record " + key.goods_no + ": Redis " + describe(*in_redis) + " != DB " +
                    describe(*in_db));
    }
    const Quantities& want = expected.at(key.goods_no);
    if (*in_redis != std::optional<Quantities>(want)) {
      out.push_back("(1) record " + key.goods_no + ": Redis " + describe(*in_redis) +
                    " != the answers' sum " + describe(want));
    }
  }
  for (const OrderTrack* order : orders) {
    auto stored = hot_->readOrder({dept, order->order_no});
    auto db_status = db_->orderStatus(dept, order->order_no);
    auto db_lines = db_->orderLines(dept, order->order_no);
    if (!stored || !db_status || !db_lines) {
      out.push_back(order->order_no + ": read failed");
      continue;
    }
    OrderView redis_view{"none", {}};
    if (stored->has_value()) {
      redis_view.status = std::string(orderStatusName((*stored)->status));
      auto decoded = decodeLineOutcomes(dept, (*stored)->answer_blob);
      if (!decoded) {
        out.push_back(order->order_no + ": undecodable answer in Redis");
        continue;
      }
      for (const LineOutcome& line : *decoded) {
        redis_view.lines[line.key.goods_no] =
            LineState{line.qty, line.allocated, line.shortage, lineStateFor(redis_view.status)};
      }
    }
    const OrderView db_view{*db_status, *db_lines};
    if (redis_view != db_view) {
      out.push_back("(2) order " + order->order_no + ": Redis " + describe(redis_view) + " != DB " +
                    describe(db_view));
    }
    const auto want = expectedView(*order);
    if (want && redis_view != *want) {
      out.push_back("(3) order " + order->order_no + ": Redis " + describe(redis_view) +
                    " != answered " + describe(*want));
    }
  }
  return out;
}

// The quantities the tracked answers add up to, per goods_no.
std::map<std::string, Quantities> expectedRecords(const std::vector<RecordKey>& records,
                                                  const std::vector<const OrderTrack*>& orders,
                                                  const std::vector<const AdjustTrack*>& adjusts) {
  std::map<std::string, Quantities> out;
  for (const RecordKey& key : records) out[key.goods_no] = Quantities{kInitialStock, 0, 0};
  for (const AdjustTrack* adjust : adjusts) {
    if (adjust->applied) out[adjust->key.goods_no].on_hand += adjust->delta;
  }
  for (const OrderTrack* order : orders) {
    for (const auto& [goods, line] : order->lines) {
      Quantities& q = out[goods];
      if (order->fate == Fate::kHeld) {
        q.preallocated += line.allocated;
        q.shortage += line.shortage;
      } else if (order->fate == Fate::kDeducted) {
        q.on_hand -= line.allocated;
      }
    }
  }
  return out;
}

// The statistics of a run, printed with its result: a pass that saw no kill in flight, no
// refusal or no shortage would be worth knowing about.
struct RunSummary {
  std::map<Fate, int> fates;
  int with_shortage = 0;
  std::size_t orders = 0, adjusts = 0;
  Clock::duration load{}, settle{}, total{};
};

void printSummary(const RunSummary& run, SharedState& shared) {
  const auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  auto fate = [&](Fate f) { return run.fates.contains(f) ? run.fates.at(f) : 0; };
  std::cout << "[   INFO   ] " << kKills << " kills; " << run.orders << " orders (held "
            << fate(Fate::kHeld) << ", rolled back " << fate(Fate::kRolledBack) << ", deducted "
            << fate(Fate::kDeducted) << ", refused " << fate(Fate::kRefused) << ", tombstones "
            << fate(Fate::kTombstone) << ", unanswered " << fate(Fate::kUnanswered) << "; "
            << run.with_shortage << " answered shortage), " << run.adjusts << " adjusts; "
            << shared.transport_retries.load() << " transport retries, " << shared.deferred.load()
            << " 503s put aside; load " << seconds(run.load) << " s, retries "
            << seconds(run.settle) << " s, total " << seconds(run.total) << " s\n";
  std::lock_guard lock(shared.samples_mutex);
  for (const auto& sample : shared.samples_503) std::cout << "[   INFO   ] 503: " << sample << "\n";
}

// Kills allotd kKills times, each after at least kOpsBetweenKillsMin answers since the last
// restart and a random delay, and restarts it. Returns how many kills were done.
int ChaosTest::killAndRestart(SharedState& shared, std::mt19937_64& random,
                              Clock::time_point deadline) {
  for (int kills = 0; kills < kKills; ++kills) {
    if (!waitAnswered(shared, shared.answered.load(), kOpsBetweenKillsMin, deadline)) return kills;
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(0, kKillDelayMaxMs)(random)));
    auto killed = allotd_->kill9();
    if (!killed) {
      ADD_FAILURE() << "kill -9: " << killed.error().message;
      return kills;
    }
    auto restarted = allotd_->restart();
    if (!restarted) {
      ADD_FAILURE() << "restart after kill " << kills + 1 << ": " << restarted.error().message;
      return kills;
    }
  }
  return kKills;
}

// Drains in this process (allotd's own write-back runs too; the stored positions make each
// event apply once) until the stores agree with each other and with the answers, or the
// deadline passes. Returns what still differs.
std::vector<std::string> ChaosTest::drainAndCompare(
    const std::string& dept, const std::vector<RecordKey>& records,
    const std::map<std::string, Quantities>& expected,
    const std::vector<const OrderTrack*>& orders) {
  std::vector<std::string> found;
  const auto deadline = Clock::now() + kVerifyDeadline;
  while (true) {
    auto drained = write_back_->drainOnce();
    found = drained ? differences(dept, records, expected, orders)
                    : std::vector<std::string>{"drain failed: " + drained.error().message};
    if (found.empty() || Clock::now() >= deadline) return found;
    std::this_thread::sleep_for(kVerifyRetryTick);
  }
}

TEST_F(ChaosTest, KillNineDuringMixedLoadLosesNoAnsweredHold) {
  const auto test_start = Clock::now();
  const std::string dept = uniqueName("chaos");
  const std::vector<RecordKey> records = stockRecords(dept);
  ASSERT_FALSE(HasFailure());
  const std::uint64_t seed = std::random_device()();
  std::cout << "[   INFO   ] seed " << seed << ", dept " << dept << "\n";
  std::mt19937_64 chaos_random(seed);

  SharedState shared;
  std::vector<std::unique_ptr<ChaosClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(
        std::make_unique<ChaosClient>(i, *allotd_, dept, records, seed + 1 + i, shared));
  }
  RunSummary run;
  Clock::time_point settle_deadline{};
  {
    std::vector<std::jthread> threads;
    for (auto& client : clients) {
      threads.emplace_back([&client, &settle_deadline] {
        client->runLoad();
        client->settle(settle_deadline);
      });
    }
    const auto load_deadline = Clock::now() + kLoadPhaseDeadline;
    EXPECT_EQ(killAndRestart(shared, chaos_random, load_deadline), kKills)
        << "the load did not reach every kill within " << kLoadPhaseDeadline.count() << " s";
    // Some load after the last restart too; then the clients settle what they put aside.
    EXPECT_TRUE(waitAnswered(shared, shared.answered.load(), kOpsBetweenKillsMin, load_deadline));
    run.load = Clock::now() - test_start;
    settle_deadline = Clock::now() + kSettleDeadline;
    shared.stop_load = true;  // publishes settle_deadline to the threads
  }
  run.settle = Clock::now() - test_start - run.load;

  std::vector<const OrderTrack*> orders;
  std::vector<const AdjustTrack*> adjusts;
  for (const auto& client : clients) {
    for (const auto& order : client->orders()) {
      orders.push_back(&order);
      ++run.fates[order.fate];
      run.with_shortage += order.status == "shortage" ? 1 : 0;
    }
    for (const auto& adjust : client->adjusts()) adjusts.push_back(&adjust);
  }
  run.orders = orders.size();
  run.adjusts = adjusts.size();
  const auto found =
      drainAndCompare(dept, records, expectedRecords(records, orders, adjusts), orders);
  for (std::size_t i = 0; i < found.size() && i < kReportedMax; ++i) {
    shared.violations.add(found[i]);
  }
  run.total = Clock::now() - test_start;
  printSummary(run, shared);
  EXPECT_EQ(shared.violations.count(), 0) << shared.violations.report();
  EXPECT_EQ(run.fates[Fate::kUnanswered], 0);
  // Clients keep sending while allotd is down, so every kill shows up as transport errors.
  EXPECT_GT(shared.transport_retries.load(), 0);
}

}  // namespace
}  // namespace allot::testing
