#include "redis/redis_async_store.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
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

// The command and its arguments, kept alive until the reply (a NOSCRIPT resends them).
struct RedisAsyncStore::Call {
  std::vector<std::string> argv;
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
  auto& argv = call->argv;
  const std::size_t key_count = 5 + 3 * orders.size();
  argv.reserve(3 + key_count + 3 + 3 * orders.size());
  const std::string usable = keys::usable(key);
  const std::string stream = keys::outboxFor(usable);
  argv.insert(argv.end(), {"EVALSHA", script.sha1(), std::to_string(key_count), usable,
                           keys::subtracted(key), keys::ullage(key), keys::holds(key), stream});
  for (const auto& order : orders) {
    argv.push_back(keys::operate(key, order.order_no));
    argv.push_back(keys::rollbackTombstone(key, order.order_no));
    argv.push_back(keys::order(OrderRef{key.dept_no, order.order_no}));
  }
  argv.insert(argv.end(), {key.index(), key.dept_no, encodeLineRecord(key)});
  for (const auto& order : orders) {
    argv.push_back(order.order_no);
    argv.push_back(std::to_string(order.qty));
    argv.push_back(order.allow_shortage ? "1" : "0");
  }
  call->views.assign(argv.begin(), argv.end());
  send(std::move(call));
  // Noted even when the outcome will be unknown: a stream read with nothing new is cheap.
  if (on_outbox_append_) on_outbox_append_(stream);
}

void RedisAsyncStore::send(std::shared_ptr<Call> call) {
  connection_.command(call->views, [this, call](Result<Reply> reply) {
    if (reply && isNoScript(*reply) && call->argv[0] == "EVALSHA") {
      // A restarted or flushed server: EVAL sends the body, which Redis caches again.
      call->argv[0] = "EVAL";
      call->argv[1] = embeddedScript("order_hold.lua").body();
      call->views.assign(call->argv.begin(), call->argv.end());
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
