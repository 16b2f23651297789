-- payment_set_handoff: sets how the citizen pays an existing payment: its provider's page, or
-- the code to scan.
-- KEYS[1] payment hash p:{l}:payment:r:<reference>
-- ARGV[1] 'url' (a payment page) | 'qr' (a VietQR payload)
-- ARGV[2] its value
-- Returns 'set' | 'unknown' (no such payment: nothing is written).
if ARGV[1] ~= 'url' and ARGV[1] ~= 'qr' then return redis.error_reply('handoff field ' .. ARGV[1]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 'set'
