// The write-back loop. Redis replies are decoded here; a reply of an unexpected shape is an
// error for this tick (counted, logged, retried next tick), never a guess.
#include "workers/write_back.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

#include "core/assert.h"
#include "redis/keys.h"
#include "redis/scripts.h"

namespace allot::workers {
namespace {

std::int64_t wallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<redis::Reply> checked(Result<redis::Reply> reply, std::string_view what) {
  if (!reply) return reply;
  if (reply->isError()) {
    return fail(ErrorCode::kUnavailable, std::string(what) + ": " + reply->str);
  }
  return reply;
}

// XRANGE's reply: [[id, [field, value, ...]], ...].
Result<std::vector<mysql::OutboxEvent>> decodeEntries(const redis::Reply& reply) {
  if (!reply.isArray()) return fail(ErrorCode::kInternal, "XRANGE answered a non-array");
  std::vector<mysql::OutboxEvent> events;
  events.reserve(reply.elements.size());
  for (const redis::Reply& entry : reply.elements) {
    if (!entry.isArray() || entry.elements.size() != 2 || !entry.elements[1].isArray()) {
      return fail(ErrorCode::kInternal, "XRANGE entry of an unexpected shape");
    }
    mysql::OutboxEvent event;
    event.id = entry.elements[0].str;
    const auto& fields = entry.elements[1].elements;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
      event.fields.emplace_back(fields[i].str, fields[i + 1].str);
    }
    events.push_back(std::move(event));
  }
  return events;
}

}  // namespace

WriteBack::WriteBack(redis::Client& client, mysql::WriteBackStore& store, WriteBackOptions options)
    : client_(client), store_(store), options_(options) {
  ALLOT_ASSERT(options_.batch_events_max > 0 &&
               options_.batch_events_max <= kWriteBackBatchEventsMax);
}

WriteBack::~WriteBack() { stop(); }

void WriteBack::noteStream(const std::string& stream) {
  std::lock_guard lock(noted_mutex_);
  noted_.insert(stream);
}

void WriteBack::start() {
  std::lock_guard lock(stop_mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  stop_requested_ = false;
  thread_ = std::thread([this] { run(); });
}

void WriteBack::stop() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_requested_ = true;
  stop_signal_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WriteBack::run() {
  auto next_sweep = std::chrono::steady_clock::now();  // a sweep at start finds old streams
  for (;;) {
    {
      std::unique_lock lock(stop_mutex_);
      if (stop_signal_.wait_for(lock, options_.tick, [this] { return stopping_; })) return;
    }
    std::lock_guard pass_lock(pass_mutex_);
    if (std::chrono::steady_clock::now() >= next_sweep) {
      const Result<void> swept = sweep();
      if (!swept) spdlog::warn("write-back: sweep failed: {}", swept.error().message);
      next_sweep = std::chrono::steady_clock::now() + options_.sweep_interval;
    }
    static_cast<void>(pass());
  }
}

Result<void> WriteBack::drainOnce() {
  std::lock_guard lock(pass_mutex_);
  ALLOT_TRY_VOID(sweep());
  for (int i = 0; i < kDrainPassesMax; ++i) {
    const PassResult result = pass();
    if (result.failed) return fail(ErrorCode::kUnavailable, "write-back: a stream failed");
    if (result.complete) return {};
  }
  return fail(ErrorCode::kUnavailable, "write-back: streams not drained after the pass limit");
}

bool WriteBack::waitDrained(std::chrono::steady_clock::time_point deadline) {
  while (std::chrono::steady_clock::now() < deadline) {
    const Result<void> drained = drainOnce();
    if (drained) {
      std::lock_guard lock(pass_mutex_);
      if (pass().events_read == 0) return true;
    }
    std::unique_lock lock(stop_mutex_);
    stop_signal_.wait_for(lock, options_.tick);
  }
  return false;
}

bool WriteBack::drainAppendedBefore(const std::set<std::string>& streams,
                                    std::chrono::steady_clock::time_point deadline) {
  // The last id of each stream now: the targets.
  std::map<std::string, mysql::StreamId> targets;
  {
    for (const std::string& stream : streams) {
      auto last = checked(client_.command(stream, {"XREVRANGE", stream, "+", "-", "COUNT", "1"}),
                          "XREVRANGE " + stream);
      if (!last) {
        spdlog::warn("write-back: drain: {}", last.error().message);
        return false;
      }
      if (!last->isArray() || last->elements.empty()) continue;
      const auto& entry = last->elements[0];
      if (!entry.isArray() || entry.elements.empty()) continue;
      if (auto id = mysql::StreamId::parse(entry.elements[0].str)) targets.emplace(stream, *id);
    }
  }
  // Stream by stream, a batch at a time, letting the loop in between: each stream is read
  // to its target before the next, so a long backlog does not cost a round of every stream
  // per batch.
  for (const auto& [stream, target] : targets) {
    while (true) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      bool idle = false;
      {
        std::lock_guard lock(pass_mutex_);
        auto position = positionOf(stream);
        auto applied = position ? mysql::StreamId::parse(*position) : std::nullopt;
        if (applied && *applied >= target) break;
        std::int64_t oldest_ms = 0;
        auto drained = drainStream(stream, oldest_ms);
        if (!drained) {
          ++metrics_.batch_failures;
          spdlog::warn("write-back: drain of {}: {}", stream, drained.error().message);
          idle = true;
        } else if (drained->events_read == 0) {
          // Nothing left to read, yet the position known here is behind: another write-back
          // process applied and trimmed the rest. Ask the database again.
          positions_.erase(stream);
          idle = true;
        }
      }
      if (idle) {
        std::unique_lock lock(stop_mutex_);
        stop_signal_.wait_for(lock, options_.tick);
      }
    }
  }
  return true;
}

WriteBack::PassResult WriteBack::pass() {
  {
    std::lock_guard lock(noted_mutex_);
    streams_.insert(noted_.begin(), noted_.end());
    noted_.clear();
  }
  PassResult result;
  std::int64_t oldest_ms = 0, pending = 0;
  std::vector<std::string> done;
  // Streams are applied in groups, one transaction per group: most streams hold a few order
  // events (each order's events go to its own slot), and a commit per stream would cap the
  // write-back at the database's commits per second.
  std::vector<mysql::WriteBackStore::StreamBatch> group;
  std::size_t group_events = 0;
  auto apply_group = [&] {
    if (group.empty()) return;
    auto outcomes = store_.applyBatches(group);
    if (!outcomes) {
      ++metrics_.batch_failures;
      result.complete = false;
      result.failed = true;
      spdlog::warn("write-back: a group of {} streams: {}", group.size(), outcomes.error().message);
    } else {
      ++metrics_.batches;
      for (std::size_t i = 0; i < group.size(); ++i) {
        finishStream(group[i].stream, (*outcomes)[i]);
        if (group[i].events.size() < options_.batch_events_max) {
          done.push_back(group[i].stream);  // read to its end: the next append notes it again
        } else {
          result.complete = false;
          auto length = client_.command(group[i].stream, {"XLEN", group[i].stream});
          if (length && length->isInteger()) pending += length->integer;
        }
      }
    }
    group.clear();
    group_events = 0;
  };
  for (const std::string& stream : streams_) {
    if (stop_requested_.load()) {  // stop() does not wait for a pass over thousands of streams
      result.complete = false;
      break;
    }
    auto events = readStream(stream, oldest_ms);
    if (!events) {
      ++metrics_.batch_failures;
      result.complete = false;
      result.failed = true;
      spdlog::warn("write-back: {}: {}", stream, events.error().message);
      continue;
    }
    result.events_read += events->size();
    if (events->empty()) {
      done.push_back(stream);
      continue;
    }
    group_events += events->size();
    group.push_back({stream, std::move(*events)});
    if (group.size() >= kWriteBackGroupStreamsMax || group_events >= options_.batch_events_max) {
      apply_group();
    }
  }
  apply_group();
  for (const std::string& stream : done) streams_.erase(stream);
  metrics_.oldest_unapplied_age_ms =
      oldest_ms == 0 ? 0 : std::max<std::int64_t>(0, wallNowMs() - oldest_ms);
  metrics_.events_pending = pending;
  metrics_.streams_known = static_cast<std::int64_t>(streams_.size());
  ++metrics_.passes;
  return result;
}

Result<std::string> WriteBack::positionOf(const std::string& stream) {
  if (auto found = positions_.find(stream); found != positions_.end()) return found->second;
  ALLOT_TRY(stored, store_.readPosition(stream));
  std::string last_id = stored.last_id.empty() ? "0-0" : stored.last_id;
  // Entries at or below a stored position were applied; a crash may have left them untrimmed.
  if (last_id != "0-0") ALLOT_TRY_VOID(trim(stream, last_id));
  positions_[stream] = last_id;
  return last_id;
}

Result<std::vector<mysql::OutboxEvent>> WriteBack::readStream(const std::string& stream,
                                                              std::int64_t& oldest_ms) {
  if (!positions_.contains(stream)) {
    // A stream seen for the first time (a sweep finds every empty one too): one cheap look
    // before the database is asked for its position.
    ALLOT_TRY(peek, checked(client_.command(stream, {"XRANGE", stream, "-", "+", "COUNT", "1"}),
                            "XRANGE " + stream));
    if (peek.isArray() && peek.elements.empty()) return std::vector<mysql::OutboxEvent>{};
  }
  ALLOT_TRY(last_id, positionOf(stream));
  ALLOT_TRY(reply, checked(client_.command(stream, {"XRANGE", stream, "(" + last_id, "+", "COUNT",
                                                    std::to_string(options_.batch_events_max)}),
                           "XRANGE " + stream));
  ALLOT_TRY(events, decodeEntries(reply));
  if (!events.empty()) {
    if (const auto first = mysql::StreamId::parse(events.front().id)) {
      const auto ms = static_cast<std::int64_t>(first->ms);
      if (oldest_ms == 0 || ms < oldest_ms) oldest_ms = ms;
    }
  }
  return events;
}

void WriteBack::finishStream(const std::string& stream, const mysql::BatchOutcome& outcome) {
  metrics_.events_applied += outcome.applied;
  metrics_.events_dead_lettered += outcome.dead_lettered;
  for (const std::string& reason : outcome.dead_letter_reasons) {
    spdlog::error("write-back: {}: event dead-lettered (see outbox_dead_letters): {}", stream,
                  reason);
  }
  positions_[stream] = outcome.last_id;
  // The commit is done: a failed trim only leaves entries the position already skips.
  const Result<void> trimmed = trim(stream, outcome.last_id);
  if (!trimmed) {
    ++metrics_.batch_failures;
    spdlog::warn("write-back: trim of {} failed: {}", stream, trimmed.error().message);
  }
}

Result<WriteBack::StreamResult> WriteBack::drainStream(const std::string& stream,
                                                       std::int64_t& oldest_ms) {
  ALLOT_TRY(events, readStream(stream, oldest_ms));
  StreamResult result{events.size(), events.size() >= options_.batch_events_max};
  if (events.empty()) return result;
  ALLOT_TRY(outcomes, store_.applyBatches({mysql::WriteBackStore::StreamBatch{stream, events}}));
  ++metrics_.batches;
  finishStream(stream, outcomes.front());
  return result;
}

Result<void> WriteBack::trim(const std::string& stream, const std::string& last_id) {
  const auto id = mysql::StreamId::parse(last_id);
  if (!id) return fail(ErrorCode::kInternal, "bad stream id '" + last_id + "'");
  // MINID keeps ids >= the threshold: everything up to last_id goes, nothing newer.
  ALLOT_TRY_VOID(checked(client_.command(stream, {"XTRIM", stream, "MINID", id->next().text()}),
                         "XTRIM " + stream));
  return {};
}

Result<void> WriteBack::sweep() {
  ++metrics_.sweeps;
  auto added = findStreams([this](const std::string& key) { streams_.insert(key); });
  if (!added) {
    ++metrics_.sweep_failures;
    return std::unexpected(added.error());
  }
  return {};
}

Result<void> WriteBack::findStreams(const std::function<void(const std::string&)>& each) {
  // Redis Cluster runs no script over keys of several slots: SCAN each master there.
  if (client_.isCluster()) return scanMasters("ob:*", each);
  // Standalone: the streams can only be the 16,384 per-slot names, so ask for those, a few
  // thousand per call, instead of scanning every key (a SCAN of a few million keys costs
  // Redis seconds, every sweep).
  // (EVAL rather than evalScript, which refuses keys of several slots on every server, so
  // that the key layout is checked on standalone too: this script is the one exception.)
  static const redis::Script& script = redis::embeddedScript("streams_present.lua");
  constexpr std::size_t kSlots = 16384;
  constexpr std::size_t kNamesPerCall = 4096;
  for (std::size_t first = 0; first < kSlots; first += kNamesPerCall) {
    const std::size_t end = std::min(kSlots, first + kNamesPerCall);
    std::vector<std::string> argv{"EVAL", script.body(), std::to_string(end - first)};
    for (std::size_t slot = first; slot < end; ++slot) {
      argv.push_back(redis::keys::outboxOfSlot(static_cast<std::uint16_t>(slot)));
    }
    ALLOT_TRY(reply, checked(client_.command("", argv), "streams_present"));
    if (!reply.isArray()) return fail(ErrorCode::kInternal, "streams_present: not an array");
    for (const redis::Reply& name : reply.elements) each(name.str);
  }
  return {};
}

Result<std::vector<std::string>> WriteBack::scanKeys(const std::string& pattern) {
  std::vector<std::string> found;
  ALLOT_TRY_VOID(scanMasters(pattern, [&found](const std::string& key) { found.push_back(key); }));
  return found;
}

Result<void> WriteBack::scanMasters(const std::string& pattern,
                                    const std::function<void(const std::string&)>& each) {
  auto failed = [](Error error) -> Result<void> { return std::unexpected(std::move(error)); };
  if (!client_.isCluster()) return scanNode(redis::keys::outboxOfSlot(0), pattern, each);
  // One slot of each master gives a routing key that reaches it, so a SCAN cursor can be
  // followed on the node that issued it. CLUSTER SLOTS: [[start, end, [host, port, id], ...]].
  auto slots = checked(client_.command("", {"CLUSTER", "SLOTS"}), "CLUSTER SLOTS");
  if (!slots) return failed(slots.error());
  if (!slots->isArray()) return failed(Error{ErrorCode::kInternal, "CLUSTER SLOTS: not an array"});
  std::map<std::string, std::uint16_t> first_slot_of_master;
  for (const redis::Reply& range : slots->elements) {
    if (!range.isArray() || range.elements.size() < 3 || !range.elements[0].isInteger() ||
        !range.elements[2].isArray() || range.elements[2].elements.size() < 2) {
      return failed(Error{ErrorCode::kInternal, "CLUSTER SLOTS: range of an unexpected shape"});
    }
    const auto& master = range.elements[2].elements;
    const std::string name = master[0].str + ":" + std::to_string(master[1].integer);
    first_slot_of_master.try_emplace(name, static_cast<std::uint16_t>(range.elements[0].integer));
  }
  for (const auto& [name, slot] : first_slot_of_master) {
    ALLOT_TRY_VOID(scanNode(redis::keys::outboxOfSlot(slot), pattern, each));
  }
  return {};
}

Result<void> WriteBack::scanNode(const std::string& routing_key, const std::string& pattern,
                                 const std::function<void(const std::string&)>& each) {
  std::string cursor = "0";
  for (std::size_t call = 0; call < kSweepScanCallsMax; ++call) {
    ALLOT_TRY(reply, checked(client_.command(routing_key,
                                             {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}),
                             "SCAN"));
    if (!reply.isArray() || reply.elements.size() != 2 || !reply.elements[1].isArray()) {
      return fail(ErrorCode::kInternal, "SCAN answered an unexpected shape");
    }
    for (const redis::Reply& key : reply.elements[1].elements) each(key.str);
    cursor = reply.elements[0].str;
    if (cursor == "0") return {};
  }
  return fail(ErrorCode::kUnavailable, "SCAN did not finish within its call limit");
}

}  // namespace allot::workers
