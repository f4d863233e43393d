-- lock_acquire.lua: take a lock that is free, or extend one this holder already owns.
-- KEYS[1]: the lock key lock:<name>
-- ARGV[1]: time to live in whole seconds
-- ARGV[2]: the holder's identifier
-- returns: 1 when the caller holds the lock (for ARGV[1] seconds from now), else 0
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
  return 1
end
if current == ARGV[2] then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  return 1
end
return 0
