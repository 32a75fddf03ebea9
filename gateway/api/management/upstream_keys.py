"""``/api/v1/upstreams/{id}/keys`` (the tenant's) and ``/api/v1/platform/upstreams/{id}/keys`` (built-in): a pool.

The same rules as the upstream itself (``upstreams.py``): reads need a member token, changes an admin or
owner (the router's guard), another tenant's upstream is "not found" and built-ins are for platform tokens.
The secret is write-only: every answer is ``documents.UpstreamKey`` (last four characters at most).
"""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, delete, get, patch, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.api.management.access import (
    CurrentActor,
    Db,
    Owner,
    Svc,
    after_commit,
    owner_id,
    provide_platform_owner,
    provide_tenant_owner,
)
from gateway.api.management.fields import Body, Name, Secret
from gateway.db.tables import UpstreamRow
from gateway.errors import InvalidRequest
from gateway.manage import upstream_keys, upstreams
from gateway.manage.documents import UpstreamKey, upstream_doc, upstream_key_out
from gateway.services import Services

# The service checks the ranges too (the CLI shares it); here msgspec names the field before any query.
Weight = Annotated[int, Meta(ge=0, le=1000)]
Priority = Annotated[int, Meta(ge=1, le=100)]
Limit = Annotated[int, Meta(ge=0)]
Reason = Annotated[str, Meta(max_length=500)]


class KeyCreate(Body):
    api_key: Secret
    name: Name | None = None
    """Default ``key-N``."""
    weight: Weight = 1
    priority: Priority = 1
    rpm: Annotated[int, Meta(ge=1)] | None = None
    tpm: Annotated[int, Meta(ge=1)] | None = None


class KeyUpdate(Body):
    """Omitted fields keep their value; ``rpm``/``tpm`` ``null`` (or 0) remove the key's own limit.

    ``state: "disabled"`` takes the key out of the pool (with ``disabled_reason``); ``"active"`` puts it back
    and clears the reason, also for a key the relay disabled after the upstream refused it.
    """

    name: Name | UnsetType = UNSET
    weight: Weight | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    rpm: Limit | UnsetType | None = UNSET
    tpm: Limit | UnsetType | None = UNSET
    state: Literal["active", "disabled"] | UnsetType = UNSET
    disabled_reason: Reason | UnsetType = UNSET


async def _upstream(db: AsyncSession, upstream_id: str, owner: Owner) -> UpstreamRow:
    return await upstreams.upstream_by_id(db, upstream_id, tenant_id=owner_id(owner))


def _changed(db: AsyncSession, services: Services) -> None:
    # Routes carry their upstream's pool: drop them here and on every other worker once committed.
    after_commit(db, lambda: services.invalidation.invalidate("models"))


def _limit(value: int | UnsetType | None) -> int | None:
    """``update_key``'s convention: None keeps, 0 removes."""
    if value is UNSET:
        return None
    return value or 0


class UpstreamKeyController(Controller):
    path = "/upstreams/{upstream_id:str}/keys"
    tags = ["upstreams"]
    dependencies = {"owner": Provide(provide_tenant_owner)}

    @get("/")
    async def list_keys(self, upstream_id: FromPath[str], db: Db, owner: Owner, services: Svc) -> list[UpstreamKey]:
        """The pool in the order it is used (priority, then age)."""
        return (await upstream_doc(db, await _upstream(db, upstream_id, owner), services.box)).keys

    @post("/")
    async def add_key(
        self,
        upstream_id: FromPath[str],
        data: JSONBody[KeyCreate],
        db: Db,
        owner: Owner,
        actor: CurrentActor,
        services: Svc,
    ) -> UpstreamKey:
        row = await _upstream(db, upstream_id, owner)
        key = await upstream_keys.add_key(
            db, row, data.api_key, services.box, name=data.name or "", weight=data.weight, priority=data.priority,
            rpm=data.rpm, tpm=data.tpm, actor=actor.label,
        )  # fmt: skip
        _changed(db, services)
        return upstream_key_out(key, services.box)

    @patch("/{key_id:str}")
    async def update_key(
        self,
        upstream_id: FromPath[str],
        key_id: FromPath[str],
        data: JSONBody[KeyUpdate],
        db: Db,
        owner: Owner,
        actor: CurrentActor,
        services: Svc,
    ) -> UpstreamKey:
        if data.disabled_reason is not UNSET and data.state != "disabled":
            raise InvalidRequest('disabled_reason: only with "state": "disabled"')
        row = await _upstream(db, upstream_id, owner)
        key = await upstream_keys.get_key(db, row, key_id)
        await upstream_keys.update_key(
            db,
            row,
            key,
            weight=None if data.weight is UNSET else data.weight,
            priority=None if data.priority is UNSET else data.priority,
            rpm=_limit(data.rpm),
            tpm=_limit(data.tpm),
            name=None if data.name is UNSET else data.name,
            actor=actor.label,
        )
        if data.state is not UNSET:
            reason = data.disabled_reason if data.disabled_reason is not UNSET else ""
            await upstream_keys.set_key_state(
                db, row, key, enabled=data.state == "active", reason=reason.strip() or "disabled by an operator",
                actor=actor.label,
            )  # fmt: skip
            if data.state == "active":  # every worker lets it in at once, not after its minute
                after_commit(db, lambda: services.relay.pool.enabled(key.id))
        _changed(db, services)
        return upstream_key_out(key, services.box)

    @delete("/{key_id:str}")
    async def remove_key(
        self, upstream_id: FromPath[str], key_id: FromPath[str], db: Db, owner: Owner, actor: CurrentActor,
        services: Svc,
    ) -> None:  # fmt: skip
        row = await _upstream(db, upstream_id, owner)
        await upstream_keys.remove_key(db, row, await upstream_keys.get_key(db, row, key_id), actor=actor.label)
        _changed(db, services)


class PlatformUpstreamKeyController(UpstreamKeyController):
    path = "/platform/upstreams/{upstream_id:str}/keys"
    tags = ["platform"]
    dependencies = {"owner": Provide(provide_platform_owner, sync_to_thread=False)}
