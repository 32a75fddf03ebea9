"""Webhooks: add (the signing secret returned once), list, find, remove, recent deliveries.

A tenant's URL passes the same SSRF check at save time as a tenant upstream's base URL (and is sent through
the guarded session later); the platform's URLs are trusted, like platform upstreams.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import Tenant, Webhook, WebhookDelivery, new_id
from gateway.errors import InvalidRequest, NotFound
from gateway.manage.tenants import audit
from gateway.manage.upstreams import check_tenant_base_url
from gateway.security import SecretBox
from gateway.ssrf import Allowlist
from gateway.webhooks import EVENTS
from gateway.webhooks.delivery import secret_context
from gateway.webhooks.signing import new_secret

MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class NewWebhook:
    row: Webhook
    secret: str


class WebhookOut(msgspec.Struct, kw_only=True):
    """A webhook as the management API and ``relay webhooks list --json`` show it: never its secret."""

    id: str
    tenant_id: str | None
    url: str
    events: list[str]
    """Event types it receives; empty: all."""
    created_at: datetime


class WebhookCreated(WebhookOut, kw_only=True):
    secret: str
    """The signing secret (``whsec_…``): in this answer only."""


class DeliveryOut(msgspec.Struct, kw_only=True):
    id: int
    webhook_id: str
    event: str
    status: str
    """``delivered``, ``pending`` (queued or waiting to retry) or ``failed`` (retries ran out)."""
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    last_error: str | None
    created_at: datetime


def webhook_out(row: Webhook) -> WebhookOut:
    return WebhookOut(
        id=row.id, tenant_id=row.tenant_id, url=row.url, events=list(row.events), created_at=row.created_at
    )


def webhook_created(new: NewWebhook) -> WebhookCreated:
    row = new.row
    return WebhookCreated(
        id=row.id,
        tenant_id=row.tenant_id,
        url=row.url,
        events=list(row.events),
        created_at=row.created_at,
        secret=new.secret,
    )


def delivery_out(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        webhook_id=row.webhook_id,
        event=row.event,
        status=delivery_status(row),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        failed_at=row.failed_at,
        last_error=row.last_error,
        created_at=row.created_at,
    )


def check_events(events: list[str]) -> list[str]:
    cleaned = sorted({e.strip() for e in events if e.strip()})
    unknown = [e for e in cleaned if e not in EVENTS]
    if unknown:
        raise InvalidRequest(f"events: unknown event {unknown[0]!r}; use {', '.join(EVENTS)}")
    return cleaned


def parse_events(text: str | None) -> list[str]:
    """``e1,e2`` (a flag or a form field) as a checked list; empty means every event."""
    return check_events((text or "").split(","))


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("url: must be an http:// or https:// URL")
    if len(url) > MAX_URL:
        raise InvalidRequest(f"url: longer than {MAX_URL} characters")
    return url


async def add_webhook(
    session: AsyncSession,
    *,
    box: SecretBox,
    tenant: Tenant | None,
    url: str,
    events: list[str],
    allowlist: Allowlist | None = None,
    actor: str = "cli",
) -> NewWebhook:
    """Add a webhook of ``tenant`` (None: the platform's). Its secret is in the answer and nowhere else."""
    url = check_url(url)
    if tenant is not None:
        try:
            await check_tenant_base_url(url, allowlist or Allowlist())
        except InvalidRequest as exc:  # the upstreams' wording, naming this field
            raise InvalidRequest(exc.message.replace("base URL refused", "url refused", 1), param="url") from None
    secret = new_secret()
    # The id is chosen here, not at flush: it is the sealed secret's context.
    row = Webhook(id=new_id(), tenant_id=tenant.id if tenant else None, url=url, events=check_events(events))
    row.secret_encrypted = box.encrypt(secret, context=secret_context(row.id))
    session.add(row)
    await session.flush()
    await audit(session, row.tenant_id, actor, "webhook.create", row.id, {"events": row.events})
    return NewWebhook(row=row, secret=secret)


def _scope(tenant_id: str | None) -> sa.ColumnElement[bool]:
    return Webhook.tenant_id.is_(None) if tenant_id is None else Webhook.tenant_id == tenant_id


async def list_webhooks(session: AsyncSession, *, tenant_id: str | None) -> list[Webhook]:
    """The webhooks of one tenant, or (``None``) the platform's own."""
    rows = await session.scalars(sa.select(Webhook).where(_scope(tenant_id)).order_by(Webhook.created_at))
    return list(rows)


async def all_webhooks(session: AsyncSession) -> list[tuple[Webhook, Tenant | None]]:
    """Every webhook with its owner (None: the platform)."""
    rows = await session.execute(
        sa.select(Webhook, Tenant).outerjoin(Tenant, Tenant.id == Webhook.tenant_id).order_by(Webhook.created_at)
    )
    return [(w, t) for w, t in rows]


async def webhook_by_id(session: AsyncSession, webhook_id: str, *, tenant_id: str | None) -> Webhook:
    """A webhook of this owner; another owner's is "not found", like a missing one."""
    row = await session.scalar(sa.select(Webhook).where(Webhook.id == webhook_id, _scope(tenant_id)))
    if row is None:
        raise NotFound(f"webhook {webhook_id!r} not found")
    return row


async def find_webhook(session: AsyncSession, webhook_id: str) -> Webhook:
    """Any owner's webhook (the CLI acts as the operator)."""
    row = await session.get(Webhook, webhook_id)
    if row is None:
        raise NotFound(f"webhook {webhook_id!r} not found")
    return row


async def remove_webhook(session: AsyncSession, row: Webhook, *, actor: str = "cli") -> None:
    """Remove it with its deliveries (queued ones are never sent)."""
    await session.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.webhook_id == row.id))
    await session.delete(row)
    await audit(session, row.tenant_id, actor, "webhook.delete", row.id)


async def recent_deliveries(session: AsyncSession, webhook_ids: list[str], *, limit: int = 50) -> list[WebhookDelivery]:
    """The newest deliveries of these webhooks, newest first."""
    if not webhook_ids:
        return []
    rows = await session.scalars(
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id.in_(webhook_ids))
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
    )
    return list(rows)


def delivery_status(row: WebhookDelivery) -> str:
    """``delivered``, ``failed`` (retries ran out) or ``pending`` (queued or waiting to retry)."""
    if row.delivered_at is not None:
        return "delivered"
    if row.failed_at is not None:
        return "failed"
    return "pending"
