-- reap: returns expired leases (up to 1000 a run) to the queue.
-- KEYS[1] lease zset p:{q}:lease
-- KEYS[2] due zset   p:{q}:due
-- ARGV[1] now (Unix ms)
-- ARGV[2] the queue's key base `p:{q}:` (message and list keys are derived from it)
-- Returns the number of leases returned.
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, 1000)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local mk = ARGV[2] .. 'm:' .. id
  local okey = redis.call('HGET', mk, 'okey')
  if okey then
    redis.call('HSET', mk, 'status', 'retrying', 'err', 'lease expired: the worker was lost mid-delivery')
    redis.call('HDEL', mk, 'token')
    if redis.call('LINDEX', ARGV[2] .. 'k:' .. okey, 0) == id then
      redis.call('ZADD', KEYS[2], ARGV[1], okey)
    end
  end
end
return #ids
