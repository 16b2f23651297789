-- inbound_accept: records a dossier handed down by a counterpart and queues its
-- dossier.received webhook in the same step; a code recorded before is a duplicate and
-- changes nothing. (Concatenated after lib/push.lua.)
-- The book `i` and its webhook queue share one hash tag, so all keys are in one slot.
-- KEYS[1] record hash          p:{i}:in:r:<code>
-- KEYS[2] index of all         p:{i}:in:ix:all
-- KEYS[3] index of the source  p:{i}:in:ix:s:<source>
-- KEYS[4] unacknowledged zset  p:{i}:in:unacked:<source>
-- KEYS[5] message hash         p:{i}:m:<id>
-- KEYS[6] key list             p:{i}:k:<code>
-- KEYS[7] due zset             p:{i}:due
-- KEYS[8] counters hash        p:{i}:stats
-- ARGV[1] code, ARGV[2] source, ARGV[3] procedure ('' for none), ARGV[4] now (ms),
-- ARGV[5] message id, ARGV[6] files (JSON), ARGV[7] link (JSON),
-- ARGV[8] '1' when the source waits for an acknowledgement, ARGV[9] kind, ARGV[10] payload,
-- ARGV[11] the W3C traceparent of the trace that took it ('' for none)
-- Returns 'created' | 'duplicate'.
if redis.call('EXISTS', KEYS[1]) == 1 then return 'duplicate' end
redis.call('HSET', KEYS[1], 'source', ARGV[2], 'procedure', ARGV[3], 'received', ARGV[4],
  'message', ARGV[5], 'files', ARGV[6], 'link', ARGV[7], 'needs_ack', ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
if ARGV[8] == '1' then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1]) end
push(KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[5], ARGV[9], ARGV[1], ARGV[10], ARGV[4], ARGV[11])
return 'created'
