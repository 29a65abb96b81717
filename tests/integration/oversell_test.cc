// No oversell under concurrency: many clients (one thread and one keep-alive connection each)
// race for the same stock, with single-line orders, with every order sent twice at once, and
// with two-line orders over two records. The counts of 200 answers must match the stock to
// the unit, and the record's quantities must match the answers.
//
// An `unavailable` answer (or a dropped connection) is retried with the same order_no, as
// API.md allows; the idempotency of the order makes that safe, and the checks below would
// see a retry that held twice.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <iostream>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/allotd_process.h"
#include "support/api_client.h"
#include "support/test_env.h"

namespace allot::testing {
namespace {

namespace json = boost::json;

[[maybe_unused]] auto* const kAllotd =
    ::testing::AddGlobalTestEnvironment(new SharedAllotd(allotdOptions()));

constexpr int kClients = 64;
constexpr int kAttemptsMax = 50;
constexpr std::chrono::milliseconds kRetryBackoff{20};
constexpr std::chrono::seconds kOrderDeadline{60};
constexpr std::size_t kUnexpectedShownMax = 20;

// Retries made by every client of the running test, reported with its result: a run that
// passes only through many retries is worth knowing about.
std::atomic<int>& retriesMade() {
  static std::atomic<int> retries{0};
  return retries;
}

// The final answer to one order after retries of `unavailable`.
struct Outcome {
  ApiResponse response;
  int attempts = 0;
};

Outcome preallocateWithRetries(ApiClient& client, const std::string& dept, const std::string& order,
                               const std::vector<Line>& lines) {
  Outcome outcome;
  const auto deadline = std::chrono::steady_clock::now() + kOrderDeadline;
  while (true) {
    ++outcome.attempts;
    outcome.response = client.preallocate(dept, order, lines);
    const bool retryable =
        outcome.response.status == 0 ||
        (outcome.response.status == 503 && outcome.response.errorCode() == "unavailable");
    if (!retryable || outcome.attempts >= kAttemptsMax ||
        std::chrono::steady_clock::now() >= deadline) {
      return outcome;
    }
    ++retriesMade();
    std::this_thread::sleep_for(kRetryBackoff);
  }
}

// Answers that are neither the expected success nor the expected refusal, kept for the
// failure message (the first few only).
class Unexpected {
 public:
  void add(const std::string& order, const std::string& what) {
    std::lock_guard lock(mutex_);
    ++count_;
    if (shown_.size() < kUnexpectedShownMax) shown_.push_back(order + ": " + what);
  }
  [[nodiscard]] std::string report() const {
    std::string text = std::to_string(count_) + " unexpected answers";
    for (const auto& line : shown_) text += "\n  " + line;
    return text;
  }
  [[nodiscard]] int count() const { return count_; }

 private:
  std::mutex mutex_;
  int count_ = 0;
  std::vector<std::string> shown_;
};

// Runs body(client_index, client) on kClients threads that start together.
template <typename Body>
void runClients(const cli::Endpoint& endpoint, const std::string& token, int clients, Body body) {
  std::latch start(clients);
  std::vector<std::jthread> threads;
  for (int index = 0; index < clients; ++index) {
    threads.emplace_back([&, index] {
      ApiClient client(endpoint, token);
      start.arrive_and_wait();
      body(index, client);
    });
  }
}

class OversellTest : public AllotdTest {
 protected:
  void SetUp() override {
    AllotdTest::SetUp();
    retriesMade() = 0;
  }
  static void report(int allocated, int orders) {
    std::cout << "[   INFO   ] " << allocated << " of " << orders << " orders held, "
              << retriesMade().load() << " retries of unavailable answers\n";
  }

  // A 200 must be "allocated" and hold every line in full.
  static bool holdsEveryLine(const ApiResponse& answer, const std::vector<Line>& lines) {
    if (answer.string("status") != "allocated") return false;
    for (const auto& line : lines) {
      if (!hasLine(answer, line.key, line.qty, line.qty, 0)) return false;
    }
    return true;
  }
  // The "lines" of an answer, or null.
  static json::value linesOf(const ApiResponse& answer) {
    const auto* object = answer.object();
    const auto* lines = object != nullptr ? object->if_contains("lines") : nullptr;
    return lines != nullptr ? *lines : json::value();
  }
  static bool isInsufficient(const ApiResponse& answer) {
    return answer.status == 409 && answer.errorCode() == "insufficient_stock";
  }
};

TEST_F(OversellTest, ManyClientsNeverOversellOneRecord) {
  constexpr int kOrders = 5000;
  constexpr std::int64_t kStock = 1000;
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, kStock);
  const std::string prefix = uniqueName("o");
  const std::vector<Line> lines = {{key, 1}};

  std::atomic<int> next{0};
  std::atomic<int> allocated{0};
  std::atomic<int> refused{0};
  Unexpected unexpected;
  runClients(allotd().endpoint(), allotd().apiToken(), kClients, [&](int, ApiClient& client) {
    for (int i = next++; i < kOrders; i = next++) {
      const std::string order = prefix + "-" + std::to_string(i);
      const Outcome outcome = preallocateWithRetries(client, dept, order, lines);
      if (outcome.response.status == 200 && holdsEveryLine(outcome.response, lines)) {
        ++allocated;
      } else if (isInsufficient(outcome.response)) {
        ++refused;
      } else {
        unexpected.add(order, outcome.response.describe());
      }
    }
  });
  EXPECT_EQ(unexpected.count(), 0) << unexpected.report();
  EXPECT_EQ(allocated.load(), kStock);
  EXPECT_EQ(refused.load(), kOrders - kStock);
  report(allocated.load(), kOrders);
  EXPECT_TRUE(hasQuantities(api().stock(key), Quantities{kStock, kStock, 0}));
}

// Every order is sent by two threads at the same moment. Both copies must get the same
// answer, only one of them may have held (the other replays), and the record's hold must be
// exactly one unit per order answered 200.
TEST_F(OversellTest, DuplicateOrdersRacingHoldOnce) {
  constexpr int kPairs = kClients / 2;
  constexpr int kOrders = 2000;
  constexpr std::int64_t kStock = 500;
  const std::string dept = newDept();
  const RecordKey key = newRecord(dept, kStock);
  const std::string prefix = uniqueName("o");
  const std::vector<Line> lines = {{key, 1}};

  std::vector<std::unique_ptr<std::barrier<>>> pair_barriers;
  for (int p = 0; p < kPairs; ++p) pair_barriers.push_back(std::make_unique<std::barrier<>>(2));
  std::vector<std::array<Outcome, 2>> outcomes(kOrders);
  runClients(allotd().endpoint(), allotd().apiToken(), kClients, [&](int index, ApiClient& client) {
    const int pair = index / 2;
    for (int i = pair; i < kOrders; i += kPairs) {
      pair_barriers[pair]->arrive_and_wait();
      outcomes[i][index % 2] =
          preallocateWithRetries(client, dept, prefix + "-" + std::to_string(i), lines);
    }
  });

  int allocated_orders = 0;
  Unexpected unexpected;
  for (int i = 0; i < kOrders; ++i) {
    const std::string order = prefix + "-" + std::to_string(i);
    const ApiResponse& first = outcomes[i][0].response;
    const ApiResponse& second = outcomes[i][1].response;
    if (first.status == 200 && second.status == 200) {
      if (!holdsEveryLine(first, lines) || linesOf(first) != linesOf(second)) {
        unexpected.add(order, "different lines: " + first.describe() + " / " + second.describe());
      }
      const bool retried = outcomes[i][0].attempts > 1 || outcomes[i][1].attempts > 1;
      const int fresh =
          (first.boolean("replayed") == false) + (second.boolean("replayed") == false);
      if (fresh != 1 && !retried) {
        unexpected.add(
            order, "not exactly one first answer: " + first.describe() + " / " + second.describe());
      }
      ++allocated_orders;
    } else if (!isInsufficient(first) || !isInsufficient(second)) {
      unexpected.add(order, "copies answered " + first.describe() + " / " + second.describe());
    }
  }
  EXPECT_EQ(unexpected.count(), 0) << unexpected.report();
  EXPECT_EQ(allocated_orders, kStock);
  report(allocated_orders, kOrders);
  EXPECT_TRUE(hasQuantities(api().stock(key), Quantities{kStock, allocated_orders, 0}));
}

// Two-line orders over two records with different stock, the lines in both orders so that
// no lock or script order can be relied on. An all-or-nothing order may be refused while
// another order's hold is being reversed, so the count of 200s is not fixed; but every 200
// holds both lines, and the two records' holds agree with the count of 200s exactly.
TEST_F(OversellTest, TwoLineOrdersNeverOversellEitherRecord) {
  constexpr int kOrders = 3000;
  constexpr std::int64_t kStockA = 700;  // qty 2 per order: room for 350 orders
  constexpr std::int64_t kStockB = 400;  // qty 1 per order: room for 400 orders
  const std::string dept = newDept();
  const RecordKey a = newRecord(dept, kStockA);
  const RecordKey b = newRecord(dept, kStockB);
  const std::string prefix = uniqueName("o");

  std::atomic<int> next{0};
  std::atomic<int> allocated{0};
  Unexpected unexpected;
  runClients(allotd().endpoint(), allotd().apiToken(), kClients, [&](int, ApiClient& client) {
    for (int i = next++; i < kOrders; i = next++) {
      const std::vector<Line> lines =
          i % 2 == 0 ? std::vector<Line>{{a, 2}, {b, 1}} : std::vector<Line>{{b, 1}, {a, 2}};
      const std::string order = prefix + "-" + std::to_string(i);
      const Outcome outcome = preallocateWithRetries(client, dept, order, lines);
      if (outcome.response.status == 200 && holdsEveryLine(outcome.response, lines)) {
        ++allocated;
      } else if (!isInsufficient(outcome.response)) {
        unexpected.add(order, outcome.response.describe());
      }
    }
  });
  EXPECT_EQ(unexpected.count(), 0) << unexpected.report();
  report(allocated.load(), kOrders);
  EXPECT_GT(allocated.load(), 0);
  EXPECT_LE(allocated.load(), kStockA / 2);
  EXPECT_TRUE(hasQuantities(api().stock(a), Quantities{kStockA, 2 * allocated.load(), 0}));
  EXPECT_TRUE(hasQuantities(api().stock(b), Quantities{kStockB, allocated.load(), 0}));
}

}  // namespace
}  // namespace allot::testing
