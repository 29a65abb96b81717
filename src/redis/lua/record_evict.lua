-- record_evict.lua: takes a record out of Redis when its merchant moves to the MySQL path
-- (or when a merchant on the MySQL path still has a stale copy here), and fences it.
--
-- KEYS[1] u:{rec}  KEYS[2] s:{rec}  KEYS[3] l:{rec}  (usable, subtracted, ullage)
-- KEYS[4] f:{rec}  the route fence: while it exists, no load may bring the record back
-- KEYS[5] h:{rec}  the live holds  ARGV[1] "1": remove them too (the switch back to Redis, which
--                  loads every hold the database has; a switch to MySQL keeps them, for the
--                  undo of a straggler's order after a switch back before it ran)
--
-- Returns {1, usable, subtracted, ullage} with the counters it removed, or {0} when the record
-- was not loaded. Either way the fence is set: every script that changes the record needs its
-- usable key and answers "not loaded" without it, and a load refuses a fenced record, so
-- nothing can change the record in Redis any more. Only the switch back to Redis removes the
-- fence (record load with unfence). Invariant: the record is either whole or absent.
-- Dropped by the switch back, the live holds are then loaded again from the database: an
-- entry left from before would make a hold of an order the database no longer holds (undone
-- there, or ended there and forgotten) look held already.
redis.call('SET', KEYS[4], '1')
if ARGV[1] == '1' then redis.call('DEL', KEYS[5]) end
local usable = redis.call('GET', KEYS[1])
if not usable then return {0} end
local subtracted = redis.call('GET', KEYS[2]) or '0'
local ullage = redis.call('GET', KEYS[3]) or '0'
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {1, tonumber(usable), tonumber(subtracted), tonumber(ullage)}
