"""The ledger's write path on each backend: rollup in the same transaction, replays counted once, never a
dropped batch, a bounded close that writes what waits, last_used_at, retention that keeps the daily rows."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.tables import ApiKey, Tenant, UsageDaily, UsageEvent
from gateway.domain import Usage
from gateway.manage import usage
from gateway.metering import Ledger, UsageRecord, rollup
from gateway.metering import ledger as ledger_module
from gateway.metering.rollup import purge_events, write_batch
from gateway.settings import Settings

NOW = datetime.now(UTC)


def rec(tenant_id: str, *, key_id: str | None = None, at: datetime = NOW, model: str = "m", **kw: Any) -> UsageRecord:
    return UsageRecord(
        request_id=kw.pop("request_id", f"r-{secrets.token_hex(8)}"),
        tenant_id=tenant_id,
        key_id=key_id,
        model=model,
        upstream_id=None,
        door_dialect="anthropic",
        upstream_dialect="anthropic",
        stream=True,
        usage=Usage(input_tokens=3, output_tokens=4, cache_read_tokens=5, cache_write_tokens=6),
        cost_micro_usd=7,
        status=kw.pop("status", 200),
        latency_ms=1,
        created_at=at,
    )


def tenant_id() -> str:
    return secrets.token_hex(16)


async def events(sessions: async_sessionmaker[AsyncSession], tenant: str) -> int:
    async with sessions() as s:
        return int(await s.scalar(sa.select(sa.func.count()).where(UsageEvent.tenant_id == tenant)) or 0)


async def daily(sessions: async_sessionmaker[AsyncSession], tenant: str) -> dict[str, int]:
    async with sessions() as s:
        q = usage.UsageQuery.of(tenant, NOW - timedelta(days=400), NOW + timedelta(days=1))
        return {k: v for k, v in (await usage.totals(s, q)).to_dict().items() if k != "cost_usd"}


def sums(n: int, errors: int = 0) -> dict[str, int]:
    return {
        "requests": n,
        "errors": errors,
        "input_tokens": 3 * n,
        "output_tokens": 4 * n,
        "cache_read_tokens": 5 * n,
        "cache_write_tokens": 6 * n,
        "cost_micro_usd": 7 * n,
    }


async def test_a_replayed_batch_is_counted_once(sessions):
    t = tenant_id()
    ledger = Ledger(sessions)
    batch = [rec(t) for _ in range(20)] + [rec(t, status=502)]
    first = await ledger.write(batch)
    again = await ledger.write(batch)  # a retry after a commit whose answer was lost
    assert (first.inserted, again.inserted) == (21, 0)
    more = [*batch[:5], rec(t), rec(t)]
    assert (await ledger.write(more)).inserted == 2  # only the new ones count
    twice = rec(t)
    assert (await ledger.write([twice, twice])).inserted == 1  # one request id twice in a batch: one event
    assert await events(sessions, t) == 24
    assert await daily(sessions, t) == sums(24, errors=1)


async def test_rollup_buckets_by_utc_day_key_and_model(sessions):
    t = tenant_id()
    day = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    near_midnight = day.astimezone(UTC).replace(hour=23, minute=59, second=59)
    batch = [
        rec(t, at=day),
        rec(t, at=near_midnight),
        rec(t, at=near_midnight + timedelta(seconds=2)),  # the next UTC day
        rec(t, at=day, key_id="k1"),
        rec(t, at=day, model="other"),
    ]
    await Ledger(sessions).write(batch)
    async with sessions() as s:
        rows = (await s.execute(sa.select(UsageDaily).where(UsageDaily.tenant_id == t))).scalars().all()
    buckets = sorted((str(r.day), r.key_id, r.model, r.requests) for r in rows)
    assert buckets == [
        ("2026-03-01", "", "m", 2),
        ("2026-03-01", "", "other", 1),
        ("2026-03-01", "k1", "m", 1),
        ("2026-03-02", "", "m", 1),
    ]


class Flaky(Ledger):
    """A ledger whose database fails ``failures`` times before it works again."""

    def __init__(self, sessions: Any, failures: int, exc: Exception | None = None) -> None:
        super().__init__(sessions)
        self.failures = failures
        self.exc = exc or OperationalError("INSERT", {}, ConnectionError("database restarting"))
        self.calls = 0

    async def write(self, batch: list[UsageRecord]) -> Any:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise self.exc
        return await super().write(batch)


async def test_a_batch_is_never_dropped(sessions, monkeypatch, caplog):
    monkeypatch.setattr(ledger_module, "BACKOFF_FIRST_S", 0.001)
    monkeypatch.setattr(ledger_module, "BACKOFF_MAX_S", 0.01)
    t = tenant_id()
    ledger = Flaky(sessions, failures=12)  # the old ledger dropped a batch after 5 failures
    ledger.start()
    for _ in range(1200):
        ledger.put(rec(t))
    assert await ledger.flush(timeout=30)
    assert ledger.waiting == 0 and ledger.calls >= 12 + 3
    assert await events(sessions, t) == 1200
    assert await daily(sessions, t) == sums(1200)
    assert "written after" in caplog.text
    await ledger.close()


async def test_close_writes_everything_waiting(sessions):
    t = tenant_id()
    ledger = Ledger(sessions)
    ledger.start()
    for _ in range(2500):
        ledger.put(rec(t))
    await ledger.close()  # a graceful restart: nothing lost
    assert await events(sessions, t) == 2500


async def test_close_is_bounded_while_the_database_is_away(sessions, caplog):
    ledger = Flaky(sessions, failures=10**9)
    ledger.start()
    ledger.put(rec(tenant_id()))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="relay.ledger"):
        await ledger.close(timeout=0.5)
    assert time.monotonic() - started < 3
    assert "1 usage records not written" in caplog.text


async def test_a_record_the_database_refuses_does_not_block_the_others(sessions, monkeypatch, caplog):
    monkeypatch.setattr(ledger_module, "BACKOFF_FIRST_S", 0.001)
    t = tenant_id()
    poison = rec(t, request_id="poison")

    class Picky(Ledger):
        async def write(self, batch: list[UsageRecord]) -> Any:
            if poison in batch:
                raise DataError("INSERT", {}, ValueError("value out of range"))
            return await super().write(batch)

    ledger = Picky(sessions)
    ledger.start()
    for r in [rec(t) for _ in range(10)] + [poison] + [rec(t) for _ in range(10)]:
        ledger.put(r)
    assert await ledger.flush(timeout=10)
    assert await events(sessions, t) == 20
    assert "record refused by the database" in caplog.text and "poison" in caplog.text
    await ledger.close()


async def test_oversized_values_are_clipped_not_refused(sessions):
    t = tenant_id()
    big = UsageRecord(
        request_id="r-" + "x" * 100,
        tenant_id=t,
        key_id=None,
        model="m" * 500,
        upstream_id=None,
        door_dialect="openai",
        upstream_dialect=None,
        stream=False,
        usage=Usage(input_tokens=2**40),
        cost_micro_usd=1,
        status=200,
        latency_ms=1,
        error_code="e" * 200,
    )
    assert (await Ledger(sessions).write([big])).inserted == 1


async def test_last_used_at_moves_forward_only(sessions):
    async with sessions.begin() as s:
        tenant = Tenant(name=f"lu-{secrets.token_hex(4)}")
        s.add(tenant)
        await s.flush()
        key = ApiKey(tenant_id=tenant.id, prefix="sk-lu", digest=secrets.token_hex(32))
        s.add(key)
    later, earlier = NOW - timedelta(minutes=1), NOW - timedelta(hours=2)

    async def last_used() -> datetime | None:
        async with sessions() as s:
            return await s.scalar(sa.select(ApiKey.last_used_at).where(ApiKey.id == key.id))

    ledger = Ledger(sessions)
    await ledger.write([rec(tenant.id, key_id=key.id, at=earlier), rec(tenant.id, key_id=key.id, at=later)])
    assert await last_used() == later
    await ledger.write([rec(tenant.id, key_id=key.id, at=earlier)])  # a late record from a slow worker
    assert await last_used() == later


async def test_retention_deletes_old_events_and_keeps_the_daily_rows(sessions):
    t = tenant_id()
    old = [rec(t, at=NOW - timedelta(days=40, minutes=i)) for i in range(7)]
    new = [rec(t, at=NOW - timedelta(days=1)) for _ in range(3)]
    ledger = Ledger(sessions)
    await ledger.write(old + new)
    before = await daily(sessions, t)
    spent = await ledger.spent("tenant", t, None)
    assert await purge_events(sessions, 0) == 0  # 0: keep forever
    assert await purge_events(sessions, 30, batch=3, pause_s=0) >= 7  # (other tests' old events go too)
    assert await events(sessions, t) == 3
    assert await daily(sessions, t) == before == sums(10)
    assert await ledger.spent("tenant", t, None) == spent == 70  # budgets read the rollup


async def test_the_ledger_runs_retention_in_the_background(sessions):
    t = tenant_id()
    # 70 days: before the current month whatever the date, so Postgres's retention (whole monthly
    # partitions, and the DEFAULT partition's rows) takes it too.
    await Ledger(sessions).write([rec(t, at=NOW - timedelta(days=70)), rec(t)])
    ledger = Ledger(sessions, retention_days=5, retention_every_s=3600)
    ledger.start()
    deadline = time.monotonic() + 10
    while await events(sessions, t) != 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await ledger.close()
    assert await events(sessions, t) == 1 and (await daily(sessions, t))["requests"] == 2


def test_retention_setting():
    env = {"RELAY_DATABASE_URL": "sqlite:////tmp/never-created.db", "RELAY_SECRET_KEY": "k" * 40}
    assert Settings.from_env(env).usage_retention_days == 0
    assert Settings.from_env({**env, "RELAY_USAGE_RETENTION_DAYS": "90"}).usage_retention_days == 90


async def test_month_totals_read_the_rollup_only(sessions):
    seen: list[str] = []
    engine = sessions.kw["bind"]

    def grab(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", grab)
    try:
        async with sessions() as s:
            await usage.totals(s, usage.UsageQuery.of(tenant_id()))
            await usage.summary(s, usage.UsageQuery.of(tenant_id()), "model")
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", grab)
    assert seen and all("usage_daily" in q and "usage_events" not in q for q in seen)


async def test_write_batch_is_one_transaction(sessions):
    t = tenant_id()
    with pytest.raises(RuntimeError):
        async with sessions.begin() as s:
            await write_batch(s, [rec(t) for _ in range(3)])
            raise RuntimeError("crash before commit")
    assert await events(sessions, t) == 0 and (await daily(sessions, t))["requests"] == 0


async def test_spent_by_sums_many_owners_like_spent_since_one_by_one(sessions):
    t, other = tenant_id(), tenant_id()
    month = datetime(2026, 5, 1, tzinfo=UTC)
    batch = [rec(t, key_id="ka", at=month + timedelta(days=d)) for d in range(3)]
    batch += [rec(t, key_id="kb", at=month - timedelta(days=2)), rec(other, key_id="kc", at=month)]
    await Ledger(sessions).write(batch)
    async with sessions() as s:
        for kind, owners in (("key", ["ka", "kb", "kc", "never-used"]), ("tenant", [t, other])):
            for since in (month, None):
                grouped = await rollup.spent_by(s, kind, owners, since)
                one_by_one = {o: await rollup.spent_since(s, kind, o, since) for o in owners}
                assert {o: grouped.get(o, 0) for o in owners} == one_by_one
        assert await rollup.spent_by(s, "key", ["ka", "kb"], month) == {"ka": 21}  # kb spent before the month
