"""``/api/v1/usage``: the tenant's usage — totals and breakdowns, the request log, CSV exports. Members may read.

``since`` / ``until`` are ISO 8601 dates or date-times (UTC when no zone is given); by default the
current UTC month. Totals and breakdowns count whole UTC days from the daily rollup; the request log
is exact and pages newest first with ``cursor`` (the previous page's ``next_cursor``). A ``key_id``
of another tenant is "not found", like a missing one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.di import Provide
from litestar.params import QueryParameter
from litestar.response import Stream

from gateway.api.management.access import Db, OwnTenant, Svc, provide_tenant
from gateway.errors import NotFound
from gateway.manage import cache_savings, keys, usage
from gateway.manage.usage import GroupBy, UsageQuery

Since = Annotated[
    str | None, QueryParameter(description="ISO 8601 date or date-time, inclusive (default: start of this month)")
]
Until = Annotated[str | None, QueryParameter(description="ISO 8601 date or date-time, exclusive (default: now)")]
KeyFilter = Annotated[str | None, QueryParameter(description="only this key of the tenant")]
ModelFilter = Annotated[str | None, QueryParameter(description="only this public model name")]
GroupQuery = Annotated[str | None, QueryParameter(description="rows by day (default), model or key")]
StatusQuery = Annotated[str | None, QueryParameter(description="ok (status < 400) or error (status >= 400)")]
CursorQuery = Annotated[str | None, QueryParameter(description="next_cursor of the previous page")]
LimitQuery = Annotated[int, QueryParameter(description="rows per page (1 to 1000)")]


class UsageTotals(msgspec.Struct, kw_only=True):
    requests: int
    errors: int
    """Requests that ended with a status of 400 or more (499: the client went away)."""
    input_tokens: int
    """Uncached input tokens (Anthropic's accounting; OpenAI's cached tokens are in cache_read_tokens)."""
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_micro_usd: int
    cost_usd: float
    cache_hit_rate: float | None
    """cache_read / (input + cache_read + cache_write) tokens; null without prompt tokens."""
    cache_saved_micro_usd: int
    """cache_read x (input price - cache-read price) - cache_write x (cache-write price - input price),
    at the models' current prices (negative when cache writes were never read back)."""
    cache_saved_usd: float


class UsageRowOut(UsageTotals, kw_only=True):
    """One group: the field the rows are grouped by is set, the others are null."""

    day: date | None
    model: str | None
    key_id: str | None
    key_prefix: str | None
    key_name: str | None


class UsageOut(msgspec.Struct, kw_only=True):
    since: datetime
    until: datetime
    group_by: str
    totals: UsageTotals
    rows: list[UsageRowOut]
    cache_unpriced_models: list[str]
    """Models with cached tokens but no price any more: their caching is counted as saving nothing."""


class RequestOut(msgspec.Struct, kw_only=True):
    id: int
    request_id: str
    created_at: datetime
    key_id: str | None
    key_prefix: str | None
    model: str
    upstream_id: str | None
    door_dialect: str
    upstream_dialect: str | None
    stream: bool
    status: int
    error_code: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    estimated: bool
    cost_micro_usd: int
    cost_usd: float
    latency_ms: int
    ttft_ms: int | None
    attempts: int = 1
    """Upstream attempts inside this request (retries and fallbacks): one request, one row."""
    served_model: str | None = None
    """The fallback model that answered, when not ``model``."""
    conversion_notes: str | None = None
    """What translation dropped or changed, comma-separated (the ``relay-conversion-notes`` header)."""
    asked_model: str | None = None
    """The model name the client sent, when the key's aliases routed it to ``model``."""


class RequestsOut(msgspec.Struct, kw_only=True):
    requests: list[RequestOut]
    next_cursor: str | None
    """Null on the last page."""


def _totals(t: usage.Totals, saved_micro_usd: int) -> dict[str, Any]:
    return {
        **t.to_dict(),
        "cache_hit_rate": cache_savings.hit_rate(t),
        "cache_saved_micro_usd": saved_micro_usd,
        "cache_saved_usd": saved_micro_usd / 1_000_000,
    }


async def _query(
    db: Db, tenant: OwnTenant, since: str | None, until: str | None, key_id: str | None, model: str | None
) -> UsageQuery:
    if key_id:
        try:
            await keys.key_by_id(db, key_id, tenant_id=tenant.id)
        except NotFound as exc:
            raise NotFound(f"key_id: {exc.message}") from None
    return UsageQuery.of(
        tenant.id,
        usage.parse_time(since, "since"),
        usage.parse_time(until, "until"),
        key_id=key_id,
        model=model,
    )


def _csv_stream(chunks: AsyncIterator[str], filename: str) -> Stream:
    async def encoded() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            yield chunk.encode()

    return Stream(
        encoded(),
        media_type="text/csv",  # Litestar adds "; charset=utf-8" to text types itself
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


_DEPS = {"tenant": Provide(provide_tenant)}


@get("/usage", tags=["usage"], dependencies=_DEPS)
async def usage_summary(
    db: Db,
    tenant: OwnTenant,
    since: Since = None,
    until: Until = None,
    key_id: KeyFilter = None,
    model: ModelFilter = None,
    group_by: GroupQuery = None,
) -> UsageOut:
    """Totals of the period and one row per day, model or key (from the daily rollup)."""
    group: GroupBy = usage.check_group_by(group_by or "day")
    q = await _query(db, tenant, since, until, key_id, model)
    report = await usage.summary(db, q, group)
    saved = await cache_savings.savings(db, q)
    rows = [
        UsageRowOut(
            **_totals(r.totals, saved.of_row(r)),
            day=r.day,
            model=r.model,
            key_id=r.key_id,
            key_prefix=r.key_prefix,
            key_name=r.key_name,
        )
        for r in report.rows
    ]
    return UsageOut(
        since=report.query.since,
        until=report.query.until,
        group_by=group,
        totals=UsageTotals(**_totals(report.totals, saved.total_micro_usd)),
        rows=rows,
        cache_unpriced_models=sorted(saved.unpriced),
    )


@get("/usage/requests", tags=["usage"], dependencies=_DEPS)
async def usage_requests(
    db: Db,
    tenant: OwnTenant,
    since: Since = None,
    until: Until = None,
    key_id: KeyFilter = None,
    model: ModelFilter = None,
    status: StatusQuery = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> RequestsOut:
    """The request log, newest first, one page at a time."""
    q = await _query(db, tenant, since, until, key_id, model)
    page = await usage.requests_page(db, q, status=usage.check_status(status), cursor=cursor, limit=limit)
    rows = [RequestOut(**{f: getattr(r, f) for f in RequestOut.__struct_fields__}) for r in page.rows]
    return RequestsOut(requests=rows, next_cursor=page.next_cursor)


@get("/usage.csv", tags=["usage"], dependencies=_DEPS, media_type="text/csv")
async def usage_export(
    db: Db,
    tenant: OwnTenant,
    services: Svc,
    since: Since = None,
    until: Until = None,
    key_id: KeyFilter = None,
    model: ModelFilter = None,
    group_by: GroupQuery = None,
) -> Stream:
    """The daily rows (day x key x model) of the period as CSV, or with ``group_by`` the breakdown."""
    group = usage.check_group_by(group_by) if group_by else None
    q = await _query(db, tenant, since, until, key_id, model)
    return _csv_stream(usage.usage_csv(services.sessions, q, group), "usage.csv")


@get("/usage/requests.csv", tags=["usage"], dependencies=_DEPS, media_type="text/csv")
async def usage_requests_export(
    db: Db,
    tenant: OwnTenant,
    services: Svc,
    since: Since = None,
    until: Until = None,
    key_id: KeyFilter = None,
    model: ModelFilter = None,
    status: StatusQuery = None,
) -> Stream:
    """The request log of the period as CSV, newest first, streamed."""
    q = await _query(db, tenant, since, until, key_id, model)
    chunks = usage.requests_csv(services.sessions, q, status=usage.check_status(status))
    return _csv_stream(chunks, "requests.csv")


USAGE_HANDLERS = [usage_summary, usage_requests, usage_export, usage_requests_export]
