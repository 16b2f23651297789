-- catalogue_lease: takes the catalogue sync's lease, or keeps it for its holder.
-- KEYS[1] lease  p:{catalogue}:cat:lease
-- ARGV[1] owner, ARGV[2] time to live (ms)
-- Returns 1 when ARGV[1] holds the lease now, 0 when another owner does.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
