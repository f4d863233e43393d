-- expiry.lua: read or change the expiry of entities, or list expired ones (server time).
-- KEYS[1]: the model's expiry index <ns>::expire (zset pk -> unix expiry time)
-- KEYS[2..]: entity hashes <ns>:<pk> (modes get, set, ttl)
-- ARGV[1]: mode
--   "get"          -> for each entity hash: {HGETALL flat list, expiry|false}; expired -> {}
--   "set" pk how v -> how "in": expire in v seconds, "at": at unix time v, "persist";
--                     returns 1, or 0 when the entity does not exist or has expired
--   "ttl" pk       -> seconds left as text, -1 without expiry, -2 missing or expired
--   "due" count    -> up to count pks whose expiry time has passed
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local xkey = KEYS[1]
local mode = ARGV[1]

local function expiry(pk)
  local score = redis.call('ZSCORE', xkey, pk)
  if score then return tonumber(score) end
  return nil
end

if mode == 'get' then
  local out = {}
  for i = 2, #KEYS do
    local pk = ARGV[i]
    local at = expiry(pk)
    if at and at <= now then
      out[#out + 1] = {{}, false}
    else
      out[#out + 1] = {redis.call('HGETALL', KEYS[i]), at and string.format('%.6f', at) or false}
    end
  end
  return out
elseif mode == 'set' then
  local pk, how = ARGV[2], ARGV[3]
  local at = expiry(pk)
  if redis.call('EXISTS', KEYS[2]) == 0 or (at and at <= now) then return 0 end
  if how == 'persist' then
    redis.call('ZREM', xkey, pk)
  elseif how == 'in' then
    redis.call('ZADD', xkey, string.format('%.6f', now + tonumber(ARGV[4])), pk)
  else
    redis.call('ZADD', xkey, ARGV[4], pk)
  end
  return 1
elseif mode == 'ttl' then
  local pk = ARGV[2]
  local at = expiry(pk)
  if redis.call('EXISTS', KEYS[2]) == 0 or (at and at <= now) then return -2 end
  if not at then return -1 end
  return string.format('%.6f', at - now)
elseif mode == 'due' then
  return redis.call('ZRANGEBYSCORE', xkey, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
end
return redis.error_reply('expiry.lua: unknown mode')
