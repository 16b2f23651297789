-- discard: drops a dead message for good and unblocks its key.
-- KEYS[1] message hash  p:{q}:m:<id>
-- KEYS[2] dead zset     p:{q}:dead
-- KEYS[3] due zset      p:{q}:due
-- KEYS[4] counters hash p:{q}:stats
-- ARGV[1] message id
-- ARGV[2] now (Unix ms)
-- ARGV[3] the queue's key base `p:{q}:` (the key's list is derived from it)
-- ARGV[4] retention of the discarded record, seconds
-- Returns 'discarded' | 'not_dead'.
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 'not_dead' end
local okey = redis.call('HGET', KEYS[1], 'okey')
redis.call('HSET', KEYS[1], 'status', 'discarded')
redis.call('HDEL', KEYS[1], 'payload')
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBY', KEYS[4], 'discarded_total', 1)
local lk = ARGV[3] .. 'k:' .. okey
-- The next message becomes the head, queued: nothing of this key is blocked any more.
local behind = redis.call('LLEN', lk) - 1
if behind > 0 then redis.call('HINCRBY', KEYS[4], 'blocked', -behind) end
redis.call('LREM', lk, 1, ARGV[1])
if redis.call('LLEN', lk) > 0 then
  redis.call('ZADD', KEYS[3], ARGV[2], okey)
else
  -- The key's history lasts as long as the records of its last message.
  redis.call('EXPIRE', ARGV[3] .. 'dx:' .. okey, ARGV[4])
  redis.call('EXPIRE', ARGV[3] .. 'ps:' .. okey, ARGV[4])
end
return 'discarded'
