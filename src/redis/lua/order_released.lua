-- order_released.lua: records that every line of an ended order was released, and starts the
-- retention countdown of the order (its tombstone role lasts that long).
--
-- KEYS[1] ord:{dept|order}
-- ARGV[1] retention seconds
-- Returns 1 when marked, 0 when the order no longer exists.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'rl', '1')
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
