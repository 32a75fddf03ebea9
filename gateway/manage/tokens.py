"""Management tokens (``rlm-…``) for the JSON management API, and the ``Actor`` a caller acts as.

A token belongs to one tenant, or (``tenant_id`` null) to the platform. It is shown once and
stored as an HMAC digest, like ``sk-`` keys but under its own derived key and prefix, so an API
key is never accepted as a management token nor the other way round.

Roles: ``member`` reads; ``admin`` also manages upstreams, models and keys; ``owner`` also
manages users. A platform actor with role admin or owner may do everything, on any tenant;
a platform member only reads.
"""

from __future__ import annotations

import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import ManagementToken, Tenant
from gateway.errors import AuthenticationFailed, InvalidRequest, NotFound
from gateway.manage.names import clean_name
from gateway.manage.tenants import ROLES, audit
from gateway.security import KEY_PREFIX, derive_key

TOKEN_PREFIX = "rlm-"  # noqa: S105 (a prefix, not a secret)
TOKEN_BODY_LENGTH = 48
DISPLAY_PREFIX_LENGTH = 11  # "rlm-" + 7 characters
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most this often per token
_BASE62 = string.digits + string.ascii_letters
_BASE62_SET = frozenset(_BASE62)

Access = Literal["read", "manage", "users", "platform-read", "platform"]
"""What a request needs: read, manage upstreams/models/keys, manage users, and the platform-only two."""
_RANK = {"member": 0, "admin": 1, "owner": 2}
_NEEDS = {"read": 0, "manage": 1, "users": 2, "platform-read": 0, "platform": 1}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling the management API: a tenant's (``tenant_id``) or the platform's (``None``)."""

    tenant_id: str | None
    role: str
    label: str
    """Written to the audit log as the actor: ``token:rlm-AbC1234`` (never the secret)."""
    kind: str = "token"

    @property
    def platform(self) -> bool:
        return self.tenant_id is None

    def allows(self, need: Access) -> bool:
        if need.startswith("platform") and not self.platform:
            return False
        if self.platform and self.role != "member":
            return True
        return _NEEDS[need] <= _RANK.get(self.role, -1)


@dataclass(frozen=True, slots=True)
class NewToken:
    row: ManagementToken
    secret: str


def generate_token() -> str:
    return TOKEN_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(TOKEN_BODY_LENGTH))


def looks_like_token(value: str) -> bool:
    body = value[len(TOKEN_PREFIX) :]
    return value.startswith(TOKEN_PREFIX) and len(body) == TOKEN_BODY_LENGTH and all(c in _BASE62_SET for c in body)


def digest_token(secret_key: str, token: str) -> str:
    key = derive_key(secret_key, "management-token-digest")
    return hmac.new(key, token.encode(), "sha256").hexdigest()


async def create_token(
    session: AsyncSession,
    *,
    tenant: Tenant | None,
    secret_key: str,
    name: str = "",
    role: str = "admin",
    actor: str = "cli",
) -> NewToken:
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    secret = generate_token()
    row = ManagementToken(
        tenant_id=tenant.id if tenant else None,
        name=clean_name(name, "token name", required=False),
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        digest=digest_token(secret_key, secret),
        role=role,
    )
    session.add(row)
    await session.flush()
    await audit(session, row.tenant_id, actor, "token.create", row.prefix, {"name": row.name, "role": role})
    return NewToken(row=row, secret=secret)


async def authenticate_token(session: AsyncSession, token: str | None, *, secret_key: str) -> Actor:
    """The actor a bearer token stands for; 401 when missing, malformed, unknown or revoked."""
    if not token:
        raise AuthenticationFailed("missing management token: send 'Authorization: Bearer rlm-…'")
    if token.startswith(KEY_PREFIX):
        raise AuthenticationFailed("an API key (sk-…) is not a management token; create one with `relay tokens create`")
    if not looks_like_token(token):
        raise AuthenticationFailed("malformed management token: Relay tokens look like 'rlm-' and 48 letters/digits")
    row = await session.scalar(
        sa.select(ManagementToken).where(ManagementToken.digest == digest_token(secret_key, token))
    )
    if row is None:
        raise AuthenticationFailed("invalid management token: no such token")
    if row.revoked_at is not None:
        raise AuthenticationFailed(f"management token {row.prefix}… was revoked at {row.revoked_at.isoformat()}")
    now = datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return Actor(tenant_id=row.tenant_id, role=row.role, label=f"token:{row.prefix}")


def _owned(tenant_id: str | None) -> sa.ColumnElement[bool]:
    column = ManagementToken.tenant_id
    return column.is_(None) if tenant_id is None else column == tenant_id


async def list_tokens(session: AsyncSession, *, tenant_id: str | None) -> list[ManagementToken]:
    """The tokens of one tenant, or (``None``) the platform's."""
    rows = await session.scalars(
        sa.select(ManagementToken).where(_owned(tenant_id)).order_by(ManagementToken.created_at)
    )
    return list(rows)


async def revoke_token(session: AsyncSession, id_or_prefix: str, *, actor: str = "cli") -> ManagementToken:
    """By id, or by display prefix (``rlm-AbC1234``); ambiguous prefixes are refused."""
    query = sa.select(ManagementToken).where(
        sa.or_(ManagementToken.id == id_or_prefix, ManagementToken.prefix == id_or_prefix[:DISPLAY_PREFIX_LENGTH])
    )
    rows = list(await session.scalars(query))
    if len(id_or_prefix) < DISPLAY_PREFIX_LENGTH and not any(r.id == id_or_prefix for r in rows):
        rows = []
    if not rows:
        raise NotFound(f"management token {id_or_prefix!r} not found")
    if len(rows) > 1:
        raise InvalidRequest(f"prefix {id_or_prefix!r} matches {len(rows)} tokens; use the token id")
    row = rows[0]
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await audit(session, row.tenant_id, actor, "token.revoke", row.prefix)
    return row
