// The write-back loop. Redis replies are decoded here; a reply of an unexpected shape is an
// error for this tick (counted, logged, retried next tick), never a guess.
#include "workers/write_back.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
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

// XRANGE's reply: [[id, [field, value, ...]], ...]. The strings are moved out of the reply,
// which is consumed: a batch has thousands of entries.
Result<std::vector<mysql::OutboxEvent>> decodeEntries(redis::Reply& reply) {
  if (!reply.isArray()) return fail(ErrorCode::kInternal, "XRANGE answered a non-array");
  std::vector<mysql::OutboxEvent> events;
  events.reserve(reply.elements.size());
  for (redis::Reply& entry : reply.elements) {
    if (!entry.isArray() || entry.elements.size() != 2 || !entry.elements[1].isArray()) {
      return fail(ErrorCode::kInternal, "XRANGE entry of an unexpected shape");
    }
    mysql::OutboxEvent event;
    event.id = std::move(entry.elements[0].str);
    auto& fields = entry.elements[1].elements;
    event.fields.reserve(fields.size() / 2);
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
      event.fields.emplace_back(std::move(fields[i].str), std::move(fields[i + 1].str));
    }
    events.push_back(std::move(event));
  }
  return events;
}

// The events of one stream's XRANGE reply, which is consumed.
Result<std::vector<mysql::OutboxEvent>> eventsOf(Result<redis::Reply>& reply,
                                                 const std::string& stream) {
  if (!reply) return std::unexpected(reply.error());
  if (reply->isError()) {
    return fail(ErrorCode::kUnavailable, "XRANGE " + stream + ": " + reply->str);
  }
  return decodeEntries(*reply);
}

// What an event weighs in a batch: the orders it carries. A `holds` entry (order_hold.lua)
// lists up to kHoldBatchMax of them in its field b, joined by ','; any other event is one.
std::size_t eventWeight(const mysql::OutboxEvent& event) {
  bool holds = false;
  std::size_t orders = 1;
  for (const auto& [name, value] : event.fields) {
    if (name == "e") holds = value == "holds";
    if (name == "b")
      orders = 1 + static_cast<std::size_t>(std::count(value.begin(), value.end(), ','));
  }
  return holds ? orders : 1;
}

// The read of up to `count` entries of `stream` after the entry `after` (exclusive).
redis::RoutedCommand readAfter(const std::string& stream, const std::string& after,
                               std::size_t count) {
  return {stream, {"XRANGE", stream, "(" + after, "+", "COUNT", std::to_string(count)}};
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
  // The last pass left a full batch: go on without a pause. True at start, so the first pass
  // (and its sweep) comes at once.
  bool behind = true;
  for (;;) {
    {
      std::unique_lock lock(stop_mutex_);
      const auto pause = behind ? std::chrono::milliseconds(0) : options_.tick;
      if (stop_signal_.wait_for(lock, pause, [this] { return stopping_; })) return;
    }
    std::lock_guard pass_lock(pass_mutex_);
    if (std::chrono::steady_clock::now() >= next_sweep) {
      const Result<void> swept = sweep();
      if (!swept) spdlog::warn("write-back: sweep failed: {}", swept.error().message);
      next_sweep = std::chrono::steady_clock::now() + options_.sweep_interval;
    }
    const PassResult result = pass();
    // After a failure, the tick: a server that is down is not asked again in a tight loop.
    behind = !result.complete && !result.failed;
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
    std::vector<redis::RoutedCommand> commands;
    for (const std::string& stream : streams) {
      commands.push_back({stream, {"XREVRANGE", stream, "+", "-", "COUNT", "1"}});
    }
    const auto replies = client_.pipeline(commands);
    for (std::size_t i = 0; i < commands.size(); ++i) {
      auto last = checked(replies[i], "XREVRANGE " + commands[i].routing_key);
      if (!last) {
        spdlog::warn("write-back: drain: {}", last.error().message);
        return false;
      }
      if (!last->isArray() || last->elements.empty()) continue;
      const auto& entry = last->elements[0];
      if (!entry.isArray() || entry.elements.empty()) continue;
      if (auto id = mysql::StreamId::parse(entry.elements[0].str)) {
        targets.emplace(commands[i].routing_key, *id);
      }
    }
  }
  // Stream by stream, a batch at a time, letting the loop in between: each stream is read
  // to its target before the next, so a long backlog does not cost a round of every stream
  // per batch.
  for (const auto& [stream, target] : targets) {
    bool asked_again = false;
    while (true) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      bool idle = false;
      {
        std::lock_guard lock(pass_mutex_);
        auto position = positionOf(stream);
        auto applied = position ? mysql::StreamId::parse(*position) : std::nullopt;
        if (applied && *applied >= target) break;
        PassResult drained;
        passRound(std::span<const std::string>(&stream, 1), drained);
        if (drained.failed) {
          idle = true;  // counted and logged by the round
        } else if (drained.events_read == 0) {
          // Nothing left to read, yet the position known here is behind: another write-back
          // process applied and trimmed the rest. Ask the database again, at once the first
          // time (a process that does not write back itself, role api, finds most positions
          // moved on), then after a tick.
          positions_.erase(stream);
          idle = asked_again;
          asked_again = true;
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
  const std::vector<std::string> streams(streams_.begin(), streams_.end());
  for (std::size_t first = 0; first < streams.size(); first += kWriteBackRoundStreamsMax) {
    if (stop_requested_.load()) {  // stop() does not wait for a pass over thousands of streams
      result.complete = false;
      break;
    }
    const std::size_t count = std::min(kWriteBackRoundStreamsMax, streams.size() - first);
    passRound(std::span<const std::string>(streams.data() + first, count), result);
  }
  for (const std::string& stream : result.done) streams_.erase(stream);
  metrics_.oldest_unapplied_age_ms =
      result.oldest_ms == 0 ? 0 : std::max<std::int64_t>(0, wallNowMs() - result.oldest_ms);
  metrics_.events_pending = result.pending;
  metrics_.streams_known = static_cast<std::int64_t>(streams_.size());
  ++metrics_.passes;
  return result;
}

void WriteBack::passRound(std::span<const std::string> streams, PassResult& result) {
  std::vector<mysql::WriteBackStore::StreamBatch> batches, ready;
  for (std::string& stream : withPositions(streams, result)) {
    if (auto ahead = takeReadAhead(stream, result)) {
      ready.push_back(std::move(*ahead));
    } else {
      batches.push_back({std::move(stream), {}});
    }
  }
  // A first look at every other stream; most hold a few events (each order's events go to its
  // own slot's stream), a hot record's stream holds many.
  const std::size_t first_read = std::min(options_.batch_events_max, kWriteBackFirstReadEvents);
  readBatches(batches, first_read, result);
  std::vector<mysql::WriteBackStore::StreamBatch> small, large;
  for (auto& batch : batches) {
    if (batch.events.empty()) {
      result.done.push_back(batch.stream);
    } else {
      (batch.events.size() < first_read || first_read == options_.batch_events_max ? small : large)
          .push_back(std::move(batch));
    }
  }
  applyAndTrim(small, result);
  applyInSteps(large, options_.batch_events_max - first_read, result);
  applyInSteps(ready, 0, result);
}

void WriteBack::applyInSteps(std::vector<mysql::WriteBackStore::StreamBatch>& batches,
                             std::size_t rest, PassResult& result) {
  const std::size_t per_step =
      std::max<std::size_t>(1, kWriteBackRoundEventsMax / options_.batch_events_max);
  for (std::size_t first = 0; first < batches.size(); first += per_step) {
    std::vector<mysql::WriteBackStore::StreamBatch> step(
        std::make_move_iterator(batches.begin() + static_cast<std::ptrdiff_t>(first)),
        std::make_move_iterator(batches.begin() + static_cast<std::ptrdiff_t>(
                                                      std::min(batches.size(), first + per_step))));
    if (rest > 0) readBatches(step, rest, result);
    // A stream whose batch is full is read again by the next pass: that read goes now, on
    // another thread, while the database applies this batch.
    ReadAhead ahead = startReadAhead(step);
    applyAndTrim(step, result);
    keepReadAhead(ahead);
  }
}

WriteBack::ReadAhead WriteBack::startReadAhead(
    const std::vector<mysql::WriteBackStore::StreamBatch>& step) {
  ReadAhead ahead;
  for (const auto& batch : step) {
    if (batch.events.size() < options_.batch_events_max) continue;  // read to its end
    const std::size_t events_max =
        read_ahead_events_ + (ahead.after.size() + 1) * options_.batch_events_max;
    if (events_max > kWriteBackRoundEventsMax) break;
    ahead.after.push_back(batch.events.back().id);
    ahead.reads.push_back(readAfter(batch.stream, ahead.after.back(), options_.batch_events_max));
  }
  if (!ahead.reads.empty()) {
    ahead.replies = std::async(std::launch::async,
                               [this, reads = ahead.reads] { return client_.pipeline(reads); });
  }
  return ahead;
}

void WriteBack::keepReadAhead(ReadAhead& ahead) {
  if (ahead.reads.empty()) return;
  auto replies = ahead.replies.get();
  for (std::size_t i = 0; i < ahead.reads.size(); ++i) {
    const std::string& stream = ahead.reads[i].routing_key;
    // Kept only when the batch before it is committed: the next pass starts where it starts.
    const auto position = positions_.find(stream);
    if (position == positions_.end() || position->second != ahead.after[i]) continue;
    auto events = eventsOf(replies[i], stream);
    if (!events || events->empty()) continue;  // the next pass reads it the usual way
    read_ahead_events_ += events->size();
    read_ahead_[stream] = ReadAheadBatch{ahead.after[i], std::move(*events)};
  }
}

std::optional<mysql::WriteBackStore::StreamBatch> WriteBack::takeReadAhead(
    const std::string& stream, PassResult& result) {
  const auto found = read_ahead_.find(stream);
  if (found == read_ahead_.end()) return std::nullopt;
  ReadAheadBatch ahead = std::move(found->second);
  read_ahead_.erase(found);
  read_ahead_events_ -= ahead.events.size();
  // Another write-back process may have moved the stream on meanwhile: then read it again.
  if (ahead.after != positions_.at(stream)) return std::nullopt;
  noteFirstRead(ahead.events, result);
  return mysql::WriteBackStore::StreamBatch{stream, std::move(ahead.events)};
}

void WriteBack::noteFirstRead(const std::vector<mysql::OutboxEvent>& events, PassResult& result) {
  result.events_read += events.size();
  if (events.empty()) return;
  if (const auto first = mysql::StreamId::parse(events.front().id)) {
    const auto ms = static_cast<std::int64_t>(first->ms);
    if (result.oldest_ms == 0 || ms < result.oldest_ms) result.oldest_ms = ms;
  }
}

std::vector<std::string> WriteBack::withPositions(std::span<const std::string> streams,
                                                  PassResult& result) {
  // A stream seen for the first time (a sweep finds every empty one too): one cheap look
  // before the database is asked for its position.
  std::vector<redis::RoutedCommand> peeks;
  for (const std::string& stream : streams) {
    if (!positions_.contains(stream)) {
      peeks.push_back({stream, {"XRANGE", stream, "-", "+", "COUNT", "1"}});
    }
  }
  const auto replies = client_.pipeline(peeks);
  std::vector<std::string> unknown;
  for (std::size_t i = 0; i < peeks.size(); ++i) {
    const std::string& stream = peeks[i].routing_key;
    auto peek = checked(replies[i], "XRANGE " + stream);
    if (!peek) {
      streamFailed(stream, peek.error().message, result);
    } else if (peek->isArray() && peek->elements.empty()) {
      result.done.push_back(stream);
    } else {
      unknown.push_back(stream);
    }
  }
  if (!unknown.empty()) {
    if (const Result<void> learned = learnPositions(unknown); !learned) {
      streamFailed("positions of " + std::to_string(unknown.size()) + " streams",
                   learned.error().message, result);
    }
  }
  std::vector<std::string> known;
  for (const std::string& stream : streams) {
    if (positions_.contains(stream)) known.push_back(stream);
  }
  return known;
}

Result<void> WriteBack::learnPositions(const std::vector<std::string>& streams) {
  ALLOT_TRY(stored, store_.readPositions(streams));
  std::vector<std::string> applied;
  for (const std::string& stream : streams) {
    const auto found = stored.find(stream);
    const std::string last_id = found == stored.end() ? "0-0" : found->second;
    positions_[stream] = last_id;
    if (last_id != "0-0") applied.push_back(stream);
  }
  // Entries at or below a stored position were applied; a crash may have left them untrimmed.
  // A trim that fails leaves them to the next one: reads start after the position anyway.
  PassResult ignored;
  trimAll(applied, std::vector<bool>(applied.size(), false), ignored);
  return {};
}

Result<std::string> WriteBack::positionOf(const std::string& stream) {
  if (!positions_.contains(stream)) ALLOT_TRY_VOID(learnPositions({stream}));
  return positions_.at(stream);
}

void WriteBack::readBatches(std::vector<mysql::WriteBackStore::StreamBatch>& batches,
                            std::size_t count, PassResult& result) {
  std::vector<redis::RoutedCommand> reads;
  reads.reserve(batches.size());
  for (const auto& batch : batches) {
    const std::string& after =
        batch.events.empty() ? positions_.at(batch.stream) : batch.events.back().id;
    reads.push_back(readAfter(batch.stream, after, count));
  }
  auto replies = client_.pipeline(reads);
  std::vector<mysql::WriteBackStore::StreamBatch> read;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    auto& batch = batches[i];
    auto events = eventsOf(replies[i], batch.stream);
    if (!events) {
      streamFailed(batch.stream, events.error().message, result);
      continue;  // dropped from the round: retried by the next pass
    }
    if (batch.events.empty()) {
      noteFirstRead(*events, result);
    } else {
      result.events_read += events->size();
    }
    batch.events.insert(batch.events.end(), std::make_move_iterator(events->begin()),
                        std::make_move_iterator(events->end()));
    read.push_back(std::move(batch));
  }
  batches = std::move(read);
}

void WriteBack::applyAndTrim(std::vector<mysql::WriteBackStore::StreamBatch>& batches,
                             PassResult& result) {
  const std::size_t weight_max = options_.batch_events_max;
  // A batch is cut into pieces of at most batch_events_max orders (a `holds` entry carries up
  // to kHoldBatchMax of them; every other event is one), at least one event each, so that a
  // transaction stays bounded however the events were appended.
  struct Piece {
    std::size_t batch, begin, end, weight;
  };
  std::vector<Piece> pieces;
  for (std::size_t b = 0; b < batches.size(); ++b) {
    const auto& events = batches[b].events;
    std::size_t begin = 0, weight = 0;
    for (std::size_t i = 0; i < events.size(); ++i) {
      const std::size_t w = eventWeight(events[i]);
      if (i > begin && weight + w > weight_max) {
        pieces.push_back({b, begin, i, weight});
        begin = i;
        weight = 0;
      }
      weight += w;
    }
    if (begin < events.size()) pieces.push_back({b, begin, events.size(), weight});
  }
  // A piece is applied only after the one before it committed: a committed piece moves its
  // stream's position past its events, so a later piece applied over a failed one would skip
  // the failed one's events for good.
  std::vector<char> failed(batches.size(), 0), committed_any(batches.size(), 0);
  std::size_t next = 0;
  while (next < pieces.size()) {
    // Streams applied in groups, one transaction per group: a commit per stream would cap
    // the write-back at the database's commits per second. A stream is once in a group.
    std::vector<mysql::WriteBackStore::StreamBatch> group;
    std::vector<std::size_t> group_batches;
    std::size_t group_weight = 0;
    while (next < pieces.size() && group.size() < kWriteBackGroupStreamsMax) {
      const Piece& piece = pieces[next];
      if (failed[piece.batch]) {
        ++next;
        continue;
      }
      if (!group.empty() &&
          (group_batches.back() == piece.batch || group_weight + piece.weight > weight_max)) {
        break;
      }
      auto& events = batches[piece.batch].events;
      group.push_back(
          {batches[piece.batch].stream,
           {std::make_move_iterator(events.begin() + static_cast<std::ptrdiff_t>(piece.begin)),
            std::make_move_iterator(events.begin() + static_cast<std::ptrdiff_t>(piece.end))}});
      group_batches.push_back(piece.batch);
      group_weight += piece.weight;
      ++next;
    }
    if (group.empty()) continue;
    auto outcomes = store_.applyBatches(group);
    if (!outcomes) {
      for (const std::size_t b : group_batches) failed[b] = 1;
      streamFailed("a group of " + std::to_string(group.size()) + " streams",
                   outcomes.error().message, result);
      continue;
    }
    ++metrics_.batches;
    for (std::size_t i = 0; i < group.size(); ++i) {
      const mysql::BatchOutcome& outcome = (*outcomes)[i];
      metrics_.events_applied += outcome.applied;
      metrics_.events_dead_lettered += outcome.dead_lettered;
      for (const std::string& reason : outcome.dead_letter_reasons) {
        spdlog::error("write-back: {}: event dead-lettered (see outbox_dead_letters): {}",
                      group[i].stream, reason);
      }
      positions_[group[i].stream] = outcome.last_id;
      committed_any[group_batches[i]] = 1;
    }
  }
  // Every stream with a committed piece is trimmed to its position; one read to its end (and
  // wholly committed) is forgotten until an append notes it again.
  std::vector<std::string> committed;
  std::vector<bool> full;
  for (std::size_t b = 0; b < batches.size(); ++b) {
    if (!committed_any[b]) continue;
    committed.push_back(batches[b].stream);
    // (Moving the events into the groups left the batch's size as it was read.)
    const bool more = failed[b] || batches[b].events.size() >= options_.batch_events_max;
    full.push_back(more);
    if (more) {
      result.complete = false;
    } else {
      result.done.push_back(batches[b].stream);
    }
  }
  // The commits are done: a failed trim only leaves entries the positions already skip.
  trimAll(committed, full, result);
}

void WriteBack::trimAll(const std::vector<std::string>& streams, const std::vector<bool>& full,
                        PassResult& result) {
  std::vector<redis::RoutedCommand> commands;
  for (std::size_t i = 0; i < streams.size(); ++i) {
    const std::string& stream = streams[i];
    const auto id = mysql::StreamId::parse(positions_.at(stream));
    if (!id) {  // a position row edited by hand: applyBatches refuses the stream too
      ++metrics_.batch_failures;
      spdlog::warn("write-back: {}: bad stored position '{}'", stream, positions_.at(stream));
      continue;
    }
    // MINID keeps ids >= the threshold: everything up to the position goes, nothing newer.
    commands.push_back({stream, {"XTRIM", stream, "MINID", id->next().text()}});
    if (full[i]) commands.push_back({stream, {"XLEN", stream}});
  }
  const auto replies = client_.pipeline(commands);
  for (std::size_t i = 0; i < commands.size(); ++i) {
    auto reply = checked(replies[i], commands[i].argv.front() + " " + commands[i].routing_key);
    if (!reply) {
      ++metrics_.batch_failures;
      warnThrottled(reply.error().message);
    } else if (commands[i].argv.front() == "XLEN" && reply->isInteger()) {
      result.pending += reply->integer;
    }
  }
}

void WriteBack::streamFailed(const std::string& what, const std::string& why, PassResult& result) {
  ++metrics_.batch_failures;
  result.complete = false;
  result.failed = true;
  warnThrottled(what + ": " + why);
}

void WriteBack::warnThrottled(const std::string& message) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_warning_ < std::chrono::seconds(1)) {
    ++warnings_left_out_;
    return;
  }
  if (warnings_left_out_ > 0) {
    spdlog::warn("write-back: {} ({} more warnings in the last second left out)", message,
                 warnings_left_out_);
  } else {
    spdlog::warn("write-back: {}", message);
  }
  last_warning_ = now;
  warnings_left_out_ = 0;
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
  // SCAN may return a key twice (the table was resized meanwhile): each is listed once.
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
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
