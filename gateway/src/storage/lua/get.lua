-- get: one message's record, with the status of its key's head to tell blocked from queued.
-- KEYS[1] message hash p:{q}:m:<id>
-- ARGV[1] the queue's key base `p:{q}:` (the list and the head's hash are derived from it)
-- ARGV[2] message id
-- Returns nil when there is no such message, else
-- {kind, okey, status, attempts, created, next, delivered, err, head status}, absent optional
-- fields as ''.
local f = redis.call('HMGET', KEYS[1], 'kind', 'okey', 'status', 'attempts', 'created', 'next', 'delivered', 'err')
if not f[3] then return nil end
local head_status = ''
local head = redis.call('LINDEX', ARGV[1] .. 'k:' .. (f[2] or ''), 0)
if head and head ~= ARGV[2] then
  head_status = redis.call('HGET', ARGV[1] .. 'm:' .. head, 'status') or ''
end
return {f[1] or '', f[2] or '', f[3], f[4] or '', f[5] or '', f[6] or '', f[7] or '', f[8] or '', head_status}
