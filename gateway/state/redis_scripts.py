"""The Lua scripts behind RedisState: each request-path call is one script, one round trip.

Scripts read the time from Redis (`TIME`), so every replica sees the same windows whatever
its own clock says. Money is in integer units (units.py).
"""

from __future__ import annotations

NOW_MS = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Window counters, checked first and added only if all fit. Expects `n` (counters: KEYS[1..n],
# ARGV from `first`: amount, limit, window_ms each); leaves `ok` and the per-counter state.
_WINDOWS_CHECK = """
local counts, names, resets = {}, {}, {}
local ok = true
for i = 1, n do
  local amount = tonumber(ARGV[first + (i - 1) * 3])
  local limit = tonumber(ARGV[first + 1 + (i - 1) * 3])
  local window = tonumber(ARGV[first + 2 + (i - 1) * 3])
  local index = math.floor(now_ms / window)
  names[i] = KEYS[i] .. ':' .. window .. ':' .. index
  counts[i] = tonumber(redis.call('GET', names[i]) or '0')
  resets[i] = (index + 1) * window - now_ms
  if counts[i] + amount > limit then ok = false end
end
"""

# Adds every counter when `commit`; returns {ok, then remaining and reset_ms per counter}.
_WINDOWS_COMMIT = """
local out = {ok and 1 or 0}
for i = 1, n do
  local amount = tonumber(ARGV[first + (i - 1) * 3])
  local limit = tonumber(ARGV[first + 1 + (i - 1) * 3])
  local remaining = 0
  if ok then
    if commit then
      redis.call('INCRBY', names[i], amount)
      redis.call('PEXPIRE', names[i], resets[i] + 1000)
    end
    remaining = math.max(0, limit - counts[i] - amount)
  end
  table.insert(out, remaining)
  table.insert(out, resets[i])
end
"""

# KEYS: counter keys. ARGV: n, then per counter (amount, limit, window_ms).
# All or nothing: every counter is checked first; all are added only if all fit.
HIT_MANY = (
    NOW_MS + "local n, first, commit = tonumber(ARGV[1]), 2, true\n" + _WINDOWS_CHECK + _WINDOWS_COMMIT + "return out\n"
)

# Window counters and concurrency slots in one round trip (the rate-limit stage's admission).
# KEYS: n counter keys, then m slot zsets. ARGV: n, m, member, per counter (amount, limit,
# window_ms), per slot (limit, ttl_ms). Nothing is added or taken unless every counter fits and
# every slot is free. Returns HIT_MANY's answer plus the 1-based index of the first full slot (0: none).
ADMIT = (
    NOW_MS
    + "local n, m, member, first = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], 4\n"
    + _WINDOWS_CHECK
    + """
local full = 0
if ok then
  for j = 1, m do
    local key = KEYS[n + j]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
    if full == 0 and redis.call('ZCARD', key) >= tonumber(ARGV[first + n * 3 + (j - 1) * 2]) then full = j end
  end
end
local commit = full == 0
"""
    + _WINDOWS_COMMIT
    + """
if ok and commit then
  for j = 1, m do
    local ttl = tonumber(ARGV[first + n * 3 + (j - 1) * 2 + 1])
    redis.call('ZADD', KEYS[n + j], now_ms + ttl, member .. ':' .. j)
    redis.call('PEXPIRE', KEYS[n + j], ttl + 1000)
  end
end
table.insert(out, full)
return out
"""
)

# Corrects one window counter (the current window); a local function both scripts below use.
_ADJUST_FN = """
local function adjust(base, delta, window)
  local index = math.floor(now_ms / window)
  local name = base .. ':' .. window .. ':' .. index
  local v = redis.call('INCRBY', name, delta)
  if v < 0 then redis.call('SET', name, 0) end
  redis.call('PEXPIRE', name, (index + 1) * window - now_ms + 1000)
end
"""

# KEYS[1] counter base. ARGV: delta, window_ms.
ADJUST = NOW_MS + _ADJUST_FN + "adjust(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))\nreturn 0\n"

# After a request, in one round trip. KEYS: m slot zsets, then counter keys. ARGV: m, delta, window_ms.
# Frees one slot in each zset (slots are fungible) and adjusts each counter by delta.
RELEASE = (
    NOW_MS
    + _ADJUST_FN
    + """
local m = tonumber(ARGV[1])
for i = 1, m do redis.call('ZPOPMIN', KEYS[i]) end
for i = m + 1, #KEYS do adjust(KEYS[i], tonumber(ARGV[2]), tonumber(ARGV[3])) end
return 0
"""
)

# KEYS[1] slots zset. ARGV: limit, ttl_ms, member.
ACQUIRE_SLOT = (
    NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
return 1
"""
)

# Reclaim reservations whose holder never settled (a replica died mid-request).
_RECLAIM = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now_ms)
for _, token in ipairs(stale) do
  local held = redis.call('HGET', KEYS[2], token)
  if held then redis.call('DECRBY', KEYS[1], held) end
  redis.call('HDEL', KEYS[2], token)
  redis.call('ZREM', KEYS[3], token)
end
"""

# KEYS: total, reservations hash, reservation expiries zset.
# ARGV: amount, limit, key ttl_ms, token, reservation ttl_ms. Returns {1|0, total}.
RESERVE = (
    NOW_MS
    + _RECLAIM
    + """
local total = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if total + amount > tonumber(ARGV[2]) then return {0, total} end
total = redis.call('INCRBY', KEYS[1], amount)
redis.call('HSET', KEYS[2], ARGV[4], amount)
redis.call('ZADD', KEYS[3], now_ms + tonumber(ARGV[5]), ARGV[4])
for i = 1, 3 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
return {1, total}
"""
)

# KEYS: as RESERVE. ARGV: token, actual. Returns the new total.
SETTLE = """
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('INCRBY', KEYS[1], tonumber(ARGV[2]) - held)
"""

# KEYS: as RESERVE. ARGV: settled amount from the store, ttl_ms. In-flight reservations stay counted.
SET_SPENT = (
    NOW_MS
    + _RECLAIM
    + """
local held = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do held = held + tonumber(v) end
redis.call('SET', KEYS[1], tonumber(ARGV[1]) + held, 'PX', ARGV[2])
return 0
"""
)
