-- dossier: one ordering key's history: its messages in acceptance order (the newest kept by the
-- index), with the status the destination last took.
-- KEYS[1] key history index p:{q}:dx:<okey>
-- KEYS[2] key's status      p:{q}:ps:<okey>
-- KEYS[3] key's FIFO list   p:{q}:k:<okey>
-- ARGV[1] the queue's key base `p:{q}:` (message hashes are derived from it)
-- Returns {status or '', head id or '', {id, kind, status, attempts, created, next, delivered,
-- err}...}; messages whose records have expired are left out; absent fields are ''.
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local out = {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', ARGV[1] .. 'm:' .. id, 'kind', 'status', 'attempts', 'created', 'next', 'delivered', 'err')
  if f[2] then
    out[#out + 1] = {id, f[1] or '', f[2], f[3] or '', f[4] or '', f[5] or '', f[6] or '', f[7] or ''}
  end
end
local head = redis.call('LINDEX', KEYS[3], 0) or ''
return {redis.call('GET', KEYS[2]) or '', head, out}
