-- payment_overdue: pending payments past their provider's lifetime, the grace and a slack of
-- two reconciliation rounds (the one that should have expired them, and one more) that
-- reconciliation still works on (created within the provider's reconcile_max_age), by provider,
-- for hcc_payments_pending_overdue. Reads only. Bounded: the pending index is read by creation
-- time only over the window where such payments can be (older than the grace and the shortest
-- lifetime and slack, younger than the longest maximum age), newest first, at most ARGV[4] of
-- them, so a scrape costs the same however many payments older than every schedule stay
-- pending.
-- KEYS[1] pending zset  p:{l}:payment:pending   (reference -> creation ms)
-- ARGV[1] the ledger's key base `p:{l}:` (payment records are derived from it)
-- ARGV[2] now (Unix ms)
-- ARGV[3] the grace (ms)
-- ARGV[4] the most payments read
-- ARGV[5..] quadruples: a reconciling provider's id, its lifetime (ms), its reconcile_max_age
--           (ms), its slack (ms);
--           a payment without `expires` (kept before lifetimes were) ends its lifetime at its
--           creation plus its provider's
-- Returns {provider, count, ...}, every provider named in ARGV (0 when none is overdue).
local now, grace, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local terms, counts, order = {}, {}, {}
local shortest, longest = nil, 0
for i = 5, #ARGV, 4 do
  local lifetime, max_age, slack = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  terms[ARGV[i]] = {lifetime = lifetime, max_age = max_age, slack = slack}
  counts[ARGV[i]] = 0
  order[#order + 1] = ARGV[i]
  if shortest == nil or lifetime + slack < shortest then shortest = lifetime + slack end
  if max_age > longest then longest = max_age end
end
if shortest ~= nil then
  local newest, oldest = now - grace - shortest, now - longest
  if newest >= oldest then
    local refs = redis.call('ZRANGE', KEYS[1], newest, oldest, 'BYSCORE', 'REV', 'LIMIT', 0, limit)
    for _, ref in ipairs(refs) do
      local f = redis.call('HMGET', ARGV[1] .. 'payment:r:' .. ref, 'provider', 'state', 'created', 'expires')
      local t = f[1] and terms[f[1]]
      local created = tonumber(f[3])
      if t and f[2] == 'pending' and created and created >= now - t.max_age then
        local ends = tonumber(f[4]) or 0
        if ends <= 0 then ends = created + t.lifetime end
        if ends + grace + t.slack < now then counts[f[1]] = counts[f[1]] + 1 end
      end
    end
  end
end
local out = {}
for _, id in ipairs(order) do
  out[#out + 1] = id
  out[#out + 1] = counts[id]
end
return out
