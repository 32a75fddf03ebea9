"""Accounts on each backend: one password policy, one-time passwords, sign-out everywhere, removal guards."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth import verify_password
from gateway.db.tables import AdminSession, AuditLog, User
from gateway.errors import InvalidRequest, NotFound
from gateway.manage import accounts, tenants

GOOD = "correct horse battery"


async def _tenant_with(db: AsyncSession, *emails_roles: tuple[str, str], platform: bool = False) -> list[User]:
    tenant = await tenants.create_tenant(db, "t" + secrets.token_hex(4))
    return [
        await tenants.create_user(db, tenant=tenant, email=e, password=GOOD, role=r, platform_admin=platform)
        for e, r in emails_roles
    ]


async def _sessions_of(db: AsyncSession, user_id: str) -> set[str]:
    return set(await db.scalars(sa.select(AdminSession.id).where(AdminSession.user_id == user_id)))


@pytest.mark.parametrize("password", ["", "short", "x" * 11, "y" * 1025])
async def test_one_policy_refuses_short_and_huge_passwords(sessions: async_sessionmaker[AsyncSession], password):
    async with sessions.begin() as db:
        (user,) = await _tenant_with(db, ("a@x.io", "owner"))
        with pytest.raises(InvalidRequest, match="password must be"):
            await accounts.set_password(db, user, password, actor="test")
        with pytest.raises(InvalidRequest, match="password must be"):
            await tenants.create_user(
                db, tenant=await tenants.tenant_by_id(db, user.tenant_id), email="b@x.io", password=password
            )


async def test_reset_gives_a_one_time_password_and_signs_out_everywhere(sessions: async_sessionmaker[AsyncSession]):
    async with sessions.begin() as db:
        (user,) = await _tenant_with(db, ("a@x.io", "owner"))
        db.add_all([AdminSession(id=secrets.token_hex(32), user_id=user.id, csrf_token="c") for _ in range(3)])
        await db.flush()
        password = await accounts.reset_password(db, user, actor="cli")
        assert len(password) >= 12 and user.must_change_password
        assert await verify_password(user.password_hash, password)
        assert not await verify_password(user.password_hash, GOOD)
        assert await _sessions_of(db, user.id) == set()
        actions = list(await db.scalars(sa.select(AuditLog.action).where(AuditLog.target == "a@x.io")))
        assert "user.password_reset" in actions


async def test_change_checks_the_current_password_and_keeps_only_this_session(
    sessions: async_sessionmaker[AsyncSession],
):
    async with sessions.begin() as db:
        (user,) = await _tenant_with(db, ("a@x.io", "owner"))
        user.must_change_password = True
        ids = [secrets.token_hex(32) for _ in range(3)]
        db.add_all([AdminSession(id=i, user_id=user.id, csrf_token="c") for i in ids])
        await db.flush()
        with pytest.raises(InvalidRequest, match="current password"):
            await accounts.change_password(db, user, "wrong password!", "another good one", actor="u")
        with pytest.raises(InvalidRequest, match="differ"):
            await accounts.change_password(db, user, GOOD, GOOD, actor="u")
        with pytest.raises(InvalidRequest, match="at least 12"):
            await accounts.change_password(db, user, GOOD, "short", actor="u")
        assert await _sessions_of(db, user.id) == set(ids)
        await accounts.change_password(db, user, GOOD, "another good one", actor="u", keep_session=ids[0])
        assert await verify_password(user.password_hash, "another good one") and not user.must_change_password
        assert await _sessions_of(db, user.id) == {ids[0]}


async def test_find_user_asks_for_the_tenant_when_an_address_is_in_several(sessions: async_sessionmaker[AsyncSession]):
    email = f"{secrets.token_hex(4)}@x.io"
    async with sessions.begin() as db:
        (one,) = await _tenant_with(db, (email, "owner"))
        (two,) = await _tenant_with(db, (email, "owner"))
        with pytest.raises(InvalidRequest, match="--tenant"):
            await accounts.find_user(db, email.upper())
        second_tenant = await tenants.tenant_by_id(db, two.tenant_id)
        assert (await accounts.find_user(db, email, tenant_name=second_tenant.name)).id == two.id
        with pytest.raises(NotFound):
            await accounts.find_user(db, "nobody@x.io")
        assert one.id != two.id


async def test_delete_keeps_an_owner_and_a_platform_admin(sessions: async_sessionmaker[AsyncSession]):
    async with sessions.begin() as db:
        owner, member = await _tenant_with(db, ("o@x.io", "owner"), ("m@x.io", "member"))
        db.add(AdminSession(id=secrets.token_hex(32), user_id=member.id, csrf_token="c"))
        await db.flush()
        with pytest.raises(InvalidRequest, match="at least one owner"):
            await accounts.delete_user(db, owner, actor="t")
        await accounts.delete_user(db, member, actor="t")
        assert await db.get(User, member.id, populate_existing=True) is None
        assert await _sessions_of(db, member.id) == set()


async def test_the_last_platform_admin_stays(sessions: async_sessionmaker[AsyncSession]):
    async with sessions() as db:  # rolled back: the other tests' platform admins come back
        (only,) = await _tenant_with(db, ("p@x.io", "admin"), platform=True)
        await db.execute(sa.update(User).where(User.id != only.id).values(is_platform_admin=False))
        with pytest.raises(InvalidRequest, match="platform admin"):
            await accounts.delete_user(db, only, actor="t")
        await db.rollback()
