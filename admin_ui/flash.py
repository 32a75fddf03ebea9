"""One-time flashes: what a form that created something shows once, on the page it redirects to.

Every creating form answers POST/redirect/GET: the POST does the work, stores a flash and answers 303 to
``page?flash=<id>``; that GET reads the flash and deletes it in the same step. A reload (or the back
button) finds nothing, so it neither creates a second thing nor shows the secret again.

Flashes live in the database (``admin_flashes``), so the GET may land on any worker or replica. Each is
tied to the admin session that made it (another session, even of the same user, cannot read it; sign-out
deletes it with the session), expires after ``TTL``, and is sealed at rest with AES-256-GCM under a key of
its own (``SecretBox``, bound to ``flash id:session id``): the sk- key or one-time password it may carry is
never stored in clear, even for those five minutes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from admin_ui.guard import admin_of
from admin_ui.web import services_of
from gateway.db.tables import AdminFlash, new_id
from gateway.security import SecretBox, derive_key

TTL = timedelta(minutes=5)
Payload = dict[str, Any]


@lru_cache(maxsize=4)
def _box(secret_key: str) -> SecretBox:
    return SecretBox(derive_key(secret_key, "admin-flash"))


def _context(flash_id: str, session_id: str) -> str:
    return f"admin-flash:{flash_id}:{session_id}"


async def put(db: AsyncSession, *, secret_key: str, session_id: str, payload: Payload) -> str:
    """Store a flash for the session; its id goes into the redirect's ``?flash=``."""
    now = datetime.now(UTC)
    await db.execute(sa.delete(AdminFlash).where(AdminFlash.expires_at < now))  # expired ones, of anyone
    flash_id = new_id()
    sealed = _box(secret_key).encrypt(json.dumps(payload), context=_context(flash_id, session_id))
    db.add(AdminFlash(id=flash_id, session_id=session_id, sealed=sealed, expires_at=now + TTL))
    await db.flush()
    return flash_id


async def take(db: AsyncSession, *, secret_key: str, session_id: str, flash_id: str) -> Payload | None:
    """The flash's payload, deleting it; None when it is unknown, another session's, expired or already read."""
    flash_id = flash_id[:32]
    mine = sa.and_(AdminFlash.id == flash_id, AdminFlash.session_id == session_id)
    row = await db.scalar(sa.select(AdminFlash).where(mine))
    if row is None:
        return None
    sealed, expired = row.sealed, row.expires_at < datetime.now(UTC)
    deleted = await db.execute(sa.delete(AdminFlash).where(mine).execution_options(synchronize_session=False))
    if expired or getattr(deleted, "rowcount", 0) != 1:  # a parallel GET of the same flash got it first
        return None
    try:
        payload: Payload = json.loads(_box(secret_key).decrypt(sealed, context=_context(flash_id, session_id)))
    except (InvalidTag, ValueError):  # sealed under another secret key (rotated meanwhile): as good as gone
        return None
    return payload


async def stash(request: Request[Any, Any, Any], payload: Payload) -> str:
    """``put`` for this request's session, in a transaction of its own."""
    services = services_of(request)
    async with services.sessions.begin() as db:
        return await put(
            db, secret_key=services.settings.secret_key, session_id=admin_of(request).session_id, payload=payload
        )


async def pop(request: Request[Any, Any, Any]) -> Payload | None:
    """The flash named by ``?flash=`` in this request's URL, read once."""
    flash_id = request.query_params.get("flash")
    if not flash_id:
        return None
    services = services_of(request)
    async with services.sessions.begin() as db:
        return await take(
            db, secret_key=services.settings.secret_key, session_id=admin_of(request).session_id, flash_id=flash_id
        )
