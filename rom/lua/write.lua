-- write.lua: save and/or delete several entities in one atomic step.
-- Every check of every entity runs before the first write, so a refused call leaves
-- Redis unchanged: a unit of work (session commit, cascading delete) is all or nothing.
--
-- KEYS: every key the call touches; plans refer to them by position (1-based).
-- ARGV[1]: JSON list of entity plans (built by rom/writer.py), each an object:
--   k  : key# of the entity hash <ns>:<pk>
--   l  : key# of the model's legacy (rom < 1.0) bookkeeping hash <ns>::
--   pk : the pk as decimal text
--   d  : 1 to delete the entity, absent to save it
--   ob : the bookkeeping text the client believes is stored (absent: none)
--   ol : 1 when ob is the legacy record
--   rc : [[field, expected], ...] race check; a mismatch refuses the whole call
--   ex : [[field, expected|null], ...] stored values the plan relies on; a mismatch asks
--        for a replan
--   u  : [[key#, value], ...] unique entries the entity must own
--   ur : [[key#, value], ...] unique entries to release when they still point at pk
--   hs : [field, text, ...] fields to set (includes -index-data-)
--   hd : [field, ...] fields to delete
--   rm : [[key#, kind, member, ...], ...] index members to remove (kind "s" set, "z" zset)
--   ad : [[key#, "s", member, ...] | [key#, "z", score, member, ...] |
--         [key#, "g", lon, lat, member], ...] index members to add
--   dk : [key#, ...] extra keys to delete (UnsafeColumn structures)
--   x  : key# of the model's expiry index (zset pk -> unix time), for expiring models:
--        an expired entity counts as deleted (race) and frees its unique values
--   xs : set the expiry to now + xs seconds      xa : set it to the unix time xa
--   xr : 1 to remove the expiry (persist)         xe : 1 to require the entity be expired
-- ARGV[2]: JSON list of reference checks [[key#, min, max, member, ...], ...]: the zset
--   members with min <= score <= max must be exactly these (else: replan)
-- returns: {"ok", due}                  due: entries of the expiry indexes already expired
--        | {"race", n, field, ...}        plan n: stored values differ from rc
--        | {"unique", n, i}               plan n: u[i] is owned by another pk
--        | {"stale", n, bookkeeping|nil, legacy, field, value|nil, ...}
--                                         plan n: stored bookkeeping or ex differs
--        | {"changed", i}                 reference check i failed
local plans = cjson.decode(ARGV[1])
local refs = cjson.decode(ARGV[2] or '[]')
local null = cjson.null

local now = nil
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  return now
end

local function expired(key, member)
  local score = redis.call('ZSCORE', key, member)
  return score and tonumber(score) <= clock()
end

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

-- 1. checks, for every plan, before anything is written
local owns = {}
local legacies = {}
local claims = {}  -- unique entries claimed by the plans checked so far: field -> pk
for n, plan in ipairs(plans) do
  local pk = plan.pk
  local ent = KEYS[plan.k]
  local rc, ex = list(plan.rc), list(plan.ex)
  local legacy = redis.call('HGET', KEYS[plan.l], pk)
  local fields = {'-index-data-'}
  for _, p in ipairs(rc) do fields[#fields + 1] = p[1] end
  for _, p in ipairs(ex) do fields[#fields + 1] = p[1] end
  local vals = redis.call('HMGET', ent, unpack(fields))

  local raced = {'race', n}
  for i, p in ipairs(rc) do
    if vals[i + 1] ~= p[2] then raced[#raced + 1] = p[1] end
  end
  if #raced > 2 then return raced end
  if plan.x and #rc > 0 and expired(KEYS[plan.x], pk) then
    return {'race', n, rc[1][1]}  -- expired: gone, like a deleted entity
  end
  if plan.xe == 1 and not expired(KEYS[plan.x], pk) then
    return {'changed', 0}  -- the sweeper planned on an expiry that was extended
  end

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
    local out = {'stale', n, stored, isleg}
    for i, p in ipairs(ex) do
      out[#out + 1] = p[1]
      out[#out + 1] = vals[base + i]
    end
    return out
  end
  legacies[n] = isleg

  local own = {}
  for i, p in ipairs(list(plan.u)) do
    local claim = KEYS[p[1]] .. '\0' .. p[2]
    if claims[claim] and claims[claim] ~= pk then return {'unique', n, i} end
    claims[claim] = pk
    local cur = redis.call('HGET', KEYS[p[1]], p[2])
    if cur and cur ~= pk then
      -- owned by another entity of this same call that gives it up, or by an expired
      -- entity: allowed
      local freed = plan.x and expired(KEYS[plan.x], cur)
      for m, other in ipairs(plans) do
        if m ~= n and other.pk == cur and KEYS[other.k] ~= ent then
          for _, r in ipairs(list(other.ur)) do
            if KEYS[r[1]] == KEYS[p[1]] and r[2] == p[2] then freed = true end
          end
        end
      end
      if not freed then return {'unique', n, i} end
    end
    if cur ~= pk then own[#own + 1] = p end
  end
  owns[n] = own
end
for i, r in ipairs(refs) do
  local members = redis.call('ZRANGEBYSCORE', KEYS[r[1]], r[2], r[3])
  if #members ~= #r - 3 then return {'changed', i} end
  local want = {}
  for j = 4, #r do want[r[j]] = true end
  for _, m in ipairs(members) do
    if not want[m] then return {'changed', i} end
  end
end

-- 2. writes (nothing below can be refused by a check)
for n, plan in ipairs(plans) do
  local ent = KEYS[plan.k]
  if plan.d == 1 then
    redis.call('DEL', ent)
  else
    local hs = list(plan.hs)
    if #hs > 0 then chunked('HSET', ent, hs, 1, 1000) end
    local hd = list(plan.hd)
    if #hd > 0 then chunked('HDEL', ent, hd, 1, 1000) end
  end
end
for n, plan in ipairs(plans) do
  local pk = plan.pk
  for _, p in ipairs(list(plan.ur)) do
    if redis.call('HGET', KEYS[p[1]], p[2]) == pk then redis.call('HDEL', KEYS[p[1]], p[2]) end
  end
end
for n, plan in ipairs(plans) do
  local pk = plan.pk
  for _, p in ipairs(owns[n]) do redis.call('HSET', KEYS[p[1]], p[2], pk) end
  if legacies[n] == 1 then redis.call('HDEL', KEYS[plan.l], pk) end
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
  if plan.x then
    local xkey = KEYS[plan.x]
    if plan.d == 1 or plan.xr == 1 then
      redis.call('ZREM', xkey, pk)
    elseif plan.xs then
      redis.call('ZADD', xkey, string.format('%.6f', clock() + tonumber(plan.xs)), pk)
    elseif plan.xa then
      redis.call('ZADD', xkey, plan.xa, pk)
    end
  end
end
local due = 0
local counted = {}
for _, plan in ipairs(plans) do
  if plan.x and not counted[plan.x] then
    counted[plan.x] = true
    due = due + redis.call('ZCOUNT', KEYS[plan.x], '-inf', clock())
  end
end
return {'ok', due}
