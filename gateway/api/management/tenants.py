"""``/api/v1/tenants`` (platform only), ``/api/v1/users`` (owners and the platform) and ``/api/v1/me``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody
from msgspec import Meta

from gateway.api.management.access import CurrentActor, Db, OwnTenant, provide_tenant
from gateway.api.management.fields import Body, Name
from gateway.errors import PermissionDenied
from gateway.manage import tenants
from gateway.manage.documents import TenantOut, UserOut, tenant_out, user_out

Role = Literal["owner", "admin", "member"]


class TenantCreate(Body):
    name: Name


class TenantController(Controller):
    path = "/tenants"
    tags = ["platform"]

    @get("/", opt={"access": "platform-read"})
    async def list_tenants(self, db: Db) -> list[TenantOut]:
        return [tenant_out(t) for t in await tenants.list_tenants(db)]

    @post("/", opt={"access": "platform"})
    async def create_tenant(self, data: JSONBody[TenantCreate], db: Db, actor: CurrentActor) -> TenantOut:
        return tenant_out(await tenants.create_tenant(db, data.name, actor=actor.label))

    @get("/{tenant_id:str}", opt={"access": "platform-read"})
    async def get_tenant(self, tenant_id: FromPath[str], db: Db) -> TenantOut:
        return tenant_out(await tenants.tenant_by_id(db, tenant_id))


class UserCreate(Body):
    email: Annotated[str, Meta(min_length=3, max_length=320)]
    password: Annotated[str, Meta(min_length=8, max_length=1000)]
    """Write-only: stored as an argon2id hash, never returned."""
    role: Role = "member"
    platform_admin: bool = False
    """Only a platform token may create a platform admin."""


class UserController(Controller):
    path = "/users"
    tags = ["users"]
    dependencies = {"tenant": Provide(provide_tenant)}

    @get("/", opt={"access": "users"})
    async def list_users(self, db: Db, tenant: OwnTenant) -> list[UserOut]:
        return [user_out(u) for u in await tenants.list_users(db, tenant_id=tenant.id)]

    @post("/", opt={"access": "users"})
    async def create_user(self, data: JSONBody[UserCreate], db: Db, tenant: OwnTenant, actor: CurrentActor) -> UserOut:
        if data.platform_admin and not actor.platform:
            raise PermissionDenied("platform_admin: only a platform token may create a platform admin")
        user = await tenants.create_user(
            db,
            tenant=tenant,
            email=data.email,
            password=data.password,
            role=data.role,
            platform_admin=data.platform_admin,
            actor=actor.label,
        )
        return user_out(user)


class Me(msgspec.Struct, kw_only=True):
    kind: str
    """How the caller authenticated: ``token`` (the admin UI's session will say ``session``)."""
    label: str
    role: str
    platform: bool
    tenant_id: str | None
    tenant_name: str | None


@get("/me", tags=["me"])
async def me(actor: CurrentActor, db: Db) -> Me:
    tenant = await tenants.tenant_by_id(db, actor.tenant_id) if actor.tenant_id else None
    return Me(
        kind=actor.kind,
        label=actor.label,
        role=actor.role,
        platform=actor.platform,
        tenant_id=actor.tenant_id,
        tenant_name=tenant.name if tenant else None,
    )
