"""``/api/v1/upstreams`` (the tenant's) and ``/api/v1/platform/upstreams`` (built-in): the credential is write-only."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, delete, get, patch, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, UnsetType

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
from gateway.api.management.fields import Body, HeaderName, HeaderValue, Name, Secret, Timeout, changes_of
from gateway.manage import upstreams
from gateway.manage.documents import Upstream, upstream_doc, upstreams_out
from gateway.ssrf import Allowlist

Dialect = Literal["openai", "anthropic"]


class UpstreamCreate(Body):
    name: Name
    dialect: Dialect
    base_url: str
    """openai dialect: include the version path (``https://api.deepseek.com/v1``); anthropic: not."""
    api_key: Secret | None = None
    extra_headers: dict[HeaderName, HeaderValue] = {}
    timeout_s: Timeout | None = None
    profile: dict[str, Any] = {}


class UpstreamUpdate(Body):
    """Omitted fields keep their value; ``api_key: null`` removes the stored key."""

    name: Name | UnsetType = UNSET
    dialect: Dialect | UnsetType = UNSET
    base_url: str | UnsetType = UNSET
    api_key: Secret | UnsetType | None = UNSET
    extra_headers: dict[HeaderName, HeaderValue] | UnsetType = UNSET
    timeout_s: Timeout | UnsetType | None = UNSET
    profile: dict[str, Any] | UnsetType = UNSET


class UpstreamController(Controller):
    path = "/upstreams"
    tags = ["upstreams"]
    dependencies = {"owner": Provide(provide_tenant_owner)}

    @get("/")
    async def list_upstreams(self, db: Db, owner: Owner, services: Svc) -> list[Upstream]:
        rows = await upstreams.list_upstreams(db, tenant_id=owner_id(owner))
        return await upstreams_out(db, rows, services.box)

    @post("/")
    async def create_upstream(
        self, data: JSONBody[UpstreamCreate], db: Db, owner: Owner, actor: CurrentActor, services: Svc
    ) -> Upstream:
        row = await upstreams.add_upstream(
            db,
            box=services.box,
            tenant=owner,
            name=data.name,
            dialect=data.dialect,
            base_url=data.base_url,
            api_key=data.api_key,
            extra_headers=data.extra_headers,
            timeout_s=data.timeout_s,
            profile=data.profile,
            allowlist=Allowlist.parse(services.settings.upstream_allowlist),
            actor=actor.label,
        )
        return await upstream_doc(db, row, services.box)

    @get("/{upstream_id:str}")
    async def get_upstream(self, upstream_id: FromPath[str], db: Db, owner: Owner, services: Svc) -> Upstream:
        row = await upstreams.upstream_by_id(db, upstream_id, tenant_id=owner_id(owner))
        return await upstream_doc(db, row, services.box)

    @patch("/{upstream_id:str}")
    async def update_upstream(
        self,
        upstream_id: FromPath[str],
        data: JSONBody[UpstreamUpdate],
        db: Db,
        owner: Owner,
        actor: CurrentActor,
        services: Svc,
    ) -> Upstream:
        row = await upstreams.upstream_by_id(db, upstream_id, tenant_id=owner_id(owner))
        await upstreams.update_upstream(
            db,
            row,
            changes_of(data),
            box=services.box,
            allowlist=Allowlist.parse(services.settings.upstream_allowlist),
            actor=actor.label,
        )
        after_commit(db, lambda: services.invalidation.invalidate("models"))
        return await upstream_doc(db, row, services.box)

    @delete("/{upstream_id:str}")
    async def delete_upstream(
        self,
        upstream_id: FromPath[str],
        db: Db,
        owner: Owner,
        actor: CurrentActor,
        services: Svc,
        force: FromQuery[bool] = False,
    ) -> None:
        """409 naming the models that use the upstream; ``?force=true`` deletes them with it."""
        row = await upstreams.upstream_by_id(db, upstream_id, tenant_id=owner_id(owner))
        await upstreams.delete_upstream(db, row, force=force, actor=actor.label)
        after_commit(db, lambda: services.invalidation.invalidate("models"))


class PlatformUpstreamController(UpstreamController):
    path = "/platform/upstreams"
    tags = ["platform"]
    dependencies = {"owner": Provide(provide_platform_owner, sync_to_thread=False)}
