"""Usage of a tenant: totals and breakdowns (from ``usage_daily``), the request log (from ``usage_events``), CSV.

Every query is scoped to one tenant by a ``UsageQuery``, and only ``_daily_scope`` and
``_events_scope`` turn it into SQL: no query here can see another tenant's rows.

Summaries count whole UTC days: a day is in when it overlaps [``since``, ``until``). The request
log is exact to the microsecond and pages by keyset on (``created_at``, ``id``), newest first, so a
page costs the same on the millionth row as on the first. CSV exports stream in chunks, each from
its own short transaction.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.tables import NO_KEY, ApiKey, UsageDaily, UsageEvent
from gateway.errors import InvalidRequest

GroupBy = Literal["day", "model", "key"]
GROUPS: tuple[GroupBy, ...] = ("day", "model", "key")
StatusClass = Literal["ok", "error"]
STATUS_CLASSES: tuple[StatusClass, ...] = ("ok", "error")
MAX_PAGE = 1000
CSV_CHUNK = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 date (``2026-11-01``: its UTC midnight) or date-time; without a zone, UTC."""
    if value is None or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{field}: {value!r} is not an ISO 8601 date or date-time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Whose usage, over which time, narrowed to one key and/or one model (exact, or a part of its name)."""

    tenant_id: str
    since: datetime
    until: datetime
    key_id: str | None = None
    model: str | None = None
    model_contains: str | None = None
    """Case-sensitive substring of the model name (the admin UI's search box); ``model`` is the exact name."""

    @classmethod
    def of(
        cls,
        tenant_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        key_id: str | None = None,
        model: str | None = None,
        model_contains: str | None = None,
        now: datetime | None = None,
    ) -> UsageQuery:
        """Defaults: from the start of the current UTC month until now."""
        now = now or datetime.now(UTC)
        since = since or month_start(now)
        until = until or now
        if until <= since:
            raise InvalidRequest("until: must be later than since")
        return cls(tenant_id, since, until, key_id or None, model or None, model_contains or None)

    @property
    def first_day(self) -> date:
        return self.since.astimezone(UTC).date()

    @property
    def last_day(self) -> date:
        end = self.until.astimezone(UTC)
        return end.date() - timedelta(days=1) if end.time() == time() else end.date()


def _daily_scope(q: UsageQuery) -> list[sa.ColumnElement[bool]]:
    where = [UsageDaily.tenant_id == q.tenant_id, UsageDaily.day >= q.first_day, UsageDaily.day <= q.last_day]
    if q.key_id is not None:
        where.append(UsageDaily.key_id == q.key_id)
    if q.model is not None:
        where.append(UsageDaily.model == q.model)
    if q.model_contains is not None:
        where.append(UsageDaily.model.contains(q.model_contains, autoescape=True))
    return where


def _events_scope(q: UsageQuery, status: StatusClass | None) -> list[sa.ColumnElement[bool]]:
    where = [UsageEvent.tenant_id == q.tenant_id, UsageEvent.created_at >= q.since, UsageEvent.created_at < q.until]
    if q.key_id is not None:
        where.append(UsageEvent.key_id == q.key_id)
    if q.model is not None:
        where.append(UsageEvent.model == q.model)
    if q.model_contains is not None:
        where.append(UsageEvent.model.contains(q.model_contains, autoescape=True))
    # A literal 400, so Postgres can use the partial index of errors (status >= 400).
    if status == "error":
        where.append(UsageEvent.status >= sa.literal_column("400"))
    elif status == "ok":
        where.append(UsageEvent.status < sa.literal_column("400"))
    return where


# --- totals and breakdowns, from usage_daily ---


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_micro_usd: int = 0

    @property
    def cost_usd(self) -> float:
        return self.cost_micro_usd / 1_000_000

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cost_usd": self.cost_usd}

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Totals)))


COUNTERS = tuple(f.name for f in fields(Totals))


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group of a breakdown: the field it is grouped by is set, the others are None."""

    totals: Totals
    day: date | None = None
    model: str | None = None
    key_id: str | None = None
    """None for requests made without a key."""
    key_prefix: str | None = None
    key_name: str | None = None


@dataclass(frozen=True, slots=True)
class UsageReport:
    query: UsageQuery
    group_by: GroupBy
    totals: Totals
    rows: list[UsageRow]


def check_group_by(value: str | None) -> GroupBy:
    if value not in GROUPS:
        raise InvalidRequest(f"group_by: must be one of {', '.join(GROUPS)}, not {value!r}")
    return GROUPS[GROUPS.index(value)]


def check_status(value: str | None) -> StatusClass | None:
    if value and value not in STATUS_CLASSES:
        raise InvalidRequest(f"status: must be one of {', '.join(STATUS_CLASSES)}, not {value!r}")
    return STATUS_CLASSES[STATUS_CLASSES.index(value)] if value else None


_SUMS = [sa.func.coalesce(sa.func.sum(getattr(UsageDaily, c)), 0).label(c) for c in COUNTERS]


def _totals(row: Any) -> Totals:
    return Totals(*(int(getattr(row, c)) for c in COUNTERS))


async def key_labels(session: AsyncSession, tenant_id: str, key_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Display prefix and name of some of the tenant's keys."""
    ids = sorted({k for k in key_ids if k})
    if not ids:
        return {}
    rows = await session.execute(
        sa.select(ApiKey.id, ApiKey.prefix, ApiKey.name).where(ApiKey.tenant_id == tenant_id, ApiKey.id.in_(ids))
    )
    return {r.id: (r.prefix, r.name) for r in rows}


async def totals(session: AsyncSession, q: UsageQuery) -> Totals:
    """The period's totals in one aggregate over the tenant's daily rows (primary-key range scan)."""
    return _totals((await session.execute(sa.select(*_SUMS).where(*_daily_scope(q)))).one())


async def summary(session: AsyncSession, q: UsageQuery, group_by: GroupBy = "day") -> UsageReport:
    column = {"day": UsageDaily.day, "model": UsageDaily.model, "key": UsageDaily.key_id}[group_by]
    query = sa.select(column.label("group"), *_SUMS).where(*_daily_scope(q)).group_by(column)
    order = [column] if group_by == "day" else [sa.desc("cost_micro_usd"), sa.desc("requests"), column]
    found = list(await session.execute(query.order_by(*order)))
    labels = await key_labels(session, q.tenant_id, (r.group for r in found)) if group_by == "key" else {}
    rows: list[UsageRow] = []
    for r in found:
        t = _totals(r)
        if group_by == "day":
            rows.append(UsageRow(t, day=_as_date(r.group)))
        elif group_by == "model":
            rows.append(UsageRow(t, model=r.group))
        else:
            key_id = r.group or None
            prefix, name = labels.get(r.group, (None, None))
            rows.append(UsageRow(t, key_id=key_id, key_prefix=prefix, key_name=name))
    return UsageReport(q, group_by, sum((r.totals for r in rows), Totals()), rows)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# --- the request log, from usage_events ---


@dataclass(frozen=True, slots=True)
class RequestRow:
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
    latency_ms: int
    ttft_ms: int | None
    attempts: int = 1
    """Upstream attempts inside the request (retries and fallbacks)."""
    served_model: str | None = None
    """The fallback model that answered, when not ``model``."""
    conversion_notes: str | None = None
    """What translation dropped or changed, comma-separated (the ``relay-conversion-notes`` header)."""
    upstream_key_id: str | None = None
    """The upstream pool key that carried the last attempt."""
    asked_model: str | None = None
    """The model name the client sent, when the key's aliases routed it to ``model``."""

    @property
    def cost_usd(self) -> float:
        return self.cost_micro_usd / 1_000_000


@dataclass(frozen=True, slots=True)
class RequestPage:
    rows: list[RequestRow]
    next_cursor: str | None
    """Pass it back as ``cursor`` for the next (older) page; None on the last page."""


def encode_cursor(created_at: datetime, row_id: int) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, row_id = (int(part) for part in raw.split(":"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("cursor: not a cursor this API returned") from None
    return _EPOCH + timedelta(microseconds=micros), row_id


_EVENT_COLUMNS = [c for c in UsageEvent.__table__.columns if c.name not in ("tenant_id",)]


async def requests_page(
    session: AsyncSession,
    q: UsageQuery,
    *,
    status: StatusClass | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> RequestPage:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit: must be between 1 and {MAX_PAGE}")
    where = _events_scope(q, status)
    if cursor:
        at, row_id = decode_cursor(cursor)
        after = sa.tuple_(
            sa.bindparam("cursor_at", at, type_=UsageEvent.created_at.type),
            sa.bindparam("cursor_id", row_id, type_=UsageEvent.id.type),
        )
        where.append(sa.tuple_(UsageEvent.created_at, UsageEvent.id) < after)
    query = (
        sa.select(*_EVENT_COLUMNS)
        .where(*where)
        .order_by(UsageEvent.created_at.desc(), UsageEvent.id.desc())
        .limit(limit + 1)
    )
    found = list(await session.execute(query))
    more = len(found) > limit
    found = found[:limit]
    labels = await key_labels(session, q.tenant_id, (r.key_id for r in found))
    rows = [
        RequestRow(
            **{c.name: getattr(r, c.name) for c in _EVENT_COLUMNS},
            key_prefix=labels.get(r.key_id, (None, ""))[0] if r.key_id else None,
        )
        for r in found
    ]
    last = rows[-1] if rows else None
    return RequestPage(rows, encode_cursor(last.created_at, last.id) if more and last else None)


async def request_by_id(session: AsyncSession, tenant_id: str, request_id: str) -> RequestRow | None:
    """One row of the tenant's request log by its request id; None when it is unknown or another tenant's."""
    found = (
        await session.execute(
            sa.select(*_EVENT_COLUMNS).where(UsageEvent.tenant_id == tenant_id, UsageEvent.request_id == request_id)
        )
    ).first()
    if found is None:
        return None
    labels = await key_labels(session, tenant_id, [found.key_id] if found.key_id else [])
    prefix = labels.get(found.key_id, (None, ""))[0] if found.key_id else None
    return RequestRow(**{c.name: getattr(found, c.name) for c in _EVENT_COLUMNS}, key_prefix=prefix)


# --- CSV, streamed ---

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula is quoted as text (CSV injection)."""
    if isinstance(value, str) and value.startswith(_DANGEROUS):
        return "'" + value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return "" if value is None else value


def _csv(rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


USAGE_CSV_HEADER = ("day", "key_id", "key_prefix", "model", *COUNTERS, "cost_usd")
REQUESTS_CSV_HEADER = (
    *(c.name for c in _EVENT_COLUMNS if c.name != "cost_micro_usd"),
    "key_prefix",
    "cost_micro_usd",
    "cost_usd",
)


async def usage_csv(
    sessions: async_sessionmaker[AsyncSession], q: UsageQuery, group_by: GroupBy | None = None
) -> AsyncIterator[str]:
    """Daily rows (day x key x model) of the period, or with ``group_by`` the breakdown, as CSV text chunks."""
    if group_by is not None:
        async with sessions() as session:
            report = await summary(session, q, group_by)
        yield _csv([USAGE_CSV_HEADER])
        yield _csv(
            (r.day, r.key_id, r.key_prefix, r.model, *(getattr(r.totals, c) for c in COUNTERS), r.totals.cost_usd)
            for r in report.rows
        )
        return
    yield _csv([USAGE_CSV_HEADER])
    position: tuple[date, str, str] | None = None
    bucket = sa.tuple_(UsageDaily.day, UsageDaily.key_id, UsageDaily.model)
    while True:
        query = sa.select(UsageDaily).where(*_daily_scope(q))
        if position is not None:
            day, key_id, model = position
            after = sa.tuple_(sa.literal(day, sa.Date), sa.literal(key_id, sa.String), sa.literal(model, sa.String))
            query = query.where(bucket > after)
        query = query.order_by(UsageDaily.day, UsageDaily.key_id, UsageDaily.model).limit(CSV_CHUNK)
        async with sessions() as session:
            chunk = list(await session.scalars(query))
            labels = await key_labels(session, q.tenant_id, (r.key_id for r in chunk))
        if not chunk:
            return
        yield _csv(
            (
                r.day,
                r.key_id or None,
                labels.get(r.key_id, (None, ""))[0],
                r.model,
                *(getattr(r, c) for c in COUNTERS),
                r.cost_micro_usd / 1_000_000,
            )
            for r in chunk
        )
        if len(chunk) < CSV_CHUNK:
            return
        last = chunk[-1]
        position = (last.day, last.key_id or NO_KEY, last.model)


async def requests_csv(
    sessions: async_sessionmaker[AsyncSession], q: UsageQuery, *, status: StatusClass | None = None
) -> AsyncIterator[str]:
    """The request log of the period, newest first, as CSV text chunks (one keyset page each)."""
    yield _csv([REQUESTS_CSV_HEADER])
    cursor: str | None = None
    while True:
        async with sessions() as session:
            page = await requests_page(session, q, status=status, cursor=cursor, limit=CSV_CHUNK)
        yield _csv(
            (
                *(getattr(r, name) for name in REQUESTS_CSV_HEADER[:-3]),
                r.key_prefix,
                r.cost_micro_usd,
                r.cost_usd,
            )
            for r in page.rows
        )
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
