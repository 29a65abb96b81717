#include "redis/redis_async_store.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <memory>

#include "core/assert.h"
#include "core/decimal.h"
#include "core/limits.h"
#include "redis/keys.h"
#include "redis/scripts.h"

namespace allot::redis {

namespace {

Error unexpected(const Reply& reply) {
  std::string message = "unexpected reply from order_hold";
  if (reply.isError()) message += ": " + reply.str;
  return Error{ErrorCode::kInternal, std::move(message)};
}

// A decimal integer that is all of `text`, into `value`.
bool readInteger(std::string_view text, std::int64_t& value) {
  const auto read = readDecimal<std::int64_t>(text);
  if (read) value = *read;
  return read.has_value();
}

// One order's value (order_hold.lua's header lists them); false when it is not one of them.
bool decodeOutcome(const Reply& value, std::int64_t qty, LineOrderOutcome& outcome) {
  if (value.isInteger()) {
    switch (value.integer) {
      case 1:
        outcome.kind = LineOrderOutcome::Kind::kHeld;
        outcome.status = OrderStatus::kAllocated;
        outcome.allocated = qty;
        return true;
      case 3: outcome.kind = LineOrderOutcome::Kind::kRolledBack; return true;
      case 5: outcome.kind = LineOrderOutcome::Kind::kConflict; return true;
      default: return false;
    }
  }
  if (!value.isString() || value.str.empty()) return false;
  const std::string_view text = value.str;
  const std::string_view rest = text.substr(1);
  switch (text.front()) {
    case '1': {  // "1:allocated:shortage"
      if (!rest.starts_with(':')) return false;
      const auto colon = rest.find(':', 1);
      if (colon == std::string_view::npos) return false;
      outcome.kind = LineOrderOutcome::Kind::kHeld;
      outcome.status = OrderStatus::kShortage;
      return readInteger(rest.substr(1, colon - 1), outcome.allocated) &&
             readInteger(rest.substr(colon + 1), outcome.shortage) && outcome.shortage > 0;
    }
    case '2': {  // "2<status><answer lines>"
      if (rest.empty()) return false;
      const auto status = orderStatusFromCode(rest.substr(0, 1));
      if (!status) return false;
      outcome.kind = LineOrderOutcome::Kind::kReplay;
      outcome.status = *status;
      outcome.answer_blob = std::string(rest.substr(1));
      return true;
    }
    case '0':  // "0:available"
      outcome.kind = LineOrderOutcome::Kind::kInsufficient;
      return rest.starts_with(':') && readInteger(rest.substr(1), outcome.available);
    case '6':  // "6:why"
      if (!rest.starts_with(':')) return false;
      outcome.kind = LineOrderOutcome::Kind::kSlow;
      outcome.reason = std::string(rest.substr(1));
      return true;
    default: return false;
  }
}

Result<std::vector<LineOrderOutcome>> decodeOutcomes(const Reply& reply,
                                                     const std::vector<std::int64_t>& quantities) {
  if (!reply.isArray() || reply.elements.size() != quantities.size()) {
    return std::unexpected(unexpected(reply));
  }
  std::vector<LineOrderOutcome> outcomes(quantities.size());
  for (std::size_t i = 0; i < quantities.size(); ++i) {
    if (!decodeOutcome(reply.elements[i], quantities[i], outcomes[i])) {
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
  std::vector<std::int64_t> quantities;  // of the orders, in the order sent
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
  call->quantities.reserve(orders.size());
  for (const auto& order : orders) call->quantities.push_back(order.qty);
  call->done = std::move(done);
  const std::string index = key.index();
  const std::string usable = keys::usable(key);
  const std::string stream = keys::outboxFor(usable);
  const std::size_t key_count = 5 + 4 * orders.size();
  std::string& arena = call->arena;
  arena.reserve(256 + 4 * index.size() +
                orders.size() * (2 * index.size() + 2 * key.dept_no.size() + 128));
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
    add([&](std::string& out) { keys::appendOrderBucket(out, key.dept_no, order.order_no); });
  }
  add(text(index));
  add(text(key.dept_no));
  add(text(encodeLineRecord(key)));
  for (const auto& order : orders) {
    add(text(order.order_no));
    add([&](std::string& out) { appendDecimal(out, order.qty); });
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
    if (reply && reply->isNoScript() && call->views[0] == "EVALSHA") {
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
    call->done(decodeOutcomes(*reply, call->quantities));
  });
}

void RedisAsyncStore::defer(std::function<void()> fn) { boost::asio::post(io_, std::move(fn)); }

}  // namespace allot::redis
