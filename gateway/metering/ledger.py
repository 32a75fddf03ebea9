"""The durable ledger: usage records written to ``usage_events`` in batches by a background task.

Each record is first appended to the process's spool (``spool.py``), so it is durable before its
response ends, whatever dies afterwards. Each batch is one transaction (``rollup.write_batch``):
the events (idempotent on ``request_id``, so a replayed record never counts twice), their
``usage_daily`` buckets and the keys' ``last_used_at``. A batch is never dropped: while the
database is away it is retried with capped backoff, and records wait in memory and in the spool
(an error is logged when more than ``PENDING_WARN`` wait). ``close`` waits at most
``CLOSE_TIMEOUT_S``: whatever is not written by then stays in the spool, and the next process
started on the same spool directory writes it. A maintenance task keeps the monthly partitions of
``usage_events`` ahead on Postgres (at start and daily) and, with a retention set, purges old events
hourly (``partitions.py``: whole partitions on Postgres, rows on SQLite).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.metering import partitions, rollup
from gateway.metering.base import UsageRecord
from gateway.metering.handoff import RedisHandoff
from gateway.metering.spool import ADOPT_EVERY_S, SYNC_EVERY_S, Spool, fsync_all

log = logging.getLogger("relay.ledger")
BATCH = 500
LINGER_S = 0.02
"""How long the writer waits for more records after the first: bigger batches, fewer transactions."""
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
PENDING_WARN = 1_000_000
WARN_EVERY_S = 30.0
CLOSE_TIMEOUT_S = 5.0
"""Shutdown never waits longer on the database: the spool keeps the rest for the next process."""
SPENT_FLUSH_TIMEOUT_S = 5.0
RETENTION_EVERY_S = 3600.0
PARTITIONS_EVERY_S = 86400.0
PARTITIONS_RETRY_S = 600.0
POISON_ATTEMPTS = 3
"""A batch refused as bad data (not an outage) this many times is split to isolate the bad record."""


class Ledger:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        dialect: str = "",
        *,
        retention_days: int = 0,
        retention_every_s: float = RETENTION_EVERY_S,
        spool: Spool | None = None,
    ) -> None:
        self._sessions = sessions
        self._spool = spool
        self._spool_task: asyncio.Task[None] | None = None
        self.handoff: RedisHandoff | None = None
        """Where a closing process leaves what it could not write, when its disk may not outlive it."""
        self._pending: deque[UsageRecord] = deque()
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._taken = 0
        """Records handed to ``put`` so far (a sequence number per record)."""
        self._done = 0
        """Records written (or, only for bad data, given up) so far, in the order taken."""
        self._task: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._retention_days = retention_days
        self._dialect = dialect
        self._retention_every_s = retention_every_s
        self._warned_at = 0.0
        self._closing = False

    @property
    def waiting(self) -> int:
        """Records taken and not yet written."""
        return self._taken - self._done

    def start(self) -> None:
        if self._spool is not None and self._spool_task is None:
            try:
                self._spool.open()
            except OSError as exc:  # a read-only or full disk: serve on, as without a spool, and say so
                log.error("ledger spool: cannot use %s (%s); a killed worker may lose rows", self._spool.directory, exc)
                self._spool = None
            else:
                self._spool_task = asyncio.create_task(self._keep_spool(self._spool), name="relay-ledger-spool")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="relay-ledger")
        if self._retention_task is None and (self._retention_days > 0 or self._dialect != "sqlite"):
            self._retention_task = asyncio.create_task(self._maintain(), name="relay-ledger-maintenance")

    def put(self, rec: UsageRecord) -> None:
        if self._spool is not None:
            self._spool.append(rec)
        self._pending.append(rec)
        self._taken += 1
        self._wake.set()
        if self.waiting > PENDING_WARN and time.monotonic() - self._warned_at > WARN_EVERY_S:
            self._warned_at = time.monotonic()
            log.error("ledger: %d usage records wait in memory; the database is not keeping up", self.waiting)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record taken before the call is written; False when ``timeout`` ran out first."""
        target = self._taken
        if self._done >= target:
            return True
        if self._task is None:
            self.start()

        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: self._done >= target)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False
        return True

    async def spent(self, kind: str, owner: str, since: datetime | None) -> int:
        """Micro-USD a key or tenant spent since ``since`` (all time when None), from the ledger."""
        await self.flush(SPENT_FLUSH_TIMEOUT_S)
        async with self._sessions() as session:
            return await rollup.spent_since(session, kind, owner, since)

    async def write(self, batch: list[UsageRecord]) -> rollup.Written:
        """One transaction: events, their daily buckets, ``last_used_at``. Safe to replay."""
        async with self._sessions.begin() as session:
            return await rollup.write_batch(session, batch)

    async def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is waiting (at most ``timeout`` seconds), then stop the background tasks."""
        self._closing = True
        written = await self.flush(timeout)
        for task in (self._task, self._retention_task, self._spool_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._retention_task = self._spool_task = None
        handed = False
        if not written:
            handed = self.handoff is not None and await self.handoff.give(list(self._pending))
            where = "handed to Redis" if handed else "kept in the spool" if self._spool else "lost (no spool)"
            log.error("ledger: closing with %d usage records not written (database down): %s", self.waiting, where)
        if self._spool is not None:
            self._spool.close(all_written=written or handed)

    async def _keep_spool(self, spool: Spool) -> None:
        """fsync the spool a few times a second, and adopt dead processes' spools now and then."""
        next_adopt = 0.0
        while True:
            if time.monotonic() >= next_adopt:
                next_adopt = time.monotonic() + ADOPT_EVERY_S
                try:
                    await self._adopt(spool)
                except Exception as exc:  # never stop syncing; the next round tries again
                    log.error("ledger spool: adopting orphaned records failed: %s", exc)
            fds = spool.to_sync()
            if fds:
                await asyncio.to_thread(fsync_all, fds)
            await asyncio.sleep(SYNC_EVERY_S)

    async def _adopt(self, spool: Spool) -> None:
        orphans = await asyncio.to_thread(spool.claim_orphans)
        if orphans.records:
            log.warning("ledger spool: writing %d usage records left by an earlier process", len(orphans.records))
        for rec in orphans.records:
            self.put(rec)  # into our own spool first, so deleting the orphan's files loses nothing
        await asyncio.to_thread(fsync_all, spool.to_sync())
        orphans.release()
        while self.handoff is not None and (handed := await self.handoff.peek()):
            log.warning("ledger: writing %d usage records handed off by a process that stopped", len(handed))
            for _, rec in handed:
                self.put(rec)
            await asyncio.to_thread(fsync_all, spool.to_sync())
            await self.handoff.remove([raw for raw, _ in handed])

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            if len(self._pending) < BATCH and not self._closing:
                # Linger before every batch, not only the first after a pause: under steady load an
                # immediate next write carried only what arrived during the last one (measured: ~12 rows,
                # ~200 transactions/s at 2,500 requests/s).
                await asyncio.sleep(LINGER_S)
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            try:
                await self._write_surely(batch)
            except asyncio.CancelledError:
                self._pending.extendleft(reversed(batch))  # still in memory for whoever looks next
                raise
            async with self._progress:
                self._done += len(batch)
                self._progress.notify_all()
            if self._spool is not None:
                self._spool.release(self._done)

    async def _write_surely(self, batch: list[UsageRecord]) -> None:
        """Write ``batch``, retrying an outage for as long as it lasts; bad data is split down to the record."""
        attempt = 0
        refused = 0
        while True:
            try:
                await self.write(batch)
                if attempt:
                    log.warning("ledger: %d records written after %d failed attempts", len(batch), attempt)
                return
            except (DataError, IntegrityError) as exc:
                refused += 1
                if refused >= POISON_ATTEMPTS:
                    await self._split(batch, exc)
                    return
                log.warning("ledger: batch of %d refused (%s); retrying", len(batch), type(exc).__name__)
            except Exception as exc:
                log.warning(
                    "ledger: write failed (attempt %d, %d records, %d waiting): %s",
                    attempt + 1, len(batch), self.waiting, type(exc).__name__,
                )  # fmt: skip
            attempt += 1
            await asyncio.sleep(min(BACKOFF_FIRST_S * 2**attempt, 0.5 if self._closing else BACKOFF_MAX_S))

    async def _split(self, batch: list[UsageRecord], exc: Exception) -> None:
        if len(batch) == 1:
            # The database refuses this one record as data, whatever happens: keep it in the log, not the queue.
            log.error("ledger: record refused by the database (%s), not written: %r", type(exc).__name__, batch[0])
            return
        half = len(batch) // 2
        await self._write_surely(batch[:half])
        await self._write_surely(batch[half:])

    async def _maintain(self) -> None:
        """Partitions ahead (at start, then daily; Postgres only) and retention (hourly, when set)."""
        next_partitions = next_retention = time.monotonic()
        while True:
            if time.monotonic() >= next_partitions:
                try:
                    await partitions.ensure_ahead(self._sessions)
                    next_partitions = time.monotonic() + PARTITIONS_EVERY_S
                except Exception as exc:  # the DEFAULT partition takes the rows meanwhile
                    log.warning("ledger: creating usage_events partitions failed: %s", type(exc).__name__)
                    next_partitions = time.monotonic() + PARTITIONS_RETRY_S
            if self._retention_days > 0 and time.monotonic() >= next_retention:
                next_retention = time.monotonic() + self._retention_every_s
                try:
                    deleted = await partitions.purge(self._sessions, self._retention_days)
                    if deleted:
                        log.info("ledger: purged %d usage events older than %d days", deleted, self._retention_days)
                except Exception as exc:  # the next round tries again
                    log.warning("ledger: purging old usage events failed: %s", type(exc).__name__)
            due = min(next_partitions, next_retention) if self._retention_days > 0 else next_partitions
            await asyncio.sleep(max(0.0, due - time.monotonic()))
