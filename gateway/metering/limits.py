"""Rate limits, concurrency and budgets: admit a request before it is sent, settle it after.

Semantics, identical for the Redis limiter and the in-process one:
- **rpm**: at most N requests in any 60-second window (a sliding log, not a fixed window).
- **tpm**: a request is admitted while the tokens counted in the last 60 s (its own estimate
  included) stay within N; its estimate is replaced by the real count when it settles.
- **concurrency**: at most N requests in flight; a slot held by a crashed worker expires.
- **budgets** (key and tenant, micro-USD, per month or in total): the estimated maximum cost
  (input counted + ``max_tokens`` of output, or what the model really produces when it ignores
  ``max_tokens``: ``outputs.py``) is reserved before sending and replaced by the real cost after,
  so N concurrent requests cannot overspend by more than one request's estimate.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.domain import Dialect, Limits, Route, Usage
from gateway.errors import BudgetExceeded, RateLimited
from gateway.metering.outputs import OutputStats
from gateway.tokencount import count_request

WINDOW_MS = 60_000
SLOT_TTL_MS = 15 * 60_000  # longer than any call may live (RELAY_TOTAL_TIMEOUT is 10 min)


@dataclass(frozen=True, slots=True)
class Estimate:
    tokens: int = 0
    cost_micro_usd: int = 0


@dataclass(slots=True)
class Ticket:
    """An admitted request's hold on the limits, released by ``settle``."""

    id: str
    key_id: str
    tenant_id: str
    limits: Limits
    estimate: Estimate
    periods: tuple[str, str]
    settled: bool = False
    local: bool = False
    """Held by a per-process limiter (the embedded one, or the fallback while Redis is away)."""


def period_id(period: str, now: datetime | None = None) -> str:
    """``total`` or the UTC month (``m202611``) a monthly budget belongs to."""
    if period != "month":
        return "total"
    now = now or datetime.now(UTC)
    return f"m{now:%Y%m}"


def period_start(period: str, now: datetime | None = None) -> datetime | None:
    if period != "month":
        return None
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def new_ticket(key_id: str, tenant_id: str, limits: Limits, estimate: Estimate) -> Ticket:
    periods = (period_id(limits.budget_period), period_id(limits.tenant_budget_period))
    return Ticket(secrets.token_hex(8), key_id, tenant_id, limits, estimate, periods)


def rate_limited(what: str, limit: int, retry_after_s: float) -> RateLimited:
    wait = max(1, math.ceil(retry_after_s))
    headers = {
        "retry-after": str(wait),
        "x-ratelimit-limit-requests" if what == "requests" else "x-ratelimit-limit-tokens": str(limit),
        "x-ratelimit-remaining-requests" if what == "requests" else "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-requests" if what == "requests" else "x-ratelimit-reset-tokens": f"{wait}s",
        f"anthropic-ratelimit-{what}-limit": str(limit),
        f"anthropic-ratelimit-{what}-remaining": "0",
    }
    noun = {"requests": "requests per minute", "tokens": "tokens per minute", "concurrency": "requests in flight"}
    return RateLimited(f"rate limit reached: {limit} {noun[what]} for this key; retry in {wait} s", headers=headers)


def budget_exceeded(scope: str) -> BudgetExceeded:
    return BudgetExceeded(f"the {scope}'s budget is exhausted; raise it or wait for it to reset")


SpentSource = Callable[[str, str, datetime | None], Awaitable[int]]
"""(``key`` or ``tenant``, its id, period start or None for all time) -> micro-USD spent, from the ledger."""


DEFAULT_OUTPUT_ESTIMATE = 4096
"""Output tokens assumed for a request that names no ``max_tokens`` and a model with no cap."""


def asked_output(body: dict[str, Any]) -> int | None:
    """The output limit a request names, in whichever dialect's field."""
    out = body.get("max_tokens") or body.get("max_completion_tokens") or body.get("max_output_tokens")
    return out if isinstance(out, int) and out > 0 else None


def output_model(route: Route) -> tuple[str | None, str]:
    """What ``OutputStats`` learns per: the upstream and its model id (public names differ per tenant)."""
    return route.upstream.id, route.upstream_model


def estimate_request(
    body: dict[str, Any], route: Route, *, door: Dialect, outputs: OutputStats | None = None
) -> Estimate:
    """Tokens and the most the request may cost: its input counted, plus the output it may produce.

    The output is its ``max_tokens`` (capped by the model's limit), unless the model has been seen
    to produce more than asked: then the running p99 of what it produced (``OutputStats``).
    """
    tokens_in = count_request(door, body)
    tokens_out = asked_output(body) or route.max_output_tokens or DEFAULT_OUTPUT_ESTIMATE
    if route.max_output_tokens:
        tokens_out = min(tokens_out, route.max_output_tokens)
    if outputs is not None:
        tokens_out = outputs.expected(output_model(route), tokens_out)
    cost = route.price.cost_micro_usd(Usage(input_tokens=tokens_in, output_tokens=tokens_out))
    return Estimate(tokens=tokens_in + tokens_out, cost_micro_usd=cost)


class Limiter(Protocol):
    async def admit(self, key_id: str, tenant_id: str, limits: Limits, estimate: Estimate) -> Ticket | None: ...

    async def settle(self, ticket: Ticket, tokens: int, cost_micro_usd: int) -> None: ...


@dataclass(slots=True)
class _Budget:
    spent: int = 0
    reserved: dict[str, int] = field(default_factory=dict)
    base: int = 0
    """What the ledger said was spent when this process started counting."""

    def allowed(self, budget: int, share: float) -> int:
        """This process's ceiling: its share of what was left when it started counting."""
        return budget if share >= 1 else self.base + int(max(0, budget - self.base) * share)


class MemoryLimiter:
    """The limiter of one process: the embedded default, and the per-process cap while Redis is away.

    As the fallback of several workers (``share`` < 1), each may spend only its share of what the
    ledger said was left when the outage began, so together they cannot overspend it.
    """

    def __init__(self, spent: SpentSource | None = None, *, share: float = 1.0) -> None:
        self._spent = spent
        self.share = share
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[str, dict[str, tuple[float, int]]] = {}
        self._inflight: dict[str, dict[str, float]] = {}
        self._budgets: dict[str, _Budget] = {}

    def budget_scopes(self, ticket: Ticket) -> list[tuple[str, int]]:
        lim = ticket.limits
        out = []
        if lim.budget_micro_usd is not None:
            out.append((f"key:{ticket.key_id}:{ticket.periods[0]}", lim.budget_micro_usd))
        if lim.tenant_budget_micro_usd is not None:
            out.append((f"tenant:{ticket.tenant_id}:{ticket.periods[1]}", lim.tenant_budget_micro_usd))
        return out

    async def admit(self, key_id: str, tenant_id: str, limits: Limits, estimate: Estimate) -> Ticket | None:
        if not limits.any:
            return None
        ticket = new_ticket(key_id, tenant_id, limits, estimate)
        ticket.local = True
        await self._seed(ticket)
        now = time.monotonic() * 1000
        self._check(ticket, now)
        self._take(ticket, now)
        return ticket

    async def _seed(self, t: Ticket) -> None:
        """A budget seen for the first time in this process starts from what the ledger says was spent."""
        for scope, _ in self.budget_scopes(t):
            if scope not in self._budgets:
                kind, owner, _period = scope.split(":", 2)
                period = t.limits.budget_period if kind == "key" else t.limits.tenant_budget_period
                spent = await self._spent(kind, owner, period_start(period)) if self._spent else 0
                self._budgets.setdefault(scope, _Budget(spent=spent, base=spent))

    def forget_budgets(self) -> None:
        """Count budgets afresh from the ledger (a new Redis outage: other workers have spent meanwhile)."""
        self._budgets.clear()

    def _check(self, t: Ticket, now: float) -> None:
        lim = t.limits
        if lim.rpm is not None:
            log = self._requests.setdefault(t.key_id, deque())
            while log and log[0] <= now - WINDOW_MS:
                log.popleft()
            if len(log) >= lim.rpm:
                raise rate_limited("requests", lim.rpm, (log[0] + WINDOW_MS - now) / 1000)
        if lim.tpm is not None:
            window = self._tokens.setdefault(t.key_id, {})
            for tid, (at, _) in list(window.items()):
                if at <= now - WINDOW_MS:
                    del window[tid]
            used = sum(n for _, n in window.values())
            if used > 0 and used + t.estimate.tokens > lim.tpm:
                oldest = min(at for at, _ in window.values())
                raise rate_limited("tokens", lim.tpm, (oldest + WINDOW_MS - now) / 1000)
        if lim.concurrency is not None:
            slots = self._inflight.setdefault(t.key_id, {})
            for tid, until in list(slots.items()):
                if until <= now:
                    del slots[tid]
            if len(slots) >= lim.concurrency:
                raise rate_limited("concurrency", lim.concurrency, 1)
        for scope, budget in self.budget_scopes(t):
            b = self._budgets.setdefault(scope, _Budget())
            ceiling = b.allowed(budget, self.share)
            if b.spent + sum(b.reserved.values()) + t.estimate.cost_micro_usd > ceiling or b.spent >= ceiling:
                raise budget_exceeded("key" if scope.startswith("key:") else "tenant")

    def _take(self, t: Ticket, now: float) -> None:
        lim = t.limits
        if lim.rpm is not None:
            self._requests[t.key_id].append(now)
        if lim.tpm is not None:
            self._tokens[t.key_id][t.id] = (now, t.estimate.tokens)
        if lim.concurrency is not None:
            self._inflight[t.key_id][t.id] = now + SLOT_TTL_MS
        for scope, _ in self.budget_scopes(t):
            self._budgets[scope].reserved[t.id] = t.estimate.cost_micro_usd

    async def settle(self, ticket: Ticket, tokens: int, cost_micro_usd: int) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        window = self._tokens.get(ticket.key_id, {})
        if ticket.id in window:
            window[ticket.id] = (window[ticket.id][0], tokens)
        self._inflight.get(ticket.key_id, {}).pop(ticket.id, None)
        for scope, _ in self.budget_scopes(ticket):
            b = self._budgets.setdefault(scope, _Budget())
            b.reserved.pop(ticket.id, None)
            b.spent += cost_micro_usd
