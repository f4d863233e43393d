-- query_bare.lua: one block of an unfiltered, unordered iteration (API.md §6.6), ascending
-- by pk. Resumes after the last pk seen, so deletes during the iteration never make it skip
-- or repeat entities.
--
-- KEYS[1]: mode "idx": the pk score index <ns>:<pk>:idx; mode "probe": the id counter
--          <ns>:<pk>: (ids 1..counter are probed)
-- KEYS[2]: optional expiry zset pk -> unix time (pks with time <= now are skipped)
-- ARGV[1]: JSON {m="idx"|"probe", a=last pk seen (0 at the start), s=entities still to skip
--          (the offset), w=entities wanted, b=most ids to examine in this call,
--          p=entity key prefix "<prefix>:", c=optional fields to HMGET (c[1] = pk field),
--          now=unix time, absent: the server's TIME}
-- returns: {a, s, done, id, data, id, data, ...}: the new resume point and skip count, 1 when
--          the end was reached, and the entities found (flat HGETALL list or HMGET list)
local plan = cjson.decode(ARGV[1])
local null = cjson.null
local after = tonumber(plan.a)
local skip = tonumber(plan.s)
local want = tonumber(plan.w)
local budget = tonumber(plan.b)
local prefix = plan.p
local fields = plan.c
if fields == null then fields = nil end

local xkey, now
if KEYS[2] and redis.call('TYPE', KEYS[2])['ok'] == 'zset' then
  xkey = KEYS[2]
  now = tonumber(plan.now)
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
end

local function expired(id)
  if not xkey then return false end
  local s = redis.call('ZSCORE', xkey, id)
  return s and tonumber(s) <= now
end

local function fetch(id)
  local key = prefix .. id
  if fields then
    local v = redis.call('HMGET', key, unpack(fields))
    if not v[1] then return nil end
    return v
  end
  local h = redis.call('HGETALL', key)
  if #h == 0 then return nil end
  return h
end

local out = {0, 0, 0}
local found, examined, done = 0, 0, 0

local function visit(id)
  examined = examined + 1
  if expired(id) then return end
  if skip > 0 then
    if redis.call('EXISTS', prefix .. id) == 1 then skip = skip - 1 end
    return
  end
  local data = fetch(id)
  if data then
    out[#out + 1] = id
    out[#out + 1] = data
    found = found + 1
  end
end

if plan.m == 'idx' then
  local key = KEYS[1]
  if redis.call('TYPE', key)['ok'] ~= 'zset' then
    return {after, skip, 1}
  end
  if skip > 0 and after == 0 and not xkey then
    -- jump over the offset by rank
    local ids = redis.call('ZRANGE', key, skip, skip)
    skip = 0
    if #ids == 0 then return {after, 0, 1} end
    after = tonumber(ids[1]) - 1
  end
  while found < want and examined < budget do
    local n = math.min(math.max(want - found, 1) + skip, budget - examined)
    local ids = redis.call('ZRANGEBYSCORE', key, '(' .. string.format('%d', after), '+inf',
      'LIMIT', 0, n)
    if #ids == 0 then
      done = 1
      break
    end
    for _, id in ipairs(ids) do
      after = tonumber(id)
      visit(id)
      if found >= want then break end
    end
  end
else
  local counter = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
  while found < want and examined < budget and after < counter do
    after = after + 1
    visit(string.format('%d', after))
  end
  if after >= counter then done = 1 end
end
out[1] = string.format('%d', after)
out[2] = skip
out[3] = done
return out
