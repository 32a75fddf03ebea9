"""Tenants and users."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import hash_password
from gateway.db.tables import AuditLog, Tenant, User
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.manage.names import clean_name

ROLES = ("owner", "admin", "member")


async def create_tenant(session: AsyncSession, name: str, *, actor: str = "cli") -> Tenant:
    name = clean_name(name, "tenant name")
    if await session.scalar(sa.select(Tenant.id).where(Tenant.name == name)):
        raise Conflict(f"tenant {name!r} already exists")
    tenant = Tenant(name=name)
    session.add(tenant)
    await session.flush()
    await audit(session, tenant.id, actor, "tenant.create", tenant.name)
    return tenant


async def get_tenant(session: AsyncSession, name: str) -> Tenant:
    tenant = await session.scalar(sa.select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise NotFound(f"tenant {name!r} not found")
    return tenant


MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


def check_password(password: str) -> None:
    """The one password policy for the CLI, the management API and the admin UI (NIST 800-63B: length,
    no composition rules; the cap keeps argon2's input bounded)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidRequest(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


async def create_user(
    session: AsyncSession,
    *,
    tenant: Tenant,
    email: str,
    password: str,
    role: str = "member",
    platform_admin: bool = False,
    actor: str = "cli",
) -> User:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise InvalidRequest(f"email {email!r} is not an email address")
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    check_password(password)
    # Unique within the tenant only: a 409 for an address of another tenant told its owner it exists there.
    if await session.scalar(sa.select(User.id).where(User.tenant_id == tenant.id, User.email == email)):
        raise Conflict(f"user {email!r} already exists in this tenant")
    user = User(
        tenant_id=tenant.id,
        email=email,
        password_hash=await hash_password(password),
        role=role,
        is_platform_admin=platform_admin,
    )
    session.add(user)
    await session.flush()
    await audit(session, tenant.id, actor, "user.create", email, {"role": role, "platform_admin": platform_admin})
    return user


async def audit(
    session: AsyncSession,
    tenant_id: str | None,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, object] | None = None,
) -> None:
    session.add(AuditLog(tenant_id=tenant_id, actor=actor, action=action, target=target, detail=detail or {}))


async def list_tenants(session: AsyncSession) -> list[Tenant]:
    return list(await session.scalars(sa.select(Tenant).order_by(Tenant.name)))


async def tenant_by_id(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id!r} not found")
    return tenant


async def list_users(session: AsyncSession, *, tenant_id: str) -> list[User]:
    """A tenant's users; the one query scoping users by tenant."""
    rows = await session.scalars(sa.select(User).where(User.tenant_id == tenant_id).order_by(User.email))
    return list(rows)


async def set_role(db: AsyncSession, user: User, role: str, *, actor: str) -> None:
    """Change a member's role; the tenant keeps at least one owner."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    if user.role == "owner" and role != "owner":
        owners = await db.scalar(
            sa.select(sa.func.count()).select_from(User).where(User.tenant_id == user.tenant_id, User.role == "owner")
        )
        if (owners or 0) <= 1:
            raise InvalidRequest("the tenant needs at least one owner: make someone else owner first")
    if user.role != role:
        await audit(db, user.tenant_id, actor, "user.role", user.email, {"from": user.role, "to": role})
        user.role = role
