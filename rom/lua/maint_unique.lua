-- maint_unique.lua: remove unique-index fields that point at entities that no longer exist
-- (util.clean_old_index).
-- KEYS[1]: the unique index hash <ns>:<name>:uidx
-- KEYS[2..]: entity hashes <ns>:<pk>
-- ARGV[1..]: pairs field, key# of the entity hash the field's pk names
-- A field is removed only if it still names that pk and the entity is still missing.
-- returns: the number of fields removed
local removed = 0
for i = 1, #ARGV, 2 do
  local ent = KEYS[tonumber(ARGV[i + 1])]
  local pk = string.match(ent, ':([^:]*)$')
  if redis.call('HGET', KEYS[1], ARGV[i]) == pk and redis.call('EXISTS', ent) == 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
