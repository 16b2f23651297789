-- stats: what /metrics and /v1/queues read on every scrape. Cardinalities and maintained
-- counters only: a fixed number of O(1)/O(log n) reads on declared keys, no loop.
-- KEYS[1] due zset      p:{q}:due
-- KEYS[2] lease zset    p:{q}:lease
-- KEYS[3] dead zset     p:{q}:dead
-- KEYS[4] counters hash p:{q}:stats
-- KEYS[5] paused flag   p:{q}:paused
-- ARGV[1] now (Unix ms)
-- Returns {ready keys, scheduled keys, in flight, dead, paused (0|1), accepted, delivered_total,
-- discarded_total, blocked, counters_v, oldest due time}; stored counters come back as text
-- ('' when absent), the oldest due time as '' when nothing is due.
local ready_keys = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
local all_keys = redis.call('ZCARD', KEYS[1])
local in_flight = redis.call('ZCARD', KEYS[2])
local dead = redis.call('ZCARD', KEYS[3])
local c = redis.call('HMGET', KEYS[4], 'accepted', 'delivered_total', 'discarded_total', 'blocked', 'counters_v')
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {ready_keys, all_keys - ready_keys, in_flight, dead, redis.call('EXISTS', KEYS[5]),
  c[1] or '', c[2] or '', c[3] or '', c[4] or '', c[5] or '', oldest[2] or ''}
