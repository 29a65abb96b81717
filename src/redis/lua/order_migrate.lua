-- order_migrate.lua: writes an order kept in the layout before buckets (its own hash
-- ord:{dept|order_no}, read by the caller) as its own hash in the bucketed layout, unless the
-- order is there already (a migration that was interrupted, then run again). The caller
-- deletes the old key once this has answered.
--
-- KEYS[1] ord:{dept|b<n>}:<order>  KEYS[2] os:{dept|b<n>}
-- ARGV[1] order_no  ARGV[2] the old key's PEXPIRETIME (a Unix time in ms; -1: none)
-- ARGV[3..] field, value, ...
-- The expiry is the old key's own instant, not a remaining time, so the move neither lengthens
-- it nor loses it: an instant that has passed meanwhile deletes the new hash at once.
-- Returns 1 when written, 0 when the order was there already.
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] ~= '-1' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return 1
