-- Library, concatenated in front of the payment scripts that create or change a payment:
-- payment_create, payment_confirm, payment_reverse. Defines payment_index() and
-- payment_note(); runs nothing by itself.
--
-- payment_index(pk, ref, old, new, now)
--   pk    the payment's hash `p:{l}:payment:r:<reference>`; the indexes are derived from it,
--         in the same slot: `p:{l}:payment:ix:s:<status>`, `p:{l}:payment:ix:h:<MaHoSo>`,
--         `p:{l}:payment:ix:all` (zsets: reference -> last update, Unix ms)
--   ref   the reference
--   old   the status it leaves (false: it stays listed where it is, as a paid payment does
--         when it also becomes `duplicate`)
--   new   the status index it joins
--   now   Unix ms
-- payment_note(pk, ref, now, event, detail)
--   appends {at, event, detail} (JSON) to the payment's history `p:{l}:payment:hist:<ref>`;
--   the first PAYMENT_HISTORY_CAP - 1 entries are kept and the last one is always the newest.
-- Both return nothing.
local PAYMENT_HISTORY_CAP = 50
local function payment_base(pk, ref)
  return string.sub(pk, 1, #pk - #ref - #'payment:r:')
end
local function payment_index(pk, ref, old, new, now)
  local base = payment_base(pk, ref)
  local ma = redis.call('HGET', pk, 'mahoso') or ''
  if old and old ~= new then redis.call('ZREM', base .. 'payment:ix:s:' .. old, ref) end
  redis.call('ZADD', base .. 'payment:ix:s:' .. new, now, ref)
  redis.call('ZADD', base .. 'payment:ix:all', now, ref)
  redis.call('ZADD', base .. 'payment:ix:h:' .. ma, now, ref)
  redis.call('HSET', pk, 'updated', now)
end
local function payment_note(pk, ref, now, event, detail)
  local hk = payment_base(pk, ref) .. 'payment:hist:' .. ref
  local entry = cjson.encode({at = now, event = event, detail = detail})
  if redis.call('LLEN', hk) >= PAYMENT_HISTORY_CAP then
    redis.call('LSET', hk, -1, entry)
  else
    redis.call('RPUSH', hk, entry)
  end
end
