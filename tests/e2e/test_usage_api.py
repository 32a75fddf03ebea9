"""The usage API on each backend: totals and breakdowns, the request log (keyset pages, filters), CSV, isolation.

Dated usage is written through the ledger's own write path (what the gateway does after each request),
so the days, keys, models and statuses are known exactly.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from test_management_api import Api, error, make_token, ok

from gateway.domain import Usage
from gateway.metering import Ledger, UsageRecord

DAY1 = datetime(2026, 10, 30, 9, 0, tzinfo=UTC)
DAY2 = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
DAY3 = datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC)


def record(tenant: Any, key_id: str | None, model: str, at: datetime, *, status: int = 200, n: int = 1) -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{secrets.token_hex(8)}",
        tenant_id=tenant.id,
        key_id=key_id,
        model=model,
        upstream_id=None,
        door_dialect="openai",
        upstream_dialect="openai",
        stream=False,
        usage=Usage(input_tokens=10 * n, output_tokens=5 * n, cache_read_tokens=2 * n, cache_write_tokens=n),
        cost_micro_usd=100 * n if status < 400 else 0,
        status=status,
        latency_ms=20,
        error_code=None if status < 400 else "upstream_error",
        created_at=at,
    )


def write(stack: Any, records: list[UsageRecord]) -> None:
    async def go() -> None:
        engine = create_async_engine(stack.settings.database_url, poolclass=NullPool)
        try:
            await Ledger(async_sessionmaker(engine, expire_on_commit=False)).write(records)
        finally:
            await engine.dispose()

    asyncio.run(go())


class Usage3:
    """Tenant A with two keys and three days of usage; tenant B with its own."""

    def __init__(self, stack: Any) -> None:
        self.a = stack.seed.tenant()
        self.b = stack.seed.tenant()
        self.k1 = stack.seed.key(self.a).row.id
        self.k2 = stack.seed.key(self.a).row.id
        self.kb = stack.seed.key(self.b).row.id
        a = self.a
        self.records = [
            record(a, self.k1, "gpt", DAY1),
            record(a, self.k1, "gpt", DAY1 + timedelta(minutes=1), status=502),
            record(a, self.k2, "claude", DAY1 + timedelta(minutes=2), n=3),
            record(a, self.k1, "claude", DAY2, n=2),
            record(a, None, "gpt", DAY2 - timedelta(hours=1)),
            *(record(a, self.k2, "gpt", DAY3) for _ in range(4)),  # four at the same instant: ties broken by id
            record(a, self.k2, "gpt", DAY3 + timedelta(seconds=1), status=429),
        ]
        write(stack, [*self.records, record(self.b, self.kb, "gpt", DAY1, n=50)])
        self.api = Api(stack, make_token(stack, self.a, "member"))
        self.api_b = Api(stack, make_token(stack, self.b, "admin"))
        self.span = {"since": "2026-10-01", "until": "2026-12-01"}


@pytest.fixture
def u(stack: Any) -> Any:
    data = Usage3(stack)
    yield data
    data.api.close()
    data.api_b.close()


def test_totals_and_each_breakdown(u):
    body = ok(u.api.get("/usage", params={**u.span, "group_by": "day"}))
    totals = body["totals"]
    n = 1 + 1 + 3 + 2 + 1 + 4 + 1  # the n of every record
    assert totals == {
        "requests": 10,
        "errors": 2,
        "input_tokens": 10 * n,
        "output_tokens": 5 * n,
        "cache_read_tokens": 2 * n,
        "cache_write_tokens": n,
        "cost_micro_usd": 100 * (n - 2),
        "cost_usd": 100 * (n - 2) / 1e6,
        # The models "gpt" and "claude" have no price: their caching saved nothing that can be priced.
        "cache_hit_rate": 2 * n / (10 * n + 2 * n + n),
        "cache_saved_micro_usd": 0,
        "cache_saved_usd": 0.0,
    }
    assert body["cache_unpriced_models"] == ["claude", "gpt"]
    assert [(r["day"], r["requests"]) for r in body["rows"]] == [
        ("2026-10-30", 3),
        ("2026-10-31", 2),
        ("2026-11-01", 5),
    ]
    assert body["group_by"] == "day" and body["since"].startswith("2026-10-01")

    by_model = ok(u.api.get("/usage", params={**u.span, "group_by": "model"}))
    assert {r["model"]: r["requests"] for r in by_model["rows"]} == {"gpt": 8, "claude": 2}
    assert by_model["rows"][0]["day"] is None and by_model["totals"] == totals

    by_key = ok(u.api.get("/usage", params={**u.span, "group_by": "key"}))
    keys = {r["key_id"]: r for r in by_key["rows"]}
    assert {k: r["requests"] for k, r in keys.items()} == {u.k1: 3, u.k2: 6, None: 1}
    assert keys[u.k1]["key_prefix"].startswith("sk-") and keys[None]["key_prefix"] is None

    # Filters and whole-day ranges.
    only = ok(u.api.get("/usage", params={**u.span, "key_id": u.k2, "model": "gpt"}))
    assert only["totals"]["requests"] == 5 and only["totals"]["errors"] == 1
    day2 = ok(u.api.get("/usage", params={"since": "2026-10-31", "until": "2026-11-01"}))
    assert day2["totals"]["requests"] == 2 and [r["day"] for r in day2["rows"]] == ["2026-10-31"]
    partial = ok(u.api.get("/usage", params={"since": "2026-10-31T12:00:00Z", "until": "2026-11-01T00:00:01Z"}))
    assert [r["day"] for r in partial["rows"]] == ["2026-10-31", "2026-11-01"]  # days overlapping the range
    empty = ok(u.api.get("/usage", params={"since": "2020-01-01", "until": "2020-02-01"}))
    assert empty["totals"]["requests"] == 0 and empty["rows"] == []
    default = ok(u.api.get("/usage"))  # the current UTC month, until now
    assert default["since"] == datetime.now(UTC).strftime("%Y-%m-01T00:00:00Z")


def test_request_log_pages_by_cursor_newest_first(u):
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params = {**u.span, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = ok(u.api.get("/usage/requests", params=params))
        seen += page["requests"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4 and len(seen) == 10
    assert len({r["id"] for r in seen}) == 10  # no row twice, none skipped, even among equal timestamps
    order = [(r["created_at"], r["id"]) for r in seen]
    assert order == sorted(order, reverse=True)
    assert {r["request_id"] for r in seen} == {rec.request_id for rec in u.records}
    first = seen[0]
    assert first["status"] == 429 and first["error_code"] == "upstream_error" and first["key_id"] == u.k2
    assert first["key_prefix"].startswith("sk-") and "tenant_id" not in first
    assert {"input_tokens", "cache_read_tokens", "cost_usd", "latency_ms", "door_dialect"} <= set(first)


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"status": "error"}, 2),
        ({"status": "ok"}, 8),
        ({"model": "claude"}, 2),
        ({"model": "gpt", "status": "error"}, 2),
        ({"since": "2026-11-01T00:00:00Z"}, 5),
        ({"until": "2026-10-31T00:00:00Z"}, 3),
        ({"since": "2026-10-31", "until": "2026-10-31T23:59:59Z"}, 1),  # until is exclusive
    ],
)
def test_request_log_filters(u, params, count):
    query = {**u.span, **params, "limit": 100}
    rows = ok(u.api.get("/usage/requests", params=query))["requests"]
    assert len(rows) == count, rows
    k1 = ok(u.api.get("/usage/requests", params={**query, "key_id": u.k1}))["requests"]
    assert all(r["key_id"] == u.k1 for r in k1)


def test_one_batch_mixing_aliased_and_plain_requests_keeps_each_asked_name(stack):
    """Executemany takes its columns from the first row: a batch whose first record had no alias must still
    keep a later record's ``asked_model``."""
    tenant = stack.seed.tenant()
    at = datetime(2026, 11, 2, tzinfo=UTC)
    plain = record(tenant, None, "m", at)
    aliased = replace(record(tenant, None, "m", at + timedelta(seconds=1)), asked_model="claude-sonnet-4-5")
    write(stack, [plain, aliased])
    api = Api(stack, make_token(stack, tenant, "member"))
    try:
        logged = ok(api.get("/usage/requests", params={"since": "2026-11-01", "until": "2026-11-03"}))["requests"]
    finally:
        api.close()
    assert [(q["request_id"], q["asked_model"]) for q in logged] == [
        (aliased.request_id, "claude-sonnet-4-5"),
        (plain.request_id, None),
    ]


def test_csv_exports_stream_every_row(u):
    r = u.api.get("/usage/requests.csv", params=u.span)
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"  # issue 12.10: once
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 10 and {row["request_id"] for row in rows} == {rec.request_id for rec in u.records}
    assert rows[0]["status"] == "429" and rows[0]["created_at"].startswith("2026-11-01T00:00:01")

    daily = list(csv.DictReader(io.StringIO(u.api.get("/usage.csv", params=u.span).text)))
    assert sum(int(d["requests"]) for d in daily) == 10 and len(daily) == 5  # day x key x model buckets
    assert {(d["day"], d["key_id"], d["model"]) for d in daily} >= {("2026-10-31", "", "gpt")}
    grouped = list(csv.DictReader(io.StringIO(u.api.get("/usage.csv", params={**u.span, "group_by": "model"}).text)))
    assert {d["model"]: int(d["requests"]) for d in grouped} == {"gpt": 8, "claude": 2}
    errors = list(
        csv.DictReader(io.StringIO(u.api.get("/usage/requests.csv", params={**u.span, "status": "error"}).text))
    )
    assert len(errors) == 2


def test_another_tenants_usage_is_invisible(stack, u):
    # B sees only its own usage; A's key is "not found" to B, whatever the endpoint.
    b = ok(u.api_b.get("/usage", params=u.span))
    assert b["totals"]["requests"] == 1 and b["totals"]["input_tokens"] == 500
    assert ok(u.api_b.get("/usage/requests", params=u.span))["requests"][0]["key_id"] == u.kb
    for path in ("/usage", "/usage/requests", "/usage.csv", "/usage/requests.csv"):
        err = error(u.api_b.get(path, params={**u.span, "key_id": u.k1}), 404)
        assert err["param"] == "key_id" and err["code"] == "not_found"
        error(u.api_b.get(path, params={**u.span, "tenant_id": u.a.id}), 404)
    # A platform token reads a tenant's usage by naming it.
    platform = Api(stack, make_token(stack, None, "member"))
    assert ok(platform.get("/usage", params={**u.span, "tenant_id": u.a.id}))["totals"]["requests"] == 10
    assert error(platform.get("/usage"), 400)["param"] == "tenant_id"
    platform.close()


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/usage", {"group_by": "week"}, "group_by"),
        ("/usage", {"since": "yesterday"}, "since"),
        ("/usage", {"since": "2026-11-02", "until": "2026-11-01"}, "until"),
        ("/usage/requests", {"status": "fine"}, "status"),
        ("/usage/requests", {"cursor": "not-a-cursor"}, "cursor"),
        ("/usage/requests", {"limit": "0"}, "limit"),
    ],
)
def test_bad_parameters_name_the_field(u, path, params, param):
    err = error(u.api.get(path, params=params), 400)
    assert err["param"] == param, err


def test_usage_needs_a_token(stack):
    assert error(Api(stack, None).get("/usage"), 401)["code"] == "invalid_token"
