"""What prompt caching did for a tenant: the cache hit rate and the money caching saved.

Both figures are derived from the ledger's token counts (``usage_daily``, or ``usage_events`` for an
exact period) and are never stored, so they follow price changes:

- **cache hit rate** = ``cache_read / (input + cache_read + cache_write)`` tokens: the share of the
  prompt tokens that were served from the provider's cache (``input`` is the uncached rest, in
  Anthropic's accounting, see :class:`gateway.domain.Usage`). ``None`` when there were no prompt tokens.
- **saved** = ``cache_read x (input price - cache-read price) - cache_write x (cache-write price - input price)``,
  in micro-USD at the model's *current* prices: what the same prompt would have cost with no cache,
  less what it cost. A cache write dearer than plain input (Anthropic bills 1.25x) counts against
  the saving, so the figure is negative when written caches were never read back.

A model's current price is resolved as routing does (:class:`gateway.routing.Router`): the tenant's
custom model of that name, else the platform's own model, else the built-in catalog entry with the
operator's price overrides; a ``-thinking`` name is priced as its base model. Disabled models and
providers keep their prices here (their past usage still saved money). A model that no longer exists
saves nothing and is listed in :attr:`CacheSavings.unpriced`. Per-key savings sum the key's models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import load_catalog
from gateway.catalog.state import ProviderState
from gateway.db.tables import ModelRow, ProviderRow, UsageDaily, UsageEvent
from gateway.domain import Price
from gateway.manage.usage import Totals, UsageQuery, UsageRow, _daily_scope

__all__ = [
    "CacheRow",
    "CacheSavings",
    "current_prices",
    "hit_rate",
    "price_of",
    "saved_micro_usd",
    "savings",
    "tally",
]

_THINKING = "-thinking"  # routing's suffix; not imported to keep this module off the routing layer


def hit_rate(t: Totals) -> float | None:
    """Cached share of the prompt tokens, 0..1; ``None`` without prompt tokens (nothing to rate)."""
    prompt = t.input_tokens + t.cache_read_tokens + t.cache_write_tokens
    return t.cache_read_tokens / prompt if prompt else None


def _saved(price: Price, cache_read: int, cache_write: int) -> float:
    """The saving in micro-USD, unrounded (USD/MTok x tokens is micro-USD)."""
    return cache_read * (price.input - price.cache_read) - cache_write * (price.cache_write - price.input)


def saved_micro_usd(price: Price, cache_read: int, cache_write: int) -> int:
    """``cache_read x (input - cache_read price) - cache_write x (cache_write price - input)``, micro-USD."""
    return round(_saved(price, cache_read, cache_write))


async def current_prices(session: AsyncSession, tenant_id: str) -> dict[str, Price]:
    """Every model name the tenant's usage may carry → its price now (see the module docstring)."""
    prices: dict[str, Price] = {}
    overrides = {r.name: r.price_overrides or {} for r in await session.scalars(sa.select(ProviderRow))}
    for name, provider in load_catalog().items():
        # ProviderState.price applies the operator's overrides; no credential is needed to price.
        state = ProviderState(provider, False, "", provider.base_url, overrides.get(name, {}), "none")
        for model in provider.models:
            for public in model.public_names:
                prices[public] = state.price(model)
    rows = await session.scalars(
        sa.select(ModelRow)
        .where(sa.or_(ModelRow.tenant_id.is_(None), ModelRow.tenant_id == tenant_id))
        .order_by(ModelRow.tenant_id.is_not(None))  # platform rows first, so the tenant's own win
    )
    for row in rows:
        prices[row.name] = Price(row.input_price, row.output_price, row.cache_read_price, row.cache_write_price)
    return prices


def price_of(prices: Mapping[str, Price], model: str) -> Price | None:
    found = prices.get(model)
    if found is None and model.endswith(_THINKING):
        found = prices.get(model[: -len(_THINKING)])
    return found


@dataclass(frozen=True, slots=True)
class CacheRow:
    """Cache tokens of one (day, key, model) group of the ledger."""

    model: str
    key_id: str | None
    day: date | None
    cache_read_tokens: int
    cache_write_tokens: int


@dataclass(frozen=True, slots=True)
class CacheSavings:
    """Money caching saved, in micro-USD: in all and per model, key and day of the period."""

    total_micro_usd: int = 0
    by_model: Mapping[str, int] = field(default_factory=dict)
    by_key: Mapping[str | None, int] = field(default_factory=dict)
    """``None``: requests made without a key."""
    by_day: Mapping[date, int] = field(default_factory=dict)
    unpriced: frozenset[str] = frozenset()
    """Models with cached tokens but no price any more (counted as saving nothing)."""

    @property
    def total_usd(self) -> float:
        return self.total_micro_usd / 1_000_000

    def of_row(self, row: UsageRow) -> int:
        """The saving of one breakdown row (``gateway.manage.usage.summary``): by its day, model or key."""
        if row.day is not None:
            return self.by_day.get(row.day, 0)
        if row.model is not None:
            return self.by_model.get(row.model, 0)
        return self.by_key.get(row.key_id, 0)


def tally(rows: Iterable[CacheRow], prices: Mapping[str, Price]) -> CacheSavings:
    """Savings of the rows at ``prices``; each sum is rounded once, so the parts add up to within a micro-dollar."""
    total = 0.0
    by_model: defaultdict[str, float] = defaultdict(float)
    by_key: defaultdict[str | None, float] = defaultdict(float)
    by_day: defaultdict[date, float] = defaultdict(float)
    unpriced: set[str] = set()
    for r in rows:
        if not (r.cache_read_tokens or r.cache_write_tokens):
            continue
        price = price_of(prices, r.model)
        if price is None:
            unpriced.add(r.model)
            continue
        saved = _saved(price, r.cache_read_tokens, r.cache_write_tokens)
        total += saved
        by_model[r.model] += saved
        by_key[r.key_id] += saved
        if r.day is not None:
            by_day[r.day] += saved
    return CacheSavings(
        round(total),
        {k: round(v) for k, v in by_model.items()},
        {k: round(v) for k, v in by_key.items()},
        {k: round(v) for k, v in by_day.items()},
        frozenset(unpriced),
    )


async def _daily_rows(session: AsyncSession, q: UsageQuery) -> list[CacheRow]:
    cached = sa.or_(UsageDaily.cache_read_tokens > 0, UsageDaily.cache_write_tokens > 0)
    found = await session.execute(
        sa.select(
            UsageDaily.day,
            UsageDaily.key_id,
            UsageDaily.model,
            UsageDaily.cache_read_tokens,
            UsageDaily.cache_write_tokens,
        ).where(*_daily_scope(q), cached)
    )
    return [
        CacheRow(r.model, r.key_id or None, r.day, int(r.cache_read_tokens), int(r.cache_write_tokens)) for r in found
    ]


async def _event_rows(session: AsyncSession, tenant_id: str, since: datetime, until: datetime) -> list[CacheRow]:
    read = sa.func.coalesce(sa.func.sum(UsageEvent.cache_read_tokens), 0).label("read")
    write = sa.func.coalesce(sa.func.sum(UsageEvent.cache_write_tokens), 0).label("write")
    scope = (UsageEvent.tenant_id == tenant_id, UsageEvent.created_at >= since, UsageEvent.created_at < until)
    found = await session.execute(
        sa.select(UsageEvent.key_id, UsageEvent.model, read, write)
        .where(*scope)
        .group_by(UsageEvent.key_id, UsageEvent.model)
    )
    return [CacheRow(r.model, r.key_id or None, None, int(r.read), int(r.write)) for r in found]


async def savings(session: AsyncSession, q: UsageQuery, *, exact: bool = False) -> CacheSavings:
    """Savings of the query's period: whole UTC days from the rollup, or with ``exact`` the ledger's
    rows between ``since`` and ``until`` (the dashboard's last 24 hours; no per-day split)."""
    prices = await current_prices(session, q.tenant_id)
    rows = await (_event_rows(session, q.tenant_id, q.since, q.until) if exact else _daily_rows(session, q))
    return tally(rows, prices)
