-- rate: the shared rate limit of one destination, a GCRA (generic cell rate algorithm) kept
-- as one "theoretical arrival time" per destination, read on Redis's own clock (TIME), so that
-- every gateway instance draws from one budget whatever its own clock says.
-- A request is allowed when the arrival time is at most (burst - 1) emission intervals ahead
-- of now; taking it moves the arrival time on by one interval. So any window of W seconds lets
-- through at most rate * W + burst requests.
-- KEYS[1] arrival time string p:{d}:rate (microseconds on Redis's clock)
-- ARGV[1] emission interval in microseconds (1e6 / rate, rounded up)
-- ARGV[2] burst (at least 1)
-- ARGV[3] 'take' to take a permit when one is free, 'peek' to only ask how long until one is
-- Returns {'granted', 0} | {'wait', microseconds until a permit is free}; 'peek' answers
-- 'granted' without taking it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local wait = tat - tau - now
if wait > 0 then return {'wait', wait} end
if ARGV[3] == 'take' then
  local next_tat = tat + interval
  -- %d: a microsecond time has 16 digits, more than tostring keeps.
  redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', string.format('%d', math.ceil((next_tat - now) / 1000) + 1000))
end
return {'granted', 0}
