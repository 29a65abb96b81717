-- order_end.lua: moves an order to rolled_back or deducted, the first step of both; the
-- caller then releases each line (release.lua) and marks the order released.
--
-- KEYS[1] ord:{dept|b<n>}:<order>  KEYS[2] ob:{slot} outbox stream of the order's slot
-- KEYS[3] os:{dept|b<n>} the order's bucket (order_claim.lua has both layouts)
-- ARGV[1] kind "rollback" | "deduct"  ARGV[2] retention seconds  ARGV[3] dept_no
-- ARGV[4] order_no
--
-- An order in its bucket moves to its own hash first (the same fields order_commit.lua
-- leaves), since an ended order must expire and a hash field cannot.
--
-- Returns {code, lines, released}:
--   1 started now (lines to release); 2 replay: already in that state (lines, released 0|1);
--   0 deduct of an unknown order; 3 deduct of a rolled-back order;
--   6 rollback of a deducted order; 7 deduct of an order still pending.
-- A rollback of an unknown order leaves a bare tombstone (no lines) so that a late
-- pre-allocation of the same order_no is refused: no hanging hold.
local st = redis.call('HGET', KEYS[1], 'st')
if not st then
  local packed = redis.call('HGET', KEYS[3], ARGV[4])
  if packed then
    local a, s, ln
    st, a, s, ln = string.match(packed, '^(%a)(%d+):(%d+):(.*)$')
    -- Checked before anything is written: Redis keeps a script's writes when it then fails.
    if not st then
      return redis.error_reply('ALLOT_CORRUPT the field of ' .. ARGV[4] .. ' in ' .. KEYS[3])
    end
    redis.call('HSET', KEYS[1], 'st', st, 'ln', ln, 'an', ln .. '|' .. a .. '|' .. s)
    redis.call('HDEL', KEYS[3], ARGV[4])
  end
end
local rollback = ARGV[1] == 'rollback'
local function event(status)
  redis.call('XADD', KEYS[2], '*', 'e', 'order', 'd', ARGV[3], 'o', ARGV[4], 'st', status,
             'an', redis.call('HGET', KEYS[1], 'an') or '')
end
local function lines() return redis.call('HGET', KEYS[1], 'ln') or '' end
local function released() return redis.call('HEXISTS', KEYS[1], 'rl') end
if not st then
  if not rollback then return {0, '', 0} end
  redis.call('HSET', KEYS[1], 'st', 'R', 'rl', '1')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  event('R')
  return {1, '', 1}
end
if rollback then
  if st == 'D' then return {6, '', 0} end
  if st == 'R' then return {2, lines(), released()} end
  redis.call('HSET', KEYS[1], 'st', 'R')
  event('R')
  return {1, lines(), 0}
end
if st == 'R' then return {3, '', 0} end
if st == 'D' then return {2, lines(), released()} end
if st == 'P' then return {7, '', 0} end
redis.call('HSET', KEYS[1], 'st', 'D')
event('D')
return {1, lines(), 0}
