"""API keys: create (the secret is returned once), list, revoke."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import ApiKey, Tenant
from gateway.domain import CLAUDE_CODE_FAMILIES
from gateway.errors import InvalidRequest, NotFound
from gateway.manage.names import clean_name
from gateway.manage.tenants import audit
from gateway.security import derive_key, digest_api_key, display_prefix, generate_api_key
from gateway.webhooks import KEY_DISABLED
from gateway.webhooks.outbox import enqueue
from gateway.webhooks.sweep import key_disabled_data, key_disabled_dedupe


@dataclass(frozen=True, slots=True)
class NewKey:
    row: ApiKey
    secret: str


async def create_key(
    session: AsyncSession,
    *,
    tenant: Tenant,
    secret_key: str,
    name: str = "",
    allow_custom_models: bool = False,
    allowed_models: list[str] | None = None,
    aliases: list[tuple[str, str]] | None = None,
    expires_at: datetime | None = None,
    claude_code_profile: dict[str, str] | None = None,
    actor: str = "cli",
) -> NewKey:
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidRequest("expires: give a timezone (e.g. 2027-01-01T00:00:00Z)")
    for pattern, model in aliases or ():
        if not pattern or not model:
            raise InvalidRequest("alias: both PATTERN and MODEL are required (PATTERN=MODEL)")
    profile = check_claude_code_profile(claude_code_profile or {})
    secret = generate_api_key()
    row = ApiKey(
        tenant_id=tenant.id,
        name=clean_name(name, "key name", required=False),
        prefix=display_prefix(secret),
        digest=digest_api_key(derive_key(secret_key, "api-key-digest"), secret),
        allow_custom_models=allow_custom_models,
        allowed_models=list(allowed_models or []),
        aliases=[[p, m] for p, m in aliases or []],
        claude_code_profile=profile,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    await audit(session, tenant.id, actor, "key.create", row.prefix, {"name": name})
    return NewKey(row=row, secret=secret)


def check_claude_code_profile(profile: dict[str, str]) -> dict[str, str]:
    unknown = set(profile) - set(CLAUDE_CODE_FAMILIES)
    if unknown:
        raise InvalidRequest(f"claude code profile: unknown family {sorted(unknown)[0]!r}; use opus, sonnet, haiku")
    for family, model in profile.items():
        if not isinstance(model, str) or not model.strip():
            raise InvalidRequest(f"claude code profile: {family} needs a model name")
    return {k: v.strip() for k, v in profile.items()}


async def list_keys(session: AsyncSession, *, tenant: Tenant) -> list[ApiKey]:
    rows = await session.scalars(sa.select(ApiKey).where(ApiKey.tenant_id == tenant.id).order_by(ApiKey.created_at))
    return list(rows)


async def find_key(session: AsyncSession, id_or_prefix: str, *, tenant_id: str | None = None) -> ApiKey:
    """By id, or by display prefix (``sk-AbC1234``); ambiguous prefixes are refused."""
    query = sa.select(ApiKey).where(sa.or_(ApiKey.id == id_or_prefix, ApiKey.prefix == id_or_prefix[:10]))
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    rows = list(await session.scalars(query))
    if len(id_or_prefix) < 10 and not any(r.id == id_or_prefix for r in rows):
        rows = []
    if not rows:
        raise NotFound(f"key {id_or_prefix!r} not found")
    if len(rows) > 1:
        raise InvalidRequest(f"prefix {id_or_prefix!r} matches {len(rows)} keys; use the key id")
    return rows[0]


async def revoke_key(
    session: AsyncSession, id_or_prefix: str, *, tenant_id: str | None = None, actor: str = "cli"
) -> ApiKey:
    row = await find_key(session, id_or_prefix, tenant_id=tenant_id)
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await audit(session, row.tenant_id, actor, "key.revoke", row.prefix)
        # In the same transaction: the alert is queued exactly when the revocation commits.
        await enqueue(
            session,
            event=KEY_DISABLED,
            tenant_id=row.tenant_id,
            data=key_disabled_data(row, "revoked", row.revoked_at),
            dedupe=key_disabled_dedupe(row.id),
        )
    return row


KEY_FIELDS = frozenset(
    {"name", "allow_custom_models", "allowed_models", "aliases", "claude_code_profile", "expires_at"}
)


async def key_by_id(session: AsyncSession, key_id: str, *, tenant_id: str) -> ApiKey:
    """A key of this tenant; another tenant's key is "not found", like a missing one."""
    row = await session.scalar(sa.select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id))
    if row is None:
        raise NotFound(f"key {key_id!r} not found")
    return row


async def update_key(session: AsyncSession, row: ApiKey, changes: Mapping[str, Any], *, actor: str = "cli") -> ApiKey:
    """Change some of ``KEY_FIELDS``; ``aliases`` is a list of (pattern, model) pairs."""
    unknown = set(changes) - KEY_FIELDS
    if unknown:
        raise InvalidRequest(f"{sorted(unknown)[0]}: not a field a key update may change")
    if "expires_at" in changes:
        expires_at = changes["expires_at"]
        if expires_at is not None and expires_at.tzinfo is None:
            raise InvalidRequest("expires_at: give a timezone (e.g. 2027-01-01T00:00:00Z)")
        row.expires_at = expires_at
    if "aliases" in changes:
        pairs = [(str(p), str(m)) for p, m in changes["aliases"]]
        if any(not p or not m for p, m in pairs):
            raise InvalidRequest("aliases: both pattern and model are required")
        row.aliases = [[p, m] for p, m in pairs]
    if "claude_code_profile" in changes:
        row.claude_code_profile = check_claude_code_profile(dict(changes["claude_code_profile"] or {}))
    if "name" in changes:
        row.name = clean_name(str(changes["name"]), "name", required=False)
    if "allow_custom_models" in changes:
        row.allow_custom_models = bool(changes["allow_custom_models"])
    if "allowed_models" in changes:
        row.allowed_models = [str(m) for m in changes["allowed_models"] or []]
    await audit(session, row.tenant_id, actor, "key.update", row.prefix, {"fields": sorted(changes)})
    return row
