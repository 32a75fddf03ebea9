"""Admin UI storage on each backend: one-time flashes (sealed, per session, read once, short-lived) and the
sign-in throttle's numbers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from admin_ui import flash, sessions, throttle
from gateway.db.session import create_engine, create_sessionmaker
from gateway.db.tables import AdminFlash, AdminSession, User
from gateway.manage import tenants
from gateway.settings import Settings

KEY = "flash-test-secret-key-" + "y" * 32


async def _two_sessions(db: AsyncSession) -> tuple[str, str]:
    tenant = await tenants.create_tenant(db, "t" + secrets.token_hex(4))
    user = await tenants.create_user(db, tenant=tenant, email="f@x.io", password="correct horse battery")
    _, first = await sessions.create(db, user, ip="127.0.0.1")
    _, second = await sessions.create(db, user, ip="127.0.0.1")
    return first.id, second.id


async def test_a_flash_is_sealed_bound_to_its_session_and_read_once(sessions_: async_sessionmaker[AsyncSession]):
    async with sessions_.begin() as db:
        mine, other = await _two_sessions(db)
        flash_id = await flash.put(db, secret_key=KEY, session_id=mine, payload={"secret": "sk-very-secret"})
        stored = await db.scalar(sa.select(AdminFlash.sealed).where(AdminFlash.id == flash_id))
        assert stored is not None and "sk-very-secret" not in stored
    async with sessions_.begin() as db:
        assert await flash.take(db, secret_key=KEY, session_id=other, flash_id=flash_id) is None
        assert await flash.take(db, secret_key="another-key-" + "z" * 32, session_id=mine, flash_id=flash_id) is None
    async with sessions_.begin() as db:  # the wrong key spent it: a flash is read at most once, by anyone
        assert await flash.take(db, secret_key=KEY, session_id=mine, flash_id=flash_id) is None
        again = await flash.put(db, secret_key=KEY, session_id=mine, payload={"secret": "sk-2"})
    async with sessions_.begin() as db:
        assert await flash.take(db, secret_key=KEY, session_id=mine, flash_id=again) == {"secret": "sk-2"}
        assert await flash.take(db, secret_key=KEY, session_id=mine, flash_id=again) is None


async def test_a_flash_expires_and_goes_with_its_session(sessions_: async_sessionmaker[AsyncSession]):
    async with sessions_.begin() as db:
        mine, _ = await _two_sessions(db)
        old = await flash.put(db, secret_key=KEY, session_id=mine, payload={"n": 1})
        kept = await flash.put(db, secret_key=KEY, session_id=mine, payload={"n": 2})
        past = datetime.now(UTC) - timedelta(seconds=1)
        await db.execute(sa.update(AdminFlash).where(AdminFlash.id == old).values(expires_at=past))
    async with sessions_.begin() as db:
        assert await flash.take(db, secret_key=KEY, session_id=mine, flash_id=old) is None
        await db.execute(sa.delete(AdminSession).where(AdminSession.id == mine))
    async with sessions_.begin() as db:
        assert await db.scalar(sa.select(AdminFlash.id).where(AdminFlash.id == kept)) is None  # cascaded


def test_the_throttle_slows_an_account_down_but_never_locks_it():
    assert throttle.Failures(pair=0, address=0, account=throttle.SLOW_AFTER - 1).delay_s == 0
    assert throttle.Failures(pair=0, address=0, account=throttle.SLOW_AFTER).delay_s == throttle.STEP_S
    huge = throttle.Failures(pair=0, address=0, account=10_000)
    assert huge.delay_s == throttle.MAX_DELAY_S and not huge.refused()  # from a fresh address: slowed, let in
    assert throttle.Failures(pair=throttle.PAIR_LIMIT, address=0, account=0).refused()
    assert throttle.Failures(pair=0, address=throttle.IP_LIMIT, account=0).refused()
    assert not throttle.Failures(pair=throttle.PAIR_LIMIT, address=0, account=0).refused(slack=1)


async def test_a_view_column_is_honoured_for_platform_admins_only(sessions_: async_sessionmaker[AsyncSession]):
    async with sessions_.begin() as db:
        home = await tenants.create_tenant(db, "home-" + secrets.token_hex(3))
        other = await tenants.create_tenant(db, "other-" + secrets.token_hex(3))
        user = await tenants.create_user(db, tenant=home, email="v@x.io", password="correct horse battery")
        raw, row = await sessions.create(db, user, ip="127.0.0.1")
        row.viewing_tenant_id = other.id
    async with sessions_.begin() as db:
        admin = await sessions.load(db, raw)
        assert admin is not None and admin.tenant_id == home.id and not admin.viewing and admin.role == "member"
        await db.execute(sa.update(User).where(User.id == user.id).values(is_platform_admin=True))
    async with sessions_.begin() as db:
        admin = await sessions.load(db, raw)
        assert admin is not None and admin.viewing and admin.tenant_id == other.id and admin.role == "owner"
        assert admin.home_tenant_id == home.id and admin.actor.label == "user:v@x.io"


@pytest.fixture
async def sessions_(backend: tuple[str, Settings]) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions through the gateway's own engine factory (on SQLite it turns foreign keys on, as in the app)."""
    engine = create_engine(backend[1].database_url, pool_size=1)
    yield create_sessionmaker(engine)
    await engine.dispose()
