-- hold.lua: holds `qty` of one record for one order (one line of a pre-allocation).
--
-- KEYS[1] u:{rec}           usable counter (= available)
-- KEYS[2] s:{rec}           subtracted counter (= preallocated)
-- KEYS[3] l:{rec}           ullage counter (= shortage)
-- KEYS[4] o:{rec}:<order>   anti-duplicate key of this order on this record, "allocated:shortage"
-- KEYS[5] rb:{rec}:<order>  rollback tombstone of this order on this record
-- KEYS[6] ob:{slot}         the outbox stream of this slot (read by the write-back)
-- ARGV[1] record index  ARGV[2] dept_no  ARGV[3] order_no  ARGV[4] qty
-- ARGV[5] allow_shortage "0" | "1"
--
-- Returns {code, allocated, shortage, available}:
--   1 held now; 2 this order already holds this record (its first allocated/shortage);
--   0 insufficient, nothing changed (available); 3 rolled back (a tombstone refuses the hold);
--   4 the record is not loaded (the caller loads it from the database and calls again).
--
-- Invariant: usable >= 0 and subtracted >= 0 before and after, so
-- 0 <= preallocated <= on_hand (= usable + subtracted). The anti-duplicate key makes the
-- call idempotent: a retry after a lost reply holds nothing more.
if redis.call('EXISTS', KEYS[5]) == 1 then return {3, 0, 0, 0} end
local prior = redis.call('GET', KEYS[4])
if prior then
  local allocated, shortage = string.match(prior, '^(%d+):(%d+)')
  return {2, tonumber(allocated), tonumber(shortage), 0}
end
local usable = redis.call('GET', KEYS[1])
if not usable then return {4, 0, 0, 0} end
usable = tonumber(usable)
local qty = tonumber(ARGV[4])
local allocated, shortage = qty, 0
if usable < qty then
  if ARGV[5] ~= '1' then return {0, 0, 0, usable} end
  allocated = math.max(usable, 0)
  shortage = qty - allocated
end
local function int(n) return string.format('%d', n) end
if allocated > 0 then
  redis.call('DECRBY', KEYS[1], int(allocated))
  redis.call('INCRBY', KEYS[2], int(allocated))
end
if shortage > 0 then redis.call('INCRBY', KEYS[3], int(shortage)) end
redis.call('SET', KEYS[4], int(allocated) .. ':' .. int(shortage))
redis.call('XADD', KEYS[6], '*', 'e', 'hold', 'r', ARGV[1], 'd', ARGV[2], 'o', ARGV[3],
           'a', int(allocated), 's', int(shortage))
return {1, allocated, shortage, usable - allocated}
