"""The dashboard's numbers: ``gateway.manage.usage`` rollups for 7 and 30 days, the exact ledger for 24 hours.

The daily rollup counts whole UTC days, which is right for a week or a month but would make "the last
24 hours" cover up to two days; that range is read from ``usage_events`` (one day of one tenant, on the
``(tenant_id, created_at, id)`` index), bucketed by hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import UsageEvent
from gateway.manage import usage
from gateway.manage.usage import Totals, UsageQuery, UsageRow

RANGES = {"24h": ("Last 24 hours", timedelta(hours=24)), "7d": ("Last 7 days", 7), "30d": ("Last 30 days", 30)}


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str
    """Short axis label (``14h``, ``Nov 29``)."""
    title: str
    totals: Totals


@dataclass(frozen=True, slots=True)
class Dashboard:
    range: str
    label: str
    since: datetime
    totals: Totals
    series: list[Bucket]
    by_model: list[UsageRow]
    by_key: list[UsageRow]


async def dashboard(session: AsyncSession, tenant_id: str, range_: str, *, now: datetime | None = None) -> Dashboard:
    now = now or datetime.now(UTC)
    if range_ not in RANGES:
        range_ = "24h"
    label, span = RANGES[range_]
    if range_ == "24h":
        assert isinstance(span, timedelta)
        return await _last_day(session, tenant_id, now - span, now, label)
    assert isinstance(span, int)
    first = now.date() - timedelta(days=span - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    q = UsageQuery.of(tenant_id, since, now)
    days = {r.day: r.totals for r in (await usage.summary(session, q, "day")).rows if r.day is not None}
    series = [
        Bucket(label=_day_label(d), title=d.isoformat(), totals=days.get(d, Totals()))
        for d in (first + timedelta(days=i) for i in range(span))
    ]
    by_model = (await usage.summary(session, q, "model")).rows
    by_key = (await usage.summary(session, q, "key")).rows
    total = sum((b.totals for b in series), Totals())
    return Dashboard(range_, label, since, total, series, by_model, by_key)


def _day_label(d: date) -> str:
    return f"{d:%b} {d.day}"


_COUNTERS = (
    sa.func.count().label("requests"),
    sa.func.coalesce(sa.func.sum(sa.case((UsageEvent.status >= 400, 1), else_=0)), 0).label("errors"),
    *(
        sa.func.coalesce(sa.func.sum(getattr(UsageEvent, c)), 0).label(c)
        for c in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_micro_usd")
    ),
)


def _totals(row: Any) -> Totals:
    return Totals(*(int(getattr(row, c) or 0) for c in usage.COUNTERS))


def hour_bucket(session: AsyncSession) -> Any:
    """The UTC hour of ``created_at`` as text ``YYYY-MM-DD HH``, on either backend."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", UsageEvent.created_at), "YYYY-MM-DD HH24")
    return sa.func.strftime("%Y-%m-%d %H", UsageEvent.created_at)


async def _last_day(session: AsyncSession, tenant_id: str, since: datetime, now: datetime, label: str) -> Dashboard:
    scope = (UsageEvent.tenant_id == tenant_id, UsageEvent.created_at >= since, UsageEvent.created_at < now)
    hour = hour_bucket(session).label("hour")
    hours = {
        r.hour: _totals(r) for r in await session.execute(sa.select(hour, *_COUNTERS).where(*scope).group_by(hour))
    }
    start = since.replace(minute=0, second=0, microsecond=0)
    series = []
    for i in range(25):
        at = start + timedelta(hours=i)
        if at > now:
            break
        series.append(
            Bucket(
                label=at.strftime("%H"),
                title=at.strftime("%Y-%m-%d %H:00 UTC"),
                totals=hours.get(at.strftime("%Y-%m-%d %H"), Totals()),
            )
        )
    by_model = [
        UsageRow(_totals(r), model=r.model)
        for r in await session.execute(sa.select(UsageEvent.model, *_COUNTERS).where(*scope).group_by(UsageEvent.model))
    ]
    found = list(
        await session.execute(sa.select(UsageEvent.key_id, *_COUNTERS).where(*scope).group_by(UsageEvent.key_id))
    )
    labels = await usage.key_labels(session, tenant_id, (r.key_id for r in found if r.key_id))
    by_key = [
        UsageRow(_totals(r), key_id=r.key_id, key_prefix=labels.get(r.key_id, (None, None))[0],
                 key_name=labels.get(r.key_id, (None, None))[1])
        for r in found
    ]  # fmt: skip
    order = lambda row: (-row.totals.cost_micro_usd, -row.totals.requests)  # noqa: E731
    total = sum((b.totals for b in series), Totals())
    return Dashboard("24h", label, since, total, series, sorted(by_model, key=order), sorted(by_key, key=order))
