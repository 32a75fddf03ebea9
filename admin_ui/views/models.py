"""Models: the built-in catalog (read-only here) and the tenant's custom models with their upstreams.

An upstream's API key is write-only: the form shows "•••• last4" and an empty field keeps the stored key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from litestar import Request, Response, get, post
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from admin_ui.forms import Form
from admin_ui.guard import admin_of
from admin_ui.lookups import built_in_models, states, tenant_of
from admin_ui.web import page, redirect, services_of
from gateway.db.tables import ModelRow, UpstreamRow
from gateway.db.upstreams import load_upstream
from gateway.errors import GatewayError, InvalidRequest
from gateway.manage import upstreams
from gateway.manage.documents import upstream_doc
from gateway.probe import probe
from gateway.services import Services
from gateway.ssrf import Allowlist

DIALECTS = ("openai", "anthropic")
NEW_UPSTREAM = "new"
PRICES = (
    ("input_price", "Input"),
    ("output_price", "Output"),
    ("cache_read_price", "Cache read"),
    ("cache_write_price", "Cache write"),
)


async def key_hint(db: AsyncSession, row: UpstreamRow, services: Services) -> str | None:
    """ "•••• last4" of the pool's first active key (never the key itself); None when there is none."""
    doc = await upstream_doc(db, row, services.box)
    return "••••" + doc.api_key_hint.lstrip("…") if doc.api_key_hint is not None else None


async def _users_of(db: AsyncSession, upstream_id: str) -> int:
    count = await db.scalar(sa.select(sa.func.count()).select_from(ModelRow).where(ModelRow.upstream_id == upstream_id))
    return int(count or 0)


@get("/models")
async def models_page(request: Request[Any, Any, Any]) -> Response[str]:
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions() as db:
        tenant = await tenant_of(db, admin.tenant_id)
        custom = await upstreams.list_models(db, tenant=tenant)
        built_in = await built_in_models(db, services)
        disabled = sum(1 for s in await states(db, services) if not s.enabled)
    return page(request, "models.html", custom=custom, built_in=built_in, disabled=disabled)


def _model_form(
    request: Request[Any, Any, Any], form: Form, *, status: int = 200, upstream_rows: list[UpstreamRow]
) -> Response[str]:
    return page(
        request,
        "model_new.html",
        status=status,
        form=form,
        upstreams=upstream_rows,
        dialects=DIALECTS,
        prices=PRICES,
        new_upstream=NEW_UPSTREAM,
    )


@get("/models/new", opt={"access": "manage"})
async def new_model_form(request: Request[Any, Any, Any]) -> Response[str]:
    admin = admin_of(request)
    async with services_of(request).sessions() as db:
        rows = await upstreams.list_upstreams(db, tenant_id=admin.tenant_id)
    form = Form.empty(upstream=NEW_UPSTREAM, dialect="openai", input_price=0, output_price=0)
    return _model_form(request, form, upstream_rows=rows)


def _read_model(form: Form) -> dict[str, Any]:
    values: dict[str, Any] = {
        "upstream_model": form.text("upstream_model", label="Upstream model id", required=True),
        "context_window": form.integer("context_window", label="Context window"),
        "max_output_tokens": form.integer("max_output_tokens", label="Max output tokens"),
    }
    for field, label in PRICES:
        values[field] = form.number(field, label=f"{label} price", default=None if "cache" in field else 0.0)
    for field in ("cache_read_price", "cache_write_price"):  # left empty: the input price, as everywhere
        if values[field] is None:
            values[field] = values["input_price"] or 0.0
    return values


def _base_url(form: Form) -> str:
    value = form.text("base_url", label="Base URL", required=True, max_len=2000)
    if value and "base_url" not in form.errors:
        try:
            return upstreams.check_base_url(value)
        except InvalidRequest as exc:
            form.errors["base_url"] = exc.message
    return value


def _upstream_name(base_url: str, taken: set[str]) -> str:
    host = urlsplit(base_url.strip()).hostname or "upstream"
    name, n = host, 2
    while name in taken:
        name, n = f"{host}-{n}", n + 1
    return name


@post("/models/new")
async def create_model(request: Request[Any, Any, Any]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    async with services.sessions() as db:
        existing = await upstreams.list_upstreams(db, tenant_id=admin.tenant_id)
    name = form.text("name", label="Model name", required=True)
    values = _read_model(form)
    choice = form.choice("upstream", (NEW_UPSTREAM, *(u.id for u in existing)), label="Upstream")
    if choice == NEW_UPSTREAM:
        dialect = form.choice("dialect", DIALECTS, label="API dialect")
        base_url = _base_url(form)
        api_key = form.secret("api_key")
        up_name = form.text("upstream_name", label="Upstream name")
    if not form.ok:
        return _model_form(request, form, status=400, upstream_rows=existing)
    try:
        async with services.sessions.begin() as db:
            tenant = await tenant_of(db, admin.tenant_id)
            if choice == NEW_UPSTREAM:
                upstream = await upstreams.add_upstream(
                    db,
                    box=services.box,
                    tenant=tenant,
                    name=up_name or _upstream_name(base_url, {u.name for u in existing}),
                    dialect=dialect,
                    base_url=base_url,
                    api_key=api_key or None,
                    allowlist=Allowlist.parse(services.settings.upstream_allowlist),
                    actor=admin.actor.label,
                )
            else:
                upstream = await upstreams.upstream_by_id(db, choice, tenant_id=tenant.id)
            row = await upstreams.add_model(
                db, tenant=tenant, name=name, upstream=upstream, actor=admin.actor.label, **values
            )
            model_id = row.id
    except GatewayError as exc:
        form.fail(exc)
        return _model_form(request, form, status=400, upstream_rows=existing)
    services.invalidation.invalidate("models")  # every worker and replica, not only this one
    return redirect(request, f"/models/{model_id}", notice="model-saved")


async def _detail(
    request: Request[Any, Any, Any], model_id: str, form: Form | None = None, *, status: int = 200
) -> Response[str]:
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions() as db:
        model, up = await upstreams.model_by_id(db, model_id, tenant_id=admin.tenant_id)
        shared = await _users_of(db, up.id)
        hint = await key_hint(db, up, services)
    if form is None:
        form = Form.empty(
            name=model.name,
            upstream_model=model.upstream_model,
            dialect=up.dialect,
            base_url=up.base_url,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            enabled=model.enabled,
            **{field: getattr(model, field) for field, _ in PRICES},
        )
    result = (model.capabilities or {}).get("probe")
    return page(
        request,
        "model_detail.html",
        status=status,
        model=model,
        upstream=up,
        shared=shared,
        key_hint=hint,
        form=form,
        dialects=DIALECTS,
        prices=PRICES,
        probe=result if isinstance(result, dict) else None,
        profile=upstreams.effective_profile(up, model.profile, model.max_output_tokens).to_dict(),
    )


@get("/models/{model_id:str}")
async def model_page(request: Request[Any, Any, Any], model_id: FromPath[str]) -> Response[str]:
    return await _detail(request, model_id)


@post("/models/{model_id:str}")
async def update_model(request: Request[Any, Any, Any], model_id: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    changes = {"name": form.text("name", label="Model name", required=True), **_read_model(form)}
    changes["enabled"] = form.checked("enabled")
    up_changes: dict[str, Any] = {
        "dialect": form.choice("dialect", DIALECTS, label="API dialect"),
        "base_url": _base_url(form),
    }
    if form.secret("api_key"):
        up_changes["api_key"] = form.secret("api_key")  # empty keeps the stored key
    if not form.ok:
        return await _detail(request, model_id, form, status=400)
    try:
        async with services.sessions.begin() as db:
            row, up = await upstreams.model_by_id(db, model_id, tenant_id=admin.tenant_id)
            up_changes = {k: v for k, v in up_changes.items() if k == "api_key" or getattr(up, k) != v}
            if up_changes:
                await upstreams.update_upstream(
                    db, up, up_changes, box=services.box,
                    allowlist=Allowlist.parse(services.settings.upstream_allowlist), actor=admin.actor.label,
                )  # fmt: skip
            await upstreams.update_model(db, row, changes, actor=admin.actor.label)
    except GatewayError as exc:
        if exc.status_code == 404:
            raise
        form.fail(exc)
        return await _detail(request, model_id, form, status=400)
    services.invalidation.invalidate("models")  # every worker and replica, not only this one
    return redirect(request, f"/models/{model_id}", notice="model-saved")


@post("/models/{model_id:str}/delete")
async def delete_model(request: Request[Any, Any, Any], model_id: FromPath[str]) -> Response[Any]:
    """The model, and its upstream when no other model uses it."""
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions.begin() as db:
        row, up = await upstreams.model_by_id(db, model_id, tenant_id=admin.tenant_id)
        await upstreams.delete_model(db, row, actor=admin.actor.label)
        await db.flush()
        if not await _users_of(db, up.id):
            await upstreams.delete_upstream(db, up, actor=admin.actor.label)
    services.invalidation.invalidate("models")  # every worker and replica, not only this one
    return redirect(request, "/models", notice="model-deleted")


@post("/models/{model_id:str}/test")
async def test_model(request: Request[Any, Any, Any], model_id: FromPath[str]) -> Response[Any]:
    """Test connection: a short real probe of the upstream; what it learns joins the model's profile."""
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions() as db:
        model, up = await upstreams.model_by_id(db, model_id, tenant_id=admin.tenant_id)
        target = await load_upstream(db, up, services.box)
        upstream_model = model.upstream_model
    # Tenant upstreams only through the SSRF-guarded session; the platform's through the plain pool.
    http = services.http if target.tenant_id is None else services.guarded_http
    result = (await probe(http, target, upstream_model, timeout_s=20.0)).to_dict()
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    async with services.sessions.begin() as db:
        row, _ = await upstreams.model_by_id(db, model_id, tenant_id=admin.tenant_id)
        await upstreams.record_probe(db, row, result, actor=admin.actor.label)
    services.invalidation.invalidate("models")  # every worker and replica, not only this one
    return redirect(request, f"/models/{model_id}", notice="model-tested")


MODEL_HANDLERS = [models_page, new_model_form, create_model, model_page, update_model, delete_model, test_model]
