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
-- KEYS[7] outbox list        p:{q}:outbox (events for the centre, relayed to its queue)
-- KEYS[8] key history index  p:{q}:dx:<okey>
-- KEYS[9] key's status       p:{q}:ps:<okey> (the last status the destination took)
-- ARGV[9] on 'delivered': the status the delivery carried ('' for none)
-- ARGV[10] on 'dead': the event to queue, '<kind>\n<okey>\n<payload>' ('' for none)
-- ARGV[11] on 'delivered' of a replayed message: the event to queue, as ARGV[10]
-- An event goes to the outbox as '<event id>\n<event>', the event id naming the message, the
-- event and the death or replay it is for, so that relaying it twice queues it once.
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
  if ARGV[9] ~= '' then redis.call('SET', KEYS[9], ARGV[9]) end
  local replays = redis.call('HGET', KEYS[1], 'redeliver')
  if replays then
    redis.call('HDEL', KEYS[1], 'redeliver')
    if ARGV[11] ~= '' then
      redis.call('RPUSH', KEYS[7], ARGV[1] .. '.delivered.' .. replays .. '\n' .. ARGV[11])
    end
  end
  -- The key's history lasts as long as the records of its last message.
  if redis.call('LLEN', KEYS[2]) == 0 then
    redis.call('EXPIRE', KEYS[8], ARGV[8])
    redis.call('EXPIRE', KEYS[9], ARGV[8])
  end
elseif mode == 'retry' then
  redis.call('HSET', KEYS[1], 'status', 'retrying', 'next', ARGV[5], 'err', ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[7])
elseif mode == 'dead' then
  redis.call('HSET', KEYS[1], 'status', 'dead', 'err', ARGV[6])
  redis.call('HDEL', KEYS[1], 'next')
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
  local deaths = redis.call('HINCRBY', KEYS[1], 'deaths', 1)
  if ARGV[10] ~= '' then
    redis.call('RPUSH', KEYS[7], ARGV[1] .. '.rejected.' .. deaths .. '\n' .. ARGV[10])
  end
  -- Everything queued behind it is blocked from now on.
  local behind = redis.call('LLEN', KEYS[2]) - 1
  if behind > 0 then redis.call('HINCRBY', KEYS[6], 'blocked', behind) end
else
  local a = redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  redis.call('HSET', KEYS[1], 'status', a > 0 and 'retrying' or 'queued')
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[7])
end
return 'settled'
