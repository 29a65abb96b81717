// The Redis key layout (docs/design.md has the table). Every key of a record carries the
// record's hash tag {dept|goods|warehouse}, so one script can touch them all in Redis
// Cluster. The seed's names, shortened because every byte is paid per hold:
//   u:  usableKey            s:  usableSubtractKey     l:  ullageOperateKey (shortage)
//   h:  the live holds (the seed's operateKey of each, as one hash per record)
//   o:  operateKey of a deducted hold (per order)      rb: rollbackOperateKey (tombstone)
//   dr: hSetrecord (deduction record)                  aj: adjust anti-duplicate (per ref)
//   f:  route fence (the record moved to the MySQL path; no load may bring it back)
//   os:  live single-line orders (of the fast path, or loaded), many to a hash (a bucket):
//        field order_no -> "<st><allocated>:<shortage>:<line>"; tagged {dept|b<bucket>}
//   ord: an order's own hash (multi-line, pending or ended orders), in its bucket's slot:
//        ord:{dept|b<bucket>}:<order_no>
//   ob: the outbox stream of one hash slot, tagged with slotTag(slot)
#pragma once

#include <string>
#include <string_view>

#include "domain/order.h"
#include "domain/record_key.h"

namespace allot::redis::keys {

[[nodiscard]] std::string usable(const RecordKey& key);
[[nodiscard]] std::string subtracted(const RecordKey& key);
[[nodiscard]] std::string ullage(const RecordKey& key);
// The live holds of a record: one hash, order -> "allocated:shortage" (a field costs a few
// dozen bytes where a key of its own costs well over a hundred).
[[nodiscard]] std::string holds(const RecordKey& key);
// A deducted hold's anti-duplicate key (it must expire, which a hash field cannot), or a live
// hold written before holds() existed.
[[nodiscard]] std::string operate(const RecordKey& key, std::string_view order_no);
[[nodiscard]] std::string rollbackTombstone(const RecordKey& key, std::string_view order_no);
[[nodiscard]] std::string deductionRecord(const RecordKey& key);
[[nodiscard]] std::string fence(const RecordKey& key);
[[nodiscard]] std::string adjustRef(const RecordKey& key, std::string_view ref);
// Orders are spread over kOrderBuckets buckets per merchant by a hash of the order_no. An
// order's own hash and its bucket share a hash tag, so one script may move an order from one
// to the other in Redis Cluster too. The count is part of the layout: changing it loses track
// of the orders already in Redis.
inline constexpr unsigned kOrderBuckets = 8192;
[[nodiscard]] unsigned orderBucketOf(std::string_view order_no);
[[nodiscard]] std::string order(const OrderRef& order);
[[nodiscard]] std::string orderBucket(const OrderRef& order);
// Bucket number `bucket` of a merchant (< kOrderBuckets): its slot is that of every order in it.
[[nodiscard]] std::string orderBucketAt(std::string_view dept_no, unsigned bucket);
// The same keys appended to `out` (a record's from its index() computed once): for a batch
// whose arguments are written into one buffer.
void appendOperate(std::string& out, std::string_view index, std::string_view order_no);
void appendRollbackTombstone(std::string& out, std::string_view index, std::string_view order_no);
void appendOrder(std::string& out, std::string_view dept_no, std::string_view order_no);
void appendOrderBucket(std::string& out, std::string_view dept_no, std::string_view order_no);
// The outbox stream in the same hash slot as `key_in_slot`.
[[nodiscard]] std::string outboxFor(std::string_view key_in_slot);
// The outbox stream of one slot; the write-back reads these.
[[nodiscard]] std::string outboxOfSlot(std::uint16_t slot);

}  // namespace allot::redis::keys
