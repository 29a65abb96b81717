// The load engine of allot-bench: N keep-alive HTTP/1.1 connections spread over a few
// threads (one Asio io_context each), each sending one request, waiting for its answer and
// sending the next. What to send and how to count an answer is the Workload's business; the
// engine measures latency, counts answers by status and error code, and prints a progress
// line every second.
//
// The per-request work is kept small on purpose, because the generator shares the machine's
// cores with the server it measures: a request is a prebuilt string whose digits are patched
// in place, and an answer is parsed only as far as its status line, Content-Length and the
// few fields the workload asks for (no JSON parser, no allocation once the buffers are warm).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "histogram.h"

namespace allot::bench {

inline constexpr int kLinesPerOrderMax = 16;
// The largest answer the engine accepts; beyond it the connection counts a protocol error.
inline constexpr std::size_t kResponseBytesMax = 4 * 1024 * 1024;

// One request and what it was about, rebuilt in place for every order of a flow.
struct RequestSlot {
  std::string request;
  std::array<std::uint32_t, kLinesPerOrderMax> records{};
  int lines = 0;
};

struct Response {
  int status = 0;
  std::string_view body;
};

// How many answers came back with one HTTP status and error code ("" for none).
struct StatusCount {
  int status = 0;
  std::string code;
  std::uint64_t count = 0;
};

// What one flow saw; the flows' tallies are merged at the end of a run.
struct Tally {
  LatencyHistogram latency;             // answers to requests started in the measured window
  std::uint64_t measured_answers = 0;   // ... all of them
  std::uint64_t measured_2xx = 0;       // ... those with a 2xx status
  std::uint64_t measured_holds = 0;     // ... record lines held by first (not replayed) 200s
  std::uint64_t orders = 0;             // orders sent (a retry-storm order counts once)
  std::uint64_t answers = 0;            // every answer, warm-up included
  std::uint64_t transport_errors = 0;   // connect/read/write failures and unparsable answers
  std::uint64_t replayed = 0;           // 200 answers with "replayed": true
  std::uint64_t answer_mismatches = 0;  // 200 answers whose lines did not match the request
  std::int64_t allocated_total = 0;     // sum of "allocated" over first 200 answers
  std::vector<std::int64_t> allocated_by_record;  // the same, per record number
  std::vector<StatusCount> statuses;

  void countStatus(int status, std::string_view code);
  void merge(const Tally& other);
};

class Workload {
 public:
  virtual ~Workload() = default;
  // Connections that send each request at the same time (2 for retry-storm).
  [[nodiscard]] virtual int copies() const { return 1; }
  // Record numbers the tallies keep allocated totals for (0: none).
  [[nodiscard]] virtual std::uint32_t recordCount() const { return 0; }
  // Rewrites slot.request for order number `sequence`; `random` is a fresh random number.
  virtual void prepare(std::uint64_t sequence, std::uint64_t random, RequestSlot& slot) const = 0;
  // Counts what an answer held (called for every answer, after the engine's own counting).
  virtual void account(const RequestSlot& slot, const Response& response, bool measured,
                       Tally& tally) const = 0;
};

struct EngineOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  int connections = 64;
  int threads = 1;
  // Exactly one of the two ends a run: a number of orders, or a time (after the warm-up).
  std::optional<std::uint64_t> orders;
  std::chrono::milliseconds duration{10'000};
  // Answers to requests started during the warm-up count for the checks, not the figures.
  std::chrono::milliseconds warmup{0};
  // A timed run that has not finished this long after its planned end is stopped, and so is
  // a run of a number of orders that has not finished this long after its start.
  std::chrono::milliseconds grace{30'000};
  std::chrono::milliseconds orders_deadline{600'000};
  bool progress = true;
};

struct EngineReport {
  Tally tally;
  double measured_seconds = 0.0;
  bool timed_out = false;
};

// Runs the workload to its end and returns the merged tallies.
[[nodiscard]] EngineReport runLoad(const Workload& workload, const EngineOptions& options);

}  // namespace allot::bench
