-- order_claim.lua: claims an order for the caller that will hold its lines, or tells it why
-- not. The order's keys live in its bucket's slot, {dept_no|b<bucket>}.
--
-- KEYS[1] ord:{dept|b<n>}:<order>  the order's own hash: st (P A S R D), ln (lines), dg
--                           (digest; absent when it equals ln, as for every single-line order:
--                           memory is paid per order), tk (owner token), ts (claim time ms),
--                           an (answer lines), rl (lines released)
-- KEYS[2] os:{dept|b<n>}    the bucket: order -> "<st><a>:<s>:<line>", a single-line order
--                           committed by order_hold.lua (status A or S)
-- ARGV[1] lines blob  ARGV[2] digest of the lines  ARGV[3] token  ARGV[4] (unused: the caller's
-- clock; the lease is measured with the server's TIME, so clock skew between allotd processes
-- cannot make a live claim look expired)  ARGV[5] lease_ms  ARGV[6] order_no
--
-- A claim by the same token renews the lease: the owner calls this again while it works.
-- Returns {code, status, answer}:
--   1 claimed (new order, the same caller again, or a takeover of a lease that expired);
--   2 replay: already allocated/shortage/deducted with the same lines (status, answer lines);
--   3 rolled back (a tombstone); 5 conflict: the order exists with other lines;
--   7 busy: another caller is holding its lines now.
-- Invariant: a pending order has exactly one owner whose lease is live; lines stored at the
-- claim are the ones any rollback will release, so nothing can be held outside them.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local st = redis.call('HGET', KEYS[1], 'st')
if not st then
  local packed = redis.call('HGET', KEYS[2], ARGV[6])
  if packed then
    local status, a, s, ln = string.match(packed, '^(%a)(%d+):(%d+):(.*)$')
    if not status then
      return redis.error_reply('ALLOT_CORRUPT the field of ' .. ARGV[6] .. ' in ' .. KEYS[2])
    end
    if ln ~= ARGV[2] then return {5, status, ''} end
    return {2, status, ln .. '|' .. a .. '|' .. s}
  end
  redis.call('HSET', KEYS[1], 'st', 'P', 'ln', ARGV[1], 'tk', ARGV[3], 'ts', now)
  if ARGV[2] ~= ARGV[1] then redis.call('HSET', KEYS[1], 'dg', ARGV[2]) end
  return {1, 'P', ''}
end
if st == 'R' then return {3, st, ''} end
local digest = redis.call('HGET', KEYS[1], 'dg') or redis.call('HGET', KEYS[1], 'ln')
if digest ~= ARGV[2] then return {5, st, ''} end
if st == 'P' then
  local owner = redis.call('HGET', KEYS[1], 'tk')
  local since = tonumber(redis.call('HGET', KEYS[1], 'ts') or '0')
  if owner == ARGV[3] or now - since > tonumber(ARGV[5]) then
    redis.call('HSET', KEYS[1], 'tk', ARGV[3], 'ts', now)
    return {1, 'P', ''}
  end
  return {7, 'P', ''}
end
return {2, st, redis.call('HGET', KEYS[1], 'an') or ''}
