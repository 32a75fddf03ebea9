"""Server-side admin sessions, in the database (so they hold across workers).

- The cookie carries a random 256-bit id (``secrets.token_urlsafe(32)``); the table stores its SHA-256, so a
  leaked table does not hand out live sessions. A new id is issued at every sign-in (no fixation).
- Expiry is enforced here, server-side: idle ``IDLE`` (30 min), absolute ``ABSOLUTE`` (8 h). Sign-out deletes
  the row, so a replayed cookie is dead.
- The synchronizer CSRF token lives in the session row.
- A platform admin's session may be *viewing* another tenant (``admin_sessions.viewing_tenant_id``, see
  ``admin_ui.viewing``): ``load`` then answers with that tenant, the role ``owner`` and ``viewing`` set. The
  column is honoured only while the user is a platform admin, checked here on every request.
- Sign-in throttling lives in ``admin_ui.throttle``.
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
from sqlalchemy.orm import aliased

from gateway.db.tables import AdminSession, Tenant, User
from gateway.manage.tokens import Access, Actor

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=8)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
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
    """The signed-in user of this request, as the pages and role checks see it.

    ``tenant_id``/``tenant_name``/``role`` are the tenant the pages show: the user's own, or, while a platform
    admin views another tenant, that one (as its owner). ``home_tenant_id`` is always the user's own.
    """

    session_id: str
    csrf: str
    user_id: str
    email: str
    role: str
    platform_admin: bool
    tenant_id: str
    tenant_name: str
    home_tenant_id: str
    home_tenant_name: str
    must_change_password: bool = False

    @property
    def viewing(self) -> bool:
        """A platform admin looking at (and acting in) a tenant other than their own."""
        return self.tenant_id != self.home_tenant_id

    @property
    def actor(self) -> Actor:
        """Acting on the shown tenant; written to the audit log as ``user:<email>`` (the platform admin's own
        address while viewing: the audit row says who really acted)."""
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
    viewed = aliased(Tenant)
    found = (
        await session.execute(
            sa.select(AdminSession, User, Tenant, viewed)
            .join(User, AdminSession.user_id == User.id)
            .join(Tenant, User.tenant_id == Tenant.id)
            .outerjoin(viewed, AdminSession.viewing_tenant_id == viewed.id)
            .where(AdminSession.id == hash_id(raw))
        )
    ).first()
    if found is None:
        return None
    row, user, home, other = found
    if now - row.last_seen_at > IDLE or now - row.created_at > ABSOLUTE:
        await session.delete(row)
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    shown = other if other is not None and user.is_platform_admin else home  # the server-side check
    own = shown.id == home.id
    return Admin(
        session_id=row.id,
        csrf=row.csrf_token,
        user_id=user.id,
        email=user.email,
        role=user.role if own else "owner",
        platform_admin=user.is_platform_admin,
        tenant_id=shown.id,
        tenant_name=shown.name,
        home_tenant_id=home.id,
        home_tenant_name=home.name,
        must_change_password=user.must_change_password,
    )


async def destroy(session: AsyncSession, raw: str | None) -> None:
    if well_formed(raw):
        assert raw is not None
        await session.execute(sa.delete(AdminSession).where(AdminSession.id == hash_id(raw)))


async def prune(session: AsyncSession, *, now: datetime | None = None) -> None:
    """Drop expired sessions (run at sign-in, which is rare)."""
    now = now or datetime.now(UTC)
    await session.execute(
        sa.delete(AdminSession).where(
            sa.or_(AdminSession.last_seen_at < now - IDLE, AdminSession.created_at < now - ABSOLUTE)
        )
    )


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
