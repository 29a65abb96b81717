-- record_evict.lua: takes a record out of Redis when its merchant moves to the MySQL path
-- (or when a merchant on the MySQL path still has a stale copy here), and fences it.
--
-- KEYS[1] u:{rec}  KEYS[2] s:{rec}  KEYS[3] l:{rec}  (usable, subtracted, ullage)
-- KEYS[4] f:{rec}  the route fence: while it exists, no load may bring the record back
--
-- Returns {1, usable, subtracted, ullage} with the counters it removed, or {0} when the record
-- was not loaded. Either way the fence is set: every script that changes the record needs its
-- usable key and answers "not loaded" without it, and a load refuses a fenced record, so
-- nothing can change the record in Redis any more. Only the switch back to Redis removes the
-- fence (record load with unfence). Invariant: the record is either whole or absent.
redis.call('SET', KEYS[4], '1')
local usable = redis.call('GET', KEYS[1])
if not usable then return {0} end
local subtracted = redis.call('GET', KEYS[2]) or '0'
local ullage = redis.call('GET', KEYS[3]) or '0'
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {1, tonumber(usable), tonumber(subtracted), tonumber(ullage)}
