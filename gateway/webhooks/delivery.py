"""Sending queued deliveries: claim the due ones, POST them signed, record the answer.

A claim pushes ``next_attempt_at`` forward by a lease before anything is sent, in its own short transaction, so
two workers or replicas never send one delivery at once (Postgres: ``FOR UPDATE SKIP LOCKED``; SQLite, whose
writes are serialised anyway: a conditional UPDATE that only one claimer can win). A process killed mid-send
leaves the lease to run out; the delivery is then tried again (receivers dedupe on the event id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.tables import Webhook, WebhookDelivery
from gateway.security import SecretBox
from gateway.ssrf import BlockedAddress
from gateway.webhooks import WEBHOOK_TEST
from gateway.webhooks.outbox import event_body, new_event_id
from gateway.webhooks.signing import MAX_ATTEMPTS, SIGNATURE_HEADER, backoff_s, signature

log = logging.getLogger("relay.webhooks")
SEND_TIMEOUT_S = 10.0
LEASE_S = 60.0
"""Longer than a send can take (``SEND_TIMEOUT_S``), so a lease never runs out under a live sender."""
BATCH = 50


def secret_context(webhook_id: str) -> str:
    """Associated data binding a sealed signing secret to its webhook row."""
    return f"webhook:{webhook_id}"


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Clients:
    """Platform URLs go out through the plain session; tenant URLs through the SSRF-guarded one."""

    http: aiohttp.ClientSession
    guarded: aiohttp.ClientSession

    def for_hook(self, hook: Webhook) -> aiohttp.ClientSession:
        return self.http if hook.tenant_id is None else self.guarded


async def post(client: aiohttp.ClientSession, url: str, secret: str, event: str, body: str) -> Outcome:
    """One signed POST; never raises for the receiver's sake, and the error kept names no secret."""
    raw = body.encode()
    headers = {
        "content-type": "application/json",
        "user-agent": "Relay-Webhooks",
        "relay-event": event,
        SIGNATURE_HEADER: signature(secret, int(time.time()), raw),
    }
    try:
        async with client.post(
            url,
            data=raw,
            headers=headers,
            allow_redirects=False,  # a redirect could carry the event to a host nobody checked
            timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_S),
        ) as resp:
            await resp.read()
            if 200 <= resp.status < 300:
                return Outcome(True, resp.status, None)
            return Outcome(False, resp.status, f"HTTP {resp.status}")
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, BlockedAddress):
            return Outcome(False, None, f"refused by the SSRF guard: {exc.os_error.strerror}"[:500])
        return Outcome(False, None, "could not connect")
    except TimeoutError:
        return Outcome(False, None, f"no answer within {SEND_TIMEOUT_S:.0f} s")
    except aiohttp.ClientError as exc:
        return Outcome(False, None, type(exc).__name__)


async def claim(sessions: async_sessionmaker[AsyncSession], *, limit: int = BATCH) -> list[int]:
    """Ids of due deliveries this process now holds the lease of."""
    now = datetime.now(UTC)
    lease = now + timedelta(seconds=LEASE_S)
    due = sa.and_(
        WebhookDelivery.delivered_at.is_(None),
        WebhookDelivery.failed_at.is_(None),
        WebhookDelivery.next_attempt_at <= now,
    )
    async with sessions.begin() as session:
        query = sa.select(WebhookDelivery.id).where(due).order_by(WebhookDelivery.next_attempt_at).limit(limit)
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            query = query.with_for_update(skip_locked=True)
        ids = list(await session.scalars(query))
        if not ids:
            return []
        if postgres:  # the rows are locked by this transaction: nobody else can have moved them
            await session.execute(
                sa.update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(next_attempt_at=lease)
            )
            return ids
        won = []
        for delivery_id in ids:  # only one claimer's UPDATE still finds the row due
            result = await session.execute(
                sa.update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, due)
                .values(next_attempt_at=lease)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                won.append(delivery_id)
        return won


async def record(session: AsyncSession, delivery_id: int, outcome: Outcome, *, retry: bool = True) -> None:
    """Count the attempt: delivered, or scheduled again with backoff, or failed for good."""
    row = await session.get(WebhookDelivery, delivery_id)
    if row is None:  # the webhook was removed meanwhile (its deliveries cascade)
        return
    now = datetime.now(UTC)
    row.attempts += 1
    if outcome.ok:
        row.delivered_at = now
        row.last_error = None
    else:
        row.last_error = (outcome.error or "failed")[:500]
        if not retry or row.attempts >= MAX_ATTEMPTS:
            row.failed_at = now
        else:
            row.next_attempt_at = now + timedelta(seconds=backoff_s(row.attempts))


async def deliver(
    sessions: async_sessionmaker[AsyncSession],
    box: SecretBox,
    clients: Clients,
    delivery_id: int,
    *,
    retry: bool = True,
) -> Outcome:
    """Send one claimed delivery and record the outcome."""
    async with sessions() as session:
        found = (
            await session.execute(
                sa.select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.id == delivery_id)
            )
        ).first()
    if found is None:
        return Outcome(False, None, "gone")
    delivery, hook = found
    try:
        secret = box.decrypt(hook.secret_encrypted, context=secret_context(hook.id))
    except (ValueError, InvalidTag):
        outcome = Outcome(False, None, "the signing secret cannot be read (was RELAY_SECRET_KEY changed?)")
    else:
        outcome = await post(clients.for_hook(hook), hook.url, secret, delivery.event, delivery.body)
    async with sessions.begin() as session:
        await record(session, delivery_id, outcome, retry=retry)
    if not outcome.ok:
        log.info("webhook %s: delivery %s failed: %s", hook.id, delivery_id, outcome.error)
    return outcome


async def deliver_due(sessions: async_sessionmaker[AsyncSession], box: SecretBox, clients: Clients) -> int:
    """One round: claim what is due and send it concurrently; the number sent."""
    ids = await claim(sessions)
    if ids:
        await asyncio.gather(*(deliver(sessions, box, clients, i) for i in ids))
    return len(ids)


async def send_test(
    sessions: async_sessionmaker[AsyncSession], box: SecretBox, clients: Clients, webhook_id: str
) -> Outcome:
    """Queue a ``webhook.test`` for this webhook alone and send it now, once (a test is not retried).

    The row is queued already leased, so the delivery loop cannot send it a second time meanwhile; it stays
    in the list of recent deliveries with its outcome.
    """
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        hook = await session.get(Webhook, webhook_id)
        if hook is None:
            return Outcome(False, None, "gone")
        data = {"webhook_id": hook.id, "message": "This is a test event from Relay."}
        event_id = new_event_id()
        body = event_body(WEBHOOK_TEST, hook.tenant_id, data, now=now, event_id=event_id)
        row = WebhookDelivery(
            webhook_id=hook.id,
            event=WEBHOOK_TEST,
            dedupe=f"test:{event_id}",  # every test is its own event
            body=body,
            next_attempt_at=now + timedelta(seconds=LEASE_S),
            created_at=now,
        )
        session.add(row)
        await session.flush()
        delivery_id = row.id
    return await deliver(sessions, box, clients, delivery_id, retry=False)
