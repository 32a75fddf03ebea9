"""Queue an event for every webhook that wants it, inside the caller's transaction (an outbox).

The rows are the durable queue ``service.Alerts`` delivers from: nothing is sent on the request path, and an
event queued in a transaction that rolls back is never sent. ``dedupe`` is unique per webhook, so queuing the
same event twice (two replicas' sweeps, a retried transaction) inserts nothing the second time.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import Webhook, WebhookDelivery


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def event_body(
    event: str, tenant_id: str | None, data: dict[str, Any], *, now: datetime | None = None, event_id: str = ""
) -> str:
    """The JSON every receiver of this event gets (one id for all of them: it is one event)."""
    doc = {
        "id": event_id or new_event_id(),
        "type": event,
        "created_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "tenant_id": tenant_id,
        "data": data,
    }
    return json.dumps(doc, separators=(",", ":"), default=str)


def wants(hook: Webhook, event: str) -> bool:
    return not hook.events or event in hook.events


async def subscribers(session: AsyncSession, tenant_id: str | None) -> list[Webhook]:
    """The tenant's webhooks and the platform's (which receive every tenant's events); the platform's alone
    for an event of no tenant."""
    owner: sa.ColumnElement[bool] = Webhook.tenant_id.is_(None)
    if tenant_id is not None:
        owner = sa.or_(owner, Webhook.tenant_id == tenant_id)
    return list(await session.scalars(sa.select(Webhook).where(owner)))


async def enqueue(
    session: AsyncSession, *, event: str, tenant_id: str | None, data: dict[str, Any], dedupe: str
) -> int:
    """Queue ``event`` for each webhook of ``tenant_id`` and of the platform subscribed to it; the rows queued."""
    hooks = await subscribers(session, tenant_id)
    return await enqueue_to(session, hooks, event=event, tenant_id=tenant_id, data=data, dedupe=dedupe)


async def enqueue_to(
    session: AsyncSession,
    hooks: Sequence[Webhook],
    *,
    event: str,
    tenant_id: str | None,
    data: dict[str, Any],
    dedupe: str,
) -> int:
    """``enqueue`` for webhooks already loaded (the sweep queues many events against one list)."""
    targets = [h for h in hooks if wants(h, event) and (h.tenant_id is None or h.tenant_id == tenant_id)]
    if not targets:
        return 0
    now = datetime.now(UTC)
    body = event_body(event, tenant_id, data, now=now)
    rows = [
        {
            "webhook_id": h.id,
            "event": event,
            "dedupe": dedupe[:300],
            "body": body,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for h in targets
    ]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(WebhookDelivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["webhook_id", "dedupe"])
        .returning(WebhookDelivery.id)
    )
    return len((await session.execute(statement)).all())
