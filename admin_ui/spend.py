"""Spend over time per model or per key: one small column chart each, on the dashboard's own time axis.

The dashboard's ranges decide the source like ``stats`` does: the last 24 hours from ``usage_events`` by hour,
7 and 30 days from the daily rollup (``usage_daily``) by UTC day. Only the few largest spenders get a chart;
the tables below the charts list everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from admin_ui import charts
from admin_ui.stats import Dashboard, hour_bucket
from admin_ui.web import money
from gateway.db.tables import UsageDaily, UsageEvent
from gateway.manage.usage import key_labels

SpendBy = Literal["model", "key"]
TOP = 6


@dataclass(frozen=True, slots=True)
class SpendSeries:
    label: str
    total_micro_usd: int
    chart: charts.Chart


def _query(session: AsyncSession, tenant_id: str, data: Dashboard, by: SpendBy) -> Any:
    if data.range == "24h":
        dim = UsageEvent.model if by == "model" else UsageEvent.key_id
        bucket = hour_bucket(session)
        scope = (UsageEvent.tenant_id == tenant_id, UsageEvent.created_at >= data.since)
        cost = sa.func.sum(UsageEvent.cost_micro_usd)
    else:
        dim = UsageDaily.model if by == "model" else UsageDaily.key_id
        bucket = UsageDaily.day
        scope = (UsageDaily.tenant_id == tenant_id, UsageDaily.day >= data.since.date())
        cost = sa.func.sum(UsageDaily.cost_micro_usd)
    return sa.select(bucket.label("bucket"), dim.label("dim"), cost.label("cost")).where(*scope).group_by(bucket, dim)


def _slot(data: Dashboard, value: Any) -> str:
    """The series bucket a row belongs to: ``YYYY-MM-DD HH`` by hour, ``YYYY-MM-DD`` by day."""
    return str(value)[:13] if data.range == "24h" else str(value)[:10]


async def spend_over_time(session: AsyncSession, tenant_id: str, data: Dashboard, by: SpendBy) -> list[SpendSeries]:
    costs: dict[str, dict[str, int]] = {}
    for row in await session.execute(_query(session, tenant_id, data, by)):
        per = costs.setdefault(row.dim or "", {})
        slot = _slot(data, row.bucket)
        per[slot] = per.get(slot, 0) + int(row.cost or 0)
    ranked = sorted(costs.items(), key=lambda item: -sum(item[1].values()))
    ranked = [item for item in ranked if sum(item[1].values()) > 0][:TOP]
    labels = await key_labels(session, tenant_id, (d for d, _ in ranked)) if by == "key" else {}
    out = []
    for dim, per in ranked:
        points = []
        for b in data.series:
            micro = per.get(b.title[:13] if data.range == "24h" else b.title, 0)
            points.append((b.label, micro / 1_000_000, money(micro), b.title))
        chart = charts.columns(points, fmt="money", width=380, height=170)  # a grid cell is 280-460 px
        out.append(SpendSeries(_label(dim, by, labels), sum(per.values()), chart))
    return out


def _label(dim: str, by: SpendBy, labels: dict[str, tuple[str, str]]) -> str:
    if by == "model":
        return dim or "?"
    if not dim:
        return "(no key)"
    prefix, name = labels.get(dim, (dim[:8], ""))
    return f"{name} ({prefix}…)" if name else f"{prefix}…"
