-- hold.lua: holds stock of one record for N orders (N >= 1), one line of a pre-allocation
-- each, in the order given. Concurrent holds of one hot record are coalesced into one call
-- (group commit); each hold gets its own answer, its own anti-duplicate entry and its own
-- outbox event, exactly as if it had been called alone, one after the other.
--
-- KEYS[1] u:{rec}           usable counter (= available)
-- KEYS[2] s:{rec}           subtracted counter (= preallocated)
-- KEYS[3] l:{rec}           ullage counter (= shortage)
-- KEYS[4] h:{rec}           the live holds: order -> "allocated:shortage" (the anti-duplicate
--                           entry of each live hold)
-- KEYS[5] ob:{slot}         the outbox stream of this slot (read by the write-back)
-- KEYS[4+2i], KEYS[5+2i]    o:{rec}:<order> and rb:{rec}:<order> of order i (i = 1 .. N):
--                           its deducted anti-duplicate key (or a live one written before h:
--                           existed) and its rollback tombstone
-- ARGV[1] record index  ARGV[2] dept_no
-- ARGV[3i], ARGV[3i+1], ARGV[3i+2]  order_no, qty, allow_shortage "0" | "1" of order i (1..N)
--
-- Returns 4 integers per order, {code, allocated, shortage, available}, in the order given:
--   1 held now; 2 this order already holds this record (its first allocated/shortage);
--   0 insufficient, nothing changed (available); 3 rolled back (a tombstone refuses the hold);
--   4 the record is not loaded (the caller loads it from the database and calls again).
--
-- Invariant: usable >= 0 and subtracted >= 0 before and after each hold, so
-- 0 <= preallocated <= on_hand (= usable + subtracted). The anti-duplicate key makes each hold
-- idempotent: a retry after a lost reply holds nothing more.
local function int(n) return string.format('%d', n) end

local function holdOne(operate_key, tombstone_key, order_no, qty, allow_shortage)
  if redis.call('EXISTS', tombstone_key) == 1 then return 3, 0, 0, 0 end
  local prior = redis.call('HGET', KEYS[4], order_no) or redis.call('GET', operate_key)
  if prior then
    local allocated, shortage = string.match(prior, '^(%d+):(%d+)')
    return 2, tonumber(allocated), tonumber(shortage), 0
  end
  local usable = redis.call('GET', KEYS[1])
  if not usable then return 4, 0, 0, 0 end
  usable = tonumber(usable)
  local allocated, shortage = qty, 0
  if usable < qty then
    if allow_shortage ~= '1' then return 0, 0, 0, usable end
    allocated = math.max(usable, 0)
    shortage = qty - allocated
  end
  if allocated > 0 then
    redis.call('DECRBY', KEYS[1], int(allocated))
    redis.call('INCRBY', KEYS[2], int(allocated))
  end
  if shortage > 0 then redis.call('INCRBY', KEYS[3], int(shortage)) end
  redis.call('HSET', KEYS[4], order_no, int(allocated) .. ':' .. int(shortage))
  redis.call('XADD', KEYS[5], '*', 'e', 'hold', 'r', ARGV[1], 'd', ARGV[2], 'o', order_no,
             'a', int(allocated), 's', int(shortage))
  return 1, allocated, shortage, usable - allocated
end

local answers = {}
local count = (#ARGV - 2) / 3
for i = 1, count do
  local operate_key, tombstone_key = KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  local a = 3 * i
  local code, allocated, shortage, available =
      holdOne(operate_key, tombstone_key, ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2])
  local n = #answers
  answers[n + 1], answers[n + 2], answers[n + 3], answers[n + 4] =
      code, allocated, shortage, available
end
return answers
