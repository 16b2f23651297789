-- replay: puts a dead message back at the head of its key with a fresh retry budget.
-- KEYS[1] message hash  p:{q}:m:<id>
-- KEYS[2] dead zset     p:{q}:dead
-- KEYS[3] due zset      p:{q}:due
-- KEYS[4] counters hash p:{q}:stats
-- ARGV[1] message id
-- ARGV[2] now (Unix ms)
-- ARGV[3] the queue's key base `p:{q}:` (the key's list is derived from it)
-- Returns 'replayed' | 'not_dead'.
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 'not_dead' end
local okey = redis.call('HGET', KEYS[1], 'okey')
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'agefrom', ARGV[2])
-- Numbered, so that its delivery's event names this replay.
redis.call('HSET', KEYS[1], 'redeliver', redis.call('HINCRBY', KEYS[1], 'replays', 1))
redis.call('ZADD', KEYS[3], ARGV[2], okey)
-- The messages behind it wait for it again, as queued, no longer blocked.
local behind = redis.call('LLEN', ARGV[3] .. 'k:' .. okey) - 1
if behind > 0 then redis.call('HINCRBY', KEYS[4], 'blocked', -behind) end
return 'replayed'
