"""The Lua scripts behind RedisState: each request-path call is one script, one round trip.

Scripts read the time from Redis (`TIME`), so every replica sees the same windows whatever
its own clock says. Money is in integer units (units.py).
"""

from __future__ import annotations

NOW_MS = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: counter keys. ARGV: n, then per counter (amount, limit, window_ms).
# All or nothing: every counter is checked first; all are added only if all fit.
HIT_MANY = (
    NOW_MS
    + """
local n = tonumber(ARGV[1])
local counts, names, resets = {}, {}, {}
local ok = true
for i = 1, n do
  local amount = tonumber(ARGV[2 + (i - 1) * 3])
  local limit = tonumber(ARGV[3 + (i - 1) * 3])
  local window = tonumber(ARGV[4 + (i - 1) * 3])
  local index = math.floor(now_ms / window)
  names[i] = KEYS[i] .. ':' .. window .. ':' .. index
  counts[i] = tonumber(redis.call('GET', names[i]) or '0')
  resets[i] = (index + 1) * window - now_ms
  if counts[i] + amount > limit then ok = false end
end
local out = {ok and 1 or 0}
for i = 1, n do
  local amount = tonumber(ARGV[2 + (i - 1) * 3])
  local limit = tonumber(ARGV[3 + (i - 1) * 3])
  local remaining = 0
  if ok then
    redis.call('INCRBY', names[i], amount)
    redis.call('PEXPIRE', names[i], resets[i] + 1000)
    remaining = math.max(0, limit - counts[i] - amount)
  end
  table.insert(out, remaining)
  table.insert(out, resets[i])
end
return out
"""
)

# KEYS[1] counter base. ARGV: delta, window_ms.
ADJUST = (
    NOW_MS
    + """
local window = tonumber(ARGV[2])
local index = math.floor(now_ms / window)
local name = KEYS[1] .. ':' .. window .. ':' .. index
local v = redis.call('INCRBY', name, ARGV[1])
if v < 0 then redis.call('SET', name, 0) end
redis.call('PEXPIRE', name, (index + 1) * window - now_ms + 1000)
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
