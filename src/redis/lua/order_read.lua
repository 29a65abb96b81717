-- order_read.lua: an order's status, lines and answer lines, from its own hash or else from
-- its bucket, in one atomic step (order_end.lua may move it from one to the other).
--
-- KEYS[1] ord:{dept|b<n>}:<order>  KEYS[2] os:{dept|b<n>}
-- ARGV[1] order_no
-- Returns {st, ln, an}, each false when absent; st false: the order is unknown here.
local own = redis.call('HMGET', KEYS[1], 'st', 'ln', 'an')
if own[1] then return own end
local packed = redis.call('HGET', KEYS[2], ARGV[1])
if not packed then return own end
local st, a, s, ln = string.match(packed, '^(%a)(%d+):(%d+):(.*)$')
if not st then
  return redis.error_reply('ALLOT_CORRUPT the field of ' .. ARGV[1] .. ' in ' .. KEYS[2])
end
return {st, ln, ln .. '|' .. a .. '|' .. s}
