-- order_hold.lua: pre-allocates N single-line orders (N >= 1) of one record in one atomic
-- step each: the claim, the hold and the commit of the multi-step protocol (order_claim.lua,
-- hold.lua, order_commit.lua) done together, one order after the other in the order given.
-- Concurrent single-line orders of one hot record are coalesced into one call (group commit).
--
-- It touches the record's keys and the orders' own hashes, which live in other hash slots,
-- so it is only used on standalone Redis (one server owns every slot); Redis Cluster takes
-- the multi-step protocol. It leaves exactly the keys the three scripts would have left after
-- an uncontended run, but for the order's state: the anti-duplicate entry, the counters and
-- the outbox event, and the order as one field of its bucket (os:, many orders to a hash: a
-- key per order costs more than the rest of the hold together). The scripts that read orders
-- (order_claim, order_end, order_load, order_read) look in the order's own hash and then in
-- its bucket, and an order that ends leaves its bucket for an own hash that can expire.
--
-- KEYS[1] u:{rec}  KEYS[2] s:{rec}  KEYS[3] l:{rec}   usable, subtracted, ullage
-- KEYS[4] h:{rec}   the live holds (order -> "allocated:shortage")
-- KEYS[5] ob:{slot}  the outbox stream of the record's slot
-- KEYS[4i+2] .. KEYS[4i+5]  o:{rec}:<order>, rb:{rec}:<order>, the order's own hash
--                           ord:{dept|b<n>}:<order> and its bucket os:{dept|b<n>}, of order i
--                           (i = 1 .. N); the bucket's field order -> "<st><a>:<s>:<line>"
--                           (status letter, allocated, shortage, the stored line)
-- ARGV[1] record index  ARGV[2] dept_no
-- ARGV[3] the record part of a stored line: goods|warehouse|status|type|level
-- ARGV[3i+1], ARGV[3i+2], ARGV[3i+3]  order_no, qty, allow_shortage "0" | "1" of order i
--
-- Returns one value per order, in the order given (a single value keeps the reply and its
-- decoding small; the code is the integer or the string's first character):
--   1          held and committed now, all of qty allocated (status A);
--   "1:a:s"    held and committed now with a shortage: allocated a, shortage s (status S);
--   "2<st><an>" replay: the order exists with the same line (its status letter, then its
--              answer lines);
--   "0:v"      insufficient, nothing changed: v available;
--   3          rolled back (a tombstone);   5  conflict: the order exists with other lines;
--   "6:why"    not for this script, nothing changed: the caller takes the multi-step
--              protocol (why: "pending" another caller holds a claim, "held" a hold without
--              its order, "unloaded" the record is not in Redis, "corrupt" the order's field
--              in its bucket does not parse).
--
-- The outbox gets one `holds` entry per call in the record's stream, b = the orders held now
-- as "order:allocated:shortage:status" joined by ',' (none of ':' and ',' can occur in an
-- order_no): the write-back applies each as a hold and as its order's commit (a fused hold).
-- Invariant: usable >= 0 and subtracted >= 0 before and after each order, so
-- 0 <= preallocated <= on_hand; an order is either wholly committed or not touched at all.
local function int(n) return string.format('%d', n) end

local record_index, dept_no, line_prefix = ARGV[1], ARGV[2], ARGV[3]
local count = (#ARGV - 3) / 3
-- What each order would otherwise ask on its own is asked once for the whole call, since
-- every redis.call costs a few microseconds whatever it does (docs/bench.md):
-- * one EXISTS of every order's own hash, tombstone and hold key: on the hot path none
--   exists, and then no order asks again;
-- * one HMGET of the orders' live-hold entries, and one HSET of the new ones at the end.
-- Both stay true through the call: this script writes none of those keys, and an order given
-- twice finds its first occurrence in its bucket, which is written at once.
-- The record's counters are read once and written once per call: no other command runs
-- between the orders of one script, so the sums are what order-by-order writes would leave.
local lookups, order_nos = {}, {}
for i = 1, count do
  local k = 4 * i + 2
  lookups[3 * i - 2], lookups[3 * i - 1], lookups[3 * i] = KEYS[k + 2], KEYS[k + 1], KEYS[k]
  order_nos[i] = ARGV[3 * i + 1]
end
local some_exist = redis.call('EXISTS', unpack(lookups)) > 0
local prior_holds = redis.call('HMGET', KEYS[4], unpack(order_nos))
local usable = nil  -- read at the first order that needs it
local taken, short = 0, 0
local held = {}     -- "order:allocated:shortage:status" of each order held now, for the outbox
local entries = {}  -- order, "allocated:shortage", ... of each order held now, for h:

local function orderOne(i, operate_key, tombstone_key, order_key, bucket_key, order_no, qty_text,
                        allow_shortage)
  local line = line_prefix .. '|' .. qty_text
  -- A retry of an order this script committed finds it in its bucket.
  local packed = redis.call('HGET', bucket_key, order_no)
  if packed then
    local st, a, s, ln = string.match(packed, '^(%a)(%d+):(%d+):(.*)$')
    if not st then return '6:corrupt' end  -- order_claim.lua refuses it with an error
    if ln ~= line then return 5 end
    return '2' .. st .. ln .. '|' .. a .. '|' .. s
  end
  -- Which of the three keys a new order must not have exists is asked only when one of any
  -- order's does (a tombstone, an order of the multi-step protocol: rare on the hot path).
  if some_exist and redis.call('EXISTS', order_key, tombstone_key, operate_key) > 0 then
    local st = redis.call('HGET', order_key, 'st')
    if st then
      if st == 'R' then return 3 end
      local digest = redis.call('HGET', order_key, 'dg') or redis.call('HGET', order_key, 'ln')
      if digest ~= line then return 5 end
      if st == 'P' then return '6:pending' end
      return '2' .. st .. (redis.call('HGET', order_key, 'an') or '')
    end
    if redis.call('EXISTS', tombstone_key) == 1 then return 3 end
    if redis.call('EXISTS', operate_key) == 1 then return '6:held' end
  end
  if usable == nil then
    usable = redis.call('GET', KEYS[1])
    if not usable then
      usable = nil
      return '6:unloaded'
    end
    usable = tonumber(usable)
  end
  -- A live hold already there without its order (held or refused alike): nothing has changed
  -- yet, and the multi-step protocol decides.
  if prior_holds[i] then return '6:held' end
  local qty = tonumber(qty_text)
  local allocated, shortage = qty, 0
  local allocated_text, shortage_text = qty_text, '0'
  if usable < qty then
    if allow_shortage ~= '1' then return '0:' .. int(usable) end
    allocated = math.max(usable, 0)
    shortage = qty - allocated
    allocated_text, shortage_text = int(allocated), int(shortage)
  end
  usable = usable - allocated
  taken = taken + allocated
  short = short + shortage
  local status = shortage > 0 and 'S' or 'A'
  redis.call('HSET', bucket_key, order_no,
             status .. allocated_text .. ':' .. shortage_text .. ':' .. line)
  entries[#entries + 1] = order_no
  entries[#entries + 1] = allocated_text .. ':' .. shortage_text
  held[#held + 1] = order_no .. ':' .. allocated_text .. ':' .. shortage_text .. ':' .. status
  if shortage > 0 then return '1:' .. allocated_text .. ':' .. shortage_text end
  return 1
end

local answers = {}
for i = 1, count do
  local k, a = 4 * i + 2, 3 * i + 1
  answers[i] = orderOne(i, KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[a], ARGV[a + 1],
                        ARGV[a + 2])
end
if #entries > 0 then redis.call('HSET', KEYS[4], unpack(entries)) end
if taken > 0 then
  redis.call('DECRBY', KEYS[1], int(taken))
  redis.call('INCRBY', KEYS[2], int(taken))
end
if short > 0 then redis.call('INCRBY', KEYS[3], int(short)) end
if #held > 0 then
  redis.call('XADD', KEYS[5], '*', 'e', 'holds', 'r', record_index, 'd', dept_no,
             'b', table.concat(held, ','))
end
return answers
