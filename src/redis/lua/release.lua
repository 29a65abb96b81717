-- release.lua: the one shared core that ends a hold of one order on one record. Rollback,
-- deduct and the reverse of a refused order (undo) differ only in where the quantity goes.
--
-- KEYS[1] u:{rec}  KEYS[2] s:{rec}  KEYS[3] l:{rec}  (usable, subtracted, ullage)
-- KEYS[4] h:{rec}           the live holds: order -> "allocated:shortage"
-- KEYS[5] o:{rec}:<order>   the anti-duplicate key of a deducted hold ("allocated:shortage:D"),
--                           or of a live one written before h: existed ("allocated:shortage")
-- KEYS[6] rb:{rec}:<order>  rollback tombstone
-- KEYS[7] dr:{rec}          deduction record hash: order -> "allocated:shortage"
-- KEYS[8] ob:{slot}         outbox stream of this slot
-- KEYS[9] f:{rec}           route fence (the record moved to the MySQL path)
-- ARGV[1] record index  ARGV[2] dept_no  ARGV[3] order_no
-- ARGV[4] kind: "undo" | "rollback" | "deduct"   ARGV[5] retention seconds of the tombstones
--
-- Returns {released, allocated, shortage}: released 1 when a live hold ended now, 0 when
-- there was none (never held here, already released, or already deducted), -1 when the
-- record is not loaded (it moved to the MySQL path: nothing is written, not even a tombstone).
-- An undo or a rollback on a record that is not loaded and was never fenced, of an order with
-- no hold entry and no anti-duplicate key there, answers 0: the record was never seen (an
-- order refused for it holds nothing there), and a -1 would leave the caller a compensation
-- task nothing can apply. The rollback still leaves its tombstone, for a hold of the order
-- that arrives after the record is created.
--   undo:     usable += allocated, subtracted -= allocated, ullage -= shortage; entry deleted.
--   rollback: as undo, and a tombstone is left even when nothing was held, so a hold of this
--             order that arrives late (a slow or retried pre-allocation) is refused.
--   deduct:   subtracted -= allocated (it leaves preallocated and on_hand together),
--             ullage -= shortage (the order's shortage is closed); the hold leaves h: for an
--             anti-duplicate key marked D, kept for the retention time (a hash field cannot
--             expire), and the deduction is recorded.
-- Invariant: usable, subtracted and ullage stay >= 0.
local kind = ARGV[4]
if redis.call('EXISTS', KEYS[1]) == 0 then
  if kind ~= 'deduct' and redis.call('EXISTS', KEYS[9], KEYS[5]) == 0 and
      redis.call('HEXISTS', KEYS[4], ARGV[3]) == 0 then
    if kind == 'rollback' then redis.call('SET', KEYS[6], '1', 'EX', ARGV[5]) end
    return {0, 0, 0}
  end
  return {-1, 0, 0}
end
if kind == 'rollback' then redis.call('SET', KEYS[6], '1', 'EX', ARGV[5]) end
local prior = redis.call('HGET', KEYS[4], ARGV[3])
if not prior then prior = redis.call('GET', KEYS[5]) end
if not prior then return {0, 0, 0} end
local allocated, shortage, state = string.match(prior, '^(%d+):(%d+):?(%a*)$')
allocated = tonumber(allocated)
shortage = tonumber(shortage)
if state == 'D' then return {0, allocated, shortage} end
-- The invariant is checked before anything is written: Redis does not undo a script's
-- writes when it then returns an error, so a late check would leave half a release behind.
local subtracted = tonumber(redis.call('GET', KEYS[2]) or '0')
local ullage = tonumber(redis.call('GET', KEYS[3]) or '0')
if subtracted < allocated or ullage < shortage then
  return redis.error_reply('ALLOT_INVARIANT release would make a counter negative on ' .. ARGV[1])
end
local function int(n) return string.format('%d', n) end
redis.call('HDEL', KEYS[4], ARGV[3])
if kind == 'deduct' then
  if allocated > 0 then redis.call('DECRBY', KEYS[2], int(allocated)) end
  redis.call('SET', KEYS[5], prior .. ':D', 'EX', ARGV[5])
  redis.call('HSET', KEYS[7], ARGV[3], prior)
else
  if allocated > 0 then
    redis.call('INCRBY', KEYS[1], int(allocated))
    redis.call('DECRBY', KEYS[2], int(allocated))
  end
  redis.call('DEL', KEYS[5])
end
if shortage > 0 then redis.call('DECRBY', KEYS[3], int(shortage)) end
redis.call('XADD', KEYS[8], '*', 'e', kind, 'r', ARGV[1], 'd', ARGV[2], 'o', ARGV[3],
           'a', int(allocated), 's', int(shortage))
return {1, allocated, shortage}
