"""Accounts: passwords (one policy), one-time passwords, sign-out everywhere, removing a member.

The CLI (``relay users …``), the management API and the admin UI all call these; none of them checks a
password's length or hashes one itself.

- A one-time password (the first run's, a reset's) marks the account ``must_change_password``: the admin UI
  asks for a new password before showing anything else.
- Setting or resetting a password signs the account out everywhere (except, on a change, the session that
  made it): whoever knew the old password keeps no session.
- A tenant keeps at least one owner, and the platform at least one platform admin.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import hash_password, verify_password
from gateway.db.tables import AdminSession, Tenant, User
from gateway.errors import InvalidRequest, NotFound
from gateway.manage.tenants import audit, check_password

ONE_TIME_BYTES = 12
"""``token_urlsafe(12)``: 16 characters, 96 bits."""


def one_time_password() -> str:
    return secrets.token_urlsafe(ONE_TIME_BYTES)


async def find_user(db: AsyncSession, email: str, *, tenant_name: str | None = None) -> User:
    """The account ``email`` (in ``tenant_name`` when given). An address may have an account in several
    tenants: then the tenant must be named."""
    query = sa.select(User).where(User.email == email.strip().lower())
    if tenant_name is not None:
        query = query.join(Tenant, User.tenant_id == Tenant.id).where(Tenant.name == tenant_name)
    found = list(await db.scalars(query.limit(2)))
    if not found:
        where = f" in tenant {tenant_name!r}" if tenant_name is not None else ""
        raise NotFound(f"user {email!r} not found{where}")
    if len(found) > 1:
        raise InvalidRequest(f"user {email!r} has accounts in several tenants: name one with --tenant")
    return found[0]


async def sign_out_everywhere(db: AsyncSession, user_id: str, *, keep_session: str | None = None) -> int:
    """End every admin UI session of the account but ``keep_session`` (a hashed session id); how many ended."""
    query = sa.delete(AdminSession).where(AdminSession.user_id == user_id)
    if keep_session is not None:
        query = query.where(AdminSession.id != keep_session)
    result = await db.execute(query.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


async def set_password(db: AsyncSession, user: User, password: str, *, actor: str, one_time: bool = False) -> None:
    """Give the account a new password and sign it out everywhere; ``one_time`` asks for a new one at sign-in."""
    check_password(password)
    user.password_hash = await hash_password(password)
    user.must_change_password = one_time
    await sign_out_everywhere(db, user.id)
    await audit(db, user.tenant_id, actor, "user.password_reset", user.email, {"one_time": one_time})


async def reset_password(db: AsyncSession, user: User, *, actor: str) -> str:
    """A new one-time password for the account, returned once (never stored in clear)."""
    password = one_time_password()
    await set_password(db, user, password, actor=actor, one_time=True)
    return password


async def change_password(
    db: AsyncSession, user: User, current: str, new: str, *, actor: str, keep_session: str | None = None
) -> None:
    """The account holder's own change: the current password is checked; other sessions end."""
    if not await verify_password(user.password_hash, current):
        raise InvalidRequest("the current password is not right")
    if new == current:
        raise InvalidRequest("the new password must differ from the current one")
    check_password(new)
    user.password_hash = await hash_password(new)
    user.must_change_password = False
    await sign_out_everywhere(db, user.id, keep_session=keep_session)
    await audit(db, user.tenant_id, actor, "user.password_change", user.email)


async def delete_user(db: AsyncSession, user: User, *, actor: str) -> None:
    """Remove an account (its sessions go with it; keys it made stay with the tenant)."""
    if user.role == "owner":
        owners = await db.scalar(
            sa.select(sa.func.count()).select_from(User).where(User.tenant_id == user.tenant_id, User.role == "owner")
        )
        if (owners or 0) <= 1:
            raise InvalidRequest("the tenant needs at least one owner: make someone else owner first")
    if user.is_platform_admin:
        admins = await db.scalar(sa.select(sa.func.count()).select_from(User).where(User.is_platform_admin))
        if (admins or 0) <= 1:
            raise InvalidRequest("the platform needs at least one platform admin: make another one first")
    await sign_out_everywhere(db, user.id)
    await db.execute(sa.delete(User).where(User.id == user.id).execution_options(synchronize_session=False))
    await audit(db, user.tenant_id, actor, "user.delete", user.email, {"role": user.role})
