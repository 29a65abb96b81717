// The write-back worker: carries the outbox events that the Lua scripts append (one stream per
// hash slot, ob:{tag}) into the database of record.
//
// A loop with a fixed tick and a bounded batch. Each tick it reads, for every stream it knows,
// up to batch_events_max events after the stream's applied position (XRANGE, exclusive
// start), applies them in one MariaDB transaction with the new position
// (mysql::WriteBackStore), and only then trims what it applied (XTRIM MINID). A crash between
// the commit and the trim re-reads events the stored position recognises, so nothing is lost
// or applied twice.
//
// Which streams: those named by noteStream() (cheap and thread-safe, called after each script
// that appends), and those a periodic sweep of every master finds (SCAN MATCH ob:* TYPE
// stream on Redis Cluster; on a standalone server a script asks which of the 16,384 possible
// stream names exist), so streams written by other processes or before a crash are found too.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/result.h"
#include "mysql/write_back_store.h"
#include "redis/client.h"

namespace allot::workers {

// Bounds of one pass: events read per stream per tick, and SCAN calls per master per sweep.
inline constexpr std::size_t kWriteBackBatchEventsMax = 10'000;
inline constexpr std::size_t kSweepScanCallsMax = 100'000;
// drainOnce() passes over streams that still had a full batch, at most this many times.
inline constexpr int kDrainPassesMax = 1'000;
// Streams applied together in one transaction by a pass.
inline constexpr std::size_t kWriteBackGroupStreamsMax = 256;

struct WriteBackOptions {
  std::chrono::milliseconds tick{20};
  std::size_t batch_events_max = 1000;  // per stream per tick, <= kWriteBackBatchEventsMax
  std::chrono::milliseconds sweep_interval{5000};
};

// What /metrics prints. Counters only grow; gauges are the values of the last pass.
struct WriteBackMetrics {
  std::atomic<std::uint64_t> events_applied{0};
  std::atomic<std::uint64_t> events_dead_lettered{0};  // could never apply: see outbox_dead_letters
  std::atomic<std::uint64_t> batches{0};               // committed batches
  std::atomic<std::uint64_t> batch_failures{0};        // failed reads, commits or trims
  std::atomic<std::uint64_t> passes{0};                // completed passes over the known streams
  std::atomic<std::uint64_t> sweeps{0};
  std::atomic<std::uint64_t> sweep_failures{0};
  // Age of the oldest event a pass found waiting (from its stream id's time), in ms.
  std::atomic<std::int64_t> oldest_unapplied_age_ms{0};
  // Events left in streams whose batch was full or failed in the last pass.
  std::atomic<std::int64_t> events_pending{0};
  std::atomic<std::int64_t> streams_known{0};
};

class WriteBack {
 public:
  WriteBack(redis::Client& client, mysql::WriteBackStore& store, WriteBackOptions options = {});
  WriteBack(const WriteBack&) = delete;
  WriteBack& operator=(const WriteBack&) = delete;
  ~WriteBack();  // stops the loop

  // A stream that was just appended to. Takes one short lock; never blocks on I/O.
  void noteStream(const std::string& stream);

  void start();
  // Stops the loop and joins it; a batch in progress finishes first.
  void stop();

  // A sweep, then passes until no stream has a full batch left: everything appended before
  // the call is in the database when it succeeds. For tests and for the route switch.
  [[nodiscard]] Result<void> drainOnce();
  // drainOnce() until a pass finds nothing new, or the deadline passes (false). Under a
  // steady load a pass always finds something: for tests of a quiet system.
  [[nodiscard]] bool waitDrained(std::chrono::steady_clock::time_point deadline);
  // True once every event appended to these outbox streams before the call is in the
  // database; false when the deadline passed first. Events appended later do not hold it up,
  // so it ends under any load (the route switch uses it).
  [[nodiscard]] bool drainAppendedBefore(const std::set<std::string>& streams,
                                         std::chrono::steady_clock::time_point deadline);
  // Every key matching the SCAN pattern, on every master.
  [[nodiscard]] Result<std::vector<std::string>> scanKeys(const std::string& pattern);

  [[nodiscard]] const WriteBackMetrics& metrics() const { return metrics_; }

 private:
  struct PassResult {
    std::size_t events_read = 0;
    bool complete = true;  // every stream was read to its end and nothing failed
    bool failed = false;   // some stream failed (it stays known and is retried)
  };
  struct StreamResult {
    std::size_t events_read = 0;
    bool full = false;
  };

  void run();
  // One batch of every known stream. Caller holds pass_mutex_.
  PassResult pass();
  // One batch of one stream: read, apply, trim. Caller holds pass_mutex_.
  // The events after the stream's applied position (at most a batch). Caller holds pass_mutex_.
  [[nodiscard]] Result<std::vector<mysql::OutboxEvent>> readStream(const std::string& stream,
                                                                   std::int64_t& oldest_ms);
  // After a commit: the position, the trim, the metrics. Caller holds pass_mutex_.
  void finishStream(const std::string& stream, const mysql::BatchOutcome& outcome);
  [[nodiscard]] Result<StreamResult> drainStream(const std::string& stream,
                                                 std::int64_t& oldest_ms);
  [[nodiscard]] Result<std::string> positionOf(const std::string& stream);
  [[nodiscard]] Result<void> trim(const std::string& stream, const std::string& last_id);
  // Adds every outbox stream of every master to streams_. Caller holds pass_mutex_.
  [[nodiscard]] Result<void> sweep();
  // Every outbox stream that exists, on every master.
  [[nodiscard]] Result<void> findStreams(const std::function<void(const std::string&)>& each);
  [[nodiscard]] Result<void> scanMasters(const std::string& pattern,
                                         const std::function<void(const std::string&)>& each);
  [[nodiscard]] Result<void> scanNode(const std::string& routing_key, const std::string& pattern,
                                      const std::function<void(const std::string&)>& each);

  redis::Client& client_;
  mysql::WriteBackStore& store_;
  const WriteBackOptions options_;
  WriteBackMetrics metrics_;

  std::mutex noted_mutex_;
  std::unordered_set<std::string> noted_;  // guarded by noted_mutex_

  std::mutex pass_mutex_;                         // one pass at a time (the loop, drainOnce)
  std::set<std::string> streams_;                 // guarded by pass_mutex_
  std::map<std::string, std::string> positions_;  // last applied id; guarded by pass_mutex_

  std::mutex stop_mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;                    // guarded by stop_mutex_
  std::atomic<bool> stop_requested_{false};  // read by a pass between streams
  std::thread thread_;
};

}  // namespace allot::workers
