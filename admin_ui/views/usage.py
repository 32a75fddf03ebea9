"""Dashboard (charts of requests, tokens and cost) and the request log (filters, keyset paging, CSV)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from admin_ui import charts, stats
from admin_ui.guard import admin_of
from admin_ui.lookups import tenant_of
from admin_ui.spend import SpendBy, spend_over_time
from admin_ui.web import money, page, redirect, services_of, url_with
from gateway.conversation_upkeep import held_conversations
from gateway.db.tables import ApiKey, UpstreamRow
from gateway.errors import InvalidRequest, NotFound
from gateway.manage import cache_savings, keys, upstreams, usage
from gateway.manage.usage import Totals, UsageQuery, UsageRow

LOG_DEFAULT_SPAN = timedelta(days=30)
PAGE_SIZE = 50


def _rate(totals: Totals) -> str:
    """The cache hit rate as a percentage; a dash without prompt tokens."""
    rate = cache_savings.hit_rate(totals)
    return "—" if rate is None else f"{rate:.1%}"


def _saved(micro: int) -> str:
    """Money caching saved; a loss (cache writes never read back) shows with a minus sign."""
    return "-" + money(-micro) if micro < 0 else money(micro)


def _key_label(row: UsageRow) -> str:
    if row.key_id is None:
        return "(no key)"
    return f"{row.key_name} ({row.key_prefix}…)" if row.key_name else f"{row.key_prefix or row.key_id[:8]}…"


@get("/dashboard")
async def dashboard(
    request: Request[Any, Any, Any], range: FromQuery[str] = "24h", spend: FromQuery[str] = "model"
) -> Response[str]:
    admin = admin_of(request)
    spend_by: SpendBy = "key" if spend == "key" else "model"
    async with services_of(request).sessions() as db:
        data = await stats.dashboard(db, admin.tenant_id, range)
        spend_series = await spend_over_time(db, admin.tenant_id, data, spend_by)
        has_keys = bool(await keys.list_keys(db, tenant=await tenant_of(db, admin.tenant_id)))
        held = await held_conversations(db, admin.tenant_id)
        # The range the figures above cover: the last 24 hours exactly, else whole UTC days (see stats).
        period = UsageQuery.of(admin.tenant_id, data.since, datetime.now(UTC))
        saved = await cache_savings.savings(db, period, exact=data.range == "24h")
    points = [(b.label, float(b.totals.requests), f"{b.totals.requests:,}", b.title) for b in data.series]
    requests = charts.columns(points, width=960, height=220)
    requests_narrow = charts.columns(points, width=480)  # shown instead on small screens (CSS)
    tokens = charts.columns(
        [
            (b.label, t, f"{t:,}", b.title)
            for b in data.series
            for t in [b.totals.input_tokens + b.totals.output_tokens + b.totals.cache_read_tokens]
        ],
        width=480,
    )
    cost = charts.columns(
        [(b.label, b.totals.cost_usd, money(b.totals.cost_micro_usd), b.title) for b in data.series],
        fmt="money",
        width=480,
    )
    by_model = charts.rows([(r.model or "?", r.totals.cost_usd, money(r.totals.cost_micro_usd)) for r in data.by_model])
    by_model_req = charts.rows([(r.model or "?", r.totals.requests, f"{r.totals.requests:,}") for r in data.by_model])
    # Tokens by key; requests when none has tokens yet (failed requests only), so they are not "no requests".
    by_key_metric = "tokens" if any(r.totals.input_tokens + r.totals.output_tokens for r in data.by_key) else "requests"
    by_key = charts.rows(
        [
            (
                _key_label(r),
                r.totals.input_tokens + r.totals.output_tokens if by_key_metric == "tokens" else r.totals.requests,
                f"{r.totals.input_tokens + r.totals.output_tokens:,}"
                if by_key_metric == "tokens"
                else f"{r.totals.requests:,}",
            )
            for r in data.by_key
        ]
    )
    return page(
        request,
        "dashboard.html",
        data=data,
        ranges=stats.RANGES,
        charts={"requests": requests, "requests_narrow": requests_narrow, "tokens": tokens, "cost": cost},
        by_model=by_model if any(r.totals.cost_micro_usd for r in data.by_model) else by_model_req,
        by_model_metric="cost" if any(r.totals.cost_micro_usd for r in data.by_model) else "requests",
        by_key=by_key,
        by_key_metric=by_key_metric,
        spend_by=spend_by,
        spend_series=spend_series,
        key_label=_key_label,
        has_keys=has_keys,
        held=held,
        held_days=services_of(request).settings.conversation_ttl_s / 86400,
        saved=saved,
        rate=_rate,
        saved_label=_saved,
    )


def _date(value: str, field: str) -> datetime | None:
    return usage.parse_time(value, field) if value else None


def _query(admin_tenant: str, params: dict[str, str]) -> tuple[UsageQuery, usage.StatusClass | None]:
    now = datetime.now(UTC)
    since = _date(params["since"], "since") or now - LOG_DEFAULT_SPAN
    until = _date(params["until"], "until")
    if until is not None and len(params["until"]) == 10:
        until += timedelta(days=1)  # a date "until" includes that whole day
    status = usage.check_status(params["status"] or None)
    q = UsageQuery.of(
        admin_tenant, since, until or now + timedelta(seconds=1), key_id=params["key"], model_contains=params["model"]
    )
    return q, status


def _params(request: Request[Any, Any, Any]) -> dict[str, str]:
    get_ = request.query_params.get
    names = ("key", "model", "status", "since", "until", "cursor", "request_id")
    return {name: (get_(name) or "").strip()[:200] for name in names}


@get("/usage")
async def usage_page(request: Request[Any, Any, Any]) -> Response[Any]:
    admin = admin_of(request)
    params = _params(request)
    if params["request_id"]:  # an exact id: straight to that request, or say it is not this tenant's
        async with services_of(request).sessions() as db:
            found = await usage.request_by_id(db, admin.tenant_id, params["request_id"])
        if found is not None:
            return redirect(request, f"/usage/requests/{quote(found.request_id, safe='')}")
    try:
        q, status = _query(admin.tenant_id, params)
        error = None
    except InvalidRequest as exc:
        q, status, error = UsageQuery.of(admin.tenant_id, datetime.now(UTC) - LOG_DEFAULT_SPAN), None, exc.message
    if params["request_id"]:
        error = (
            f"No request with the id {params['request_id']!r} is in {admin.tenant_name}'s log. Requests refused "
            "before an upstream was called (a malformed body, an unknown model, a rate limit or budget) are not "
            "logged: the error they answered says why."
        )
    async with services_of(request).sessions() as db:
        key_rows = await keys.list_keys(db, tenant=await tenant_of(db, admin.tenant_id))
        result = await usage.requests_page(db, q, status=status, cursor=params["cursor"] or None, limit=PAGE_SIZE)
    names = {k.id: k.name for k in key_rows}
    path = request.url.path
    filters = {k: v for k, v in params.items() if k not in ("cursor", "request_id")}
    return page(
        request,
        "usage.html",
        status=404 if params["request_id"] else 400 if error else 200,
        rows=result.rows,
        error=error,
        params=params,
        keys=key_rows,
        key_names=names,
        older=url_with(path, {**filters, "cursor": result.next_cursor}) if result.next_cursor else None,
        newest=url_with(path, filters) if params["cursor"] else None,
        csv=url_with(path + ".csv", filters),
    )


@get("/usage.csv")
async def usage_csv(request: Request[Any, Any, Any]) -> Stream:
    admin = admin_of(request)
    q, status = _query(admin.tenant_id, _params(request))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return Stream(
        usage.requests_csv(services_of(request).sessions, q, status=status),
        media_type="text/csv",  # Litestar adds "; charset=utf-8" to text types itself
        headers={"content-disposition": f'attachment; filename="relay-requests-{stamp}.csv"'},
    )


@get("/usage/requests/{request_id:str}")
async def request_page(request: Request[Any, Any, Any], request_id: FromPath[str]) -> Response[str]:
    """One request of the log: who, what was asked and served, attempts, outcome, tokens, cost, timings."""
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions() as db:
        row = await usage.request_by_id(db, admin.tenant_id, request_id)
        if row is None:
            raise NotFound("No request with this id was made with this tenant's keys.")
        key = await _key_of(db, row.key_id, admin.tenant_id)
        upstream = await _upstream_of(db, row.upstream_id, admin.tenant_id)
    return page(request, "request_detail.html", r=row, key=key, upstream=upstream)


async def _key_of(db: AsyncSession, key_id: str | None, tenant_id: str) -> ApiKey | None:
    if key_id is None:
        return None
    try:
        return await keys.key_by_id(db, key_id, tenant_id=tenant_id)
    except NotFound:  # the key's tenant was emptied since; the row keeps its id
        return None


async def _upstream_of(db: AsyncSession, upstream_id: str | None, tenant_id: str) -> UpstreamRow | None:
    """The tenant's own upstream that served the request (built-in ones are not the tenant's to open)."""
    if upstream_id is None:
        return None
    try:
        return await upstreams.upstream_by_id(db, upstream_id, tenant_id=tenant_id)
    except NotFound:
        return None


USAGE_HANDLERS = [dashboard, usage_page, usage_csv, request_page]
