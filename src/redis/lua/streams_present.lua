-- streams_present.lua: which of the given outbox streams exist. The write-back's sweep asks
-- this of the 16,384 possible streams (one per slot, ob:{slotTag(slot)}) on a standalone
-- server, instead of a SCAN of the whole keyspace, whose cost grows with every live hold.
--
-- KEYS[1..N] candidate stream names   (no ARGV)
-- Returns the names of those that exist, in the order given. Read-only.
local present = {}
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then present[#present + 1] = key end
end
return present
