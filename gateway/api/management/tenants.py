"""``/api/v1/tenants`` (platform only), ``/api/v1/users`` (owners and the platform) and ``/api/v1/me``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import Meta

from gateway.api.management.access import CurrentActor, Db, OwnTenant, Svc, after_commit, provide_tenant
from gateway.api.management.fields import Body, Name
from gateway.db.tables import User
from gateway.errors import PermissionDenied
from gateway.manage import accounts, tenants
from gateway.manage.documents import TenantOut, UserOut, tenant_out, user_out
from gateway.manage.tokens import Actor

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

    @delete("/{tenant_id:str}", opt={"access": "platform"})
    async def delete_tenant(
        self, tenant_id: FromPath[str], db: Db, actor: CurrentActor, services: Svc, force: FromQuery[bool] = False
    ) -> None:
        """Deletes the tenant and what it owns; 409 while it has live keys, unless ``?force=true``.
        Its usage history and audit log are kept (``manage.tenants.delete_tenant``)."""
        tenant = await tenants.tenant_by_id(db, tenant_id)
        await tenants.delete_tenant(db, tenant, force=force, actor=actor.label)
        after_commit(db, lambda: services.invalidation.invalidate("keys"))
        after_commit(db, lambda: services.invalidation.invalidate("models"))


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

    @get("/{user_id:str}", opt={"access": "users"})
    async def get_user(self, user_id: FromPath[str], db: Db, tenant: OwnTenant) -> UserOut:
        return user_out(await tenants.user_by_id(db, user_id, tenant_id=tenant.id))

    @delete("/{user_id:str}", opt={"access": "users"})
    async def delete_user(self, user_id: FromPath[str], db: Db, tenant: OwnTenant, actor: CurrentActor) -> None:
        """The tenant keeps one owner and the platform one platform admin (400 otherwise)."""
        user = await tenants.user_by_id(db, user_id, tenant_id=tenant.id)
        _not_a_platform_admin(user, actor)
        await accounts.delete_user(db, user, actor=actor.label)

    @post("/{user_id:str}/reset-password", opt={"access": "users"}, status_code=200)
    async def reset_password(
        self,
        user_id: FromPath[str],
        db: Db,
        tenant: OwnTenant,
        actor: CurrentActor,
        data: JSONBody[PasswordReset | None] = None,
    ) -> PasswordResetDone:
        """Sets the given password, or makes a one-time one; either way the account is signed out everywhere."""
        user = await tenants.user_by_id(db, user_id, tenant_id=tenant.id)
        _not_a_platform_admin(user, actor)
        one_time = None
        if data is not None and data.password is not None:
            await accounts.set_password(db, user, data.password, actor=actor.label)
        else:
            one_time = await accounts.reset_password(db, user, actor=actor.label)
        return PasswordResetDone(user=user_out(user), one_time_password=one_time)


class PasswordReset(Body):
    password: Annotated[str, Meta(max_length=1000)] | None = None
    """The new password; omitted: a one-time password is made, returned once, and must be changed at sign-in."""


class PasswordResetDone(msgspec.Struct, kw_only=True):
    user: UserOut
    one_time_password: str | None
    """Only when no password was given: shown in this response only."""


def _not_a_platform_admin(user: User, actor: Actor) -> None:
    """A tenant's owner manages its members, not the platform's admins who happen to sit in the tenant:
    resetting one's password would hand the tenant the platform."""
    if user.is_platform_admin and not actor.platform:
        raise PermissionDenied("a platform admin's account is managed with a platform token")


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
