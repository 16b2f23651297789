-- inbound_ack: marks a recorded dossier acknowledged to its source.
-- KEYS[1] record hash          p:{i}:in:r:<code>
-- KEYS[2] unacknowledged zset  p:{i}:in:unacked:<source>
-- ARGV[1] code, ARGV[2] now (ms)
-- Returns 'acked' | 'already' | 'unknown'.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HEXISTS', KEYS[1], 'acked') == 1 then return 'already' end
redis.call('HSET', KEYS[1], 'acked', ARGV[2])
return 'acked'
