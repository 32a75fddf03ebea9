"""Server-side admin sessions and sign-in throttling, both in the database (so they hold across workers).

- The cookie carries a random 256-bit id (``secrets.token_urlsafe(32)``); the table stores its SHA-256, so a
  leaked table does not hand out live sessions. A new id is issued at every sign-in (no fixation).
- Expiry is enforced here, server-side: idle ``IDLE`` (30 min), absolute ``ABSOLUTE`` (8 h). Sign-out deletes
  the row, so a replayed cookie is dead.
- The synchronizer CSRF token lives in the session row.
- Failed sign-ins are rows of ``login_attempts``: at most ``ACCOUNT_LIMIT`` per submitted email and
  ``IP_LIMIT`` per client IP within ``WINDOW``; past that, sign-in is refused without checking the password.
  Each attempt is recorded (committed) *before* its password is checked and counted again, so parallel
  guesses cannot slip past the limit; a successful sign-in removes its provisional row.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import AdminSession, LoginAttempt, Tenant, User
from gateway.manage.tokens import Access, Actor

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=8)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
WINDOW = timedelta(hours=1)
ACCOUNT_LIMIT = 20
IP_LIMIT = 100
KEEP_ATTEMPTS = timedelta(days=1)
COOKIE = "relay_admin"
SECURE_COOKIE = "__Host-relay_admin"  # https only: Secure, Path=/, no Domain (cannot be set by a subdomain)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_id(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def well_formed(raw: str | None) -> bool:
    return bool(raw) and _TOKEN.match(raw or "") is not None


@dataclass(frozen=True, slots=True)
class Admin:
    """The signed-in user of this request, as the pages and role checks see it."""

    session_id: str
    csrf: str
    user_id: str
    email: str
    role: str
    platform_admin: bool
    tenant_id: str
    tenant_name: str

    @property
    def actor(self) -> Actor:
        """Acting on the user's own tenant; written to the audit log as ``user:<email>``."""
        return Actor(tenant_id=self.tenant_id, role=self.role, label=f"user:{self.email}", kind="session")

    @property
    def platform_actor(self) -> Actor:
        return Actor(tenant_id=None, role="admin", label=f"user:{self.email}", kind="session")

    def allows(self, need: Access) -> bool:
        if need.startswith("platform"):
            return self.platform_admin
        return self.actor.allows(need)


async def create(session: AsyncSession, user: User, *, ip: str) -> tuple[str, AdminSession]:
    """A new session for ``user``; returns the raw cookie value (never stored) and the row."""
    raw = new_token()
    row = AdminSession(id=hash_id(raw), user_id=user.id, csrf_token=new_token(), ip=ip[:64])
    session.add(row)
    await session.flush()
    return raw, row


async def load(session: AsyncSession, raw: str | None, *, now: datetime | None = None) -> Admin | None:
    """The live session behind a cookie value, refreshing its idle clock; expired ones are deleted."""
    if not well_formed(raw):
        return None
    assert raw is not None
    now = now or datetime.now(UTC)
    found = (
        await session.execute(
            sa.select(AdminSession, User, Tenant)
            .join(User, AdminSession.user_id == User.id)
            .join(Tenant, User.tenant_id == Tenant.id)
            .where(AdminSession.id == hash_id(raw))
        )
    ).first()
    if found is None:
        return None
    row, user, tenant = found
    if now - row.last_seen_at > IDLE or now - row.created_at > ABSOLUTE:
        await session.delete(row)
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    return Admin(
        session_id=row.id,
        csrf=row.csrf_token,
        user_id=user.id,
        email=user.email,
        role=user.role,
        platform_admin=user.is_platform_admin,
        tenant_id=tenant.id,
        tenant_name=tenant.name,
    )


async def destroy(session: AsyncSession, raw: str | None) -> None:
    if well_formed(raw):
        assert raw is not None
        await session.execute(sa.delete(AdminSession).where(AdminSession.id == hash_id(raw)))


async def prune(session: AsyncSession, *, now: datetime | None = None) -> None:
    """Drop expired sessions and old failed attempts (run at sign-in, which is rare)."""
    now = now or datetime.now(UTC)
    await session.execute(
        sa.delete(AdminSession).where(
            sa.or_(AdminSession.last_seen_at < now - IDLE, AdminSession.created_at < now - ABSOLUTE)
        )
    )
    await session.execute(sa.delete(LoginAttempt).where(LoginAttempt.created_at < now - KEEP_ATTEMPTS))


async def failures(session: AsyncSession, *, email: str, ip: str, now: datetime | None = None) -> tuple[int, int]:
    """Failed sign-ins within the window: (for this account, from this address)."""
    since = (now or datetime.now(UTC)) - WINDOW
    count = sa.select(sa.func.count()).select_from(LoginAttempt).where(LoginAttempt.created_at >= since)
    by_account = await session.scalar(count.where(LoginAttempt.email == email[:320]))
    by_ip = await session.scalar(count.where(LoginAttempt.ip == ip[:64]))
    return int(by_account or 0), int(by_ip or 0)


def over(counts: tuple[int, int], *, slack: int = 0) -> bool:
    return counts[0] > ACCOUNT_LIMIT - 1 + slack or counts[1] > IP_LIMIT - 1 + slack


async def record_failure(session: AsyncSession, *, email: str, ip: str) -> int:
    row = LoginAttempt(email=email[:320], ip=ip[:64])
    session.add(row)
    await session.flush()
    return row.id


async def forget_attempt(session: AsyncSession, attempt_id: int) -> None:
    """A provisional failure turned out to be a success."""
    await session.execute(sa.delete(LoginAttempt).where(LoginAttempt.id == attempt_id))


# --- the sign-in form's CSRF token, before any session exists: a signed double-submit cookie ---

PRE_COOKIE = "relay_admin_form"


def form_token(secret: bytes, cookie_value: str) -> str:
    """The hidden field matching a pre-session cookie: HMAC(secret, cookie), so neither alone suffices."""
    return hmac.new(secret, b"admin-login-form:" + cookie_value.encode(), "sha256").hexdigest()


def check_form_token(secret: bytes, cookie_value: str | None, field: str | None) -> bool:
    if not well_formed(cookie_value) or not field:
        return False
    assert cookie_value is not None
    return hmac.compare_digest(form_token(secret, cookie_value), field)
