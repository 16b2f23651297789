-- settle: records a claimed message's outcome, if the caller still holds its lease.
-- KEYS[1] message hash      p:{q}:m:<id>
-- KEYS[2] ordering key list p:{q}:k:<okey>
-- KEYS[3] due zset          p:{q}:due
-- KEYS[4] lease zset        p:{q}:lease
-- KEYS[5] dead zset         p:{q}:dead
-- KEYS[6] counters hash     p:{q}:stats
-- ARGV[1] message id
-- ARGV[2] lease token
-- ARGV[3] mode: 'delivered' | 'retry' | 'dead' | 'release'
-- ARGV[4] now (Unix ms)
-- ARGV[5] retry time (Unix ms; used by 'retry')
-- ARGV[6] error text (used by 'retry' and 'dead')
-- ARGV[7] ordering key
-- ARGV[8] retention of a delivered record, seconds
-- Returns 'settled' | 'lease_lost' (the lease expired and the settlement is ignored).
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 'lease_lost' end
if not redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 'lease_lost' end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[1], 'token')
local mode = ARGV[3]
local function next_of_key()
  if redis.call('LINDEX', KEYS[2], 0) == ARGV[1] then
    redis.call('LPOP', KEYS[2])
  else
    redis.call('LREM', KEYS[2], 1, ARGV[1])
  end
  if redis.call('LLEN', KEYS[2]) > 0 then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[7]) end
end
if mode == 'delivered' then
  redis.call('HSET', KEYS[1], 'status', 'delivered', 'delivered', ARGV[4])
  redis.call('HDEL', KEYS[1], 'payload', 'next')
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  redis.call('HINCRBY', KEYS[6], 'delivered_total', 1)
  next_of_key()
elseif mode == 'retry' then
  redis.call('HSET', KEYS[1], 'status', 'retrying', 'next', ARGV[5], 'err', ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[7])
elseif mode == 'dead' then
  redis.call('HSET', KEYS[1], 'status', 'dead', 'err', ARGV[6])
  redis.call('HDEL', KEYS[1], 'next')
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
  -- Everything queued behind it is blocked from now on.
  local behind = redis.call('LLEN', KEYS[2]) - 1
  if behind > 0 then redis.call('HINCRBY', KEYS[6], 'blocked', behind) end
else
  local a = redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  redis.call('HSET', KEYS[1], 'status', a > 0 and 'retrying' or 'queued')
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[7])
end
return 'settled'
