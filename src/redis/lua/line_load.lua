-- line_load.lua: writes one order line's record-level keys, as the database of record has the
-- line, into Redis when its merchant moves from the MySQL path to Redis. It replaces whatever
-- Redis held for the line.
--
-- KEYS[1] h:{rec}           the live holds: order -> "allocated:shortage"
-- KEYS[2] o:{rec}:<order>   anti-duplicate key of a deducted hold ("allocated:shortage:D")
-- KEYS[3] rb:{rec}:<order>  rollback tombstone
-- KEYS[4] dr:{rec}          deduction record hash: order -> "allocated:shortage"
-- ARGV[1] state "held" | "released" | "deducted"  ARGV[2] allocated  ARGV[3] shortage
-- ARGV[4] order_no  ARGV[5] "1" when the order was rolled back  ARGV[6] retention seconds
--
-- Returns 1. The record's counters are loaded separately from the database row, which
-- already counts this line; nothing here moves a counter and no outbox event is written.
-- Invariant: the keys are exactly those hold.lua and release.lua leave for such a line.
local value = ARGV[2] .. ':' .. ARGV[3]
redis.call('HDEL', KEYS[1], ARGV[4])
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[4], ARGV[4])
if ARGV[1] == 'held' then
  redis.call('HSET', KEYS[1], ARGV[4], value)
elseif ARGV[1] == 'deducted' then
  redis.call('SET', KEYS[2], value .. ':D', 'EX', ARGV[6])
  redis.call('HSET', KEYS[4], ARGV[4], value)
end
if ARGV[5] == '1' then
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[6])
else
  redis.call('DEL', KEYS[3])
end
return 1
