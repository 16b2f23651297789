-- replay_job: the state of a queue's paced replay (one at a time per queue), shared by every
-- gateway process so that another can take over a replay whose process died.
-- KEYS[1] job hash   p:{q}:replayjob  (id, total, done, rate, started, finished, state, owner, lease)
-- KEYS[2] id list    p:{q}:replayids  (the dead letters still to replay, in order)
-- ARGV[1] operation: 'start' | 'lease' | 'next' | 'done' | 'cancel'
-- ARGV[2] now (Unix ms)
-- start: ARGV[3] job id, ARGV[4] rate per second (text), ARGV[5..] the message ids
--   Returns {'started'} | {'running', job id} (another replay of this queue is running).
-- lease: ARGV[3] owner, ARGV[4] lease deadline (Unix ms)
--   Takes or renews the job's lease when the job runs and the lease is free, expired or the
--   owner's. Returns 'leased' | 'held' (another live owner) | 'idle' (no running job).
-- next: ARGV[3] owner
--   Returns the next id to replay, or 'finished' (and marks the job finished), or 'lost'
--   (the owner does not hold the lease).
-- done: ARGV[3] owner, ARGV[4] the id just replayed
--   Takes the id off the list and counts it, if it is the head and the owner holds the lease.
--   Returns the count done, or -1 when the owner does not hold the lease.
-- cancel: no more ARGV
--   Marks a running job cancelled (the ids left are dropped; they stay dead letters) and frees
--   its lease, so its runner, in whatever process, stops at its next lease renewal (within a
--   second) and a new job may start. Returns 'cancelled', or 'none' when no job runs.
-- Both keys are under the queue's own name {q}, whatever its partitions.
local op = ARGV[1]
local now = tonumber(ARGV[2])
local function holds(owner)
  return redis.call('HGET', KEYS[1], 'state') == 'running' and redis.call('HGET', KEYS[1], 'owner') == owner
    and tonumber(redis.call('HGET', KEYS[1], 'lease') or '0') > now
end
if op == 'start' then
  if redis.call('HGET', KEYS[1], 'state') == 'running' then
    return {'running', redis.call('HGET', KEYS[1], 'id')}
  end
  redis.call('DEL', KEYS[1], KEYS[2])
  local total = #ARGV - 4
  redis.call('HSET', KEYS[1], 'id', ARGV[3], 'total', total, 'done', 0, 'rate', ARGV[4], 'started', ARGV[2],
    'finished', '', 'state', 'running', 'owner', '', 'lease', 0)
  for i = 5, #ARGV, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  return {'started'}
elseif op == 'lease' then
  if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 'idle' end
  local owner = redis.call('HGET', KEYS[1], 'owner')
  local lease = tonumber(redis.call('HGET', KEYS[1], 'lease') or '0')
  if owner ~= ARGV[3] and owner ~= '' and lease > now then return 'held' end
  redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'lease', ARGV[4])
  return 'leased'
elseif op == 'next' then
  if not holds(ARGV[3]) then return 'lost' end
  local id = redis.call('LINDEX', KEYS[2], 0)
  if id then return id end
  redis.call('HSET', KEYS[1], 'state', 'finished', 'finished', ARGV[2], 'owner', '')
  return 'finished'
elseif op == 'done' then
  if not holds(ARGV[3]) then return -1 end
  if redis.call('LINDEX', KEYS[2], 0) == ARGV[4] then
    redis.call('LPOP', KEYS[2])
    return redis.call('HINCRBY', KEYS[1], 'done', 1)
  end
  return tonumber(redis.call('HGET', KEYS[1], 'done'))
elseif op == 'cancel' then
  if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 'none' end
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished', ARGV[2], 'owner', '', 'lease', 0)
  redis.call('DEL', KEYS[2])
  return 'cancelled'
end
return redis.error_reply('replay_job: unknown operation')
