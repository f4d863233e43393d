-- write.lua: save or delete one entity atomically (data, uniques, race check, indexes).
-- Every check runs before the first write, so a refused call leaves Redis unchanged.
--
-- KEYS[1]: the entity hash <ns>:<pk>
-- KEYS[2]: the legacy (rom < 1.0) bookkeeping hash <ns>::
-- KEYS[3..]: every other key the call touches (unique hashes, index keys, extra keys)
-- ARGV[1]: the pk as decimal text
-- ARGV[2]: JSON plan (built by rom/writer.py):
--   d  : 1 to delete the entity, 0 to save it
--   ob : the bookkeeping text the client believes is stored (false: none)
--   ol : 1 when ob is the legacy record from KEYS[2]
--   rc : [[field, expected], ...] race check; a mismatch refuses the save
--   ex : [[field, expected|false], ...] values the plan relies on; a mismatch asks for a retry
--   u  : [[key#, value], ...] unique entries this entity must own
--   ur : [[key#, value], ...] unique entries to release when they still point at this pk
--   hs : [field, text, ...] fields to set (includes -index-data-)
--   hd : [field, ...] fields to delete
--   rm : [[key#, kind, member, ...], ...] index members to remove (kind "s" set, "z" zset)
--   ad : [[key#, "s", member, ...] | [key#, "z", score, member, ...] |
--         [key#, "g", lon, lat, member], ...] index members to add
--   dk : [key#, ...] keys to delete (UnsafeColumn structures)
--   ek : [key#, seconds] set a TTL on that key (entity expiry), [] for none
-- returns: {"ok"}
--        | {"race", field, ...}                  stored values differ from rc
--        | {"unique", n}                         u[n] is owned by another pk
--        | {"stale", bookkeeping|nil, legacy, field, value|nil, ...}
--                                                stored bookkeeping or ex differs: replan
local pk = ARGV[1]
local plan = cjson.decode(ARGV[2])
local ent = KEYS[1]
local null = cjson.null

local function list(v)
  if v == nil or v == null then return {} end
  return v
end

-- call a variadic command in chunks so huge argument lists never overflow unpack()
local function chunked(cmd, key, items, first, step)
  local n = #items
  local i = first
  while i <= n do
    local j = math.min(i + step - 1, n)
    redis.call(cmd, key, unpack(items, i, j))
    i = j + 1
  end
end

local rc, ex = list(plan.rc), list(plan.ex)

-- 1. read everything the checks need
local legacy = redis.call('HGET', KEYS[2], pk)
local fields = {'-index-data-'}
for _, p in ipairs(rc) do fields[#fields + 1] = p[1] end
for _, p in ipairs(ex) do fields[#fields + 1] = p[1] end
local vals = redis.call('HMGET', ent, unpack(fields))

-- 2. race check
local raced = {'race'}
for i, p in ipairs(rc) do
  if vals[i + 1] ~= p[2] then raced[#raced + 1] = p[1] end
end
if #raced > 1 then return raced end

-- 3. is the plan built on what is really stored?
local stored = legacy or vals[1]
local isleg = 0
if legacy then isleg = 1 end
local ob = plan.ob
if ob == nil or ob == null then ob = false end
local stale = (stored ~= ob) or (isleg ~= (plan.ol or 0))
local base = 1 + #rc
for i, p in ipairs(ex) do
  local want = p[2]
  if want == null then want = false end
  if vals[base + i] ~= want then stale = true end
end
if stale then
  local out = {'stale', stored, isleg}
  for i, p in ipairs(ex) do
    out[#out + 1] = p[1]
    out[#out + 1] = vals[base + i]
  end
  return out
end

-- 4. unique check
local own = {}
for i, p in ipairs(list(plan.u)) do
  local cur = redis.call('HGET', KEYS[p[1]], p[2])
  if cur and cur ~= pk then return {'unique', i} end
  if not cur then own[#own + 1] = p end
end

-- 5. writes (nothing below can be refused by a check)
if plan.d == 1 then
  redis.call('DEL', ent)
else
  local hs = list(plan.hs)
  if #hs > 0 then chunked('HSET', ent, hs, 1, 1000) end
  local hd = list(plan.hd)
  if #hd > 0 then chunked('HDEL', ent, hd, 1, 1000) end
end
for _, p in ipairs(own) do redis.call('HSET', KEYS[p[1]], p[2], pk) end
for _, p in ipairs(list(plan.ur)) do
  if redis.call('HGET', KEYS[p[1]], p[2]) == pk then redis.call('HDEL', KEYS[p[1]], p[2]) end
end
if isleg == 1 then redis.call('HDEL', KEYS[2], pk) end
for _, r in ipairs(list(plan.rm)) do
  local cmd = 'ZREM'
  if r[2] == 's' then cmd = 'SREM' end
  chunked(cmd, KEYS[r[1]], r, 3, 1000)
end
for _, a in ipairs(list(plan.ad)) do
  local kind = a[2]
  if kind == 's' then
    chunked('SADD', KEYS[a[1]], a, 3, 1000)
  elseif kind == 'z' then
    chunked('ZADD', KEYS[a[1]], a, 3, 1000)
  else
    redis.call('GEOADD', KEYS[a[1]], a[3], a[4], a[5])
  end
end
for _, k in ipairs(list(plan.dk)) do redis.call('DEL', KEYS[k]) end
return {'ok'}
