"""Upstreams (provider endpoints with an encrypted credential) and the models bound to them.

Base URLs follow each SDK's convention: an openai-dialect base URL includes the version path
(``https://api.deepseek.com/v1``), an anthropic-dialect one does not (``https://api.anthropic.com``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.convert import CapabilityProfile
from gateway.db.tables import ModelRow, Tenant, UpstreamRow
from gateway.domain import UPSTREAM_DIALECTS, merge_profile
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.manage.names import clean_name
from gateway.manage.tenants import audit
from gateway.manage.upstream_keys import set_first_key
from gateway.security import SecretBox
from gateway.ssrf import Allowlist, BlockedAddress, allowlist_entry, check_url_at_save


def check_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"base URL {url!r} must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise InvalidRequest("base URL must not carry credentials; give the key separately")
    if parts.query or parts.fragment:
        raise InvalidRequest("base URL must not carry a query or fragment")
    return url.strip().rstrip("/")


async def check_tenant_base_url(url: str, allowlist: Allowlist) -> None:
    """A tenant's base URL must not reach the operator's network (resolved off the event loop)."""
    try:
        await asyncio.to_thread(check_url_at_save, url, allowlist)
    except BlockedAddress as exc:
        raise InvalidRequest(
            f"base URL refused: {exc}. To let tenant upstreams reach it (a local Ollama, vLLM or LM Studio), "
            f"start Relay with it in the allowlist: RELAY_UPSTREAM_ALLOWLIST={allowlist_entry(url.strip())}"
        ) from None


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
    allowlist: Allowlist | None = None,
    actor: str = "cli",
) -> UpstreamRow:
    """Add an upstream. A tenant's base URL passes the SSRF guard (``allowlist`` given); the platform's is trusted."""
    if dialect not in UPSTREAM_DIALECTS:
        raise InvalidRequest("dialect must be 'openai' or 'anthropic'")
    name = clean_name(name, "upstream name")
    CapabilityProfile.for_dialect(dialect, profile)  # refuses unknown keys and wrong types, naming them
    base_url = check_base_url(base_url)
    if tenant is not None:
        await check_tenant_base_url(base_url, allowlist or Allowlist())
    if await session.scalar(
        sa.select(UpstreamRow.id).where(UpstreamRow.name == name, _scope(UpstreamRow.tenant_id, tenant))
    ):
        raise Conflict(f"upstream {name!r} already exists")
    row = UpstreamRow(
        tenant_id=tenant.id if tenant else None,
        name=name,
        dialect=dialect,
        base_url=base_url,
        extra_headers=dict(extra_headers or {}),
        timeout_s=timeout_s,
        profile=dict(profile or {}),
    )
    session.add(row)
    await session.flush()
    if api_key:
        await set_first_key(session, row, api_key, box)
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
    cache_read_price: float | None = None,
    cache_write_price: float | None = None,
    context_window: int | None = None,
    max_output_tokens: int | None = None,
    profile: dict[str, Any] | None = None,
    fallbacks: list[str] | None = None,
    actor: str = "cli",
) -> ModelRow:
    """A model on ``upstream``. A cache price not given is the input price: a cached token is never billed at
    nothing unless the operator says so (``0``), and never above input when the provider's figure is unknown."""
    if cache_read_price is None:
        cache_read_price = input_price
    if cache_write_price is None:
        cache_write_price = input_price
    name = clean_name(name, "model name")
    if any(c.isspace() for c in name):
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


# --- by id, scoped to one owner (a tenant id, or None for the platform): the JSON management API's queries ---

UPSTREAM_FIELDS = frozenset({"name", "dialect", "base_url", "api_key", "extra_headers", "timeout_s", "profile"})
MODEL_FIELDS = frozenset(
    {"name", "upstream_id", "upstream_model", "context_window", "max_output_tokens", "profile", "fallbacks"}
    | {"input_price", "output_price", "cache_read_price", "cache_write_price", "enabled"}
)


def _owned(column: Any, tenant_id: str | None) -> Any:
    return column.is_(None) if tenant_id is None else column == tenant_id


async def list_upstreams(session: AsyncSession, *, tenant_id: str | None) -> list[UpstreamRow]:
    rows = await session.scalars(sa.select(UpstreamRow).where(_owned(UpstreamRow.tenant_id, tenant_id)))
    return sorted(rows, key=lambda r: r.name)


async def upstream_by_id(session: AsyncSession, upstream_id: str, *, tenant_id: str | None) -> UpstreamRow:
    """An upstream of this owner; another owner's is "not found", exactly like a missing one."""
    row = await session.scalar(
        sa.select(UpstreamRow).where(UpstreamRow.id == upstream_id, _owned(UpstreamRow.tenant_id, tenant_id))
    )
    if row is None:
        raise NotFound(f"upstream {upstream_id!r} not found")
    return row


async def model_by_id(session: AsyncSession, model_id: str, *, tenant_id: str | None) -> tuple[ModelRow, UpstreamRow]:
    found = (
        await session.execute(
            sa.select(ModelRow, UpstreamRow)
            .join(UpstreamRow, ModelRow.upstream_id == UpstreamRow.id)
            .where(ModelRow.id == model_id, _owned(ModelRow.tenant_id, tenant_id))
        )
    ).first()
    if found is None:
        raise NotFound(f"model {model_id!r} not found")
    return found[0], found[1]


async def _models_of(session: AsyncSession, upstream: UpstreamRow) -> list[ModelRow]:
    return list(await session.scalars(sa.select(ModelRow).where(ModelRow.upstream_id == upstream.id)))


async def update_upstream(
    session: AsyncSession,
    row: UpstreamRow,
    changes: Mapping[str, Any],
    *,
    box: SecretBox,
    allowlist: Allowlist | None = None,
    actor: str = "cli",
) -> UpstreamRow:
    """Change some of ``UPSTREAM_FIELDS``. ``api_key``: a new key, or None to remove it; absent keeps it."""
    unknown = set(changes) - UPSTREAM_FIELDS
    if unknown:
        raise InvalidRequest(f"{sorted(unknown)[0]}: not a field an upstream update may change")
    if "name" in changes:
        name = clean_name(str(changes["name"]), "name")
        if name != row.name and await session.scalar(
            sa.select(UpstreamRow.id).where(UpstreamRow.name == name, _owned(UpstreamRow.tenant_id, row.tenant_id))
        ):
            raise Conflict(f"name: upstream {name!r} already exists")
        row.name = name
    if "dialect" in changes:
        if changes["dialect"] not in UPSTREAM_DIALECTS:
            raise InvalidRequest("dialect: must be 'openai' or 'anthropic'")
        row.dialect = changes["dialect"]
    if "base_url" in changes:
        url = check_base_url(str(changes["base_url"]))
        if row.tenant_id is not None:
            await check_tenant_base_url(url, allowlist or Allowlist())
        row.base_url = url
    if "api_key" in changes:
        await set_first_key(session, row, changes["api_key"] or None, box)
    if "extra_headers" in changes:
        row.extra_headers = dict(changes["extra_headers"] or {})
    if "timeout_s" in changes:
        row.timeout_s = changes["timeout_s"]
    if "profile" in changes:
        row.profile = dict(changes["profile"] or {})
    if "dialect" in changes or "profile" in changes:
        CapabilityProfile.for_dialect(row.dialect, row.profile)
        for model in await _models_of(session, row):
            try:
                effective_profile(row, model.profile, model.max_output_tokens)
            except InvalidRequest as exc:
                raise InvalidRequest(f"{exc.message} (in model {model.name!r} on this upstream)") from None
    await audit(session, row.tenant_id, actor, "upstream.update", row.name, {"fields": sorted(changes)})
    return row


async def delete_upstream(session: AsyncSession, row: UpstreamRow, *, force: bool = False, actor: str = "cli") -> None:
    """Refused while models use the upstream, naming them: deleting them silently would surprise their users.
    With ``force`` those models go too (each audited); other models' fallbacks naming them are left as they are."""
    models = await _models_of(session, row)
    if models and not force:
        names = ", ".join(sorted(m.name for m in models))
        raise Conflict(f"upstream {row.name!r} is used by models {names}; delete or move them first (or force)")
    for model in models:
        await delete_model(session, model, actor=actor)
    await session.flush()
    await session.delete(row)
    await audit(session, row.tenant_id, actor, "upstream.delete", row.name, {"models_deleted": len(models)})


async def all_upstreams(session: AsyncSession) -> list[tuple[UpstreamRow, Tenant | None]]:
    """Every upstream with its owner (``None``: the platform's), the platform's first."""
    rows = await session.execute(
        sa.select(UpstreamRow, Tenant)
        .outerjoin(Tenant, UpstreamRow.tenant_id == Tenant.id)
        .order_by(Tenant.name.is_not(None), Tenant.name, UpstreamRow.name)
    )
    return [(u, t) for u, t in rows.all()]


async def update_model(
    session: AsyncSession, row: ModelRow, changes: Mapping[str, Any], *, actor: str = "cli"
) -> tuple[ModelRow, UpstreamRow]:
    """Change some of ``MODEL_FIELDS``; a new ``upstream_id`` must belong to the model's own owner."""
    unknown = set(changes) - MODEL_FIELDS
    if unknown:
        raise InvalidRequest(f"{sorted(unknown)[0]}: not a field a model update may change")
    upstream_id = changes.get("upstream_id", row.upstream_id)
    try:
        upstream = await upstream_by_id(session, upstream_id, tenant_id=row.tenant_id)
    except NotFound as exc:
        raise NotFound(f"upstream_id: {exc.message}") from None
    if "name" in changes:
        name = clean_name(str(changes["name"]), "name")
        if any(c.isspace() for c in name):
            raise InvalidRequest(f"name: {name!r} must be non-empty without spaces")
        if name != row.name and await session.scalar(
            sa.select(ModelRow.id).where(ModelRow.name == name, _owned(ModelRow.tenant_id, row.tenant_id))
        ):
            raise Conflict(f"name: model {name!r} already exists")
        row.name = name
    for field in ("input_price", "output_price", "cache_read_price", "cache_write_price"):
        if field in changes:
            if changes[field] < 0:
                raise InvalidRequest(f"{field}: must not be negative")
            setattr(row, field, float(changes[field]))
    for field in ("context_window", "max_output_tokens"):
        if field in changes:
            if changes[field] is not None and changes[field] <= 0:
                raise InvalidRequest(f"{field}: must be positive")
            setattr(row, field, changes[field])
    if "upstream_model" in changes:
        if not str(changes["upstream_model"]).strip():
            raise InvalidRequest("upstream_model: must not be empty")
        row.upstream_model = str(changes["upstream_model"]).strip()
    if "profile" in changes:
        row.profile = dict(changes["profile"] or {})
    if "fallbacks" in changes:
        row.fallbacks = [str(f) for f in changes["fallbacks"] or []]
    if "enabled" in changes:
        row.enabled = bool(changes["enabled"])
    row.upstream_id = upstream.id
    effective_profile(upstream, row.profile, row.max_output_tokens)
    await audit(session, row.tenant_id, actor, "model.update", row.name, {"fields": sorted(changes)})
    return row, upstream


async def delete_model(session: AsyncSession, row: ModelRow, *, actor: str = "cli") -> None:
    await session.delete(row)
    await audit(session, row.tenant_id, actor, "model.delete", row.name)


async def record_probe(session: AsyncSession, model: ModelRow, result: dict[str, Any], *, actor: str = "cli") -> None:
    """Keep a probe's findings: its learned profile keys join the model's, its report goes to capabilities."""
    learned = result.get("profile") or {}
    model.profile = {**(model.profile or {}), **learned}  # a new dict, so the JSON column is seen as changed
    model.capabilities = {**(model.capabilities or {}), "probe": result, "features": result.get("capabilities", [])}
    await audit(
        session, model.tenant_id, actor, "model.probe", model.name, {"ok": result.get("ok"), "learned": learned}
    )
