-- payment_create: stores a new pending payment unless its reference exists, and indexes it.
-- (Concatenated after lib/payment_index.lua.)
-- KEYS[1] payment hash  p:{l}:payment:r:<reference>
-- KEYS[2] pending zset  p:{l}:payment:pending
-- KEYS[3] ask zset      p:{l}:payment:ask:<provider> (reference -> when it is next asked about)
-- ARGV[1] reference
-- ARGV[2] MaHoSo
-- ARGV[3] amount (VND)
-- ARGV[4] provider
-- ARGV[5] agency (MaDonVi)
-- ARGV[6] fee lines (JSON)
-- ARGV[7] payment URL
-- ARGV[8] now (Unix ms)
-- ARGV[9] the creation time told to the provider
-- ARGV[10] when the payment is first asked about (Unix ms), by its provider's schedule
-- ARGV[11] when its provider's lifetime ends (Unix ms): its expires_at
-- Returns 'created' | 'exists'.
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
redis.call('HSET', KEYS[1], 'mahoso', ARGV[2], 'amount', ARGV[3], 'provider', ARGV[4], 'agency', ARGV[5],
  'fees', ARGV[6], 'url', ARGV[7], 'state', 'pending', 'created', ARGV[8], 'pcreated', ARGV[9],
  'expires', ARGV[11])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[10], ARGV[1])
payment_index(KEYS[1], ARGV[1], false, 'pending', ARGV[8])
payment_note(KEYS[1], ARGV[1], ARGV[8], 'created', ARGV[4] .. ', ' .. ARGV[3] .. ' VND')
return 'created'
