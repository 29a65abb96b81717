// The write-back worker: carries the outbox events that the Lua scripts append (one stream per
// hash slot, ob:{tag}) into the database of record.
//
// A loop with a tick and a bounded batch. Each pass reads, for every stream it knows, up to
// batch_events_max events after the stream's applied position (XRANGE, exclusive start),
// applies them in one MariaDB transaction with the new position (mysql::WriteBackStore,
// many streams per transaction), and only then trims what it applied (XTRIM MINID). A crash
// between the commit and the trim re-reads events the stored position recognises, so nothing
// is lost or applied twice. The Redis side of a pass is pipelined: the XRANGEs of up to
// kWriteBackRoundStreamsMax streams go in one round trip per node, and so do their XTRIMs;
// the positions of streams seen for the first time come from one query. A pass that still
// left a full batch somewhere is followed by the next at once; otherwise the loop waits a
// tick.
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
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/limits.h"
#include "core/result.h"
#include "mysql/write_back_store.h"
#include "redis/client.h"

namespace allot::workers {

// Bounds of one pass: events read per stream per pass, and SCAN calls per master per sweep.
inline constexpr std::size_t kWriteBackBatchEventsMax = limits::kWriteBackBatchEventsMax;
inline constexpr std::size_t kSweepScanCallsMax = 100'000;
// drainOnce() passes over streams that still had a full batch, at most this many times.
inline constexpr int kDrainPassesMax = 1'000;
// Streams applied together in one transaction by a pass.
inline constexpr std::size_t kWriteBackGroupStreamsMax = 256;
// Streams read in one round of a pass (one pipelined round trip per node for all of them).
inline constexpr std::size_t kWriteBackRoundStreamsMax = 1'000;
// The first read of a stream in a round asks for this many events; a stream that has more
// is read again for the rest of its batch, a few such streams at a time, so a round holds at
// most about kWriteBackRoundStreamsMax * kWriteBackFirstReadEvents + 2 batches in memory.
inline constexpr std::size_t kWriteBackFirstReadEvents = 100;
inline constexpr std::size_t kWriteBackRoundEventsMax = 2 * kWriteBackBatchEventsMax;
static_assert(kWriteBackRoundStreamsMax <= limits::kRedisPipelineCommandsMax);
static_assert(kWriteBackGroupStreamsMax <= kWriteBackRoundStreamsMax);

struct WriteBackOptions {
  // The pause between passes; a pass that left a full batch in some stream is followed by the
  // next one at once.
  std::chrono::milliseconds tick{20};
  std::size_t batch_events_max = 5000;  // per stream per pass, <= kWriteBackBatchEventsMax
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
  // Every key matching the SCAN pattern, on every master, each once, in sorted order.
  [[nodiscard]] Result<std::vector<std::string>> scanKeys(const std::string& pattern);

  [[nodiscard]] const WriteBackMetrics& metrics() const { return metrics_; }

 private:
  // What a pass (or one stream's drain) found; filled in by its rounds.
  struct PassResult {
    std::size_t events_read = 0;
    bool complete = true;           // every stream was read to its end and nothing failed
    bool failed = false;            // some stream failed (it stays known and is retried)
    std::int64_t oldest_ms = 0;     // id time of the oldest event read (0: none)
    std::int64_t pending = 0;       // events left in streams whose batch was full
    std::vector<std::string> done;  // streams read to their end: forgotten until noted again
  };

  void run();
  // One batch of every known stream, in rounds. Caller holds pass_mutex_.
  PassResult pass();
  // Up to kWriteBackRoundStreamsMax streams: positions, reads, applies and trims, each
  // pipelined (one round trip per node, one query) for all of them. Caller holds pass_mutex_.
  void passRound(std::span<const std::string> streams, PassResult& result);
  // The streams whose position is known, after looking up those seen for the first time (an
  // empty one is done without asking the database). Caller holds pass_mutex_.
  [[nodiscard]] std::vector<std::string> withPositions(std::span<const std::string> streams,
                                                       PassResult& result);
  // The stored positions of these streams, in one query; trims what a crash after a commit
  // left in them. Caller holds pass_mutex_.
  [[nodiscard]] Result<void> learnPositions(const std::vector<std::string>& streams);
  // XRANGE of every stream after `after` (its position, or the last id already read), at
  // most `count` events each, appended to each batch. Caller holds pass_mutex_.
  void readBatches(std::vector<mysql::WriteBackStore::StreamBatch>& batches, std::size_t count,
                   PassResult& result);
  // The batches of streams with many events, a few at a time (bounded memory): the rest of
  // each batch (`rest` events more, none when 0), read-ahead, apply and trim.
  void applyInSteps(std::vector<mysql::WriteBackStore::StreamBatch>& batches, std::size_t rest,
                    PassResult& result);
  // The next batch of each full stream of `step`, read on another thread during the step's
  // apply (at most kWriteBackRoundEventsMax events kept ahead in all).
  struct ReadAhead {
    std::vector<redis::RoutedCommand> reads;
    std::vector<std::string> after;  // the id each read starts after (the batch's last)
    std::future<std::vector<Result<redis::Reply>>> replies;
  };
  [[nodiscard]] ReadAhead startReadAhead(
      const std::vector<mysql::WriteBackStore::StreamBatch>& step);
  // Waits for the reads; keeps those that start at the stream's committed position.
  void keepReadAhead(ReadAhead& ahead);
  // The batch read ahead for a stream, when it still starts at the stream's position.
  [[nodiscard]] std::optional<mysql::WriteBackStore::StreamBatch> takeReadAhead(
      const std::string& stream, PassResult& result);
  // Counts events read from the start of a stream's batch (and the oldest one's age).
  static void noteFirstRead(const std::vector<mysql::OutboxEvent>& events, PassResult& result);
  // Applies the batches in groups (one transaction each), then trims what was committed.
  // Caller holds pass_mutex_.
  void applyAndTrim(std::vector<mysql::WriteBackStore::StreamBatch>& batches, PassResult& result);
  // Pipelined XTRIMs (and XLENs of the streams still full, for the pending gauge).
  void trimAll(const std::vector<std::string>& streams, const std::vector<bool>& full,
               PassResult& result);
  // A stream (or a group of them) that failed this time: counted, logged, retried later.
  void streamFailed(const std::string& what, const std::string& why, PassResult& result);
  // Logs a warning of a pass, at most one a second: with a server down every stream fails in
  // every pass, thousands a second. The next one logged says how many were left out.
  // Caller holds pass_mutex_.
  void warnThrottled(const std::string& message);
  [[nodiscard]] Result<std::string> positionOf(const std::string& stream);
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
  struct ReadAheadBatch {
    std::string after;  // the stream's position it follows
    std::vector<mysql::OutboxEvent> events;
  };
  std::map<std::string, ReadAheadBatch> read_ahead_;      // guarded by pass_mutex_
  std::size_t read_ahead_events_ = 0;                     // in read_ahead_; guarded by pass_mutex_
  std::chrono::steady_clock::time_point last_warning_{};  // guarded by pass_mutex_
  std::size_t warnings_left_out_ = 0;                     // guarded by pass_mutex_

  std::mutex stop_mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;                    // guarded by stop_mutex_
  std::atomic<bool> stop_requested_{false};  // read by a pass between streams
  std::thread thread_;
};

}  // namespace allot::workers
