-- unmatched_settle: moves an open unmatched entry to `assigned` or `returned`, once. A repeat of
-- the same decision answers 'same' and changes nothing; another decision on a settled entry
-- answers its state. The ledger `l` shares its events queue's hash tag.
-- KEYS[1] entry hash             p:{l}:unmatched:e:<id>
-- KEYS[2] index of open ones     p:{l}:unmatched:ix:s:open
-- KEYS[3] index of the new state p:{l}:unmatched:ix:s:<state>
-- KEYS[4] open ones by reason    p:{l}:unmatched:open   (hash reason -> count; see unmatched_open)
-- ARGV[1] id
-- ARGV[2] the new state ('assigned' | 'returned')
-- ARGV[3] what it was settled with (the MaThamChieu paid, or the reason it is returned)
-- ARGV[4] the API key that acted
-- ARGV[5] now (Unix ms)
-- Returns 'unknown' | 'done' | 'same' | 'settled:<state>'.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
local e = redis.call('HMGET', KEYS[1], 'state', 'settled_with')
if e[1] ~= 'open' then
  if e[1] == ARGV[2] and (ARGV[2] == 'returned' or e[2] == ARGV[3]) then return 'same' end
  return 'settled:' .. (e[1] or '')
end
local created = redis.call('HGET', KEYS[1], 'created')
-- An entry kept before `reason` was stored apart names it only in its JSON.
local reason = redis.call('HGET', KEYS[1], 'reason')
if not reason then
  local ok, j = pcall(cjson.decode, redis.call('HGET', KEYS[1], 'entry') or '')
  reason = ok and type(j) == 'table' and type(j.reason) == 'string' and j.reason or 'unknown'
end
redis.call('HINCRBY', KEYS[4], reason, -1)
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'settled_with', ARGV[3], 'settled_by', ARGV[4], 'updated', ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], created, ARGV[1])
return 'done'
