-- order_load.lua: writes one order, as the database of record has it, into Redis, when its
-- merchant moves from the MySQL path to Redis. It replaces whatever Redis held for the order
-- (a copy left from an earlier stay on Redis is older than the database).
--
-- KEYS[1] ord:{dept|b<n>}:<order>  hash: st (A S R D), ln (lines), dg (digest), an (answer
--                           lines), rl ("1": every line released)
-- KEYS[2] os:{dept|b<n>}    the order's bucket: a field of the order there goes too
-- ARGV[1] st  ARGV[2] ln  ARGV[3] dg  ARGV[4] an  ARGV[5] rl "0" | "1"
-- ARGV[6] retention seconds for an ended order ("0": no expiry, a live order)  ARGV[7] order_no
--
-- Returns 1. No outbox event: the database already has the order.
-- Invariant: the hash has the same fields the claim, commit and end scripts write.
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[7])
redis.call('HSET', KEYS[1], 'st', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'ln', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'dg', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'an', ARGV[4]) end
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'rl', '1') end
if ARGV[6] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
return 1
