#include "domain/merchant_router.h"

#include <chrono>
#include <functional>

namespace allot {

namespace {

std::int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Error unavailable(std::string message) {
  return Error{ErrorCode::kUnavailable, std::move(message)};
}

}  // namespace

MerchantRouter::MerchantRouter(StockApi& redis_path, StockApi& mysql_path, RouteTable& table,
                               RouteMove move, MerchantRouterOptions options)
    : redis_path_(redis_path),
      mysql_path_(mysql_path),
      table_(table),
      move_(std::move(move)),
      options_(options) {}

MerchantRouter::Shard& MerchantRouter::shardOf(const std::string& dept_no) {
  return shards_[std::hash<std::string>{}(dept_no) % kShards];
}

Result<void> MerchantRouter::refresh(Shard& shard, std::unique_lock<std::mutex>& lock,
                                     const std::string& dept_no, bool force) {
  auto& entry = shard.entries[dept_no];
  const auto fresh = [&] {
    return entry.loaded_ms >= 0 && steadyMs() - entry.loaded_ms < options_.refresh_ms;
  };
  if (!force && fresh()) return {};
  // One reader of the table per merchant at a time, and the shard's lock is not held while it
  // reads: the network threads admit and release fast-path calls under that lock, and must
  // never wait for the database. (Entries are never erased, so `entry` stays valid.)
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.call_wait_ms);
  while (true) {
    // A reader that began before the latest switch step does not count: what it reads may be
    // older than the switch, so it is neither waited for nor believed.
    while (entry.reader_epoch == entry.epoch) {
      if (shard.changed.wait_until(lock, deadline) == std::cv_status::timeout &&
          entry.reader_epoch == entry.epoch) {
        return std::unexpected(unavailable(
            "the route of merchant " + dept_no + " is being read and the database has not " +
            "answered for " + std::to_string(options_.call_wait_ms) + " ms; retry"));
      }
    }
    if (!force && fresh()) return {};  // another caller has just read it
    const auto epoch = entry.epoch;
    entry.reader_epoch = epoch;
    lock.unlock();
    auto stored = table_.findRoute(dept_no);
    const auto now = steadyMs();
    lock.lock();
    if (entry.reader_epoch == epoch) entry.reader_epoch.reset();
    shard.changed.notify_all();
    if (entry.epoch != epoch) {
      // A switch closed or opened the gate while the table was read: this read may show the
      // route before the switch. Landing it as fresh would send calls to the path the merchant
      // has just left, so read again (or let the caller retry).
      if (std::chrono::steady_clock::now() >= deadline) {
        return std::unexpected(
            unavailable("the route of merchant " + dept_no + " changed while it was read; retry"));
      }
      continue;
    }
    if (!stored) {
      // Keep serving a route read before: the table being unreachable for a moment is no
      // reason to refuse a merchant whose route is known. A merchant never read must wait.
      if (entry.loaded_ms >= 0 && !force) return {};
      return std::unexpected(unavailable("the route of merchant " + dept_no +
                                         " cannot be read: " + stored.error().message));
    }
    entry.configured = stored->has_value();
    entry.stored = stored->value_or(StoredRoute{options_.default_route, false});
    entry.loaded_ms = now;
    return {};
  }
}

Result<Route> MerchantRouter::admit(const std::string& dept_no) {
  auto& shard = shardOf(dept_no);
  std::unique_lock lock(shard.mutex);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.call_wait_ms);
  while (true) {
    while (shard.entries[dept_no].local_switch) {
      if (shard.changed.wait_until(lock, deadline) == std::cv_status::timeout &&
          shard.entries[dept_no].local_switch) {
        return std::unexpected(
            unavailable("merchant " + dept_no + " is moving between routes; retry"));
      }
    }
    ALLOT_TRY_VOID(refresh(shard, lock, dept_no, false));
    // The lock was let go while the table was read: a switch may have begun meanwhile, and
    // once it has seen no call in flight, no call may start.
    if (!shard.entries[dept_no].local_switch) break;
  }
  auto& entry = shard.entries[dept_no];
  if (entry.stored.switching) {
    return std::unexpected(unavailable(
        "merchant " + dept_no + " is between routes (a switch has not finished); retry, or " +
        "PUT its route again"));
  }
  ++entry.in_flight;
  return entry.stored.route;
}

bool MerchantRouter::tryAdmitRedis(const std::string& dept_no) {
  auto& shard = shardOf(dept_no);
  std::lock_guard lock(shard.mutex);
  const auto found = shard.entries.find(dept_no);
  if (found == shard.entries.end()) return false;
  Entry& entry = found->second;
  if (entry.local_switch || entry.stored.switching || entry.stored.route != Route::kRedis ||
      entry.loaded_ms < 0 || steadyMs() - entry.loaded_ms >= options_.refresh_ms) {
    return false;
  }
  ++entry.in_flight;
  return true;
}

void MerchantRouter::leave(const std::string& dept_no) {
  auto& shard = shardOf(dept_no);
  {
    std::lock_guard lock(shard.mutex);
    --shard.entries[dept_no].in_flight;
  }
  shard.changed.notify_all();
}

template <typename Call>
auto MerchantRouter::through(const std::string& dept_no, Call call)
    -> decltype(call(std::declval<StockApi&>())) {
  ALLOT_TRY(route, admit(dept_no));
  auto result = call(route == Route::kRedis ? redis_path_ : mysql_path_);
  leave(dept_no);
  return result;
}

Result<PreallocateOutcome> MerchantRouter::preallocate(const PreallocateRequest& request) {
  return through(request.dept_no, [&](StockApi& path) { return path.preallocate(request); });
}

Result<EndAnswer> MerchantRouter::rollback(const OrderRef& order) {
  return through(order.dept_no, [&](StockApi& path) { return path.rollback(order); });
}

Result<EndAnswer> MerchantRouter::deduct(const OrderRef& order) {
  return through(order.dept_no, [&](StockApi& path) { return path.deduct(order); });
}

Result<OrderAnswer> MerchantRouter::findOrder(const OrderRef& order) {
  return through(order.dept_no, [&](StockApi& path) { return path.findOrder(order); });
}

Result<Quantities> MerchantRouter::adjust(const AdjustRequest& request, const std::string& digest) {
  return through(request.key.dept_no, [&](StockApi& path) { return path.adjust(request, digest); });
}

Result<Quantities> MerchantRouter::readRecord(const RecordKey& key) {
  return through(key.dept_no, [&](StockApi& path) { return path.readRecord(key); });
}

Result<void> MerchantRouter::checkReady() {
  // Both paths share the database; the Redis path also checks Redis.
  return redis_path_.checkReady();
}

Route MerchantRouter::routeOf(const std::string& dept_no) {
  auto& shard = shardOf(dept_no);
  std::unique_lock lock(shard.mutex);
  if (!refresh(shard, lock, dept_no, false)) return options_.default_route;
  return shard.entries[dept_no].stored.route;
}

MerchantRouteView MerchantRouter::viewOf(const std::string& dept_no, const Entry& entry) const {
  return MerchantRouteView{dept_no, entry.stored.route, entry.configured,
                           entry.stored.switching || entry.local_switch};
}

Result<MerchantRouteView> MerchantRouter::view(const std::string& dept_no) {
  auto& shard = shardOf(dept_no);
  std::unique_lock lock(shard.mutex);
  ALLOT_TRY_VOID(refresh(shard, lock, dept_no, true));
  return viewOf(dept_no, shard.entries[dept_no]);
}

Result<MerchantRouteView> MerchantRouter::switchRoute(const std::string& dept_no, Route to) {
  auto& shard = shardOf(dept_no);
  std::unique_lock lock(shard.mutex);
  if (shard.entries[dept_no].local_switch) {
    return std::unexpected(
        unavailable("a switch of merchant " + dept_no + " is already running; retry"));
  }
  ALLOT_TRY_VOID(refresh(shard, lock, dept_no, true));
  auto& entry = shard.entries[dept_no];
  if (entry.local_switch) {  // another switch began while the table was read
    return std::unexpected(
        unavailable("a switch of merchant " + dept_no + " is already running; retry"));
  }
  if (entry.configured && !entry.stored.switching && entry.stored.route == to) {
    return viewOf(dept_no, entry);
  }
  const Route from = entry.stored.route;
  // Close the gate, then wait for the calls already on a path to end.
  entry.local_switch = true;
  ++entry.epoch;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.drain_calls_ms);
  while (entry.in_flight > 0) {
    if (shard.changed.wait_until(lock, deadline) == std::cv_status::timeout &&
        entry.in_flight > 0) {
      entry.local_switch = false;
      lock.unlock();
      shard.changed.notify_all();
      return std::unexpected(unavailable("merchant " + dept_no + " still had " +
                                         std::to_string(entry.in_flight) +
                                         " calls in flight; nothing was switched; retry"));
    }
  }
  lock.unlock();
  // The entry stays in the map while local_switch is set (nothing erases entries), so the
  // reference survives the unlocked stretch.
  auto moved = move_(dept_no, from, to);
  lock.lock();
  // Whatever happened, the table tells where the merchant stands now. The gate stays closed
  // while it is read (refresh lets the lock go meanwhile): opened before, it would admit calls
  // on the route cached before the switch, still fresh, to the path the merchant just left.
  ++entry.epoch;
  auto reread = refresh(shard, lock, dept_no, true);
  if (!reread) {
    // Read again by the next call. A move marks the merchant switching in the table before
    // it touches any data, so the table is the truth; never serve a half-moved merchant.
    entry.loaded_ms = -1;
    if (!moved) entry.stored.switching = true;
  }
  entry.local_switch = false;
  auto answer = viewOf(dept_no, entry);
  lock.unlock();
  shard.changed.notify_all();
  if (!moved) {
    return std::unexpected(
        Error{moved.error().code,
              "the switch of merchant " + dept_no + " to " + std::string(routeName(to)) +
                  " did not finish: " + moved.error().message + "; PUT the route again"});
  }
  if (!reread) return std::unexpected(reread.error());
  return answer;
}

}  // namespace allot
