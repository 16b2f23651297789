-- payment_adopt: puts a page of a provider's pending payments that are in no ask schedule (those
-- created before the schedules existed) into its schedule, due now. A payment already in it
-- keeps its place. Read by score (creation time) from ARGV[3], so payments past the provider's
-- reconcile_max_age_secs, which the reconciler gave up on, stay out.
-- The record keys are derived from KEYS[1], in the same slot (as lib/payment_index.lua does).
-- KEYS[1] pending zset  p:{l}:payment:pending
-- KEYS[2] ask zset      p:{l}:payment:ask:<provider>
-- ARGV[1] provider
-- ARGV[2] now (Unix ms): when adopted ones are due
-- ARGV[3] the oldest creation time adopted (Unix ms)
-- ARGV[4] offset, ARGV[5] page size (entries of the pending index read)
-- Returns {entries read, entries adopted}.
local base = string.sub(KEYS[1], 1, #KEYS[1] - #'payment:pending')
local refs = redis.call('ZRANGE', KEYS[1], ARGV[3], '+inf', 'BYSCORE', 'LIMIT', ARGV[4], ARGV[5])
local adopted = 0
for _, ref in ipairs(refs) do
  if not redis.call('ZSCORE', KEYS[2], ref) then
    local p = redis.call('HMGET', base .. 'payment:r:' .. ref, 'provider', 'state')
    if p[1] == ARGV[1] and p[2] == 'pending' then
      redis.call('ZADD', KEYS[2], ARGV[2], ref)
      adopted = adopted + 1
    end
  end
end
return {#refs, adopted}
