-- order_abort.lua: forgets a pending order that was refused (its lines were reversed), so the
-- same order_no may be tried again later. Only the owner of the claim may abort it.
--
-- KEYS[1] ord:{dept|order}
-- ARGV[1] token of the claim
-- Returns 1 when the order was forgotten, 0 otherwise (not pending, or another owner).
if redis.call('HGET', KEYS[1], 'st') == 'P' and redis.call('HGET', KEYS[1], 'tk') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
