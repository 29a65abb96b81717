-- adjust.lua: changes a record's on_hand (inbound stock, count corrections, losses).
--
-- KEYS[1] u:{rec}  KEYS[2] s:{rec}  KEYS[3] l:{rec}  (usable, subtracted, ullage)
-- KEYS[4] aj:{rec}:<ref>  anti-duplicate key of this adjust: the on_hand delta it applied
-- KEYS[5] ob:{slot}       outbox stream of this slot
-- ARGV[1] record index  ARGV[2] dept_no  ARGV[3] ref  ARGV[4] mode "delta" | "set"
-- ARGV[5] value (the delta, or the new on_hand)  ARGV[6] retention seconds  ARGV[7] on_hand max
--
-- Returns {code, delta, usable, subtracted, ullage}:
--   1 applied now; 2 already applied by this ref (its delta, current counters);
--   0 refused: available would become negative (nothing changed);
--   4 the record is not loaded; 5 refused: on_hand would exceed the maximum.
-- Only usable changes: on_hand = usable + subtracted, and holds are untouched.
-- Invariant: usable >= 0 after, so preallocated <= on_hand.
local usable = redis.call('GET', KEYS[1])
if not usable then return {4, 0, 0, 0, 0} end
usable = tonumber(usable)
local subtracted = tonumber(redis.call('GET', KEYS[2]) or '0')
local ullage = tonumber(redis.call('GET', KEYS[3]) or '0')
local prior = redis.call('GET', KEYS[4])
if prior then return {2, tonumber(prior), usable, subtracted, ullage} end
local delta = tonumber(ARGV[5])
if ARGV[4] == 'set' then delta = delta - (usable + subtracted) end
if usable + delta < 0 then return {0, 0, usable, subtracted, ullage} end
if usable + subtracted + delta > tonumber(ARGV[7]) then return {5, 0, usable, subtracted, ullage} end
local function int(n) return string.format('%d', n) end
if delta ~= 0 then redis.call('INCRBY', KEYS[1], int(delta)) end
redis.call('SET', KEYS[4], int(delta), 'EX', ARGV[6])
redis.call('XADD', KEYS[5], '*', 'e', 'adjust', 'r', ARGV[1], 'd', ARGV[2], 'f', ARGV[3],
           'q', int(delta))
return {1, delta, usable + delta, subtracted, ullage}
