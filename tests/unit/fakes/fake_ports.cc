#include "fakes/fake_ports.h"

#include <algorithm>

namespace allot::fakes {

namespace {

std::pair<std::string, std::string> orderKey(const OrderRef& order) {
  return {order.dept_no, order.order_no};
}

}  // namespace

Result<void> FakeHotStore::maybeFail(const std::string& method, const std::string& subject) {
  if (fail_hook) {
    const auto message = fail_hook(method, subject);
    if (!message.empty()) return fail(ErrorCode::kUnavailable, message);
  }
  return {};
}

Result<ClaimOutcome> FakeHotStore::claimOrder(const OrderRef& order, const std::string& lines_blob,
                                              const std::string& digest, const std::string& token,
                                              std::int64_t now_ms) {
  ALLOT_TRY_VOID(maybeFail("claimOrder", order.order_no));
  auto it = orders.find(orderKey(order));
  if (it == orders.end()) {
    orders[orderKey(order)] = Order{'P', lines_blob, digest, token, "", now_ms, false};
    return ClaimOutcome{ClaimOutcome::Kind::kClaimed, OrderStatus::kPending, ""};
  }
  auto& stored = it->second;
  const auto status = *orderStatusFromCode(std::string(1, stored.status));
  if (stored.status == 'R') return ClaimOutcome{ClaimOutcome::Kind::kRolledBack, status, ""};
  if (stored.digest != digest) return ClaimOutcome{ClaimOutcome::Kind::kConflict, status, ""};
  if (stored.status == 'P') {
    if (stored.token == token || now_ms - stored.since_ms > lease_ms) {
      stored.token = token;
      stored.since_ms = now_ms;
      return ClaimOutcome{ClaimOutcome::Kind::kClaimed, status, ""};
    }
    return ClaimOutcome{ClaimOutcome::Kind::kBusy, status, ""};
  }
  return ClaimOutcome{ClaimOutcome::Kind::kReplay, status, stored.answer};
}

Result<CommitOutcome> FakeHotStore::commitOrder(const OrderRef& order, OrderStatus status,
                                                const std::string& answer_blob,
                                                const std::string& token) {
  ALLOT_TRY_VOID(maybeFail("commitOrder", order.order_no));
  auto it = orders.find(orderKey(order));
  if (it == orders.end()) return CommitOutcome::kNotOwner;
  if (it->second.status == 'A' || it->second.status == 'S') return CommitOutcome::kCommitted;
  if (it->second.status == 'R') return CommitOutcome::kRolledBack;
  if (it->second.status != 'P' || it->second.token != token) return CommitOutcome::kNotOwner;
  it->second.status = orderStatusCode(status);
  it->second.answer = answer_blob;
  return CommitOutcome::kCommitted;
}

Result<void> FakeHotStore::abortOrder(const OrderRef& order, const std::string& token) {
  ALLOT_TRY_VOID(maybeFail("abortOrder", order.order_no));
  auto it = orders.find(orderKey(order));
  if (it != orders.end() && it->second.status == 'P' && it->second.token == token) {
    orders.erase(it);
  }
  return {};
}

Result<EndOutcome> FakeHotStore::endOrder(const OrderRef& order, ReleaseKind kind) {
  ALLOT_TRY_VOID(maybeFail("endOrder", order.order_no));
  const bool rollback = kind == ReleaseKind::kRollback;
  auto it = orders.find(orderKey(order));
  if (it == orders.end()) {
    if (!rollback) return EndOutcome{EndOutcome::Kind::kNotFound, "", false};
    orders[orderKey(order)] = Order{'R', "", "", "", "", 0, true};
    return EndOutcome{EndOutcome::Kind::kStarted, "", true};
  }
  auto& stored = it->second;
  const char target = rollback ? 'R' : 'D';
  if (stored.status == target)
    return EndOutcome{EndOutcome::Kind::kReplay, stored.lines, stored.released};
  if (rollback && stored.status == 'D') return EndOutcome{EndOutcome::Kind::kDeducted, "", false};
  if (!rollback && stored.status == 'R')
    return EndOutcome{EndOutcome::Kind::kRolledBack, "", false};
  if (!rollback && stored.status == 'P') return EndOutcome{EndOutcome::Kind::kBusy, "", false};
  stored.status = target;
  return EndOutcome{EndOutcome::Kind::kStarted, stored.lines, false};
}

Result<void> FakeHotStore::markOrderReleased(const OrderRef& order) {
  ALLOT_TRY_VOID(maybeFail("markOrderReleased", order.order_no));
  auto it = orders.find(orderKey(order));
  if (it != orders.end()) it->second.released = true;
  return {};
}

Result<std::optional<StoredOrder>> FakeHotStore::readOrder(const OrderRef& order) {
  auto it = orders.find(orderKey(order));
  if (it == orders.end()) return std::optional<StoredOrder>();
  return std::optional<StoredOrder>(
      StoredOrder{*orderStatusFromCode(std::string(1, it->second.status)), it->second.lines,
                  it->second.answer});
}

Result<HoldOutcome> FakeHotStore::hold(const RecordKey& key, const std::string& order_no,
                                       std::int64_t qty, bool allow_shortage) {
  if (before_hold) before_hold(key);
  ALLOT_TRY_VOID(maybeFail("hold", key.index()));
  const auto id = std::make_pair(key.index(), order_no);
  if (tombstones.contains(id)) return HoldOutcome{HoldOutcome::Kind::kRolledBack};
  if (auto it = holds.find(id); it != holds.end()) {
    return HoldOutcome{HoldOutcome::Kind::kAlreadyHeld, it->second.allocated, it->second.shortage,
                       0};
  }
  auto record = records.find(key.index());
  if (record == records.end()) return HoldOutcome{HoldOutcome::Kind::kNotLoaded};
  auto& counters = record->second;
  std::int64_t allocated = qty, shortage = 0;
  if (counters.usable < qty) {
    if (!allow_shortage)
      return HoldOutcome{HoldOutcome::Kind::kInsufficient, 0, 0, counters.usable};
    allocated = std::max<std::int64_t>(counters.usable, 0);
    shortage = qty - allocated;
  }
  counters.usable -= allocated;
  counters.subtracted += allocated;
  counters.ullage += shortage;
  holds[id] = Hold{allocated, shortage, false};
  return HoldOutcome{HoldOutcome::Kind::kHeld, allocated, shortage, counters.usable};
}

Result<std::vector<HoldOutcome>> FakeHotStore::holdBatch(const RecordKey& key,
                                                         const std::vector<HoldRequest>& requests) {
  ++hold_batches;
  if (before_batch) before_batch(key, requests);
  std::vector<HoldOutcome> outcomes;
  for (const auto& request : requests) {
    ALLOT_TRY(outcome, hold(key, request.order_no, request.qty, request.allow_shortage));
    outcomes.push_back(outcome);
  }
  return outcomes;
}

Result<ReleaseOutcome> FakeHotStore::release(const RecordKey& key, const std::string& order_no,
                                             ReleaseKind kind) {
  ALLOT_TRY_VOID(maybeFail("release", key.index()));
  const auto id = std::make_pair(key.index(), order_no);
  if (kind == ReleaseKind::kRollback) tombstones.insert(id);
  auto it = holds.find(id);
  if (it == holds.end() || it->second.deducted) return ReleaseOutcome{};
  auto& counters = records[key.index()];
  const auto held = it->second;
  counters.subtracted -= held.allocated;
  counters.ullage -= held.shortage;
  if (kind == ReleaseKind::kDeduct) {
    it->second.deducted = true;
  } else {
    counters.usable += held.allocated;
    holds.erase(it);
  }
  return ReleaseOutcome{true, held.allocated, held.shortage};
}

Result<HotAdjustOutcome> FakeHotStore::adjust(const RecordKey& key, const std::string& ref,
                                              AdjustChange change) {
  ALLOT_TRY_VOID(maybeFail("adjust", key.index()));
  auto record = records.find(key.index());
  if (record == records.end()) return HotAdjustOutcome{HotAdjustOutcome::Kind::kNotLoaded};
  auto& counters = record->second;
  auto quantities = [&] {
    return Quantities{counters.usable + counters.subtracted, counters.subtracted, counters.ullage};
  };
  const auto id = std::make_pair(key.index(), ref);
  if (auto it = adjust_refs.find(id); it != adjust_refs.end()) {
    return HotAdjustOutcome{HotAdjustOutcome::Kind::kReplay, it->second, quantities()};
  }
  std::int64_t delta = change.value;
  if (change.mode == AdjustChange::Mode::kSet) delta -= counters.usable + counters.subtracted;
  if (counters.usable + delta < 0) {
    return HotAdjustOutcome{HotAdjustOutcome::Kind::kInsufficient, 0, quantities()};
  }
  counters.usable += delta;
  adjust_refs[id] = delta;
  return HotAdjustOutcome{HotAdjustOutcome::Kind::kApplied, delta, quantities()};
}

Result<std::optional<Quantities>> FakeHotStore::readRecord(const RecordKey& key) {
  auto record = records.find(key.index());
  if (record == records.end()) return std::optional<Quantities>();
  const auto& c = record->second;
  return std::optional<Quantities>(Quantities{c.usable + c.subtracted, c.subtracted, c.ullage});
}

Result<bool> FakeHotStore::loadRecord(const RecordKey& key, const Quantities& from_db) {
  ALLOT_TRY_VOID(maybeFail("loadRecord", key.index()));
  if (records.contains(key.index())) return false;
  records[key.index()] = Counters{from_db.available(), from_db.preallocated, from_db.shortage};
  ++loads;
  return true;
}

Result<void> FakeHotStore::ping() { return maybeFail("ping", ""); }

Result<void> FakeLedger::maybeFail(const std::string& method) {
  if (fail_hook) {
    const auto message = fail_hook(method);
    if (!message.empty()) return fail(ErrorCode::kUnavailable, message);
  }
  return {};
}

Result<std::optional<Quantities>> FakeLedger::findRecord(const RecordKey& key) {
  ALLOT_TRY_VOID(maybeFail("findRecord"));
  auto it = records.find(key.index());
  if (it == records.end()) return std::optional<Quantities>();
  return std::optional<Quantities>(it->second);
}

Result<std::vector<std::optional<Quantities>>> FakeLedger::findRecords(
    const std::vector<RecordKey>& keys) {
  ALLOT_TRY_VOID(maybeFail("findRecords"));
  std::vector<std::optional<Quantities>> found;
  for (const auto& key : keys) {
    auto it = records.find(key.index());
    found.push_back(it == records.end() ? std::nullopt : std::optional<Quantities>(it->second));
  }
  return found;
}

Result<void> FakeLedger::ensureRecord(const RecordKey& key) {
  ALLOT_TRY_VOID(maybeFail("ensureRecord"));
  records.try_emplace(key.index());
  return {};
}

Result<AdjustmentClaim> FakeLedger::claimAdjustment(const RecordKey& key, const std::string& ref,
                                                    const std::string& digest) {
  ALLOT_TRY_VOID(maybeFail("claimAdjustment"));
  const auto id = std::make_pair(key.dept_no, ref);
  auto it = adjustments.find(id);
  if (it == adjustments.end()) {
    adjustments[id] = Adjustment{key.index(), digest};
    return AdjustmentClaim{AdjustmentClaim::Kind::kNew};
  }
  if (it->second.digest != digest) return AdjustmentClaim{AdjustmentClaim::Kind::kConflict};
  if (it->second.state == "complete") {
    return AdjustmentClaim{AdjustmentClaim::Kind::kReplay, it->second.answer};
  }
  return AdjustmentClaim{AdjustmentClaim::Kind::kResume};
}

Result<void> FakeLedger::applyAdjustment(const RecordKey& key, const std::string& ref,
                                         std::int64_t delta) {
  ALLOT_TRY_VOID(maybeFail("applyAdjustment"));
  auto& adjustment = adjustments[{key.dept_no, ref}];
  if (adjustment.state != "pending") return {};
  auto& record = records[key.index()];
  if (record.on_hand + delta < 0) return fail(ErrorCode::kInsufficientStock, "negative on_hand");
  record.on_hand += delta;
  adjustment.state = "applied";
  return {};
}

Result<Quantities> FakeLedger::completeAdjustment(const std::string& dept_no,
                                                  const std::string& ref,
                                                  const Quantities& answer) {
  ALLOT_TRY_VOID(maybeFail("completeAdjustment"));
  auto& adjustment = adjustments[{dept_no, ref}];
  if (adjustment.state == "complete" && adjustment.answer) return *adjustment.answer;
  adjustment.state = "complete";
  adjustment.answer = answer;
  return answer;
}

Result<void> FakeLedger::dropAdjustmentClaim(const std::string& dept_no, const std::string& ref) {
  ALLOT_TRY_VOID(maybeFail("dropAdjustmentClaim"));
  auto it = adjustments.find({dept_no, ref});
  if (it != adjustments.end() && it->second.state == "pending") adjustments.erase(it);
  return {};
}

Result<void> FakeLedger::recordCompensation(const CompensationTask& task) {
  ALLOT_TRY_VOID(maybeFail("recordCompensation"));
  compensations.push_back(task);
  return {};
}

Result<void> FakeLedger::ping() { return maybeFail("ping"); }

}  // namespace allot::fakes
