-- verify_repair.lua: remove index members that rom.util.verify_indexes found orphaned, each
-- only if what made it an orphan still holds (re-checked here, in the same atomic step), so
-- a repair racing with live writers never removes an entry a writer has just recorded.
-- KEYS: every key the call touches; ARGV items refer to them by position (1-based).
-- ARGV: a flat list of removals, each:
--   op       "SREM" | "ZREM" | "HDEL" (remove member from KEYS[key#]) or "DEL" (the key)
--   key#     position of the index key in KEYS
--   member   set/zset member or hash field (ignored by DEL)
--   n        number of checks that follow
--   n checks of 4 items: key#, field, present ("1" or "0"), value
--            the check holds when HGET KEYS[key#] field equals value (present = "1") or
--            when the field is missing (present = "0"); an error (wrong type) fails it
-- returns: the number of removals made
local allowed = {SREM = true, ZREM = true, HDEL = true, DEL = true}
local done = 0
local i = 1
while i <= #ARGV do
  local op = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1])]
  local member = ARGV[i + 2]
  local n = tonumber(ARGV[i + 3])
  i = i + 4
  if not allowed[op] then
    return redis.error_reply('verify_repair: unknown operation')
  end
  local ok = true
  for _ = 1, n do
    local cur = redis.pcall('HGET', KEYS[tonumber(ARGV[i])], ARGV[i + 1])
    if type(cur) == 'table' and cur.err then
      ok = false
    elseif ARGV[i + 2] == '1' then
      if cur ~= ARGV[i + 3] then ok = false end
    elseif cur then
      ok = false
    end
    i = i + 4
  end
  if ok then
    if op == 'DEL' then
      done = done + redis.call('DEL', key)
    else
      done = done + redis.call(op, key, member)
    end
  end
end
return done
