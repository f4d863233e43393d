-- query.lua: evaluate one query in one atomic step and answer a count, a list of ids, a
-- cached result key or a page of entity data (API.md §6, STORAGE.md §8).
--
-- KEYS[1]: T, the temporary result zset <prefix>:<uuid4>. Deleted before returning, except
--          in "cache" mode and when a page is kept for more pages (TTL "keep")
-- KEYS[2]: U, a scratch zset <prefix>:<uuid4>, always deleted before returning
-- KEYS[3..]: index keys, referred to by position (k) from the plan
-- ARGV[1]: JSON plan
--   f: filter steps; evaluated smallest estimated size first, each REPLACES the score:
--      {t="s", k}                      token set (score 0)
--      {t="u", k=[k, ...]}             any of several token sets (score 0)
--      {t="r", k, lo, hi}              inclusive score range, "-inf"/"+inf" open (score = value)
--      {t="p", k, lo, hi, s}           prefix-index entries starting with the bytes s (score 0)
--      {t="l", k, lo, hi, s}           prefix-index entries matching the Lua pattern s (score 0)
--                                      (p/l: lo inclusive, hi exclusive score bounds)
--      {t="g", k, lon, lat, r, u, n}   geo radius search, n nearest if given (score = distance)
--   o: {k, d=1|-1}                     order by score index k, ascending/descending (wins)
--   x: {k, now}                        expiry zset pk -> unix time; pks with time <= now are
--                                      excluded from every answer (now absent: server TIME)
--   p: entity key prefix "<prefix>:"   (entity hash = p .. id)
--   m: "count" -> number of matches
--      "ids"   -> ids at ranks off .. off+n-1 (n = -1: to the end)
--      "cache" -> keep T (ids -> scores) with TTL ttl; returns the number of matches
--      "page"  -> evaluate, then read a page
--      "next"  -> read a further page of an existing T (no filters)
--   page fields: off (first rank), stop (rank limit, -1: none), w (entities wanted),
--      keep (TTL to keep T while more pages remain, 0: never), c (optional fields to HMGET
--      instead of HGETALL; c[1] is the pk field, a missing pk means a missing entity)
-- returns: count/cache: integer; ids: list of ids;
--   page/next: {next_rank, total, kept, id, data, id, data, ...}; data is the flat HGETALL
--   list or the HMGET list; entities whose hash is gone or that expired are skipped
local plan = cjson.decode(ARGV[1])
local null = cjson.null
local T, U = KEYS[1], KEYS[2]
local mode = plan.m
local prefix = plan.p or ''

local function opt(v)
  if v == null then return nil end
  return v
end

local function ktype(key)
  return redis.call('TYPE', key)['ok']
end

local function excl(hi)
  if hi == '+inf' then return hi end
  return '(' .. hi
end

-- variadic writes in chunks, so huge lists never overflow unpack()
local function zadd0(key, ids)
  local args = {}
  for _, id in ipairs(ids) do
    args[#args + 1] = 0
    args[#args + 1] = id
    if #args >= 1000 then
      redis.call('ZADD', key, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('ZADD', key, unpack(args)) end
end

local function zrem(key, ids)
  local i = 1
  while i <= #ids do
    local j = math.min(i + 499, #ids)
    redis.call('ZREM', key, unpack(ids, i, j))
    i = j + 1
  end
end

-- expiry index (optional)
local xkey, now, nowtext
local x = opt(plan.x)
if x then
  xkey = KEYS[x.k]
  nowtext = opt(x.now)
  if not nowtext then
    local t = redis.call('TIME')
    nowtext = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  end
  now = tonumber(nowtext)
  if ktype(xkey) ~= 'zset' then xkey = nil end
end

local function expired(id)
  if not xkey then return false end
  local s = redis.call('ZSCORE', xkey, id)
  return s and tonumber(s) <= now
end

local fields = opt(plan.c)
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

-- filter evaluation --------------------------------------------------------------------
local steps = opt(plan.f) or {}
local order = opt(plan.o)
local okey
if order then okey = KEYS[order.k] end

local function estimate(s)
  if s.t == 'u' then
    local total, keys = 0, {}
    for _, k in ipairs(s.k) do
      local key = KEYS[k]
      local ty = ktype(key)
      if ty == 'set' then
        total = total + redis.call('SCARD', key)
        keys[#keys + 1] = key
      elseif ty == 'zset' then
        total = total + redis.call('ZCARD', key)
        keys[#keys + 1] = key
      end
    end
    s.keys = keys
    return total
  end
  local key = KEYS[s.k]
  local ty = ktype(key)
  if s.t == 's' then
    if ty == 'set' then return redis.call('SCARD', key) end
    if ty == 'zset' then return redis.call('ZCARD', key) end
    return 0
  end
  if ty ~= 'zset' then return 0 end
  if s.t == 'r' then return redis.call('ZCOUNT', key, s.lo, s.hi) end
  if s.t == 'p' or s.t == 'l' then return redis.call('ZCOUNT', key, s.lo, excl(s.hi)) end
  -- geo
  local n = redis.call('ZCARD', key)
  if s.n and s.n > 0 and s.n < n then n = s.n end
  return n
end

-- pks of the prefix-index entries (entry\0pk) in the score range that match
local function scan(s)
  local key = KEYS[s.k]
  local r = redis.call('ZCOUNT', key, '-inf', '(' .. s.lo)
  local last = redis.call('ZCOUNT', key, '-inf', excl(s.hi)) - 1
  local plain = s.t == 'p'
  local want = s.s
  local wl = #want
  local ids, seen = {}, {}
  while r <= last do
    local stop = math.min(r + 999, last)
    for _, m in ipairs(redis.call('ZRANGE', key, r, stop)) do
      local entry, pk = string.match(m, '^(.*)%z(%d+)$')
      if entry then
        local ok
        if plain then
          ok = string.sub(entry, 1, wl) == want
        else
          ok = string.find(entry, want) ~= nil
        end
        if ok and not seen[pk] then
          seen[pk] = true
          ids[#ids + 1] = pk
        end
      end
    end
    r = stop + 1
  end
  return ids
end

-- geo radius search into dst; members whose entity hash is gone (rom 1.x never removed
-- geo entries) are purged from the result and from the geo index
local function geo(s, dst)
  local key = KEYS[s.k]
  while true do
    local args = {'GEOSEARCHSTORE', dst, key, 'FROMLONLAT', s.lon, s.lat, 'BYRADIUS', s.r, s.u}
    if s.n and s.n > 0 then
      args[#args + 1] = 'COUNT'
      args[#args + 1] = s.n
      args[#args + 1] = 'ASC'
    end
    args[#args + 1] = 'STOREDIST'
    redis.call(unpack(args))
    local stale = {}
    for _, id in ipairs(redis.call('ZRANGE', dst, 0, -1)) do
      if redis.call('EXISTS', prefix .. id) == 0 then stale[#stale + 1] = id end
    end
    if #stale == 0 then return end
    zrem(dst, stale)
    zrem(key, stale)
    if not (s.n and s.n > 0) then return end
  end
end

local function apply(s, first)
  local key = KEYS[s.k]
  if s.t == 's' then
    if first then
      redis.call('ZUNIONSTORE', T, 1, key, 'WEIGHTS', 0)
    else
      redis.call('ZINTERSTORE', T, 2, T, key, 'WEIGHTS', 0, 0)
    end
  elseif s.t == 'u' then
    local dst = U
    if first then dst = T end
    local args = {'ZUNIONSTORE', dst, #s.keys}
    for _, k in ipairs(s.keys) do args[#args + 1] = k end
    args[#args + 1] = 'WEIGHTS'
    for _ = 1, #s.keys do args[#args + 1] = 0 end
    redis.call(unpack(args))
    if not first then
      redis.call('ZINTERSTORE', T, 2, T, U, 'WEIGHTS', 0, 0)
      redis.call('DEL', U)
    end
  elseif s.t == 'r' then
    if first then
      redis.call('ZRANGESTORE', T, key, s.lo, s.hi, 'BYSCORE')
    else
      redis.call('ZINTERSTORE', T, 2, T, key, 'WEIGHTS', 0, 1)
      if s.lo ~= '-inf' then redis.call('ZREMRANGEBYSCORE', T, '-inf', '(' .. s.lo) end
      if s.hi ~= '+inf' then redis.call('ZREMRANGEBYSCORE', T, '(' .. s.hi, '+inf') end
    end
  elseif s.t == 'p' or s.t == 'l' then
    local ids = scan(s)
    if first then
      zadd0(T, ids)
    elseif #ids == 0 then
      redis.call('DEL', T)
    else
      zadd0(U, ids)
      redis.call('ZINTERSTORE', T, 2, T, U, 'WEIGHTS', 0, 0)
      redis.call('DEL', U)
    end
  else
    if first then
      geo(s, T)
    else
      geo(s, U)
      redis.call('ZINTERSTORE', T, 2, T, U, 'WEIGHTS', 0, 1)
      redis.call('DEL', U)
    end
  end
end

-- builds T; false when the result is empty
local function build()
  for i, s in ipairs(steps) do
    s.i = i
    s.e = estimate(s)
    if s.e == 0 then return false end
  end
  if order and ktype(okey) ~= 'zset' then return false end
  table.sort(steps, function(a, b)
    if a.e ~= b.e then return a.e < b.e end
    return a.i < b.i
  end)
  local first = true
  for _, s in ipairs(steps) do
    apply(s, first)
    first = false
    if redis.call('EXISTS', T) == 0 then return false end
  end
  if order then
    if first then
      redis.call('ZUNIONSTORE', T, 1, okey, 'WEIGHTS', order.d)
    else
      redis.call('ZINTERSTORE', T, 2, T, okey, 'WEIGHTS', 0, order.d)
    end
  end
  if xkey then
    local total = redis.call('ZCARD', T)
    if redis.call('ZCOUNT', xkey, '-inf', nowtext) <= total then
      zrem(T, redis.call('ZRANGEBYSCORE', xkey, '-inf', nowtext))
    else
      local gone = {}
      for _, id in ipairs(redis.call('ZRANGE', T, 0, -1)) do
        if expired(id) then gone[#gone + 1] = id end
      end
      zrem(T, gone)
    end
  end
  return redis.call('EXISTS', T) == 1
end

local function cleanup(keep_t)
  if keep_t then
    redis.call('DEL', U)
  else
    redis.call('DEL', T, U)
  end
end

-- answers ---------------------------------------------------------------------------------
if mode == 'count' then
  if not xkey and not order and #steps == 1 and (steps[1].t == 's' or steps[1].t == 'r') then
    return estimate(steps[1])
  end
  if not xkey and order and #steps == 0 then
    if ktype(okey) ~= 'zset' then return 0 end
    return redis.call('ZCARD', okey)
  end
  if not xkey and not order and #steps == 1 and (steps[1].t == 'p' or steps[1].t == 'l') then
    if estimate(steps[1]) == 0 then return 0 end
    return #scan(steps[1])
  end
  local n = 0
  if (#steps > 0 or order) and build() then n = redis.call('ZCARD', T) end
  cleanup(false)
  return n
end

if mode == 'ids' then
  local ids = {}
  if (#steps > 0 or order) and build() and plan.n ~= 0 then
    local last = -1
    if plan.n > 0 then last = plan.off + plan.n - 1 end
    ids = redis.call('ZRANGE', T, plan.off, last)
  end
  cleanup(false)
  return ids
end

if mode == 'cache' then
  local n = 0
  if (#steps > 0 or order) and build() then
    n = redis.call('ZCARD', T)
    redis.call('EXPIRE', T, plan.ttl)
  end
  cleanup(true)
  return n
end

-- page / next
local src = T
local rng = nil  -- a lone range filter read straight from its index
local tok = nil  -- a lone token filter read straight from its set (pk text order)
if mode == 'page' then
  if #steps == 0 and order and order.d == 1 and not xkey then
    -- ascending order only: read the index itself (no copy unless more pages follow)
    if ktype(okey) ~= 'zset' then
      cleanup(false)
      return {plan.off, 0, 0}
    end
    src = okey
  elseif #steps == 1 and steps[1].t == 'r' and not order and not xkey then
    -- one range: page through the index by score (no copy unless more pages follow)
    rng = steps[1]
    src = KEYS[rng.k]
    if ktype(src) ~= 'zset' then
      cleanup(false)
      return {plan.off, 0, 0}
    end
  elseif #steps == 1 and steps[1].t == 's' and not order and not xkey then
    tok = steps[1]
    src = KEYS[tok.k]
    if ktype(src) ~= 'set' then
      cleanup(false)
      return {plan.off, 0, 0}
    end
  elseif not ((#steps > 0 or order) and build()) then
    cleanup(false)
    return {plan.off, 0, 0}
  end
end

local total
if rng then
  total = redis.call('ZCOUNT', src, rng.lo, rng.hi)
elseif tok then
  total = redis.call('SCARD', src)
else
  total = redis.call('ZCARD', src)
end
local stop = plan.stop
if stop < 0 or stop > total then stop = total end
local want = plan.w
local out = {0, total, 0}
local found = 0
local r = plan.off
while found < want and r < stop do
  local last = math.min(stop - 1, r + math.max(want - found, 1) - 1)
  local ids
  if rng then
    ids = redis.call('ZRANGE', src, rng.lo, rng.hi, 'BYSCORE', 'LIMIT', r, last - r + 1)
  elseif tok then
    ids = redis.call('SORT', src, 'ALPHA', 'LIMIT', r, last - r + 1)
  else
    ids = redis.call('ZRANGE', src, r, last)
  end
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    r = r + 1
    if not expired(id) then
      local data = fetch(id)
      if data then
        out[#out + 1] = id
        out[#out + 1] = data
        found = found + 1
        if found >= want then break end
      end
    end
  end
end
out[1] = r
if plan.keep > 0 and r < stop then
  if rng then
    redis.call('ZRANGESTORE', T, src, rng.lo, rng.hi, 'BYSCORE')
  elseif tok then
    redis.call('ZUNIONSTORE', T, 1, src, 'WEIGHTS', 0)
  elseif src ~= T then
    redis.call('ZUNIONSTORE', T, 1, src)
  end
  redis.call('EXPIRE', T, plan.keep)
  out[3] = 1
  cleanup(true)
else
  cleanup(false)
end
return out
