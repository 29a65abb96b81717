#include "redis/keys.h"

#include "redis/client.h"

namespace allot::redis::keys {

namespace {

std::string withPrefix(std::string_view prefix, const RecordKey& key) {
  std::string out(prefix);
  out.append(key.index());
  return out;
}

}  // namespace

std::string usable(const RecordKey& key) { return withPrefix("u:", key); }
std::string subtracted(const RecordKey& key) { return withPrefix("s:", key); }
std::string ullage(const RecordKey& key) { return withPrefix("l:", key); }
std::string deductionRecord(const RecordKey& key) { return withPrefix("dr:", key); }
std::string holds(const RecordKey& key) { return withPrefix("h:", key); }

std::string operate(const RecordKey& key, std::string_view order_no) {
  return withPrefix("o:", key).append(":").append(order_no);
}

std::string rollbackTombstone(const RecordKey& key, std::string_view order_no) {
  return withPrefix("rb:", key).append(":").append(order_no);
}

std::string fence(const RecordKey& key) { return withPrefix("f:", key); }

std::string adjustRef(const RecordKey& key, std::string_view ref) {
  return withPrefix("aj:", key).append(":").append(ref);
}

std::string order(const OrderRef& order) {
  std::string out("ord:{");
  out.append(order.dept_no).append("|").append(order.order_no).append("}");
  return out;
}

std::string outboxFor(std::string_view key_in_slot) {
  return outboxOfSlot(keyHashSlot(key_in_slot));
}

std::string outboxOfSlot(std::uint16_t slot) {
  std::string out("ob:{");
  out.append(slotTag(slot)).append("}");
  return out;
}

}  // namespace allot::redis::keys
