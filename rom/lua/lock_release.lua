-- lock_release.lua: release a lock only if this holder still owns it.
-- KEYS[1]: the lock key lock:<name>
-- ARGV[1]: the holder's identifier
-- returns: 1 when the lock was held by the caller and is now released, else 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
