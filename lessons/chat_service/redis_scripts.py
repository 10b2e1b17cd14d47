"""The Lua scripts of the Redis store (redis_store.py), one per operation that must be atomic.

A script runs inside Redis as one step: a check and the update it guards cannot interleave
with another worker's, and several keys of one generation change together. Every key a script
names is passed in KEYS (never built inside the script), so that Redis Cluster can route it;
the keys of one call share a hash tag, and so a slot. Time is Redis' own clock (TIME), the same
for every worker.
"""

from __future__ import annotations

NOW = (
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"
)

# KEYS: the index of generations. ARGV: max, id, expiry (ms from now). 1 when admitted.
ADMIT = f"""{NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
return 1
"""

# KEYS: meta, events. ARGV: lifetime ms, then field/value pairs of the meta hash.
CREATE = f"""{NOW}
local pairs = {{'readers', 0, 'unread_since', now}}
for i = 2, #ARGV do pairs[#pairs + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(pairs))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
-- The stream is created with a first entry of its own: a replay from the start that does not
-- find it knows the beginning was trimmed away.
redis.call('XADD', KEYS[2], '*', 'created', '1')
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"""

# KEYS: events, meta, lease. ARGV: trim length, abandon ms, whether these frames end the
# generation (1/0), frames...
# Each append is also the producer's heartbeat (its lease is extended: writing proves it is
# alive) and its check for a stop request or abandonment, so that both take effect at the next
# event even while tokens flow faster than the producer's own periodic checks.
# -> {verdict, stop requested, ms unread, the frames' entry ids...}: verdict 0 to go on, 1 when
# a stop was requested, 2 when nobody has read it for too long. The ids let the producer's own
# worker hand the frames to its readers without reading them back.
APPEND = f"""{NOW}
local ids = {{}}
for i = 4, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'f', ARGV[i])
end
local s = redis.call('HMGET', KEYS[2], 'stop', 'readers', 'unread_since', 'lease_ms')
if s[4] then redis.call('PEXPIRE', KEYS[3], s[4], 'XX') end
local stop = s[1] == '1' and 1 or 0
local unread = 0
if s[2] and tonumber(s[2]) <= 0 then unread = now - tonumber(s[3]) end
local verdict = 0
if ARGV[3] ~= '1' then
  if stop == 1 then verdict = 1 elseif unread > tonumber(ARGV[2]) then verdict = 2 end
end
local reply = {{verdict, stop, unread}}
for _, id in ipairs(ids) do reply[#reply + 1] = id end
return reply
"""

# KEYS: meta, events, lease. ARGV: retain ms.
FINISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'end', '1')
redis.call('HSET', KEYS[1], 'finished', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return 1
"""

# A producer is alive while its lease is held. A generation no producer ever claimed (a test's,
# say) counts as alive: only a lease that ran out means its worker is gone.
ALIVE = """
local function ALIVE(lease, meta)
  if redis.call('EXISTS', lease) == 1 then return 1 end
  if redis.call('HGET', meta, 'finished') == '1' then return 1 end
  return redis.call('HEXISTS', meta, 'producer') == 0 and 1 or 0
end
"""

# KEYS: events, meta, lease. ARGV: the reader's last id, or '' for the start.
# -> {exists, lease held, finished, entries}; {-1} when the id is not an entry of this stream.
READ = (
    ALIVE
    + """
local entries
if ARGV[1] ~= '' then
  if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return {-1} end
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+')
else
  entries = redis.call('XRANGE', KEYS[1], '-', '+')
end
local finished = redis.call('HGET', KEYS[2], 'finished') == '1' and 1 or 0
return {redis.call('EXISTS', KEYS[2]), ALIVE(KEYS[3], KEYS[2]), finished, entries}
"""
)

# KEYS: meta. ARGV: +1 or -1.
READERS = f"""{NOW}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'readers', ARGV[1])
if n <= 0 then redis.call('HSET', KEYS[1], 'readers', 0, 'unread_since', now) end
return n
"""

# KEYS: meta. -> {stop requested, ms since the last reader left (0 while someone reads)}.
STATUS = f"""{NOW}
local s = redis.call('HMGET', KEYS[1], 'stop', 'readers', 'unread_since')
if not s[2] then return {{0, 0}} end
local unread = 0
if tonumber(s[2]) <= 0 then unread = now - tonumber(s[3]) end
return {{s[1] == '1' and 1 or 0, unread}}
"""

STOP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], 'stop', 1)
"""

# KEYS: lease, meta. ARGV: producer, ms. Taken when free or already ours.
CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], 'producer', ARGV[1], 'lease_ms', ARGV[2])
return 1
"""

# KEYS: lease, meta.
IS_ALIVE = ALIVE + "return ALIVE(KEYS[1], KEYS[2])"

RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
