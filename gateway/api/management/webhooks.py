"""``/api/v1/webhooks`` (the tenant's) and ``/api/v1/platform/webhooks`` (the platform's, which receive every
tenant's events): the signing secret is in the creation answer only.

Webhook URLs often carry a token of the receiving service, so even listing them needs an admin or owner.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody
from msgspec import Meta

from gateway.api.management.access import (
    CurrentActor,
    Db,
    Owner,
    Svc,
    owner_id,
    provide_platform_owner,
    provide_tenant_owner,
)
from gateway.api.management.fields import Body
from gateway.manage import webhooks
from gateway.manage.webhooks import DeliveryOut, WebhookCreated, WebhookOut
from gateway.ssrf import Allowlist

Url = Annotated[str, Meta(min_length=1, max_length=webhooks.MAX_URL)]
Event = Annotated[str, Meta(min_length=1, max_length=64)]
MANAGE = {"access": "manage"}


class WebhookCreate(Body):
    url: Url
    """Where events are POSTed; a tenant's must pass the same SSRF check as its upstreams' base URLs."""
    events: list[Event] = []
    """Event types to receive; empty: all."""


class TestResult(msgspec.Struct, kw_only=True):
    delivered: bool
    status: int | None
    """The receiver's HTTP status; null when it could not be reached."""
    error: str | None


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]
    dependencies = {"owner": Provide(provide_tenant_owner)}

    @get("/", opt=MANAGE)
    async def list_webhooks(self, db: Db, owner: Owner) -> list[WebhookOut]:
        return [webhooks.webhook_out(w) for w in await webhooks.list_webhooks(db, tenant_id=owner_id(owner))]

    @post("/")
    async def create_webhook(
        self, data: JSONBody[WebhookCreate], db: Db, owner: Owner, actor: CurrentActor, services: Svc
    ) -> WebhookCreated:
        new = await webhooks.add_webhook(
            db,
            box=services.box,
            tenant=owner,
            url=data.url,
            events=webhooks.check_events(data.events),
            allowlist=Allowlist.parse(services.settings.upstream_allowlist),
            actor=actor.label,
        )
        return webhooks.webhook_created(new)

    @get("/{webhook_id:str}/deliveries", opt=MANAGE)
    async def list_deliveries(self, webhook_id: FromPath[str], db: Db, owner: Owner) -> list[DeliveryOut]:
        row = await webhooks.webhook_by_id(db, webhook_id, tenant_id=owner_id(owner))
        return [webhooks.delivery_out(d) for d in await webhooks.recent_deliveries(db, [row.id])]

    @delete("/{webhook_id:str}")
    async def delete_webhook(self, webhook_id: FromPath[str], db: Db, owner: Owner, actor: CurrentActor) -> None:
        row = await webhooks.webhook_by_id(db, webhook_id, tenant_id=owner_id(owner))
        await webhooks.remove_webhook(db, row, actor=actor.label)

    @post("/{webhook_id:str}/test", status_code=200)
    async def test_webhook(self, webhook_id: FromPath[str], db: Db, owner: Owner, services: Svc) -> TestResult:
        """Send a signed ``webhook.test`` now (once, no retries) and answer what the receiver said."""
        row = await webhooks.webhook_by_id(db, webhook_id, tenant_id=owner_id(owner))
        await db.commit()  # hold no transaction across the POST (up to 10 s)
        outcome = await services.alerts.test(row.id)
        return TestResult(delivered=outcome.ok, status=outcome.status, error=outcome.error)


class PlatformWebhookController(WebhookController):
    path = "/platform/webhooks"
    tags = ["platform"]
    dependencies = {"owner": Provide(provide_platform_owner, sync_to_thread=False)}
