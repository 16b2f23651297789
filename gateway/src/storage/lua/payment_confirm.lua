-- payment_confirm: applies a provider's confirmation by the matching rules of storage/ledger,
-- atomically with queueing the event it calls for and updating its indexes and history.
-- (Concatenated after lib/push.lua and lib/payment_index.lua.)
-- The ledger `l` and its events queue share one hash tag, so all keys are in one slot.
-- KEYS[1] payment hash         p:{l}:payment:r:<reference>
-- KEYS[2] transaction marker   p:{l}:payment:tx:paid:<provider>:<transaction>, or for a failure
--                              p:{l}:payment:tx:failed:<provider>:<reference>:<answer>
-- KEYS[3] pending zset         p:{l}:payment:pending
-- KEYS[4] event message hash   p:{l}:m:<id>
-- KEYS[5] event key list       p:{l}:k:<okey>
-- KEYS[6] events due zset      p:{l}:due
-- KEYS[7] events counters hash p:{l}:stats
-- ARGV[1] reference
-- ARGV[2] provider transaction id
-- ARGV[3] amount (VND)
-- ARGV[4] '1' when the provider says paid, '0' when it says failed
-- ARGV[5] provider time
-- ARGV[6] now (Unix ms)
-- ARGV[7] event message id
-- ARGV[8] event ordering key
-- ARGV[9] confirming route (provider)
-- ARGV[10] the transaction the caller saw standing ('' for none)
-- ARGV[11] payment.confirmed event kind,  ARGV[12] its payload
-- ARGV[13] payment.duplicate event kind,  ARGV[14] its payload
-- ARGV[15] a bank credit's references (JSON), kept with the payment it settles ('' for none)
-- ARGV[16] the W3C traceparent of the confirming request, kept with the event ('' for none)
-- Returns 'unknown' | 'stale' | 'paid' | 'paid_late' | 'failed' | 'amount_mismatch'
--   | 'paid_twice' | 'duplicate:<earlier answer>' | 'already:<state>'.
-- 'paid_late': paid, and the payment had expired (money that arrives late still counts).
-- 'stale': another transaction paid it since the caller read it; the caller reads again, so
-- that a payment.duplicate event always names the transaction that stands.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
local before = redis.call('GET', KEYS[2])
if before then return 'duplicate:' .. before end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'paid' and ARGV[4] == '1' then
  if (redis.call('HGET', KEYS[1], 'txn') or '') ~= ARGV[10] then return 'stale' end
  redis.call('SET', KEYS[2], 'paid_twice')
  redis.call('HINCRBY', KEYS[1], 'duplicates', 1)
  push(KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[7], ARGV[13], ARGV[8], ARGV[14], ARGV[6], ARGV[16])
  payment_index(KEYS[1], ARGV[1], false, 'duplicate', ARGV[6])
  payment_note(KEYS[1], ARGV[1], ARGV[6], 'duplicate', ARGV[9] .. ' transaction ' .. ARGV[2] .. ', ' .. ARGV[3] .. ' VND')
  payment_note(KEYS[1], ARGV[1], ARGV[6], 'webhook_queued', ARGV[13])
  return 'paid_twice'
end
-- A provider's later word that money arrived outranks its earlier failure, and an expiry.
if state ~= 'pending' and not ((state == 'failed' or state == 'expired') and ARGV[4] == '1') then
  return 'already:' .. (state or '')
end
local outcome = 'paid'
if ARGV[4] ~= '1' then outcome = 'failed'
elseif redis.call('HGET', KEYS[1], 'amount') ~= ARGV[3] then outcome = 'amount_mismatch' end
redis.call('SET', KEYS[2], outcome)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'state', outcome, 'txn', ARGV[2], 'ptime', ARGV[5], 'settled', ARGV[6], 'by', ARGV[9])
if ARGV[15] ~= '' then redis.call('HSET', KEYS[1], 'brefs', ARGV[15]) else redis.call('HDEL', KEYS[1], 'brefs') end
payment_index(KEYS[1], ARGV[1], state, outcome, ARGV[6])
local late = ''
if state == 'expired' then late = ', after it expired' end
payment_note(KEYS[1], ARGV[1], ARGV[6], outcome, ARGV[9] .. ' transaction ' .. ARGV[2] .. ', ' .. ARGV[3] .. ' VND' .. late)
if outcome == 'paid' then
  push(KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[7], ARGV[11], ARGV[8], ARGV[12], ARGV[6], ARGV[16])
  payment_note(KEYS[1], ARGV[1], ARGV[6], 'webhook_queued', ARGV[11])
  if state == 'expired' then return 'paid_late' end
end
return outcome
