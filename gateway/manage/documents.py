"""The documents the management API returns and ``relay … --json`` prints: one definition, one set of field names.

Plain msgspec structs built from table rows; no Litestar here, so a CLI command that prints one loads
no web stack. Secrets never appear: an upstream shows whether it has a key and its last four characters
at most, a key or token its display prefix only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import ApiKey, ManagementToken, ModelRow, Tenant, UpstreamKeyRow, UpstreamRow, User
from gateway.db.upstreams import ACTIVE, keys_of
from gateway.manage.upstream_keys import key_hint
from gateway.security import SecretBox, mask_secret

if TYPE_CHECKING:  # the catalog loads its data files: only the commands that print it pay for that
    from gateway.catalog.state import ProviderState


class TenantOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    created_at: datetime


def tenant_out(row: Tenant) -> TenantOut:
    return TenantOut(id=row.id, name=row.name, created_at=row.created_at)


class UserOut(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    email: str
    role: str
    is_platform_admin: bool
    must_change_password: bool
    """Set by a one-time password: the account chooses a new one at its next sign-in."""
    created_at: datetime


def user_out(row: User) -> UserOut:
    return UserOut(
        id=row.id,
        tenant_id=row.tenant_id,
        email=row.email,
        role=row.role,
        is_platform_admin=row.is_platform_admin,
        must_change_password=bool(row.must_change_password),
        created_at=row.created_at,
    )


class UpstreamKey(msgspec.Struct, kw_only=True):
    """One credential of an upstream's pool: its last four characters at most, never the key."""

    id: str
    name: str
    hint: str
    weight: int
    priority: int
    rpm: int | None
    tpm: int | None
    state: str
    """``active`` or ``disabled`` (stored); cooling after a 429 is transient and not shown here."""
    disabled_reason: str | None
    disabled_at: datetime | None
    created_at: datetime


def upstream_key_out(row: UpstreamKeyRow, box: SecretBox) -> UpstreamKey:
    return UpstreamKey(
        id=row.id,
        name=row.name,
        hint=key_hint(row, box),
        weight=row.weight,
        priority=row.priority,
        rpm=row.rpm_limit,
        tpm=row.tpm_limit,
        state=row.state,
        disabled_reason=row.disabled_reason,
        disabled_at=row.disabled_at,
        created_at=row.created_at,
    )


class Upstream(msgspec.Struct, kw_only=True):
    id: str
    name: str
    dialect: str
    base_url: str
    has_api_key: bool
    """Whether the pool has an active key."""
    api_key_hint: str | None
    """The pool's first key's last four characters at most; the key itself is never returned."""
    keys: list[UpstreamKey]
    """The key pool, in the order it is used (priority, then age)."""
    extra_headers: dict[str, str]
    """Header names with masked values (they may carry credentials too)."""
    timeout_s: float | None
    profile: dict[str, Any]
    platform: bool
    created_at: datetime


def upstream_out(row: UpstreamRow, keys: list[UpstreamKeyRow], box: SecretBox) -> Upstream:
    """``row`` with its pool ``keys`` (``gateway.db.upstreams.keys_of``)."""
    docs = [upstream_key_out(k, box) for k in keys]
    active = [d for d in docs if d.state == ACTIVE]
    return Upstream(
        id=row.id,
        name=row.name,
        dialect=row.dialect,
        base_url=row.base_url,
        has_api_key=bool(active),
        api_key_hint=active[0].hint if active else None,
        keys=docs,
        extra_headers={k: mask_secret(v) for k, v in (row.extra_headers or {}).items()},
        timeout_s=row.timeout_s,
        profile=dict(row.profile or {}),
        platform=row.tenant_id is None,
        created_at=row.created_at,
    )


class Model(msgspec.Struct, kw_only=True):
    id: str
    name: str
    upstream_id: str
    upstream_name: str
    dialect: str
    upstream_model: str
    input_price: float
    output_price: float
    cache_read_price: float
    cache_write_price: float
    context_window: int | None
    max_output_tokens: int | None
    profile: dict[str, Any]
    fallbacks: list[str]
    enabled: bool
    created_at: datetime


def model_fields(model: ModelRow, up: UpstreamRow) -> dict[str, Any]:
    """A model's fields, for ``Model`` and the documents that extend it."""
    return {
        "id": model.id,
        "name": model.name,
        "upstream_id": up.id,
        "upstream_name": up.name,
        "dialect": up.dialect,
        "upstream_model": model.upstream_model,
        "input_price": model.input_price,
        "output_price": model.output_price,
        "cache_read_price": model.cache_read_price,
        "cache_write_price": model.cache_write_price,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "profile": dict(model.profile or {}),
        "fallbacks": list(model.fallbacks or []),
        "enabled": model.enabled,
        "created_at": model.created_at,
    }


def model_out(model: ModelRow, up: UpstreamRow) -> Model:
    return Model(**model_fields(model, up))


class KeyAlias(msgspec.Struct):
    """A requested model name (glob) rewritten to a model; the first matching alias wins."""

    pattern: str
    model: str


class Key(msgspec.Struct, kw_only=True):
    id: str
    name: str
    prefix: str
    """The key's first characters, to recognise it; the key itself is shown once, at creation."""
    state: str
    """active, revoked or expired."""
    allow_custom_models: bool
    allowed_models: list[str]
    aliases: list[KeyAlias]
    claude_code_profile: dict[str, str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


def key_state(row: ApiKey | ManagementToken, now: datetime | None = None) -> str:
    expires_at = getattr(row, "expires_at", None)
    if row.revoked_at:
        return "revoked"
    return "expired" if expires_at and expires_at <= (now or datetime.now(UTC)) else "active"


def key_fields(row: ApiKey) -> dict[str, Any]:
    """A key's fields, for ``Key`` and the creation document that adds the secret."""
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "state": key_state(row),
        "allow_custom_models": row.allow_custom_models,
        "allowed_models": list(row.allowed_models or []),
        "aliases": [KeyAlias(pattern=p, model=m) for p, m in row.aliases or []],
        "claude_code_profile": dict(row.claude_code_profile or {}),
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
        "created_at": row.created_at,
    }


def key_out(row: ApiKey) -> Key:
    return Key(**key_fields(row))


class Token(msgspec.Struct, kw_only=True):
    """A management token (``rlm-…``): its display prefix only."""

    id: str
    name: str
    prefix: str
    role: str
    state: str
    """active or revoked."""
    platform: bool
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def token_out(row: ManagementToken) -> Token:
    return Token(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=row.role,
        state=key_state(row),
        platform=row.tenant_id is None,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class CatalogModelOut(msgspec.Struct, kw_only=True):
    name: str
    aliases: list[str]
    upstream_model: str
    input_price: float
    """USD per million tokens (the operator's override, if any), like the three other prices."""
    output_price: float
    cache_read_price: float
    cache_write_price: float
    context_window: int
    max_output_tokens: int
    capabilities: list[str]


class CatalogProviderOut(msgspec.Struct, kw_only=True):
    name: str
    display_name: str
    dialect: str
    enabled: bool
    """Whether the operator turned the provider on: only then are its models usable."""
    docs_url: str
    models: list[CatalogModelOut]


class Catalog(msgspec.Struct, kw_only=True):
    providers: list[CatalogProviderOut]


def catalog_provider_out(state: ProviderState) -> CatalogProviderOut:
    p = state.provider
    models = []
    for m in p.models:
        price = state.price(m)
        models.append(
            CatalogModelOut(
                name=m.name,
                aliases=list(m.aliases),
                upstream_model=m.upstream_model,
                input_price=price.input,
                output_price=price.output,
                cache_read_price=price.cache_read,
                cache_write_price=price.cache_write,
                context_window=m.context_window,
                max_output_tokens=m.max_output_tokens,
                capabilities=sorted(m.capabilities),
            )
        )
    return CatalogProviderOut(
        name=p.name,
        display_name=p.display_name,
        dialect=p.dialect.value,
        enabled=state.enabled,
        docs_url=p.docs_url,
        models=models,
    )


class ProviderOut(msgspec.Struct, kw_only=True):
    """A catalog provider as this gateway runs it; ``key_source`` says where its key comes from, not the key."""

    name: str
    display_name: str
    dialect: str
    enabled: bool
    key_source: str
    """stored, environment or none."""
    base_url: str


def provider_out(state: ProviderState) -> ProviderOut:
    p = state.provider
    return ProviderOut(
        name=p.name,
        display_name=p.display_name,
        dialect=p.dialect.value,
        enabled=state.enabled,
        key_source=state.key_source,
        base_url=state.base_url,
    )


async def upstreams_out(session: AsyncSession, rows: list[UpstreamRow], box: SecretBox) -> list[Upstream]:
    """Documents of ``rows``, their key pools read in one query."""
    pools = await keys_of(session, [r.id for r in rows])
    return [upstream_out(r, pools[r.id], box) for r in rows]


async def upstream_doc(session: AsyncSession, row: UpstreamRow, box: SecretBox) -> Upstream:
    return (await upstreams_out(session, [row], box))[0]
