"""The limiter shared by every worker and replica: one atomic Lua step in Redis per admit and per settle.

Time comes from Redis (``TIME``) so clock skew between gateways cannot widen a window. A budget
whose spent counter is missing (a new period, or Redis lost its data) is seeded once from the
ledger with ``SET NX`` — never additively, so racing workers cannot double it.

While Redis is unreachable or stalled, the gateway falls back to its own per-process limiter
(fail-open, the default) or refuses limited keys with 503 (``RELAY_METERING_FAIL_CLOSED``, fail-closed).
The fallback starts each outage from the ledger's spent and lets this worker use only its share of
what is left (``1 / RELAY_LIMIT_SHARES``, the number of workers across replicas), so the workers
together stay within the budget. Settles Redis did not take (and the costs the fallback charged)
are kept and replayed when it answers again; then every budget they touched is reconciled with
the ledger (the counter is raised to the ledger's figure if it is lower), so a surviving counter
that missed settles is never trusted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.domain import Limits
from gateway.errors import ServiceUnavailable
from gateway.metering.limits import (
    SLOT_TTL_MS,
    WINDOW_MS,
    Estimate,
    MemoryLimiter,
    SpentSource,
    Ticket,
    budget_exceeded,
    new_ticket,
    period_start,
    rate_limited,
)

log = logging.getLogger("relay.limits")

# KEYS: 1 rpm log, 2 tpm log, 3 in-flight slots, 4 key spent, 5 key reservations, 6 tenant spent, 7 tenant reservations
# ARGV: 1 ticket, 2 rpm, 3 tpm, 4 concurrency, 5 est tokens, 6 est cost, 7 key budget, 8 tenant budget
# (limits given as -1 mean none). Returns {1} admitted, {0, what, retry_ms}, or {2, scope} when a spent counter
# must be seeded first.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, slot_ttl = tonumber(ARGV[9]), tonumber(ARGV[10])
local rpm, tpm, conc = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local est_tokens, est_cost = tonumber(ARGV[5]), tonumber(ARGV[6])
local budgets = {{KEYS[4], KEYS[5], tonumber(ARGV[7]), 'key'}, {KEYS[6], KEYS[7], tonumber(ARGV[8]), 'tenant'}}
for _, b in ipairs(budgets) do
  if b[3] >= 0 and redis.call('EXISTS', b[1]) == 0 then return {2, b[4]} end
end
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, 'requests', tonumber(oldest[2]) + window - now}
  end
end
if tpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  local used = 0
  for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    used = used + tonumber(string.match(m, '|(%d+)$'))
  end
  if used > 0 and used + est_tokens > tpm then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {0, 'tokens', tonumber(oldest[2]) + window - now}
  end
end
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= conc then return {0, 'concurrency', 1000} end
end
for _, b in ipairs(budgets) do
  if b[3] >= 0 then
    redis.call('ZREMRANGEBYSCORE', b[2], '-inf', now)
    local reserved = 0
    for _, m in ipairs(redis.call('ZRANGE', b[2], 0, -1)) do
      reserved = reserved + tonumber(string.match(m, '|(%d+)$'))
    end
    local spent = tonumber(redis.call('GET', b[1]))
    if spent >= b[3] or spent + reserved + est_cost > b[3] then return {0, b[4] .. '_budget', 0} end
  end
end
if rpm >= 0 then redis.call('ZADD', KEYS[1], now, ARGV[1]); redis.call('PEXPIRE', KEYS[1], window) end
if tpm >= 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[1] .. '|' .. est_tokens)
  redis.call('PEXPIRE', KEYS[2], window)
end
if conc >= 0 then redis.call('ZADD', KEYS[3], now + slot_ttl, ARGV[1]); redis.call('PEXPIRE', KEYS[3], slot_ttl) end
for _, b in ipairs(budgets) do
  if b[3] >= 0 then
    redis.call('ZADD', b[2], now + slot_ttl, ARGV[1] .. '|' .. est_cost)
    redis.call('PEXPIRE', b[2], slot_ttl)
  end
end
return {1}
"""

# KEYS as ADMIT. ARGV: 1 ticket, 2 est tokens, 3 real tokens, 4 real cost, 5 est cost, 6 has key budget,
# 7 has tenant budget, 8 has tpm. A missing spent counter (Redis lost its data) is not created from one
# settle: the next admit seeds it from the ledger, which has every cost.
SETTLE = """
if ARGV[8] == '1' then
  local score = redis.call('ZSCORE', KEYS[2], ARGV[1] .. '|' .. ARGV[2])
  if score then
    redis.call('ZREM', KEYS[2], ARGV[1] .. '|' .. ARGV[2])
    redis.call('ZADD', KEYS[2], score, ARGV[1] .. '|' .. ARGV[3])
  end
end
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[6] == '1' then
  redis.call('ZREM', KEYS[5], ARGV[1] .. '|' .. ARGV[5])
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('INCRBY', KEYS[4], ARGV[4]) end
end
if ARGV[7] == '1' then
  redis.call('ZREM', KEYS[7], ARGV[1] .. '|' .. ARGV[5])
  if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('INCRBY', KEYS[6], ARGV[4]) end
end
return 1
"""

# KEYS: 1 spent counter. ARGV: 1 the ledger's figure. Raise the counter to it; a missing one is left to the seed.
RECONCILE = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(ARGV[1]) > tonumber(cur) then redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') end
return 1
"""

RETRY_REDIS_AFTER_S = 5.0
MONTH_TTL_S = 40 * 86400
MAX_OWED = 100_000
"""Settles kept for Redis at most; past it the oldest go (the ledger still has them: reconcile catches up)."""


def _keys(t: Ticket) -> list[str]:
    k, tn = t.key_id, t.tenant_id
    return [
        f"relay:rl:{{{k}}}:rpm",
        f"relay:rl:{{{k}}}:tpm",
        f"relay:rl:{{{k}}}:inflight",
        f"relay:budget:key:{k}:{t.periods[0]}:spent",
        f"relay:budget:key:{k}:{t.periods[0]}:reserved",
        f"relay:budget:tenant:{tn}:{t.periods[1]}:spent",
        f"relay:budget:tenant:{tn}:{t.periods[1]}:reserved",
    ]


def _n(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimiter:
    def __init__(
        self, redis: aioredis.Redis, spent: SpentSource, *, fail_closed: bool = False, shares: int = 1
    ) -> None:
        self._redis = redis
        self._admit = redis.register_script(ADMIT)
        self._settle = redis.register_script(SETTLE)
        self._reconcile = redis.register_script(RECONCILE)
        self._spent = spent
        self._fail_closed = fail_closed
        self._local = MemoryLimiter(spent, share=1 / max(1, shares))
        self._down_until = 0.0
        self._owed: deque[tuple[Ticket, int, int]] = deque(maxlen=MAX_OWED)
        """Settles (and fallback charges) Redis has not taken yet: ticket, tokens, cost."""
        self._recovering = asyncio.Lock()

    async def admit(self, key_id: str, tenant_id: str, limits: Limits, estimate: Estimate) -> Ticket | None:
        if not limits.any:
            return None
        if time.monotonic() < self._down_until:
            return await self._fallback(key_id, tenant_id, limits, estimate)
        if self._owed:
            try:
                await self._catch_up()
            except RedisError as exc:
                self._redis_down(exc)
                return await self._fallback(key_id, tenant_id, limits, estimate)
        ticket = new_ticket(key_id, tenant_id, limits, estimate)
        args: list[str | int] = [
            ticket.id, _n(limits.rpm), _n(limits.tpm), _n(limits.concurrency), estimate.tokens,
            estimate.cost_micro_usd, _n(limits.budget_micro_usd), _n(limits.tenant_budget_micro_usd),
            WINDOW_MS, SLOT_TTL_MS,
        ]  # fmt: skip
        try:
            for _ in range(3):
                result = await self._admit(keys=_keys(ticket), args=args)
                if int(result[0]) != 2:
                    break
                await self._seed(ticket, result[1].decode() if isinstance(result[1], bytes) else str(result[1]))
        except RedisError as exc:
            self._redis_down(exc)
            return await self._fallback(key_id, tenant_id, limits, estimate)
        if int(result[0]) == 1:
            return ticket
        what = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
        if what.endswith("_budget"):
            raise budget_exceeded(what.removesuffix("_budget"))
        limit = {"requests": limits.rpm, "tokens": limits.tpm, "concurrency": limits.concurrency}[what]
        raise rate_limited(what, limit or 0, int(result[2]) / 1000)

    async def _seed(self, t: Ticket, scope: str) -> None:
        """Start a missing spent counter from the ledger; SET NX so racing workers agree."""
        keys = _keys(t)
        if scope == "key":
            amount = await self._spent("key", t.key_id, period_start(t.limits.budget_period))
            name = keys[3]
        else:
            amount = await self._spent("tenant", t.tenant_id, period_start(t.limits.tenant_budget_period))
            name = keys[5]
        await self._redis.set(name, amount, nx=True, ex=MONTH_TTL_S if ":m" in name else None)

    async def settle(self, ticket: Ticket, tokens: int, cost_micro_usd: int) -> None:
        if ticket.settled:
            return
        if ticket.local:
            await self._local.settle(ticket, tokens, cost_micro_usd)
            if cost_micro_usd and ticket.limits.has_budget:
                self._owed.append((ticket, 0, cost_micro_usd))  # Redis's counters must hear of it too
            return
        ticket.settled = True
        try:
            await self._settle_in_redis(ticket, tokens, cost_micro_usd)
        except RedisError as exc:  # kept, and replayed when Redis answers again
            self._owed.append((ticket, tokens, cost_micro_usd))
            self._redis_down(exc)

    async def _settle_in_redis(self, ticket: Ticket, tokens: int, cost_micro_usd: int) -> None:
        lim = ticket.limits
        args: list[str | int] = [
            ticket.id, ticket.estimate.tokens, tokens, cost_micro_usd, ticket.estimate.cost_micro_usd,
            int(lim.budget_micro_usd is not None), int(lim.tenant_budget_micro_usd is not None),
            int(lim.tpm is not None and not ticket.local),
        ]  # fmt: skip
        await self._settle(keys=_keys(ticket), args=args)

    async def _catch_up(self) -> None:
        """Replay what Redis missed, then raise every budget it touched to at least the ledger's figure."""
        async with self._recovering:
            touched: dict[str, tuple[str, str, str]] = {}
            while self._owed:
                ticket, tokens, cost = self._owed[0]
                await self._settle_in_redis(ticket, tokens, cost)
                self._owed.popleft()
                keys = _keys(ticket)
                if ticket.limits.budget_micro_usd is not None:
                    touched[keys[3]] = ("key", ticket.key_id, ticket.limits.budget_period)
                if ticket.limits.tenant_budget_micro_usd is not None:
                    touched[keys[5]] = ("tenant", ticket.tenant_id, ticket.limits.tenant_budget_period)
            for name, (kind, owner, period) in touched.items():
                await self._reconcile(keys=[name], args=[await self._spent(kind, owner, period_start(period))])
            if touched:
                log.warning("redis limits caught up: %d budgets reconciled with the ledger", len(touched))

    def _redis_down(self, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:  # a new outage (or the next try of one): start from the ledger
            self._local.forget_budgets()
        log.warning(
            "redis unavailable for limits (%s); per-process limits for %ss", type(exc).__name__, RETRY_REDIS_AFTER_S
        )
        self._down_until = time.monotonic() + RETRY_REDIS_AFTER_S

    async def _fallback(self, key_id: str, tenant_id: str, limits: Limits, estimate: Estimate) -> Ticket | None:
        if self._fail_closed:
            raise ServiceUnavailable("metering is unavailable and RELAY_METERING_FAIL_CLOSED is set")
        return await self._local.admit(key_id, tenant_id, limits, estimate)
