-- maint_legacy.lua: remove the index entries recorded in the rom < 1.0 bookkeeping hash
-- <ns>:: for entities whose hash no longer exists (util.clean_old_index).
-- KEYS: every key the call touches; items refer to them by position (1-based).
-- ARGV[1]: JSON list of items {e: key# of <ns>:<pk>, l: key# of <ns>::, pk: pk text,
--   rec: the record the client read, rm: [[key#, "s"|"z", member, ...], ...]}
-- An item is skipped when its entity exists again or its record changed since it was read.
-- returns: the number of records removed
local items = cjson.decode(ARGV[1])
local removed = 0
for _, it in ipairs(items) do
  if redis.call('EXISTS', KEYS[it.e]) == 0
      and redis.call('HGET', KEYS[it.l], it.pk) == it.rec then
    for _, r in ipairs(it.rm) do
      local cmd = 'ZREM'
      if r[2] == 's' then cmd = 'SREM' end
      for i = 3, #r do redis.call(cmd, KEYS[r[1]], r[i]) end
    end
    redis.call('HDEL', KEYS[it.l], it.pk)
    removed = removed + 1
  end
end
return removed
