-- order_commit.lua: marks a pending order allocated (or shortage) once all its lines are held.
--
-- KEYS[1] ord:{dept|order}  KEYS[2] ob:{slot} outbox stream of the order's slot
-- ARGV[1] status "A" | "S"  ARGV[2] answer lines  ARGV[3] dept_no  ARGV[4] order_no
-- ARGV[5] token of the claim
--
-- Returns 1 when the order is committed (now, or by an earlier call of this commit),
-- 0 when a rollback won the race (the caller releases its lines with a tombstone),
-- 2 when the caller no longer owns the claim (its lease expired and another caller took the
-- order over, or that caller already gave it up): the caller must leave the lines alone.
local st = redis.call('HGET', KEYS[1], 'st')
if st == 'A' or st == 'S' then return 1 end
if st == 'R' then return 0 end
if st ~= 'P' or redis.call('HGET', KEYS[1], 'tk') ~= ARGV[5] then return 2 end
redis.call('HSET', KEYS[1], 'st', ARGV[1], 'an', ARGV[2])
redis.call('HDEL', KEYS[1], 'tk', 'ts')
redis.call('XADD', KEYS[2], '*', 'e', 'order', 'd', ARGV[3], 'o', ARGV[4], 'st', ARGV[1],
           'an', ARGV[2])
return 1
