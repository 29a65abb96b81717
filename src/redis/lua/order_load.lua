-- order_load.lua: writes one order, as the database of record has it, into Redis, when its
-- merchant moves from the MySQL path to Redis. It replaces whatever Redis held for the order
-- (a copy left from an earlier stay on Redis is older than the database).
--
-- KEYS[1] ord:{dept|b<n>}:<order>  hash: st (A S R D), ln (lines), dg (digest), an (answer
--                           lines), rl ("1": every line released)
-- KEYS[2] os:{dept|b<n>}    the order's bucket: a field of the order there is replaced too
-- ARGV[1] st  ARGV[2] ln  ARGV[3] dg  ARGV[4] an  ARGV[5] rl "0" | "1"
-- ARGV[6] retention seconds for an ended order ("0": no expiry, a live order)  ARGV[7] order_no
--
-- A live single-line order (st A or S, its digest its line, its answer that line with
-- "|allocated|shortage") goes into its bucket as order_hold.lua would have left it, at a
-- third of the memory; any other order gets its own hash.
-- Returns 1. No outbox event: the database already has the order.
-- Invariant: the hash (or the bucket field) has what the claim, commit and end scripts (or
-- order_hold.lua) write.
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[7])
local st, ln, dg, an = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if ARGV[6] == '0' and (st == 'A' or st == 'S') and ARGV[5] ~= '1' and ln ~= '' and
    not string.find(ln, '\n', 1, true) and (dg == '' or dg == ln) and
    string.sub(an, 1, #ln + 1) == ln .. '|' then
  local a, s = string.match(string.sub(an, #ln + 2), '^(%d+)|(%d+)$')
  if a then
    redis.call('HSET', KEYS[2], ARGV[7], st .. a .. ':' .. s .. ':' .. ln)
    return 1
  end
end
redis.call('HSET', KEYS[1], 'st', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'ln', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'dg', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'an', ARGV[4]) end
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'rl', '1') end
if ARGV[6] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
return 1
