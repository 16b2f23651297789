-- unmatched_put: keeps a bank's money that paid or reversed nothing, once per id (the id is
-- derived from the bank, the transaction's identity and the reason, so a re-sent statement
-- lists nothing twice). The ledger `l` shares its events queue's hash tag.
-- KEYS[1] entry hash           p:{l}:unmatched:e:<id>
-- KEYS[2] index of all         p:{l}:unmatched:ix:all      (zset id -> created ms)
-- KEYS[3] index of open ones   p:{l}:unmatched:ix:s:open   (zset id -> created ms)
-- KEYS[4] open ones by reason  p:{l}:unmatched:open        (hash reason -> count; see unmatched_open)
-- ARGV[1] id
-- ARGV[2] the entry as JSON
-- ARGV[3] now (Unix ms)
-- ARGV[4] the reason (also in the JSON; kept apart so settling need not decode it)
-- Returns 'created' | 'exists'.
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
redis.call('HSET', KEYS[1], 'entry', ARGV[2], 'state', 'open', 'created', ARGV[3], 'updated', ARGV[3], 'reason', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
return 'created'
