-- payment_set_url: sets the payment page of an existing payment.
-- KEYS[1] payment hash p:{l}:payment:r:<reference>
-- ARGV[1] payment URL
-- Returns 'set' | 'unknown' (no such payment: nothing is written).
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
redis.call('HSET', KEYS[1], 'url', ARGV[1])
return 'set'
