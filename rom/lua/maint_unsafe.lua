-- maint_unsafe.lua: delete UnsafeColumn keys whose entity no longer exists
-- (util.clean_unsafe_cols).
-- KEYS: pairs <ns>:<pk>:<attr>, <ns>:<pk>
-- ARGV: none
-- returns: the number of keys deleted
local deleted = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    deleted = deleted + redis.call('DEL', KEYS[i])
  end
end
return deleted
