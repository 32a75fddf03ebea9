"""Platform pages (platform admins only): tenants, built-in providers and their price overrides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, get, post
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from admin_ui import flash
from admin_ui.forms import Form
from admin_ui.guard import admin_of
from admin_ui.lookups import states
from admin_ui.web import page, redirect, services_of
from gateway.catalog import load_catalog
from gateway.db.tables import ApiKey, Tenant, UsageDaily, User
from gateway.errors import GatewayError, NotFound
from gateway.manage import accounts, providers, tenants
from gateway.manage.usage import month_start

READ = {"access": "platform-read"}
WRITE = {"access": "platform"}


@dataclass(frozen=True, slots=True)
class TenantRow:
    """A tenant as Platform → Tenants lists it: this month's usage and its live keys."""

    tenant: Tenant
    members: int
    live_keys: int
    requests: int
    cost_micro_usd: int


async def tenant_rows(db: AsyncSession) -> list[TenantRow]:
    now = datetime.now(UTC)
    counted = sa.select(User.tenant_id, sa.func.count()).group_by(User.tenant_id)
    members: dict[str, int] = {t: n for t, n in await db.execute(counted)}  # noqa: C416 (a Result is no mapping)
    live = sa.and_(ApiKey.revoked_at.is_(None), sa.or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))
    keyed = sa.select(ApiKey.tenant_id, sa.func.count()).where(live).group_by(ApiKey.tenant_id)
    live_keys: dict[str, int] = {t: n for t, n in await db.execute(keyed)}  # noqa: C416
    month = sa.select(UsageDaily.tenant_id, sa.func.sum(UsageDaily.requests), sa.func.sum(UsageDaily.cost_micro_usd))
    month = month.where(UsageDaily.day >= month_start(now).date()).group_by(UsageDaily.tenant_id)
    used = {t: (int(r or 0), int(c or 0)) for t, r, c in await db.execute(month)}
    return [
        TenantRow(t, members.get(t.id, 0), live_keys.get(t.id, 0), *used.get(t.id, (0, 0)))
        for t in await tenants.list_tenants(db)
    ]


async def _tenants_page(
    request: Request[Any, Any, Any], form: Form, *, status: int = 200, created: flash.Payload | None = None
) -> Response[str]:
    async with services_of(request).sessions() as db:
        rows = await tenant_rows(db)
    return page(request, "platform_tenants.html", status=status, rows=rows, form=form, created=created)


@get("/platform/tenants", opt=READ)
async def tenants_page(request: Request[Any, Any, Any]) -> Response[str]:
    return await _tenants_page(request, Form.empty(), created=await flash.pop(request))


@post("/platform/tenants", opt=WRITE)
async def create_tenant(request: Request[Any, Any, Any]) -> Response[Any]:
    """A tenant, and optionally its first owner (with a one-time password, shown once after the redirect)."""
    admin = admin_of(request)
    form = await Form.read(request)
    name = form.text("tenant_name", label="Tenant name", required=True)
    email = form.text("email", label="Owner email", max_len=320)
    if not form.ok:
        return await _tenants_page(request, form, status=400)
    password = accounts.one_time_password() if email else None
    try:
        async with services_of(request).sessions.begin() as db:
            tenant = await tenants.create_tenant(db, name, actor=admin.actor.label)
            if email and password:
                owner = await tenants.create_user(
                    db, tenant=tenant, email=email, password=password, role="owner", actor=admin.actor.label
                )
                owner.must_change_password = True
            name = tenant.name
    except GatewayError as exc:
        form.fail(exc)
        return await _tenants_page(request, form, status=400)
    shown = await flash.stash(request, {"name": name, "owner": email or None, "password": password})
    return redirect(request, "/platform/tenants", flash=shown)


@post("/platform/tenants/delete", opt=WRITE)
async def delete_tenant(request: Request[Any, Any, Any]) -> Response[Any]:
    """``relay tenants delete``'s twin: the name typed again to confirm; live keys need the box ticked."""
    admin = admin_of(request)
    form = await Form.read(request)
    name = form.text("delete_name", label="Tenant", required=True)
    confirm = form.text("delete_confirm", label="Its name again", required=True)
    if form.ok and confirm != name:
        form.errors["delete_confirm"] = "Type the tenant's name exactly, to confirm."
    if form.ok and name == admin.home_tenant_name:
        form.errors["delete_name"] = "You cannot delete the tenant your own account belongs to."
    if not form.ok:
        return await _tenants_page(request, form, status=400)
    try:
        async with services_of(request).sessions.begin() as db:
            tenant = await tenants.get_tenant(db, name)
            await tenants.delete_tenant(db, tenant, force=form.checked("delete_force"), actor=admin.actor.label)
    except GatewayError as exc:
        form.fail(exc)
        return await _tenants_page(request, form, status=409 if exc.status_code == 409 else 400)
    services_of(request).invalidation.invalidate("keys")  # its keys stop working on every worker at once
    shown = await flash.stash(request, {"deleted": name})
    return redirect(request, "/platform/tenants", flash=shown)


async def _providers_page(request: Request[Any, Any, Any], form: Form, *, status: int = 200) -> Response[str]:
    services = services_of(request)
    async with services.sessions() as db:
        rows = await states(db, services)
    models = sorted(m.name for s in rows for m in s.provider.models)
    return page(request, "platform_providers.html", status=status, states=rows, form=form, models=models)


@get("/platform/providers", opt=READ)
async def providers_page(request: Request[Any, Any, Any]) -> Response[str]:
    return await _providers_page(request, Form.empty())


@post("/platform/providers/{name:str}/enable", opt=WRITE)
async def enable_provider(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    if name not in load_catalog():
        raise NotFound(f"provider {name!r} is not in the catalog")
    form = await Form.read(request)
    api_key = form.secret("api_key")
    base_url = form.text("base_url", label="Base URL", max_len=2000)
    try:
        async with services.sessions.begin() as db:
            await providers.enable_provider(
                db, box=services.box, name=name, api_key=api_key or None, env=services.settings.provider_env,
                base_url=base_url or None, actor=admin.actor.label,
            )  # fmt: skip
    except GatewayError as exc:
        failed = Form.empty(provider=name)
        failed.general = f"{name}: {exc.message}"
        return await _providers_page(request, failed, status=400)
    services.invalidation.invalidate("models")  # every worker and replica, not only this one
    return redirect(request, "/platform/providers", notice="provider-saved")


@post("/platform/providers/{name:str}/disable", opt=WRITE)
async def disable_provider(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions.begin() as db:
        await providers.disable_provider(db, name=name, actor=admin.actor.label)
    services.invalidation.invalidate("models")  # every worker and replica, not only this one
    return redirect(request, "/platform/providers", notice="provider-saved")


@post("/platform/prices", opt=WRITE)
async def set_price(request: Request[Any, Any, Any]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    model = form.text("model", label="Model", required=True)
    prices = {}
    for field in providers.PRICE_FIELDS:
        value = form.number(f"price_{field}", label=field.replace("_", " ").capitalize())
        if value is not None:
            prices[field] = value
    if not prices and form.ok:
        form.errors["price_input"] = "Give at least one price."
    if not form.ok:
        return await _providers_page(request, form, status=400)
    try:
        async with services.sessions.begin() as db:
            await providers.set_price(db, model=model, prices=prices, actor=admin.actor.label)
    except GatewayError as exc:
        form.fail(exc)
        return await _providers_page(request, form, status=400)
    services.invalidation.invalidate("models")  # every worker and replica, not only this one
    return redirect(request, "/platform/providers", notice="price-saved")


PLATFORM_HANDLERS = [
    tenants_page,
    create_tenant,
    delete_tenant,
    providers_page,
    enable_provider,
    disable_provider,
    set_price,
]
