-- recount: counts dead and blocked messages from scratch over every dead letter. O(dead
-- letters): once for a queue whose data predates the counters, and for audits; never on a scrape.
-- KEYS[1] dead zset     p:{q}:dead
-- KEYS[2] counters hash p:{q}:stats
-- ARGV[1] the queue's key base `p:{q}:` (message hashes and lists are derived from it)
-- ARGV[2] 'repair' to write the count into the `blocked` counter and set `counters_v`,
--         'check' to change nothing
-- Returns {dead (zset size), blocked (maintained counter, '' when absent), counted dead,
-- counted blocked}.
local dead, blocked = 0, 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. 'm:' .. id, 'okey', 'status')
  if f[2] == 'dead' then dead = dead + 1 end
  if f[1] then
    local behind = redis.call('LLEN', ARGV[1] .. 'k:' .. f[1]) - 1
    if behind > 0 then blocked = blocked + behind end
  end
end
local kept = redis.call('HGET', KEYS[2], 'blocked') or ''
if ARGV[2] == 'repair' then
  redis.call('HSET', KEYS[2], 'blocked', blocked, 'counters_v', 1)
end
return {redis.call('ZCARD', KEYS[1]), kept, dead, blocked}
