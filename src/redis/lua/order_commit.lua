-- order_commit.lua: marks a pending order allocated (or shortage) once all its lines are held.
--
-- KEYS[1] ord:{dept|order}  KEYS[2] ob:{slot} outbox stream of the order's slot
-- ARGV[1] status "A" | "S"  ARGV[2] answer lines  ARGV[3] dept_no  ARGV[4] order_no
--
-- Returns 1 when the order is committed (now, or by an earlier call of this commit),
-- 0 when it is no longer pending (a rollback won the race: the caller releases its lines).
local st = redis.call('HGET', KEYS[1], 'st')
if st == 'A' or st == 'S' then return 1 end
if st ~= 'P' then return 0 end
redis.call('HSET', KEYS[1], 'st', ARGV[1], 'an', ARGV[2])
redis.call('HDEL', KEYS[1], 'tk', 'ts')
redis.call('XADD', KEYS[2], '*', 'e', 'order', 'd', ARGV[3], 'o', ARGV[4], 'st', ARGV[1],
           'an', ARGV[2])
return 1
