-- claim: takes up to ARGV[3] due heads under a lease; nothing while the queue is paused.
-- KEYS[1] due zset     p:{q}:due
-- KEYS[2] lease zset   p:{q}:lease
-- KEYS[3] paused flag  p:{q}:paused
-- ARGV[1] now (Unix ms)
-- ARGV[2] lease deadline (Unix ms)
-- ARGV[3] at most this many
-- ARGV[4] the queue's key base `p:{q}:` (message and list keys are derived from it; they share
--         the declared keys' hash tag, so the same slot)
-- ARGV[5] lease token
-- Returns a list of {id, okey, kind, payload, attempts, created, agefrom, traceparent}; a field
-- missing from the stored hash comes back as '' (the caller treats it as corrupt, except the
-- traceparent, which a message may lack).
if redis.call('EXISTS', KEYS[3]) == 1 then return {} end
local okeys = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, okey in ipairs(okeys) do
  redis.call('ZREM', KEYS[1], okey)
  local id = redis.call('LINDEX', ARGV[4] .. 'k:' .. okey, 0)
  if id then
    local mk = ARGV[4] .. 'm:' .. id
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    local attempts = redis.call('HINCRBY', mk, 'attempts', 1)
    redis.call('HSET', mk, 'status', 'in_flight', 'token', ARGV[5])
    local f = redis.call('HMGET', mk, 'kind', 'payload', 'created', 'agefrom', 'tp')
    out[#out + 1] = {id, okey, f[1] or '', f[2] or '', attempts, f[3] or '', f[4] or '', f[5] or ''}
  end
end
return out
