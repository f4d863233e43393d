-- transfer.lua: move an amount between two entities and mark a transaction, atomically
-- (Model.transfer, STORAGE.md §9).  All checks run before the first write.
--
-- KEYS[1]: source entity hash <ns>:<pk>
-- KEYS[2]: destination entity hash
-- KEYS[3]: transaction entity hash
-- KEYS[4], KEYS[5], KEYS[6]: legacy bookkeeping hashes <ns>:: of the three models
-- KEYS[7..]: index keys named by position in ARGV[1] (sc, tr, ta)
-- ARGV[1]: JSON object
--   a   : the balance column            t  : the transaction column
--   v   : the amount (decimal text, > 0) dp : decimal places to floor balances to (0: none)
--   int : 1 for Integer columns (exact integer arithmetic below 2^53, integer text)
--   dot : [0|1, 0|1] 1 when that entity's column is a Float (its text gets a '.0')
--   txt : text stored in the transaction column (e.g. "1")
--   pk  : [pk1, pk2, pk3]
--   sc  : [key#|0, key#|0, key#|0] score index to update with the new value of a (entities
--         1, 2) and of t (entity 3); the name is recorded in -index-data- slot 2
--   tr  : [] | [key#, token] token set of entity 3 to leave (boolean index "t:False")
--   ta  : [] | [key#, token] token set of entity 3 to join ("t:True")
-- returns: {1, ""}
--        | {0, "already sent"}        the transaction column is already > 0
--        | {0, "not enough credit"}   the source holds less than the amount
--        | {0, "deleted", n}          entity n does not exist
--        | {0, "not a number", n}     entity n holds a non-numeric balance
--        | {0, "out of range"}        a balance is not exactly representable
local spec = cjson.decode(ARGV[1])
local attr, tattr = spec.a, spec.t
local EXACT = 9007199254740992

local function num(text)
  if not text then return 0 end
  if text == 'True' then return 1 end   -- rom 1.x stored bools in Integer columns so
  if text == 'False' then return 0 end
  return tonumber(text)
end

local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
end

-- shortest text that reads back as the same double (Python's repr picks the same digits)
local function float_text(x, dot)
  if x == 0 then x = 0 end
  local s
  for p = 15, 17 do
    s = string.format('%.' .. p .. 'g', x)
    if tonumber(s) == x then break end
  end
  if dot == 1 and not string.find(s, '[%.eEn]') then s = s .. '.0' end
  return s
end

for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i]) == 0 then return {0, 'deleted', i} end
end
local sent = redis.call('HGET', KEYS[3], tattr)
local sent_n = num(sent) or 0
if sent_n > 0 then return {0, 'already sent'} end

local amount = tonumber(spec.v)
local have = num(redis.call('HGET', KEYS[1], attr))
if have == nil then return {0, 'not a number', 1} end
local old2 = redis.call('HGET', KEYS[2], attr)
local other = num(old2)
if other == nil then return {0, 'not a number', 2} end

local new1, new2 = have - amount, other + amount
local texts = {}
if spec.int == 1 then
  for _, x in ipairs({have, other, new1, new2}) do
    -- any integer text of magnitude >= 2^53 reads as a double >= 2^53: never rounded here
    if x ~= math.floor(x) or x >= EXACT or x <= -EXACT then return {0, 'out of range'} end
  end
  if have < amount then return {0, 'not enough credit'} end
  if new1 == 0 then new1 = 0 end
  texts = {string.format('%.0f', new1), string.format('%.0f', new2)}
else
  if have < amount then return {0, 'not enough credit'} end
  if spec.dp > 0 then
    local m = 10 ^ spec.dp
    new1 = math.floor(new1 * m) / m
    new2 = math.floor(new2 * m) / m
  end
  if not (finite(new1) and finite(new2)) then return {0, 'out of range'} end
  texts = {float_text(new1, spec.dot[1]), float_text(new2, spec.dot[2])}
end

-- record an index name in an entity's bookkeeping (legacy <ns>:: record when present)
local function record(i, slot, add, remove)
  local pk = spec.pk[i]
  local legacy = redis.call('HGET', KEYS[3 + i], pk)
  local text = legacy or redis.call('HGET', KEYS[i], '-index-data-')
  local data = {{}, {}, {}, {}, {}}
  if text then
    local ok, decoded = pcall(cjson.decode, text)
    if not ok or type(decoded) ~= 'table' then return end
    data = decoded
  end
  for s = 1, math.max(slot, #data) do
    if type(data[s]) ~= 'table' then data[s] = {} end
  end
  local list, out, found, changed = data[slot], {}, false, false
  for _, item in ipairs(list) do
    if item == remove then
      changed = true
    else
      if item == add then found = true end
      out[#out + 1] = item
    end
  end
  if add and not found then
    out[#out + 1] = add
    changed = true
  end
  if not changed then return end
  data[slot] = out
  local encoded = cjson.encode(data)
  if legacy then
    redis.call('HSET', KEYS[3 + i], pk, encoded)
  else
    redis.call('HSET', KEYS[i], '-index-data-', encoded)
  end
end

redis.call('HSET', KEYS[1], attr, texts[1])
redis.call('HSET', KEYS[2], attr, texts[2])
redis.call('HSET', KEYS[3], tattr, spec.txt)
for i = 1, 2 do
  if spec.sc[i] > 0 then
    redis.call('ZADD', KEYS[spec.sc[i]], texts[i], spec.pk[i])
    record(i, 2, attr, nil)
  end
end
if spec.sc[3] > 0 then
  redis.call('ZADD', KEYS[spec.sc[3]], spec.txt, spec.pk[3])
  record(3, 2, tattr, nil)
end
if #spec.ta > 0 then
  redis.call('SREM', KEYS[spec.tr[1]], spec.pk[3])
  redis.call('SADD', KEYS[spec.ta[1]], spec.pk[3])
  record(3, 1, spec.ta[2], spec.tr[2])
end
return {1, ''}
