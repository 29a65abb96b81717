#include "redis/redis_async_store.h"

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <charconv>
#include <memory>

#include "core/assert.h"
#include "core/limits.h"
#include "redis/keys.h"
#include "redis/scripts.h"

namespace allot::redis {

namespace {

constexpr std::size_t kValuesPerOrder = 5;  // order_hold.lua: code, allocated, shortage,
                                            // available, text

Error unexpected(const Reply& reply) {
  std::string message = "unexpected reply from order_hold";
  if (reply.isError()) message += ": " + reply.str;
  return Error{ErrorCode::kInternal, std::move(message)};
}

void appendInteger(std::string& out, std::int64_t value) {
  std::array<char, 24> digits{};
  const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), value).ptr;
  out.append(digits.data(), end);
}

bool isNoScript(const Reply& reply) { return reply.isError() && reply.str.starts_with("NOSCRIPT"); }

// One order's five values; false when they are not of the documented shape.
bool decodeOutcome(const std::vector<Reply>& values, std::size_t at, LineOrderOutcome& outcome) {
  const Reply& code = values[at];
  const Reply& text = values[at + 4];
  if (!code.isInteger() || !values[at + 1].isInteger() || !values[at + 2].isInteger() ||
      !values[at + 3].isInteger() || !text.isString()) {
    return false;
  }
  outcome.allocated = values[at + 1].integer;
  outcome.shortage = values[at + 2].integer;
  outcome.available = values[at + 3].integer;
  switch (code.integer) {
    case 1: {
      outcome.kind = LineOrderOutcome::Kind::kHeld;
      const auto status = orderStatusFromCode(text.str);
      if (!status) return false;
      outcome.status = *status;
      return true;
    }
    case 2: {
      outcome.kind = LineOrderOutcome::Kind::kReplay;
      const auto status = orderStatusFromCode(text.str.substr(0, 1));
      if (!status) return false;
      outcome.status = *status;
      outcome.answer_blob = text.str.substr(1);
      return true;
    }
    case 0: outcome.kind = LineOrderOutcome::Kind::kInsufficient; return true;
    case 3: outcome.kind = LineOrderOutcome::Kind::kRolledBack; return true;
    case 5: outcome.kind = LineOrderOutcome::Kind::kConflict; return true;
    case 6:
      outcome.kind = LineOrderOutcome::Kind::kSlow;
      outcome.reason = text.str;
      return true;
    default: return false;
  }
}

Result<std::vector<LineOrderOutcome>> decodeOutcomes(const Reply& reply, std::size_t orders) {
  if (!reply.isArray() || reply.elements.size() != orders * kValuesPerOrder) {
    return std::unexpected(unexpected(reply));
  }
  std::vector<LineOrderOutcome> outcomes(orders);
  for (std::size_t i = 0; i < orders; ++i) {
    if (!decodeOutcome(reply.elements, i * kValuesPerOrder, outcomes[i])) {
      return std::unexpected(unexpected(reply));
    }
  }
  return outcomes;
}

}  // namespace

// The command and its arguments, kept alive until the reply (a NOSCRIPT resends them). The
// arguments after the command and the script are written back to back in one string, which
// the views point into: a batch of N orders costs a few allocations, not several per order.
struct RedisAsyncStore::Call {
  std::string arena;
  std::vector<std::string_view> views;
  std::size_t orders = 0;
  BatchDone done;
};

RedisAsyncStore::RedisAsyncStore(boost::asio::io_context& io, NodeAddress node,
                                 ConnectionSettings settings,
                                 std::function<void(const std::string& stream)> on_outbox_append)
    : io_(io),
      connection_(io, std::move(node), std::move(settings)),
      on_outbox_append_(std::move(on_outbox_append)) {}

void RedisAsyncStore::preallocateLines(const RecordKey& key, const std::vector<LineOrder>& orders,
                                       BatchDone done) {
  ALLOT_ASSERT(!orders.empty() && orders.size() <= limits::kHoldBatchMax);
  static const Script& script = embeddedScript("order_hold.lua");
  auto call = std::make_shared<Call>();
  call->orders = orders.size();
  call->done = std::move(done);
  const std::string index = key.index();
  const std::string usable = keys::usable(key);
  const std::string stream = keys::outboxFor(usable);
  const std::size_t key_count = 5 + 3 * orders.size();
  std::string& arena = call->arena;
  arena.reserve(256 + 4 * index.size() + orders.size() * (3 * index.size() + 96));
  std::vector<std::pair<std::size_t, std::size_t>> spans;  // (offset, length) in the arena
  spans.reserve(key_count + 4 + 3 * orders.size());
  // Appends one argument, written by `write` into the arena.
  const auto add = [&](const auto& write) {
    const std::size_t at = arena.size();
    write(arena);
    spans.emplace_back(at, arena.size() - at);
  };
  const auto text = [](std::string_view value) {
    return [value](std::string& out) { out.append(value); };
  };
  add(text(std::to_string(key_count)));
  add(text(usable));
  add(text(keys::subtracted(key)));
  add(text(keys::ullage(key)));
  add(text(keys::holds(key)));
  add(text(stream));
  for (const auto& order : orders) {
    add([&](std::string& out) { keys::appendOperate(out, index, order.order_no); });
    add([&](std::string& out) { keys::appendRollbackTombstone(out, index, order.order_no); });
    add([&](std::string& out) { keys::appendOrder(out, key.dept_no, order.order_no); });
  }
  add(text(index));
  add(text(key.dept_no));
  add(text(encodeLineRecord(key)));
  for (const auto& order : orders) {
    add(text(order.order_no));
    add([&](std::string& out) { appendInteger(out, order.qty); });
    add(text(order.allow_shortage ? "1" : "0"));
  }
  call->views.reserve(2 + spans.size());
  call->views.insert(call->views.end(), {std::string_view("EVALSHA"), script.sha1()});
  for (const auto& [at, length] : spans) call->views.emplace_back(arena.data() + at, length);
  send(std::move(call));
  // Noted even when the outcome will be unknown: a stream read with nothing new is cheap.
  if (on_outbox_append_) on_outbox_append_(stream);
}

void RedisAsyncStore::send(std::shared_ptr<Call> call) {
  connection_.command(call->views, [this, call](Result<Reply> reply) {
    if (reply && isNoScript(*reply) && call->views[0] == "EVALSHA") {
      // A restarted or flushed server: EVAL sends the body, which Redis caches again.
      call->views[0] = "EVAL";
      call->views[1] = embeddedScript("order_hold.lua").body();
      send(call);
      return;
    }
    if (!reply) {
      call->done(std::unexpected(reply.error()));
      return;
    }
    call->done(decodeOutcomes(*reply, call->orders));
  });
}

void RedisAsyncStore::defer(std::function<void()> fn) { boost::asio::post(io_, std::move(fn)); }

}  // namespace allot::redis
