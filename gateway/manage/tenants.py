"""Tenants and users."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import hash_password
from gateway.db.tables import (
    AdminSession,
    ApiKey,
    AuditLog,
    ConversationTurn,
    ManagementToken,
    ModelRow,
    Tenant,
    UpstreamKeyRow,
    UpstreamRow,
    User,
    Webhook,
    WebhookDelivery,
)
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


async def all_users(session: AsyncSession) -> list[tuple[User, Tenant]]:
    """Every account with its tenant (the operator's view: ``relay users list`` without ``--tenant``)."""
    rows = await session.execute(
        sa.select(User, Tenant).join(Tenant, User.tenant_id == Tenant.id).order_by(Tenant.name, User.email)
    )
    return [(u, t) for u, t in rows.all()]


async def user_by_id(session: AsyncSession, user_id: str, *, tenant_id: str) -> User:
    """An account of this tenant; another tenant's is "not found", like a missing one."""
    user = await session.scalar(sa.select(User).where(User.id == user_id, User.tenant_id == tenant_id))
    if user is None:
        raise NotFound(f"user {user_id!r} not found")
    return user


async def delete_tenant(session: AsyncSession, tenant: Tenant, *, force: bool = False, actor: str = "cli") -> None:
    """Delete a tenant and what it owns; refused while it has live keys unless ``force``.

    Goes: users (and their admin sessions), ``sk-`` keys, management tokens, upstreams and models, and the
    conversations Relay holds for it (transcripts of its clients; nobody could reach them any more).
    Kept: the usage ledger and daily rollup (billing history) and the audit log, including this deletion;
    they name the tenant by id. Refused even with ``force`` when the tenant holds the platform's last
    platform admin, who would leave nobody able to administer the platform.
    """
    now = datetime.now(UTC)
    live = await session.scalar(
        sa.select(sa.func.count())
        .select_from(ApiKey)
        .where(
            ApiKey.tenant_id == tenant.id,
            ApiKey.revoked_at.is_(None),
            sa.or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    )
    if live and not force:
        raise Conflict(f"tenant {tenant.name!r} has {live} live key(s): revoke them first, or force the deletion")
    admins_elsewhere = await session.scalar(
        sa.select(sa.func.count()).select_from(User).where(User.is_platform_admin, User.tenant_id != tenant.id)
    )
    has_admin = await session.scalar(
        sa.select(User.id).where(User.is_platform_admin, User.tenant_id == tenant.id).limit(1)
    )
    if has_admin and not admins_elsewhere:
        raise InvalidRequest(
            f"tenant {tenant.name!r} holds the last platform admin: make a user of another tenant platform admin first"
        )
    # Children first, explicitly: the same on Postgres and on SQLite, whatever its foreign_keys pragma.
    users = sa.select(User.id).where(User.tenant_id == tenant.id).scalar_subquery()
    upstream_ids = sa.select(UpstreamRow.id).where(UpstreamRow.tenant_id == tenant.id).scalar_subquery()
    webhook_ids = sa.select(Webhook.id).where(Webhook.tenant_id == tenant.id).scalar_subquery()
    for statement in (
        sa.delete(AdminSession).where(AdminSession.user_id.in_(users)),
        sa.delete(ApiKey).where(ApiKey.tenant_id == tenant.id),
        sa.delete(ManagementToken).where(ManagementToken.tenant_id == tenant.id),
        sa.delete(ModelRow).where(ModelRow.tenant_id == tenant.id),
        sa.delete(UpstreamKeyRow).where(UpstreamKeyRow.upstream_id.in_(upstream_ids)),
        sa.delete(UpstreamRow).where(UpstreamRow.tenant_id == tenant.id),
        sa.delete(WebhookDelivery).where(WebhookDelivery.webhook_id.in_(webhook_ids)),
        sa.delete(Webhook).where(Webhook.tenant_id == tenant.id),
        sa.delete(ConversationTurn).where(ConversationTurn.tenant_id == tenant.id),
        sa.delete(User).where(User.tenant_id == tenant.id),
        sa.delete(Tenant).where(Tenant.id == tenant.id),
    ):
        await session.execute(statement.execution_options(synchronize_session=False))
    await audit(session, tenant.id, actor, "tenant.delete", tenant.name, {"live_keys": live or 0, "forced": force})
