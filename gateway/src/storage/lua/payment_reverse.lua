-- payment_reverse: undoes a paid payment on its provider's matching reversal, once per
-- reversal, atomically with queueing the payment.reversed event. (Concatenated after
-- lib/push.lua and lib/payment_index.lua.) The ledger `l` and its events queue share one hash tag.
-- KEYS[1] payment hash         p:{l}:payment:r:<reference>
-- KEYS[2] reversal marker      p:{l}:payment:tx:reversal:<provider>:<key>
-- KEYS[3] event message hash   p:{l}:m:<id>
-- KEYS[4] event key list       p:{l}:k:<okey>
-- KEYS[5] events due zset      p:{l}:due
-- KEYS[6] events counters hash p:{l}:stats
-- ARGV[1] reference
-- ARGV[2] the route that must have paid it
-- ARGV[3] amount (VND)
-- ARGV[4] the original transaction it names ('' when it names none)
-- ARGV[5] now (Unix ms)
-- ARGV[6] event message id
-- ARGV[7] event ordering key
-- ARGV[8] event kind
-- ARGV[9] event payload
-- ARGV[10] the W3C traceparent of the reversing request, kept with the event ('' for none)
-- Returns 'unknown' | 'duplicate' | 'not_paid' | 'other_provider' | 'other_amount'
--   | 'other_transaction' | 'reversed'.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'duplicate' end
local p = redis.call('HMGET', KEYS[1], 'state', 'by', 'amount', 'txn')
if p[1] ~= 'paid' then return 'not_paid' end
if p[2] ~= ARGV[2] then return 'other_provider' end
if p[3] ~= ARGV[3] then return 'other_amount' end
if ARGV[4] ~= '' and p[4] ~= ARGV[4] then return 'other_transaction' end
redis.call('SET', KEYS[2], 'reversed')
redis.call('HSET', KEYS[1], 'state', 'reversed', 'reversed', ARGV[5])
push(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[6], ARGV[8], ARGV[7], ARGV[9], ARGV[5], ARGV[10])
payment_index(KEYS[1], ARGV[1], 'paid', 'reversed', ARGV[5])
payment_note(KEYS[1], ARGV[1], ARGV[5], 'reversed', ARGV[2] .. ', ' .. ARGV[3] .. ' VND')
payment_note(KEYS[1], ARGV[1], ARGV[5], 'webhook_queued', ARGV[8])
return 'reversed'
