"""Upstreams (provider endpoints with an encrypted credential) and the models bound to them.

Base URLs follow each SDK's convention: an openai-dialect base URL includes the version path
(``https://api.deepseek.com/v1``), an anthropic-dialect one does not (``https://api.anthropic.com``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.convert import CapabilityProfile
from gateway.db.tables import ModelRow, Tenant, UpstreamRow
from gateway.domain import Dialect, merge_profile
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.manage.tenants import audit
from gateway.security import SecretBox, upstream_secret_context


def check_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"base URL {url!r} must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise InvalidRequest("base URL must not carry credentials; give the key separately")
    if parts.query or parts.fragment:
        raise InvalidRequest("base URL must not carry a query or fragment")
    return url.strip().rstrip("/")


def _scope(column: Any, tenant: Tenant | None) -> Any:
    return column.is_(None) if tenant is None else column == tenant.id


async def add_upstream(
    session: AsyncSession,
    *,
    box: SecretBox,
    tenant: Tenant | None,
    name: str,
    dialect: str,
    base_url: str,
    api_key: str | None,
    extra_headers: dict[str, str] | None = None,
    timeout_s: float | None = None,
    profile: dict[str, Any] | None = None,
    actor: str = "cli",
) -> UpstreamRow:
    if dialect not in {d.value for d in Dialect}:
        raise InvalidRequest("dialect must be 'openai' or 'anthropic'")
    name = name.strip()
    if not name:
        raise InvalidRequest("upstream name must not be empty")
    CapabilityProfile.for_dialect(dialect, profile)  # refuses unknown keys and wrong types, naming them
    if await session.scalar(
        sa.select(UpstreamRow.id).where(UpstreamRow.name == name, _scope(UpstreamRow.tenant_id, tenant))
    ):
        raise Conflict(f"upstream {name!r} already exists")
    row = UpstreamRow(
        tenant_id=tenant.id if tenant else None,
        name=name,
        dialect=dialect,
        base_url=check_base_url(base_url),
        extra_headers=dict(extra_headers or {}),
        timeout_s=timeout_s,
        profile=dict(profile or {}),
    )
    session.add(row)
    await session.flush()
    if api_key:
        row.api_key_encrypted = box.encrypt(api_key, context=upstream_secret_context(row.id))
    await audit(session, row.tenant_id, actor, "upstream.create", name, {"dialect": dialect, "base_url": row.base_url})
    return row


async def get_upstream(session: AsyncSession, name: str, *, tenant: Tenant | None) -> UpstreamRow:
    row = await session.scalar(
        sa.select(UpstreamRow).where(UpstreamRow.name == name, _scope(UpstreamRow.tenant_id, tenant))
    )
    if row is None:
        raise NotFound(f"upstream {name!r} not found")
    return row


async def add_model(
    session: AsyncSession,
    *,
    tenant: Tenant | None,
    name: str,
    upstream: UpstreamRow,
    upstream_model: str,
    input_price: float = 0.0,
    output_price: float = 0.0,
    cache_read_price: float = 0.0,
    cache_write_price: float = 0.0,
    context_window: int | None = None,
    max_output_tokens: int | None = None,
    profile: dict[str, Any] | None = None,
    fallbacks: list[str] | None = None,
    actor: str = "cli",
) -> ModelRow:
    name = name.strip()
    if not name or any(c.isspace() for c in name):
        raise InvalidRequest(f"model name {name!r} must be non-empty without spaces")
    if upstream.tenant_id != (tenant.id if tenant else None):
        raise NotFound(f"upstream {upstream.name!r} not found")
    for label, price in (
        ("input", input_price),
        ("output", output_price),
        ("cache read", cache_read_price),
        ("cache write", cache_write_price),
    ):
        if price < 0:
            raise InvalidRequest(f"{label} price must not be negative")
    effective_profile(upstream, profile, max_output_tokens)  # validated against the upstream's dialect
    if await session.scalar(sa.select(ModelRow.id).where(ModelRow.name == name, _scope(ModelRow.tenant_id, tenant))):
        raise Conflict(f"model {name!r} already exists")
    row = ModelRow(
        tenant_id=tenant.id if tenant else None,
        name=name,
        upstream_id=upstream.id,
        upstream_model=upstream_model,
        input_price=input_price,
        output_price=output_price,
        cache_read_price=cache_read_price,
        cache_write_price=cache_write_price,
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        profile=dict(profile or {}),
        fallbacks=list(fallbacks or []),
    )
    session.add(row)
    await session.flush()
    await audit(session, row.tenant_id, actor, "model.create", name, {"upstream": upstream.name})
    return row


async def list_models(session: AsyncSession, *, tenant: Tenant | None) -> list[tuple[ModelRow, UpstreamRow]]:
    rows = await session.execute(
        sa.select(ModelRow, UpstreamRow)
        .join(UpstreamRow, ModelRow.upstream_id == UpstreamRow.id)
        .where(_scope(ModelRow.tenant_id, tenant))
        .order_by(ModelRow.name)
    )
    return [(m, u) for m, u in rows.all()]


def effective_profile(
    upstream: UpstreamRow, model_profile: dict[str, Any] | None = None, max_output_tokens: int | None = None
) -> CapabilityProfile:
    """The capability profile the converter uses: dialect defaults, then upstream keys, then model keys."""
    overrides = merge_profile(upstream.profile or {}, model_profile or {}, max_output_tokens)
    return CapabilityProfile.for_dialect(upstream.dialect, overrides)


async def get_model(session: AsyncSession, name: str, *, tenant: Tenant | None) -> tuple[ModelRow, UpstreamRow]:
    row = (
        await session.execute(
            sa.select(ModelRow, UpstreamRow)
            .join(UpstreamRow, ModelRow.upstream_id == UpstreamRow.id)
            .where(ModelRow.name == name, _scope(ModelRow.tenant_id, tenant))
        )
    ).first()
    if row is None:
        raise NotFound(f"model {name!r} not found")
    return row[0], row[1]
