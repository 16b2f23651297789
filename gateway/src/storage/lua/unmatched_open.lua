-- unmatched_open: the open unmatched entries by reason, as the counters `unmatched_put` and
-- `unmatched_settle` keep them: O(reasons) on a scrape. Entries kept before the counters
-- existed are counted once, from the open index (O(open entries), which finance officers keep
-- short), and the hash is marked `counted` so this never happens again; the counters the two
-- scripts moved meanwhile are replaced by that count, which includes their entries.
-- KEYS[1] counters hash   p:{l}:unmatched:open        (reason -> open entries, and `counted`)
-- KEYS[2] index of open   p:{l}:unmatched:ix:s:open   (zset id -> created ms)
-- ARGV[1] the ledger's key base `p:{l}:` (entry hashes are derived from it)
-- Returns a flat list {reason, count, ...} (without `counted`).
if redis.call('HEXISTS', KEYS[1], 'counted') == 0 then
  local counts = {}
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local f = redis.call('HMGET', ARGV[1] .. 'unmatched:e:' .. id, 'reason', 'entry')
    local reason = f[1]
    if not reason then
      local ok, e = pcall(cjson.decode, f[2] or '')
      reason = ok and type(e) == 'table' and type(e.reason) == 'string' and e.reason or 'unknown'
    end
    counts[reason] = (counts[reason] or 0) + 1
  end
  redis.call('DEL', KEYS[1])
  for reason, n in pairs(counts) do redis.call('HSET', KEYS[1], reason, n) end
  redis.call('HSET', KEYS[1], 'counted', '1')
end
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= 'counted' then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
