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
from typing import Any

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
from gateway.redis_client import REDIS_ERRORS, RedisClient, is_cluster

log = logging.getLogger("relay.limits")

# KEYS: 1 rpm log, 2 tpm log, 3 in-flight slots (when ARGV[9] is 3; none when it is 0), then a (spent,
# reservations) pair per budget. ARGV: 1 ticket, 2 rpm, 3 tpm, 4 concurrency, 5 est tokens, 6 est cost,
# 7 window ms, 8 slot ttl ms, 9 rate keys (3 or 0), then per pair: its budget and its scope (key, tenant).
# Limits given as -1 mean none. Returns {1} admitted, {0, what, retry_ms}, or {2, scope} when a spent
# counter must be seeded first. Nothing is written unless everything admits.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, slot_ttl, r = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local rpm, tpm, conc = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if r == 0 then rpm, tpm, conc = -1, -1, -1 end
local est_tokens, est_cost = tonumber(ARGV[5]), tonumber(ARGV[6])
local budgets = {}
for i = r + 1, #KEYS, 2 do
  local a = 10 + i - r - 1
  budgets[#budgets + 1] = {KEYS[i], KEYS[i + 1], tonumber(ARGV[a]), ARGV[a + 1]}
end
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

# KEYS: 1 tpm log, 2 in-flight slots (when ARGV[6] is 2; none when it is 0), then a (spent, reservations)
# pair per budget. ARGV: 1 ticket, 2 est tokens, 3 real tokens, 4 real cost, 5 est cost, 6 rate keys (2 or 0),
# 7 has tpm. A missing spent counter (Redis lost its data) is not created from one settle: the next admit
# seeds it from the ledger, which has every cost.
SETTLE = """
if ARGV[6] == '2' then
  if ARGV[7] == '1' then
    local score = redis.call('ZSCORE', KEYS[1], ARGV[1] .. '|' .. ARGV[2])
    if score then
      redis.call('ZREM', KEYS[1], ARGV[1] .. '|' .. ARGV[2])
      redis.call('ZADD', KEYS[1], score, ARGV[1] .. '|' .. ARGV[3])
    end
  end
  redis.call('ZREM', KEYS[2], ARGV[1])
end
for i = tonumber(ARGV[6]) + 1, #KEYS, 2 do
  redis.call('ZREM', KEYS[i + 1], ARGV[1] .. '|' .. ARGV[5])
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], ARGV[4]) end
end
return 1
"""

# KEYS: sorted sets; ARGV: the member to take out of each. Undoes an admitted step whose next step refused.
RELEASE = """
for i, k in ipairs(KEYS) do redis.call('ZREM', k, ARGV[i]) end
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

KEY, TENANT = "key", "tenant"
Step = tuple[str, ...]
"""The scopes one script call covers: both on a single server, one per call on a cluster."""
ONE_STEP: tuple[Step, ...] = ((KEY, TENANT),)
SPLIT: tuple[Step, ...] = ((KEY,), (TENANT,))


def rate_keys(key_id: str) -> list[str]:
    """The key's rpm log, tpm log and in-flight slots: all on the key's hash slot."""
    return [f"relay:rl:{{k:{key_id}}}:rpm", f"relay:rl:{{k:{key_id}}}:tpm", f"relay:rl:{{k:{key_id}}}:inflight"]


def budget_keys(scope: str, owner: str, period: str) -> list[str]:
    """A budget's spent counter and reservations, on its owner's hash slot (``{k:…}`` or ``{t:…}``)."""
    tag = f"{{{scope[0]}:{owner}}}"
    return [f"relay:budget:{tag}:{period}:spent", f"relay:budget:{tag}:{period}:reserved"]


def _key_side(lim: Limits) -> bool:
    return lim.rpm is not None or lim.tpm is not None or lim.concurrency is not None or lim.budget_micro_usd is not None


def _pairs(t: Ticket, step: Step) -> list[tuple[str, list[str], int]]:
    """(scope, keys, budget) of each budget ``step`` covers."""
    lim, out = t.limits, []
    if KEY in step and lim.budget_micro_usd is not None:
        out.append((KEY, budget_keys(KEY, t.key_id, t.periods[0]), lim.budget_micro_usd))
    if TENANT in step and lim.tenant_budget_micro_usd is not None:
        out.append((TENANT, budget_keys(TENANT, t.tenant_id, t.periods[1]), lim.tenant_budget_micro_usd))
    return out


def _n(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimiter:
    def __init__(self, redis: RedisClient, spent: SpentSource, *, fail_closed: bool = False, shares: int = 1) -> None:
        self._redis = redis
        self._admit = redis.register_script(ADMIT)
        self._settle = redis.register_script(SETTLE)
        self._release = redis.register_script(RELEASE)
        self._reconcile = redis.register_script(RECONCILE)
        self._steps = SPLIT if is_cluster(redis) else ONE_STEP
        """On a cluster the key's and the tenant's keys live on different slots: one script each."""
        self._spent = spent
        self._fail_closed = fail_closed
        self._local = MemoryLimiter(spent, share=1 / max(1, shares))
        self._down_until = 0.0
        self._owed: deque[tuple[Ticket, int, int, tuple[Step, ...]]] = deque(maxlen=MAX_OWED)
        """Settles (and fallback charges) Redis has not taken yet: ticket, tokens, cost, the steps still owed."""
        self._recovering = asyncio.Lock()

    def _steps_of(self, t: Ticket) -> tuple[Step, ...]:
        """The steps ``t`` needs: a cluster skips the key's step without key limits, the tenant's without a budget."""
        if len(self._steps) == 1:
            return self._steps
        needed = {KEY: _key_side(t.limits), TENANT: t.limits.tenant_budget_micro_usd is not None}
        return tuple(s for s in self._steps if needed[s[0]])

    async def admit(self, key_id: str, tenant_id: str, limits: Limits, estimate: Estimate) -> Ticket | None:
        if not limits.any:
            return None
        if time.monotonic() < self._down_until:
            return await self._fallback(key_id, tenant_id, limits, estimate)
        if self._owed:
            try:
                await self._catch_up()
            except REDIS_ERRORS as exc:
                self._redis_down(exc)
                return await self._fallback(key_id, tenant_id, limits, estimate)
        ticket = new_ticket(key_id, tenant_id, limits, estimate)
        done: list[Step] = []
        try:
            for step in self._steps_of(ticket):
                result = await self._admit_step(ticket, step)
                if int(result[0]) != 1:
                    await self._undo(ticket, done)
                    break
                done.append(step)
        except REDIS_ERRORS as exc:
            await self._undo(ticket, done, quiet=True)
            self._redis_down(exc)
            return await self._fallback(key_id, tenant_id, limits, estimate)
        if int(result[0]) == 1:
            return ticket
        what = _text(result[1])
        if what.endswith("_budget"):
            raise budget_exceeded(what.removesuffix("_budget"))
        limit = {"requests": limits.rpm, "tokens": limits.tpm, "concurrency": limits.concurrency}[what]
        raise rate_limited(what, limit or 0, int(result[2]) / 1000)

    async def _admit_step(self, t: Ticket, step: Step) -> list[Any]:
        """One atomic admit on one hash slot, seeding a missing spent counter from the ledger first."""
        lim, est = t.limits, t.estimate
        keys = rate_keys(t.key_id) if KEY in step else []
        args: list[str | int] = [
            t.id, _n(lim.rpm), _n(lim.tpm), _n(lim.concurrency), est.tokens, est.cost_micro_usd,
            WINDOW_MS, SLOT_TTL_MS, len(keys),
        ]  # fmt: skip
        for scope, names, budget in _pairs(t, step):
            keys += names
            args += [budget, scope]
        for _ in range(3):
            result: list[Any] = await self._admit(keys=keys, args=args)
            if int(result[0]) != 2:
                return result
            await self._seed(t, _text(result[1]))
        raise RedisError("a budget's spent counter vanished three times while being seeded")

    async def _undo(self, t: Ticket, steps: list[Step], *, quiet: bool = False) -> None:
        """Take back what the admitted ``steps`` reserved (a later step refused, or Redis failed)."""
        for step in steps:
            keys, members = [], []
            if KEY in step:
                keys += rate_keys(t.key_id)
                members += [t.id, f"{t.id}|{t.estimate.tokens}", t.id]
            for _, names, _ in _pairs(t, step):
                keys.append(names[1])
                members.append(f"{t.id}|{t.estimate.cost_micro_usd}")
            try:
                await self._release(keys=keys, args=members)
            except REDIS_ERRORS:
                if not quiet:
                    raise
                # what stays reserved expires by itself: the rpm entry in a minute, the rest with SLOT_TTL_MS

    async def _seed(self, t: Ticket, scope: str) -> None:
        """Start a missing spent counter from the ledger; SET NX so racing workers agree."""
        if scope == KEY:
            owner, period, kind = t.key_id, t.periods[0], t.limits.budget_period
        else:
            owner, period, kind = t.tenant_id, t.periods[1], t.limits.tenant_budget_period
        amount = await self._spent(scope, owner, period_start(kind))
        name = budget_keys(scope, owner, period)[0]
        await self._redis.set(name, amount, nx=True, ex=MONTH_TTL_S if period != "total" else None)

    async def settle(self, ticket: Ticket, tokens: int, cost_micro_usd: int) -> None:
        if ticket.settled:
            return
        if ticket.local:
            await self._local.settle(ticket, tokens, cost_micro_usd)
            if cost_micro_usd and ticket.limits.has_budget:  # Redis's counters must hear of it too
                self._owed.append((ticket, 0, cost_micro_usd, self._steps_of(ticket)))
            return
        ticket.settled = True
        steps = self._steps_of(ticket)
        for i, step in enumerate(steps):
            try:
                await self._settle_step(ticket, tokens, cost_micro_usd, step)
            except REDIS_ERRORS as exc:  # kept, and replayed when Redis answers again (only the steps not taken)
                self._owed.append((ticket, tokens, cost_micro_usd, steps[i:]))
                self._redis_down(exc)
                return

    async def _settle_step(self, ticket: Ticket, tokens: int, cost_micro_usd: int, step: Step) -> None:
        lim = ticket.limits
        keys = rate_keys(ticket.key_id)[1:] if KEY in step else []
        for _, names, _ in _pairs(ticket, step):
            keys += names
        args: list[str | int] = [
            ticket.id, ticket.estimate.tokens, tokens, cost_micro_usd, ticket.estimate.cost_micro_usd,
            2 if KEY in step else 0, int(lim.tpm is not None and not ticket.local),
        ]  # fmt: skip
        await self._settle(keys=keys, args=args)

    async def _catch_up(self) -> None:
        """Replay what Redis missed, then raise every budget it touched to at least the ledger's figure."""
        async with self._recovering:
            touched: dict[str, tuple[str, str, str]] = {}
            while self._owed:
                ticket, tokens, cost, steps = self._owed[0]
                for i, step in enumerate(steps):
                    try:
                        await self._settle_step(ticket, tokens, cost, step)
                    except REDIS_ERRORS:
                        self._owed[0] = (ticket, tokens, cost, steps[i:])
                        raise
                self._owed.popleft()
                for scope, names, _ in _pairs(ticket, ONE_STEP[0]):
                    owner = ticket.key_id if scope == KEY else ticket.tenant_id
                    period = ticket.limits.budget_period if scope == KEY else ticket.limits.tenant_budget_period
                    touched[names[0]] = (scope, owner, period)
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


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
