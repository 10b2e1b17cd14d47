"""Per-client budgets in Redis: one client's limits hold across every worker.

With budgets in each worker's memory, a client with a limit of 4 streams gets 4 per worker,
and its token budget resets when it lands on a fresh worker. Here the counts live in Redis and
`admit` is one Lua script: the check and the update happen in Redis in one step, so two workers
admitting requests of the same client at the same moment cannot both pass a check that only one
of them should (the in-memory version gets the same guarantee by not awaiting between them).

Each admitted stream holds a lease with an expiry, not a bare counter: a worker killed with
streams open would otherwise leave the client's count up for ever. A lease that was never
released expires after the longest a stream can last, and its reservation with it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis

from lessons.relay_core.budgets import BudgetSettings, Lease, Refusal
from lessons.relay_core.errors import ErrorCode

# KEYS: state hash, leases zset, reservations hash.
# ARGV: burst, refill per ms, max streams, tokens per window, window ms, reserve, lease id, lease ms
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst, rate, max_streams = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local per_window, window_ms, reserve = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local lease_id, lease_ms = ARGV[7], tonumber(ARGV[8])
-- Leases of streams whose worker died: expired, with their reservations.
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
local s = redis.call('HMGET', KEYS[1], 'bucket', 'bucket_at', 'window_start', 'used')
local bucket = tonumber(s[1]) or burst
local bucket_at = tonumber(s[2]) or now
local window_start = tonumber(s[3]) or now
local used = tonumber(s[4]) or 0
if now - window_start >= window_ms then window_start, used = now, 0 end
bucket = math.min(burst, bucket + (now - bucket_at) * rate)
local function save()
  redis.call('HSET', KEYS[1], 'bucket', tostring(bucket), 'bucket_at', now,
             'window_start', window_start, 'used', used)
  redis.call('PEXPIRE', KEYS[1], window_ms + lease_ms)
end
if bucket < 1 then
  save()
  return {'client_rate_limited', math.max(math.ceil((1 - bucket) / rate / 1000), 1)}
end
if redis.call('ZCARD', KEYS[2]) >= max_streams then
  save()
  return {'too_many_streams', 1}
end
local reserved = 0
for _, v in ipairs(redis.call('HVALS', KEYS[3])) do reserved = reserved + tonumber(v) end
if used + reserved + reserve > per_window then
  save()
  return {'token_budget_exhausted', math.max(math.ceil((window_start + window_ms - now) / 1000), 1)}
end
bucket = bucket - 1
save()
redis.call('ZADD', KEYS[2], now + lease_ms, lease_id)
redis.call('HSET', KEYS[3], lease_id, reserve)
redis.call('PEXPIRE', KEYS[2], lease_ms)
redis.call('PEXPIRE', KEYS[3], lease_ms)
return {'ok', 0}
"""

# KEYS: state hash, leases zset, reservations hash. ARGV: lease id, used tokens.
_RELEASE = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
-- Charged even when the lease had expired: the tokens were spent.
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'used', ARGV[2])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class RedisLease(Lease):
    """A lease with the id under which Redis holds it."""

    lease_id: str = ""


class RedisBudgets:
    """The core's `Budgets` interface (admit, release) on Redis, for every worker at once."""

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: BudgetSettings,
        *,
        lease_ttl_s: float,
        prefix: str = "budget:",
    ) -> None:
        self.redis = redis
        self.settings = settings
        # The longest a stream can hold its lease: its deadlines end it before then.
        self.lease_ttl_s = lease_ttl_s
        self.prefix = prefix
        self._admit = redis.register_script(_ADMIT)
        self._release = redis.register_script(_RELEASE)

    def _keys(self, client_id: str) -> list[str]:
        # One hash tag per client: in Redis Cluster its three keys share a slot, as a script needs.
        base = f"{self.prefix}{{{client_id}}}"
        return [base, f"{base}:leases", f"{base}:reserved"]

    async def admit(self, client_id: str, *, reserve_tokens: int) -> Lease | Refusal:
        s = self.settings
        lease_id = secrets.token_hex(8)
        verdict, retry_after = await self._admit(
            keys=self._keys(client_id),
            args=[
                s.burst,
                s.requests_per_minute / 60_000,
                s.max_concurrent_streams,
                s.tokens_per_window,
                int(s.window_s * 1000),
                reserve_tokens,
                lease_id,
                int(self.lease_ttl_s * 1000),
            ],
        )
        verdict = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
        if verdict != "ok":
            return Refusal(ErrorCode(verdict), int(retry_after))
        return RedisLease(client_id, reserve_tokens, lease_id)

    async def release(self, lease: Lease, *, used_tokens: int) -> None:
        lease_id = lease.lease_id if isinstance(lease, RedisLease) else ""
        await self._release(keys=self._keys(lease.client_id), args=[lease_id, used_tokens])

    async def open_streams(self, client_id: str) -> int:
        return int(await self.redis.zcard(self._keys(client_id)[1]))

    async def used_tokens(self, client_id: str) -> int:
        used = await self.redis.hget(self._keys(client_id)[0], "used")
        return int(used or 0)
