"""The durable ledger: usage records written to ``usage_events`` in batches by a background task.

Inserts are idempotent on ``request_id`` (a replayed record never counts twice).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.tables import UsageEvent
from gateway.metering.base import UsageRecord

log = logging.getLogger("relay.ledger")
BATCH = 500


def _row(rec: UsageRecord) -> dict[str, Any]:
    u = rec.usage
    return {
        "request_id": rec.request_id,
        "created_at": rec.created_at,
        "tenant_id": rec.tenant_id,
        "key_id": rec.key_id,
        "model": rec.model,
        "upstream_id": rec.upstream_id,
        "door_dialect": rec.door_dialect,
        "upstream_dialect": rec.upstream_dialect,
        "stream": rec.stream,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "estimated": u.estimated,
        "cost_micro_usd": rec.cost_micro_usd,
        "status": rec.status,
        "error_code": rec.error_code,
        "latency_ms": rec.latency_ms,
        "ttft_ms": rec.ttft_ms,
    }


class Ledger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], dialect: str) -> None:
        self._sessions = sessions
        self._insert = pg_insert if dialect == "postgresql" else sqlite_insert
        self._queue: asyncio.Queue[UsageRecord] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="relay-ledger")

    def put(self, rec: UsageRecord) -> None:
        self._idle.clear()
        self._queue.put_nowait(rec)

    async def flush(self) -> None:
        await self._idle.wait()

    async def spent(self, kind: str, owner: str, since: datetime | None) -> int:
        """Micro-USD a key or tenant spent since ``since`` (all time when None), from the ledger."""
        await self.flush()
        column = UsageEvent.key_id if kind == "key" else UsageEvent.tenant_id
        query = sa.select(sa.func.coalesce(sa.func.sum(UsageEvent.cost_micro_usd), 0)).where(column == owner)
        if since is not None:
            query = query.where(UsageEvent.created_at >= since)
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)
            if self._queue.empty():
                self._idle.set()

    async def _write(self, batch: list[UsageRecord]) -> None:
        rows = [_row(r) for r in batch]
        for attempt in range(5):
            try:
                async with self._sessions.begin() as session:
                    stmt = self._insert(UsageEvent).values(rows).on_conflict_do_nothing(index_elements=["request_id"])
                    await session.execute(stmt)
                return
            except Exception:
                log.exception("ledger write failed (attempt %d, %d records)", attempt + 1, len(rows))
                await asyncio.sleep(min(2**attempt * 0.2, 5))
        log.error("ledger dropped %d records after retries", len(rows))
