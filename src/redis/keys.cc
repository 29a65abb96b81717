#include "redis/keys.h"

#include <optional>

#include "core/decimal.h"
#include "redis/client.h"

namespace allot::redis::keys {

namespace {

// prefix + the record index (+ ":" + suffix): built in one allocation, as a key is per call.
std::string withPrefix(std::string_view prefix, const RecordKey& key,
                       std::optional<std::string_view> suffix = std::nullopt) {
  std::string out;
  out.reserve(prefix.size() + key.indexSize() + (suffix ? suffix->size() + 1 : 0));
  out.append(prefix);
  key.appendIndex(out);
  if (suffix) out.append(":").append(*suffix);
  return out;
}

}  // namespace

std::string usable(const RecordKey& key) { return withPrefix("u:", key); }
std::string subtracted(const RecordKey& key) { return withPrefix("s:", key); }
std::string ullage(const RecordKey& key) { return withPrefix("l:", key); }
std::string deductionRecord(const RecordKey& key) { return withPrefix("dr:", key); }
std::string holds(const RecordKey& key) { return withPrefix("h:", key); }

constexpr std::string_view kOperatePrefix = "o:";
constexpr std::string_view kTombstonePrefix = "rb:";

std::string operate(const RecordKey& key, std::string_view order_no) {
  return withPrefix(kOperatePrefix, key, order_no);
}

void appendOperate(std::string& out, std::string_view index, std::string_view order_no) {
  out.append(kOperatePrefix).append(index).append(":").append(order_no);
}

std::string rollbackTombstone(const RecordKey& key, std::string_view order_no) {
  return withPrefix(kTombstonePrefix, key, order_no);
}

void appendRollbackTombstone(std::string& out, std::string_view index, std::string_view order_no) {
  out.append(kTombstonePrefix).append(index).append(":").append(order_no);
}

std::string fence(const RecordKey& key) { return withPrefix("f:", key); }

std::string adjustRef(const RecordKey& key, std::string_view ref) {
  return withPrefix("aj:", key, ref);
}

unsigned orderBucketOf(std::string_view order_no) {
  // Redis's own CRC16 of the order number (a tag inside it narrows the hash to the tag, which
  // still gives every order one bucket).
  return keyHashSlot(order_no) % kOrderBuckets;
}

namespace {

// "<prefix>{<dept>|b<bucket>}"
void appendBucketTag(std::string& out, std::string_view prefix, std::string_view dept_no,
                     unsigned bucket) {
  out.append(prefix).append("{").append(dept_no).append("|b");
  appendDecimal(out, bucket);
  out.append("}");
}

constexpr std::string_view kOrderPrefix = "ord:";
constexpr std::string_view kBucketPrefix = "os:";

}  // namespace

std::string order(const OrderRef& order) {
  std::string out;
  out.reserve(order.dept_no.size() + order.order_no.size() + 16);
  appendOrder(out, order.dept_no, order.order_no);
  return out;
}

void appendOrder(std::string& out, std::string_view dept_no, std::string_view order_no) {
  appendBucketTag(out, kOrderPrefix, dept_no, orderBucketOf(order_no));
  out.append(":").append(order_no);
}

std::string orderBucket(const OrderRef& order) {
  std::string out;
  out.reserve(order.dept_no.size() + 12);
  appendOrderBucket(out, order.dept_no, order.order_no);
  return out;
}

void appendOrderBucket(std::string& out, std::string_view dept_no, std::string_view order_no) {
  appendBucketTag(out, kBucketPrefix, dept_no, orderBucketOf(order_no));
}

std::string orderBucketAt(std::string_view dept_no, unsigned bucket) {
  std::string out;
  appendBucketTag(out, kBucketPrefix, dept_no, bucket);
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
