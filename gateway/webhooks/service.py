"""``Alerts``: the running part of webhooks, one per process: emit events, deliver the queue, sweep.

Every replica runs the same loops; the claim in ``delivery`` and the dedupe in ``outbox`` make that safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.security import SecretBox
from gateway.webhooks.delivery import Clients, Outcome, deliver_due, send_test
from gateway.webhooks.outbox import enqueue
from gateway.webhooks.sweep import sweep

log = logging.getLogger("relay.webhooks")
CLOSE_TIMEOUT_S = 5.0


class Alerts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        http: aiohttp.ClientSession,
        guarded_http: aiohttp.ClientSession,
        *,
        poll_s: float = 2.0,
        sweep_s: float = 30.0,
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._clients = Clients(http, guarded_http)
        self._poll_s = poll_s
        self._sweep_s = sweep_s
        self._loops: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()

    def emit(self, event: str, tenant_id: str | None, data: dict[str, Any], dedupe: str) -> None:
        """Queue an event from code that has no transaction at hand; returns at once, never raises."""

        async def queue() -> None:
            try:
                async with self._sessions.begin() as session:
                    await enqueue(session, event=event, tenant_id=tenant_id, data=data, dedupe=dedupe)
            except Exception as exc:  # an alert lost to a database outage must not fail its caller
                log.warning("webhooks: queuing %s failed: %s", event, type(exc).__name__)

        self._spawn(queue(), f"relay-webhook-emit-{event}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._every(self._poll_s, self.deliver_due, "delivery"), name="relay-webhook-delivery"),
            asyncio.create_task(self._every(self._sweep_s, self.sweep, "sweep"), name="relay-webhook-sweep"),
        ]

    async def _every(self, interval_s: float, work: Any, what: str) -> None:
        while True:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away; the next round tries again
                log.warning("webhooks: %s round failed: %s", what, type(exc).__name__)
            await asyncio.sleep(interval_s)

    async def deliver_due(self) -> int:
        return await deliver_due(self._sessions, self._box, self._clients)

    async def sweep(self, now: datetime | None = None) -> int:
        return await sweep(self._sessions, now=now or datetime.now(UTC))

    async def test(self, webhook_id: str) -> Outcome:
        """Queue a ``webhook.test`` for this webhook alone and send it now (once: a test is not retried)."""
        return await send_test(self._sessions, self._box, self._clients, webhook_id)

    async def close(self) -> None:
        """Stop the loops and wait for queued emits, all within ``CLOSE_TIMEOUT_S``."""
        for task in self._loops:
            task.cancel()
        tasks = [*self._loops, *self._pending]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("webhooks: %d tasks still running at shutdown were cancelled", len(pending))
        self._loops = []
