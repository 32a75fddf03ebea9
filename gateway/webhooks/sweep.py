"""The periodic checks that turn state into events: budget thresholds crossed, keys that expired.

Each event carries a dedupe value that names it exactly (a threshold of one budget in one period; a key), so
sweeping again, or on several replicas at once, queues nothing new.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.tables import ApiKey, Tenant, Webhook
from gateway.metering.limits import period_start
from gateway.metering.rollup import spent_by
from gateway.webhooks import BUDGET_THRESHOLD, KEY_DISABLED
from gateway.webhooks.outbox import enqueue_to

THRESHOLDS = (80, 100)
EXPIRED_WITHIN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Budget:
    scope: str  # "key" or "tenant"
    id: str
    tenant_id: str
    budget_micro_usd: int
    period: str


def budget_dedupe(budget: Budget, start: datetime | None, threshold: int) -> str:
    period = start.date().isoformat() if start else "total"
    return f"budget:{budget.scope}:{budget.id}:{period}:{threshold}"


def key_disabled_dedupe(key_id: str) -> str:
    return f"key.disabled:{key_id}"


def key_disabled_data(key: ApiKey, reason: str, at: datetime) -> dict[str, Any]:
    return {"key_id": key.id, "prefix": key.prefix, "name": key.name, "reason": reason, "at": at.isoformat()}


def crossed(spent: int, budget: int) -> list[int]:
    """The thresholds (percent) ``spent`` has reached."""
    return [t for t in THRESHOLDS if budget > 0 and spent * 100 >= budget * t]


async def budgets(session: AsyncSession, now: datetime) -> list[Budget]:
    """Budgets of live keys and of tenants."""
    live = sa.and_(
        ApiKey.budget_micro_usd.is_not(None),
        ApiKey.revoked_at.is_(None),
        sa.or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
    )
    keys = await session.execute(
        sa.select(ApiKey.id, ApiKey.tenant_id, ApiKey.budget_micro_usd, ApiKey.budget_period).where(live)
    )
    tenants = await session.execute(
        sa.select(Tenant.id, Tenant.budget_micro_usd, Tenant.budget_period).where(Tenant.budget_micro_usd.is_not(None))
    )
    out = [Budget("key", i, t, int(b or 0), p or "total") for i, t, b, p in keys]
    out += [Budget("tenant", i, i, int(b or 0), p or "total") for i, b, p in tenants]
    return out


async def sweep(sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None) -> int:
    """Queue the budget and expiry events due now; the rows queued. Nothing at all when no webhook exists.

    Spend comes from the rollups, one grouped query per scope and period start (a thousand budgeted keys cost a
    query, not a thousand), and only for budgets some webhook would hear of: every budget when the platform has
    a webhook, else only those of tenants that have one.
    """
    now = now or datetime.now(UTC)
    async with sessions() as session:
        owners = set((await session.execute(sa.select(Webhook.tenant_id).distinct())).scalars())
        if not owners:
            return 0  # the common case: no webhooks, so no spend queries either
        found = [b for b in await budgets(session, now) if None in owners or b.tenant_id in owners]
        groups: dict[tuple[str, datetime | None], list[Budget]] = defaultdict(list)
        for budget in found:
            groups[(budget.scope, period_start(budget.period, now))].append(budget)
        spent: dict[tuple[str, str, datetime | None], int] = {}
        for (scope, start), members in groups.items():
            totals = await spent_by(session, scope, (b.id for b in members), start)
            spent.update({(scope, b.id, start): totals.get(b.id, 0) for b in members})
    events: list[tuple[str, str | None, dict[str, Any], str]] = []
    for budget in found:
        start = period_start(budget.period, now)
        amount = spent[(budget.scope, budget.id, start)]
        for threshold in crossed(amount, budget.budget_micro_usd):
            data = {
                "scope": budget.scope,
                "id": budget.id,
                "threshold": threshold,
                "spent_usd": amount / 1e6,
                "budget_usd": budget.budget_micro_usd / 1e6,
                "period": budget.period,
                "period_start": start.isoformat() if start else None,
            }
            events.append((BUDGET_THRESHOLD, budget.tenant_id, data, budget_dedupe(budget, start, threshold)))
    async with sessions.begin() as session:
        expired = await session.scalars(
            sa.select(ApiKey).where(
                ApiKey.revoked_at.is_(None), ApiKey.expires_at <= now, ApiKey.expires_at > now - EXPIRED_WITHIN
            )
        )
        for key in expired:
            assert key.expires_at is not None  # the query's condition
            data = key_disabled_data(key, "expired", key.expires_at)
            events.append((KEY_DISABLED, key.tenant_id, data, key_disabled_dedupe(key.id)))
        hooks = list(await session.scalars(sa.select(Webhook)))
        queued = 0
        for event, tenant_id, data, dedupe in events:
            queued += await enqueue_to(session, hooks, event=event, tenant_id=tenant_id, data=data, dedupe=dedupe)
    return queued
