-- payment_expire: ends a pending payment whose provider lifetime and grace are over and whose
-- provider reports it unpaid: `expired`, out of the pending index and its provider's ask
-- schedule. A confirmation may still pay it later (payment_confirm.lua, 'paid_late').
-- (Concatenated after lib/payment_index.lua.)
-- KEYS[1] payment hash  p:{l}:payment:r:<reference>
-- KEYS[2] pending zset  p:{l}:payment:pending
-- KEYS[3] ask zset      p:{l}:payment:ask:<provider>
-- ARGV[1] reference
-- ARGV[2] now (Unix ms)
-- ARGV[3] history detail (what the provider said)
-- Returns 'unknown' | 'expired' | 'already:<state>'. A payment no longer pending leaves the ask
-- schedule either way.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 'unknown'
end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'pending' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 'already:' .. (state or '')
end
redis.call('HSET', KEYS[1], 'state', 'expired', 'expired', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
payment_index(KEYS[1], ARGV[1], 'pending', 'expired', ARGV[2])
payment_note(KEYS[1], ARGV[1], ARGV[2], 'expired', ARGV[3])
return 'expired'
