-- Library, concatenated in front of the scripts that queue a message: enqueue, payment_confirm,
-- payment_reverse. Defines push(); runs nothing by itself.
--
-- push(mk, lk, due, stats, id, kind, okey, payload, now, tp)
--   mk      the message's hash            `p:{q}:m:<id>`
--   lk      its ordering key's FIFO list  `p:{q}:k:<okey>`
--   due     the queue's due zset          `p:{q}:due`
--   stats   the queue's counters hash     `p:{q}:stats`
--   id, kind, okey, payload               the message
--   now     Unix milliseconds
--   tp      the W3C traceparent of the trace that queued it ('' or nil for none)
-- Stores the message and appends it to its key's FIFO and to its key's history index
-- `p:{q}:dx:<okey>` (ids in acceptance order, the newest DOSSIER_INDEX_CAP kept), which stops
-- expiring while the key has a message waiting (so does its recorded status `p:{q}:ps:<okey>`).
-- Returns nothing.
local DOSSIER_INDEX_CAP = 1000
local function push(mk, lk, due, stats, id, kind, okey, payload, now, tp)
  redis.call('HSET', mk, 'kind', kind, 'okey', okey, 'payload', payload, 'status', 'queued',
    'attempts', 0, 'created', now, 'agefrom', now)
  if tp and tp ~= '' then redis.call('HSET', mk, 'tp', tp) end
  if redis.call('RPUSH', lk, id) == 1 then
    redis.call('ZADD', due, now, okey)
  else
    -- Queued behind a dead head, the message is blocked: counted here, so that stats never
    -- has to look for it. The head's hash is this message's key with the head's id.
    local head = redis.call('LINDEX', lk, 0)
    if redis.call('HGET', string.sub(mk, 1, #mk - #id) .. head, 'status') == 'dead' then
      redis.call('HINCRBY', stats, 'blocked', 1)
    end
  end
  redis.call('HINCRBY', stats, 'accepted', 1)
  local base = string.sub(mk, 1, #mk - #id - 2)
  local dx = base .. 'dx:' .. okey
  redis.call('RPUSH', dx, id)
  redis.call('LTRIM', dx, -DOSSIER_INDEX_CAP, -1)
  redis.call('PERSIST', dx)
  redis.call('PERSIST', base .. 'ps:' .. okey)
end
