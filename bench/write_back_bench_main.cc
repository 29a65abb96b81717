// write-back-bench: how fast the write-back (workers::WriteBack) applies the outbox to MariaDB
// on this machine, without allotd or HTTP in the way (docs/bench.md, "Write-back").
//
//   write-back-bench [--hot-events 200000] [--streams 10000] [--events-per-stream 3]
//                    [--form plain|fused] [--batch N] [--first-slot S]
//                    [--redis-url URL] [--mysql-url URL]
//
// It writes outbox events straight into Redis, as the scripts would, and times the running
// write-back loop until it has applied them. Three phases, each timed on its own:
//   hot     one record's stream holds --hot-events hold events (the hot scenario's outbox);
//   spread  the streams of --streams slots from --first-slot on hold --events-per-stream
//           order events each (each order's event goes to its own slot's stream);
//   mixed   both at once.
// The hot record is one in the slot right after the spread ones.
// Before the phases, every stream gets one event and is drained, so the worker knows each
// stream's position, as a write-back that has been running for a while does. The worker is
// stopped while a phase's events are written, then started: the clock runs from that start to
// the moment the last event is applied (the first pass includes a sweep of every stream).
// Afterwards the database is checked: the hot record's preallocated and the number of order
// rows must match what was written, with no dead letter. Exit status 0 when they do, 1 when
// not (or a phase did not finish within 10 minutes), 2 when it could not start.
//
// It uses only the write-back's public interface, so the same source builds against an older
// commit for a before/after comparison (bench/write-back-drain does that).
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "domain/record_key.h"
#include "mysql/mysql_ledger.h"
#include "mysql/url.h"
#include "mysql/write_back_store.h"
#include "redis/client.h"
#include "redis/keys.h"
#include "workers/write_back.h"

namespace allot::bench {
namespace {

constexpr std::int64_t kFillChunkEvents = 5'000;
constexpr auto kPhaseDeadline = std::chrono::minutes(10);
constexpr std::uint16_t kSlots = 16'384;
constexpr std::size_t kLookStreams = 500;  // streams per query when looking at positions

// Test data only, never request data: appends `count` events to KEYS[1], numbered from
// ARGV[5]. KEYS[1] the stream. ARGV[1] kind "hold" | "order"; ARGV[2] record index (hold) or
// answer line (order); ARGV[3] dept_no; ARGV[4] order prefix; ARGV[5] first number;
// ARGV[6] count; ARGV[7] hold: "" (plain) or the st of a fused hold. Returns the last id.
const redis::Script kFillScript("bench_fill_outbox", R"lua(
local first, count = tonumber(ARGV[5]), tonumber(ARGV[6])
local id
for i = first, first + count - 1 do
  local order = ARGV[4] .. i
  if ARGV[1] == 'order' then
    id = redis.call('XADD', KEYS[1], '*', 'e', 'order', 'd', ARGV[3], 'o', order, 'st', 'A',
                    'an', ARGV[2])
  elseif ARGV[7] == '' then
    id = redis.call('XADD', KEYS[1], '*', 'e', 'hold', 'r', ARGV[2], 'd', ARGV[3], 'o', order,
                    'a', '1', 's', '0')
  else
    id = redis.call('XADD', KEYS[1], '*', 'e', 'hold', 'r', ARGV[2], 'd', ARGV[3], 'o', order,
                    'a', '1', 's', '0', 'st', ARGV[7])
  end
end
return id
)lua");

struct Arguments {
  std::string redis_url;
  std::string mysql_url;
  std::int64_t hot_events = 200'000;
  std::int64_t streams = 10'000;
  std::int64_t events_per_stream = 3;
  std::uint16_t first_slot = 0;  // the spread streams are those of the slots from here on
  std::string form = "plain";
  std::size_t batch = 0;  // 0: the worker's default
};

struct Fill {
  std::map<std::string, std::string> last_ids;  // every stream written to: its last event
  std::int64_t events = 0;
  std::int64_t holds = 0;   // of the hot record
  std::int64_t orders = 0;  // order events (each a new order)
};

class Bench {
 public:
  Bench(const Arguments& args, redis::Client& client, mysql::MysqlLedger& ledger)
      : args_(args),
        client_(client),
        ledger_(ledger),
        store_(ledger.pool()),
        worker_(client, store_, workerOptions(args)),
        dept_(fmt::format("wbb-{}-{}", nowMs(), ::getpid())),
        hot_(hotRecord(dept_,
                       static_cast<std::uint16_t>((args.first_slot + args.streams) % kSlots))) {}

  int run() {
    // Whatever an earlier run left, then one event per stream: the positions become known.
    if (auto drained = worker_.drainOnce(); !drained) return failed(drained.error().message);
    Fill warm;
    if (!fillHot(warm, 1) || !fillSpread(warm, 1, "warm")) return 2;
    if (auto drained = worker_.drainOnce(); !drained) return failed(drained.error().message);
    expected_holds_ = warm.holds;
    expected_orders_ = warm.orders;
    int status = 0;
    for (const char* phase : {"hot", "spread", "mixed"}) {
      const int one = runPhase(phase);
      if (one != 0) status = one;
    }
    worker_.stop();
    return status == 0 ? check() : status;
  }

 private:
  static workers::WriteBackOptions workerOptions(const Arguments& args) {
    workers::WriteBackOptions options;
    if (args.batch > 0) options.batch_events_max = args.batch;
    return options;
  }

  // A record of the dept in `slot`: the hot stream comes right after the spread streams, so a
  // run's streams are known in advance (see write_back_bench_test).
  static RecordKey hotRecord(const std::string& dept, std::uint16_t slot) {
    for (std::uint32_t i = 0;; ++i) {
      RecordKey key{dept, "HOT" + std::to_string(i), "W1"};
      if (redis::keyHashSlot(redis::keys::usable(key)) == slot) return key;
    }
  }

  static std::int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  static int failed(const std::string& message) {
    fmt::print(stderr, "write-back-bench: {}\n", message);
    return 2;
  }

  bool fillChunks(Fill& fill, const std::string& stream, const std::vector<std::string>& head,
                  std::int64_t count) {
    for (std::int64_t first = 0; first < count; first += kFillChunkEvents) {
      std::vector<std::string> args = head;
      args.push_back(std::to_string(next_order_ + first));
      args.push_back(std::to_string(std::min(kFillChunkEvents, count - first)));
      args.push_back(args_.form == "fused" ? "A" : "");
      auto reply = client_.evalScript(kFillScript, {stream}, args);
      if (!reply || !reply->isString()) {
        failed("filling " + stream + ": " + (reply ? reply->str : reply.error().message));
        return false;
      }
      fill.last_ids[stream] = reply->str;
    }
    next_order_ += count;
    fill.events += count;
    return true;
  }

  bool fillHot(Fill& fill, std::int64_t count) {
    const std::string stream = redis::keys::outboxFor(redis::keys::usable(hot_));
    if (!fillChunks(fill, stream, {"hold", hot_.index(), dept_, "H"}, count)) return false;
    fill.holds += count;
    return true;
  }

  // One stream per slot, skipping the hot record's; each order's answer is one line of a
  // record of its own (goods = the slot).
  bool fillSpread(Fill& fill, std::int64_t per_stream, const std::string& tag) {
    const auto hot_slot = redis::keyHashSlot(redis::keys::usable(hot_));
    std::int64_t written = 0;
    for (std::uint32_t step = 0; step < kSlots && written < args_.streams; ++step) {
      const auto slot = static_cast<std::uint16_t>((args_.first_slot + step) % kSlots);
      if (slot == hot_slot) continue;
      const std::string answer = fmt::format("S{}|W1|1|1|A|1|1|0", slot);
      const std::string prefix = fmt::format("{}{}-", tag, slot);
      if (!fillChunks(fill, redis::keys::outboxOfSlot(slot), {"order", answer, dept_, prefix},
                      per_stream)) {
        return false;
      }
      fill.orders += per_stream;
      ++written;
    }
    return true;
  }

  int runPhase(const std::string& phase) {
    worker_.stop();
    Fill fill;
    const bool hot = phase != "spread", spread = phase != "hot";
    const std::string tag = "p" + phase;
    if ((hot && !fillHot(fill, args_.hot_events)) ||
        (spread && !fillSpread(fill, args_.events_per_stream, tag))) {
      return 2;
    }
    expected_holds_ += fill.holds;
    expected_orders_ += fill.orders;
    for (const auto& [stream, last_id] : fill.last_ids) worker_.noteStream(stream);
    const auto& metrics = worker_.metrics();
    const std::uint64_t applied_before = metrics.events_applied.load();
    const std::uint64_t passes_before = metrics.passes.load();
    const std::uint64_t batches_before = metrics.batches.load();
    const auto start = std::chrono::steady_clock::now();
    worker_.start();
    const auto target = applied_before + static_cast<std::uint64_t>(fill.events);
    // The counter says when as many events were applied as were written; the positions say
    // that they were these events (on a shared server another write-back may apply some of
    // them, and this one others' events). On a quiet server the counter comes first and its
    // moment is the time; otherwise the positions are looked at every second.
    auto waiting = fill.last_ids;
    std::optional<std::chrono::steady_clock::time_point> counted;
    auto next_look = start + std::chrono::seconds(1);
    auto done = start;
    while (!waiting.empty()) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      const auto now = std::chrono::steady_clock::now();
      if (now - start > kPhaseDeadline) {
        fmt::print(stderr, "write-back-bench: phase {} did not finish\n", phase);
        return 1;
      }
      const bool counted_now = !counted && metrics.events_applied.load() >= target;
      if (counted_now) {
        counted = now;
      } else if (now < next_look) {
        continue;
      }
      next_look = now + std::chrono::seconds(1);
      if (!forgetApplied(waiting)) return 2;
      // Without the counter, the time is when the look saw the last stream applied.
      done = counted_now ? *counted : std::chrono::steady_clock::now();
    }
    const double seconds = std::chrono::duration<double>(done - start).count();
    fmt::print(
        "phase={} form={} events={} streams={} seconds={:.3f} events_per_s={:.0f} "
        "passes={} batches={}\n",
        phase, args_.form, fill.events, fill.last_ids.size(), seconds,
        static_cast<double>(fill.events) / seconds, metrics.passes.load() - passes_before,
        metrics.batches.load() - batches_before);
    std::fflush(stdout);
    return 0;
  }

  // Removes the streams whose stored position has reached their last event (a query per
  // kLookStreams streams; written here rather than taken from the store, so that the same
  // source builds against older commits).
  bool forgetApplied(std::map<std::string, std::string>& waiting) {
    std::vector<std::string> streams;
    for (const auto& [stream, last_id] : waiting) streams.push_back(stream);
    auto lease = ledger_.pool().acquire();
    if (!lease) {
      failed(lease.error().message);
      return false;
    }
    for (std::size_t first = 0; first < streams.size(); first += kLookStreams) {
      const std::size_t count = std::min(kLookStreams, streams.size() - first);
      std::string sql = "SELECT stream, last_id FROM outbox_positions WHERE stream IN (?";
      std::vector<mysql::Param> params{std::string_view(streams[first])};
      for (std::size_t i = 1; i < count; ++i) {
        sql += ", ?";
        params.push_back(std::string_view(streams[first + i]));
      }
      auto rows = (*lease)->query(sql + ")", std::span<const mysql::Param>(params));
      if (!rows) {
        failed(rows.error().message);
        return false;
      }
      for (const auto& row : *rows) {
        const auto found = waiting.find(std::string(row.text(0)));
        const auto applied = mysql::StreamId::parse(row.text(1));
        if (found != waiting.end() && applied &&
            *applied >= *mysql::StreamId::parse(found->second)) {
          waiting.erase(found);
        }
      }
    }
    return true;
  }

  int check() {
    auto lease = ledger_.pool().acquire();
    if (!lease) return failed(lease.error().message);
    auto stock = (*lease)->query(
        "SELECT preallocated FROM stock WHERE dept_no = ? AND goods_no = ? AND warehouse_no = ?",
        {dept_, hot_.goods_no, hot_.warehouse_no});
    auto orders = (*lease)->query("SELECT COUNT(*) FROM orders WHERE dept_no = ?", {dept_});
    auto dead = (*lease)->query(
        "SELECT COUNT(*) FROM outbox_dead_letters WHERE INSTR(fields, ?) > 0", {dept_});
    if (!stock || !orders || !dead || stock->empty()) return failed("cannot read the results");
    const std::int64_t preallocated = *(*stock)[0].integer(0);
    const std::int64_t order_rows = *(*orders)[0].integer(0);
    const std::int64_t dead_letters = *(*dead)[0].integer(0);
    // A fused hold is an order too.
    const std::int64_t expected_rows =
        expected_orders_ + (args_.form == "fused" ? expected_holds_ : 0);
    fmt::print("check: preallocated={} (expected {}) orders={} (expected {}) dead_letters={}\n",
               preallocated, expected_holds_, order_rows, expected_rows, dead_letters);
    const bool ok =
        preallocated == expected_holds_ && order_rows == expected_rows && dead_letters == 0;
    // Its plain holds have no answer, so the write-back noted their orders as pending; no call
    // will ever answer them, and the pending-order scan of any allotd on this database would
    // turn each into an undo task with nothing to do. (The table is missing on a schema older
    // than migration 0007: nothing to remove then.)
    (void)(*lease)->execute("DELETE FROM pending_orders WHERE dept_no = ?", {dept_});
    return ok ? 0 : 1;
  }

  const Arguments& args_;
  redis::Client& client_;
  mysql::MysqlLedger& ledger_;
  mysql::WriteBackStore store_;
  workers::WriteBack worker_;
  const std::string dept_;
  const RecordKey hot_;
  std::int64_t next_order_ = 0;
  std::int64_t expected_holds_ = 0;
  std::int64_t expected_orders_ = 0;
};

int run(Arguments args) {
  if (args.redis_url.empty()) {
    if (const char* url = std::getenv("ALLOT_REDIS_URL")) args.redis_url = url;
  }
  if (args.mysql_url.empty()) {
    if (const char* url = std::getenv("ALLOT_MYSQL_URL")) args.mysql_url = url;
  }
  if (args.redis_url.empty() || args.mysql_url.empty()) {
    fmt::print(stderr,
               "write-back-bench: give --redis-url and --mysql-url (or ALLOT_REDIS_URL "
               "and ALLOT_MYSQL_URL)\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  auto redis_options = redis::parseRedisUrl(args.redis_url);
  auto mysql_options = mysql::parseMysqlUrl(args.mysql_url);
  if (!redis_options || !mysql_options) {
    fmt::print(stderr, "write-back-bench: {}\n",
               redis_options ? mysql_options.error().message : redis_options.error().message);
    return 2;
  }
  auto client = redis::Client::connect(*redis_options);
  if (!client) {
    fmt::print(stderr, "write-back-bench: Redis: {}\n", client.error().message);
    return 2;
  }
  auto ledger = mysql::MysqlLedger::open(*mysql_options);
  if (!ledger) {
    fmt::print(stderr, "write-back-bench: MariaDB: {}\n", ledger.error().message);
    return 2;
  }
  Bench bench(args, **client, **ledger);
  return bench.run();
}

}  // namespace
}  // namespace allot::bench

int main(int argc, char** argv) {
  CLI::App app{"write-back-bench: times the write-back's apply of a filled outbox"};
  allot::bench::Arguments args;
  app.add_option("--redis-url", args.redis_url, "Redis (default ALLOT_REDIS_URL)");
  app.add_option("--mysql-url", args.mysql_url, "MariaDB (default ALLOT_MYSQL_URL)");
  app.add_option("--hot-events", args.hot_events, "hold events in the hot record's stream")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--streams", args.streams, "other streams (slots), each with order events")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{16'383}))
      ->capture_default_str();
  app.add_option("--events-per-stream", args.events_per_stream, "order events per other stream")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000}))
      ->capture_default_str();
  app.add_option("--first-slot", args.first_slot, "slot of the first spread stream")
      ->check(CLI::Range(0, 16'383))
      ->capture_default_str();
  app.add_option("--form", args.form, "hold events: plain, or fused (with st, an order too)")
      ->check(CLI::IsMember({"plain", "fused"}))
      ->capture_default_str();
  app.add_option("--batch", args.batch, "events per stream per pass (default: the worker's)")
      ->check(CLI::Range(std::size_t{1}, allot::workers::kWriteBackBatchEventsMax));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;
  }
  return allot::bench::run(std::move(args));
}
