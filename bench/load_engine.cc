#include "load_engine.h"

#include <fmt/format.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <charconv>
#include <functional>
#include <memory>
#include <random>
#include <thread>

namespace allot::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

void Tally::countStatus(int status, std::string_view code) {
  for (auto& entry : statuses) {
    if (entry.status == status && entry.code == code) {
      ++entry.count;
      return;
    }
  }
  statuses.push_back(StatusCount{status, std::string(code), 1});
}

void Tally::merge(const Tally& other) {
  latency.merge(other.latency);
  measured_answers += other.measured_answers;
  measured_2xx += other.measured_2xx;
  measured_holds += other.measured_holds;
  orders += other.orders;
  answers += other.answers;
  transport_errors += other.transport_errors;
  replayed += other.replayed;
  answer_mismatches += other.answer_mismatches;
  allocated_total += other.allocated_total;
  if (allocated_by_record.size() < other.allocated_by_record.size()) {
    allocated_by_record.resize(other.allocated_by_record.size(), 0);
  }
  for (std::size_t i = 0; i < other.allocated_by_record.size(); ++i) {
    allocated_by_record[i] += other.allocated_by_record[i];
  }
  for (const auto& entry : other.statuses) {
    bool found = false;
    for (auto& mine : statuses) {
      if (mine.status == entry.status && mine.code == entry.code) {
        mine.count += entry.count;
        found = true;
      }
    }
    if (!found) statuses.push_back(entry);
  }
}

namespace {

// The counters the progress line reads, one cache line per thread.
struct alignas(64) Progress {
  std::atomic<std::uint64_t> answers{0};
  std::atomic<std::uint64_t> not_2xx{0};
  std::atomic<std::uint64_t> transport_errors{0};
};

// What every flow of a run shares.
struct Shared {
  const Workload* workload = nullptr;
  std::uint64_t orders_max = UINT64_MAX;
  std::atomic<std::uint64_t> next_sequence{0};
  std::atomic<bool> stopping{false};
  Clock::time_point measure_start;
};

// The parts of an HTTP answer the engine needs; `complete` is false until all has arrived.
struct ParsedHead {
  bool complete = false;
  bool valid = true;
  bool close = false;
  int status = 0;
  std::size_t body_offset = 0;
  std::size_t body_length = 0;
};

bool startsWithNoCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         ::strncasecmp(text.data(), prefix.data(), prefix.size()) == 0;
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Parses the status line and the headers allot-bench cares about. Answers without a
// Content-Length (chunked, or read-until-close) are refused: allotd and nginx both send one.
ParsedHead parseHead(std::string_view data) {
  ParsedHead head;
  const auto header_end = data.find("\r\n\r\n");
  if (header_end == std::string_view::npos) return head;
  const std::string_view headers = data.substr(0, header_end);
  if (headers.size() < 12 || !headers.starts_with("HTTP/1.")) {
    head.valid = false;
    return head;
  }
  std::from_chars(headers.data() + 9, headers.data() + 12, head.status);
  bool has_length = false;
  std::size_t line_start = headers.find("\r\n");
  while (line_start != std::string_view::npos) {
    line_start += 2;
    const auto line_end = headers.find("\r\n", line_start);
    const auto line = headers.substr(line_start, line_end - line_start);
    if (startsWithNoCase(line, "content-length:")) {
      const auto value = trimmed(line.substr(15));
      has_length =
          std::from_chars(value.data(), value.data() + value.size(), head.body_length).ec ==
          std::errc();
    } else if (startsWithNoCase(line, "connection:")) {
      head.close = startsWithNoCase(trimmed(line.substr(11)), "close");
    }
    line_start = line_end;
  }
  if (!has_length || head.body_length > kResponseBytesMax) {
    head.valid = false;
    return head;
  }
  head.body_offset = header_end + 4;
  head.complete = data.size() >= head.body_offset + head.body_length;
  return head;
}

// The error code of an allot error body ({"error":"CODE",...}); empty when there is none.
std::string_view errorCodeOf(std::string_view body) {
  constexpr std::string_view kKey = "\"error\":\"";
  const auto at = body.find(kKey);
  if (at == std::string_view::npos) return {};
  const auto start = at + kKey.size();
  const auto end = body.find('"', start);
  if (end == std::string_view::npos) return {};
  return body.substr(start, std::min<std::size_t>(end - start, 40));
}

class Flow;

// One keep-alive connection: sends a request, reads one answer, hands it to its flow.
class Connection {
 public:
  Connection(asio::io_context& io, tcp::endpoint endpoint, Flow& flow, int index)
      : socket_(io), endpoint_(endpoint), flow_(flow), index_(index) {
    buffer_.resize(16 * 1024);
  }

  void send(const std::string& request, Clock::time_point started);
  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    open_ = false;
  }

 private:
  void write();
  void readMore();
  void fail();

  tcp::socket socket_;
  tcp::endpoint endpoint_;
  Flow& flow_;
  int index_;
  bool open_ = false;
  const std::string* request_ = nullptr;
  Clock::time_point started_;
  std::vector<char> buffer_;
  std::size_t used_ = 0;
};

// A sequence of orders, each sent on `copies` connections at once; the next order goes out
// when every copy has been answered.
class Flow {
 public:
  Flow(asio::io_context& io, tcp::endpoint endpoint, Shared& shared, Progress& progress,
       std::uint64_t seed)
      : shared_(shared), progress_(progress), random_(seed) {
    const int copies = shared.workload->copies();
    for (int i = 0; i < copies; ++i) {
      connections_.push_back(std::make_unique<Connection>(io, endpoint, *this, i));
    }
    tally_.allocated_by_record.assign(shared.workload->recordCount(), 0);
  }

  void next() {
    if (shared_.stopping.load(std::memory_order_relaxed)) return finish();
    const auto sequence = shared_.next_sequence.fetch_add(1, std::memory_order_relaxed);
    if (sequence >= shared_.orders_max) return finish();
    shared_.workload->prepare(sequence, random_(), slot_);
    ++tally_.orders;
    pending_ = static_cast<int>(connections_.size());
    const auto now = Clock::now();
    measured_ = now >= shared_.measure_start;
    for (auto& connection : connections_) connection->send(slot_.request, now);
  }

  void answered(Clock::time_point started, const Response& response) {
    const auto now = Clock::now();
    ++tally_.answers;
    progress_.answers.fetch_add(1, std::memory_order_relaxed);
    const bool ok = response.status >= 200 && response.status < 300;
    if (!ok) progress_.not_2xx.fetch_add(1, std::memory_order_relaxed);
    tally_.countStatus(response.status, ok ? std::string_view{} : errorCodeOf(response.body));
    if (measured_) {
      const auto micros =
          std::chrono::duration_cast<std::chrono::microseconds>(now - started).count();
      tally_.latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(micros, 0)));
      ++tally_.measured_answers;
      if (ok) ++tally_.measured_2xx;
      last_measured_answer_ = now;
    }
    shared_.workload->account(slot_, response, measured_, tally_);
    copyDone();
  }

  void transportFailed() {
    ++tally_.transport_errors;
    progress_.transport_errors.fetch_add(1, std::memory_order_relaxed);
    copyDone();
  }

  [[nodiscard]] const Tally& tally() const { return tally_; }
  [[nodiscard]] std::optional<Clock::time_point> lastMeasuredAnswer() const {
    return last_measured_answer_;
  }

 private:
  void copyDone() {
    if (--pending_ == 0) next();
  }
  void finish() {
    for (auto& connection : connections_) connection->close();
  }

  Shared& shared_;
  Progress& progress_;
  std::mt19937_64 random_;
  std::vector<std::unique_ptr<Connection>> connections_;
  RequestSlot slot_;
  Tally tally_;
  int pending_ = 0;
  bool measured_ = false;
  std::optional<Clock::time_point> last_measured_answer_;
};

void Connection::send(const std::string& request, Clock::time_point started) {
  request_ = &request;
  started_ = started;
  used_ = 0;
  if (open_) return write();
  socket_.async_connect(endpoint_, [this](const boost::system::error_code& error) {
    if (error) return fail();
    open_ = true;
    socket_.set_option(tcp::no_delay(true));
    write();
  });
}

void Connection::write() {
  asio::async_write(socket_, asio::buffer(*request_),
                    [this](const boost::system::error_code& error, std::size_t) {
                      if (error) return fail();
                      readMore();
                    });
}

void Connection::readMore() {
  if (used_ == buffer_.size()) {
    if (buffer_.size() >= kResponseBytesMax) return fail();
    buffer_.resize(buffer_.size() * 2);
  }
  socket_.async_read_some(
      asio::buffer(buffer_.data() + used_, buffer_.size() - used_),
      [this](const boost::system::error_code& error, std::size_t bytes) {
        if (error) return fail();
        used_ += bytes;
        const std::string_view data(buffer_.data(), used_);
        const auto head = parseHead(data);
        if (!head.valid) return fail();
        if (!head.complete) return readMore();
        if (head.close) close();
        flow_.answered(started_,
                       Response{head.status, data.substr(head.body_offset, head.body_length)});
      });
}

void Connection::fail() {
  close();
  flow_.transportFailed();
}

// One thread's share of the flows, with its io_context.
struct Worker {
  asio::io_context io{1};
  std::vector<std::unique_ptr<Flow>> flows;
  std::thread thread;
};

void printProgress(const std::vector<std::unique_ptr<Progress>>& progress, double seconds,
                   std::uint64_t& previous_answers, bool warming_up) {
  std::uint64_t answers = 0;
  std::uint64_t not_2xx = 0;
  std::uint64_t transport = 0;
  for (const auto& entry : progress) {
    answers += entry->answers.load(std::memory_order_relaxed);
    not_2xx += entry->not_2xx.load(std::memory_order_relaxed);
    transport += entry->transport_errors.load(std::memory_order_relaxed);
  }
  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  fmt::print(stderr,
             "{}[{:4.0f} s] {:>9} req/s  answers {:>10}  non-2xx {:>8}  transport {:>5}{}{}",
             terminal ? "\r" : "", seconds, answers - previous_answers, answers, not_2xx, transport,
             warming_up ? "  (warm-up)" : "            ", terminal ? "" : "\n");
  std::fflush(stderr);
  previous_answers = answers;
}

}  // namespace

EngineReport runLoad(const Workload& workload, const EngineOptions& options) {
  Shared shared;
  shared.workload = &workload;
  if (options.orders) shared.orders_max = *options.orders;
  const auto start = Clock::now();
  shared.measure_start = options.orders ? start : start + options.warmup;
  const auto planned_end =
      options.orders ? Clock::time_point::max() : shared.measure_start + options.duration;
  const auto hard_end =
      options.orders ? start + options.orders_deadline : planned_end + options.grace;

  const tcp::endpoint endpoint(asio::ip::make_address(options.host), options.port);
  const int threads = std::max(1, options.threads);
  const int flows = std::max(1, options.connections / workload.copies());
  std::vector<std::unique_ptr<Progress>> progress;
  std::vector<std::unique_ptr<Worker>> workers;
  std::random_device entropy;
  for (int t = 0; t < threads; ++t) {
    progress.push_back(std::make_unique<Progress>());
    workers.push_back(std::make_unique<Worker>());
  }
  for (int f = 0; f < flows; ++f) {
    auto& worker = *workers[static_cast<std::size_t>(f % threads)];
    worker.flows.push_back(std::make_unique<Flow>(worker.io, endpoint, shared,
                                                  *progress[static_cast<std::size_t>(f % threads)],
                                                  (std::uint64_t{entropy()} << 32) | entropy()));
  }
  std::atomic<int> running{threads};
  for (auto& worker : workers) {
    Worker* raw = worker.get();
    worker->thread = std::thread([raw, &running] {
      for (auto& flow : raw->flows) asio::post(raw->io, [flow = flow.get()] { flow->next(); });
      raw->io.run();
      running.fetch_sub(1);
    });
  }

  EngineReport report;
  std::uint64_t previous_answers = 0;
  auto next_print = start + std::chrono::seconds(1);
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto now = Clock::now();
    if (now >= planned_end) shared.stopping.store(true);
    if (now >= hard_end && !report.timed_out) {
      report.timed_out = true;
      for (auto& worker : workers) worker->io.stop();
    }
    if (options.progress && now >= next_print) {
      printProgress(progress, std::chrono::duration<double>(now - start).count(), previous_answers,
                    now < shared.measure_start);
      next_print += std::chrono::seconds(1);
    }
  }
  for (auto& worker : workers) worker->thread.join();
  if (options.progress && ::isatty(STDERR_FILENO) == 1) fmt::print(stderr, "\n");

  Clock::time_point last_answer = shared.measure_start;
  for (auto& worker : workers) {
    for (auto& flow : worker->flows) {
      report.tally.merge(flow->tally());
      if (auto when = flow->lastMeasuredAnswer(); when && *when > last_answer) last_answer = *when;
    }
  }
  report.measured_seconds =
      std::chrono::duration<double>(last_answer - shared.measure_start).count();
  return report;
}

}  // namespace allot::bench
