-- enqueue: accepts a message, once per idempotency key when one is given.
-- (Concatenated after lib/push.lua.)
-- KEYS[1] message hash      p:{q}:m:<id>
-- KEYS[2] ordering key list p:{q}:k:<okey>
-- KEYS[3] due zset          p:{q}:due
-- KEYS[4] counters hash     p:{q}:stats
-- KEYS[5] (optional) idempotency string p:{q}:idem:<scope>:<key>
-- ARGV[1] new message id
-- ARGV[2] kind
-- ARGV[3] ordering key
-- ARGV[4] payload
-- ARGV[5] now (Unix ms)
-- ARGV[6] body fingerprint ('' without KEYS[5])
-- ARGV[7] idempotency TTL in seconds (0 without KEYS[5])
-- ARGV[8] the W3C traceparent of the trace that accepted it ('' for none)
-- Returns {'accepted', id} | {'replayed', earlier id} | {'conflict', earlier id}.
if #KEYS == 5 then
  local prev = redis.call('GET', KEYS[5])
  if prev then
    local sep = string.find(prev, '\n', 1, true)
    local pid = string.sub(prev, 1, sep - 1)
    if string.sub(prev, sep + 1) == ARGV[6] then return {'replayed', pid} end
    return {'conflict', pid}
  end
  redis.call('SET', KEYS[5], ARGV[1] .. '\n' .. ARGV[6], 'EX', ARGV[7])
end
push(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[8])
return {'accepted', ARGV[1]}
