"""API keys: create, edit, limits, revoke, snippets.

Creating answers POST/redirect/GET: the new key's page shows the secret once, from a one-time flash
(``admin_ui.flash``); reloading that page neither creates another key nor shows the secret again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath

from admin_ui import flash
from admin_ui.forms import Form, expiry_value
from admin_ui.guard import admin_of
from admin_ui.lookups import tenant_of, usable_models
from admin_ui.snippets import for_key
from admin_ui.web import gateway_url, page, redirect, services_of, url_with
from gateway.db.tables import ApiKey
from gateway.domain import CLAUDE_CODE_FAMILIES
from gateway.errors import GatewayError
from gateway.manage import keys, limits, usage
from gateway.manage.usage import UsageQuery

PERIODS = ("month", "total")
KEYS_PER_PAGE = 50


def key_state(row: ApiKey) -> str:
    if row.revoked_at:
        return "revoked"
    if row.expires_at and row.expires_at <= datetime.now(UTC):
        return "expired"
    return "active"


def _matches(row: ApiKey, search: str) -> bool:
    """The search box: part of the name (any case) or the start of the display prefix (``sk-AbC…``)."""
    needle = search.lower()
    return needle in (row.name or "").lower() or row.prefix.lower().startswith(needle.rstrip("…."))


def _page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or "1"))
    except ValueError:
        return 1


@get("/keys")
async def keys_page(request: Request[Any, Any, Any]) -> Response[str]:
    admin = admin_of(request)
    search = (request.query_params.get("q") or "").strip()[:100]
    number = _page_number(request.query_params.get("page"))
    async with services_of(request).sessions() as db:
        rows = await keys.list_keys(db, tenant=await tenant_of(db, admin.tenant_id))
        month = await usage.summary(db, UsageQuery.of(admin.tenant_id), "key")  # the daily rollup, this month
    spend = {r.key_id: r.totals.cost_micro_usd for r in month.rows if r.key_id}
    total = len(rows)
    if search:
        rows = [r for r in rows if _matches(r, search)]
    rows.sort(key=lambda r: (key_state(r) != "active", r.created_at), reverse=False)
    pages = max(1, -(-len(rows) // KEYS_PER_PAGE))
    number = min(number, pages)
    shown = rows[(number - 1) * KEYS_PER_PAGE : number * KEYS_PER_PAGE]
    path = request.url.path
    return page(
        request,
        "keys.html",
        keys=shown,
        state=key_state,
        spend=spend,
        search=search,
        total=total,
        matched=len(rows),
        page_number=number,
        pages=pages,
        newer=url_with(path, {"q": search, "page": str(number - 1)}) if number > 1 else None,
        older=url_with(path, {"q": search, "page": str(number + 1)}) if number < pages else None,
    )


def _form_page(
    request: Request[Any, Any, Any], template: str, form: Form, usable: list[str], *, status: int = 200, **more: Any
) -> Response[str]:
    return page(
        request, template, status=status, form=form, usable=usable, families=CLAUDE_CODE_FAMILIES, periods=PERIODS,
        **more,
    )  # fmt: skip


async def _usable(request: Request[Any, Any, Any]) -> list[str]:
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions() as db:
        return await usable_models(db, services, await tenant_of(db, admin.tenant_id))


@get("/keys/new", opt={"access": "manage"})
async def new_key_form(request: Request[Any, Any, Any]) -> Response[str]:
    form = Form.empty(allow_custom_models=True, budget_period="month")
    return _form_page(request, "key_new.html", form, await _usable(request))


def _read(form: Form, usable: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(key fields for ``keys.update_key``, limits for ``limits.set_key_limits``) from the form."""
    allowed = [m for m in form.values("allowed_models") if m]
    unknown = [m for m in allowed if m not in usable]
    if unknown:
        form.errors["allowed_models"] = f"{unknown[0]!r} is not a model this tenant can use."
    allowed += [p.strip() for p in form.value("allowed_patterns").split(",") if p.strip()]
    profile: dict[str, str] = {}
    for family in CLAUDE_CODE_FAMILIES:
        chosen = form.value(f"profile_{family}").strip()
        if chosen and chosen not in usable:
            form.errors[f"profile_{family}"] = "Choose one of the listed models."
        elif chosen:
            profile[family] = chosen
    fields = {
        "name": form.text("name", label="Name"),
        "allow_custom_models": form.checked("allow_custom_models"),
        "allowed_models": allowed,
        "aliases": form.pairs("aliases", label="Aliases"),
        "claude_code_profile": profile,
        "expires_at": form.expiry("expires"),
    }
    budget = form.number("budget_usd", label="Budget")
    caps = {
        "rpm": form.integer("rpm", label="Requests per minute"),
        "tpm": form.integer("tpm", label="Tokens per minute"),
        "concurrency": form.integer("concurrency", label="Concurrent requests"),
        "budget_usd": budget,
        "budget_period": form.choice("budget_period", PERIODS, label="Budget period") if budget is not None else None,
    }
    return fields, caps


@post("/keys/new")
async def create_key(request: Request[Any, Any, Any]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    usable = await _usable(request)
    fields, caps = _read(form, usable)
    if fields["expires_at"] is not None and fields["expires_at"] <= datetime.now(UTC):
        form.errors["expires"] = "Give a date in the future."
    if not form.ok:
        return _form_page(request, "key_new.html", form, usable, status=400)
    try:
        async with services.sessions.begin() as db:
            tenant = await tenant_of(db, admin.tenant_id)
            new = await keys.create_key(
                db, tenant=tenant, secret_key=services.settings.secret_key, actor=admin.actor.label, **fields
            )
            await limits.set_key_limits(db, new.row, actor=admin.actor.label, **caps)
            key_id, secret = new.row.id, new.secret
    except GatewayError as exc:
        form.fail(exc)
        return _form_page(request, "key_new.html", form, usable, status=400)
    shown = await flash.stash(request, {"key_id": key_id, "secret": secret})
    return redirect(request, f"/keys/{key_id}", flash=shown)


def _edit_form(row: ApiKey) -> Form:
    profile = row.claude_code_profile or {}
    return Form.empty(
        name=row.name,
        allow_custom_models=row.allow_custom_models,
        allowed_models=list(row.allowed_models or []),
        aliases="\n".join(f"{p}={m}" for p, m in row.aliases or []),
        expires=expiry_value(row.expires_at),
        rpm=row.rpm_limit,
        tpm=row.tpm_limit,
        concurrency=row.concurrency_limit,
        budget_usd=None if row.budget_micro_usd is None else f"{row.budget_micro_usd / 1_000_000:g}",
        budget_period=row.budget_period or "month",
        **{f"profile_{f}": profile.get(f) for f in CLAUDE_CODE_FAMILIES},
    )


def _detail_page(
    request: Request[Any, Any, Any],
    row: ApiKey,
    usable: list[str],
    *,
    secret: str | None = None,
    form: Form | None = None,
    status: int = 200,
) -> Response[str]:
    form = form or _edit_form(row)
    listed = set(usable)
    form.data["allowed_patterns"] = form.data.get("allowed_patterns") or [
        ", ".join(m for m in row.allowed_models or [] if m not in listed)
    ]
    return _form_page(
        request,
        "key_detail.html",
        form,
        usable,
        status=status,
        key=row,
        state=key_state(row),
        secret=secret,
        snippets=for_key(row, base_url=gateway_url(request), secret=secret, usable=usable),
    )


@get("/keys/{key_id:str}")
async def key_page(request: Request[Any, Any, Any], key_id: FromPath[str]) -> Response[str]:
    admin = admin_of(request)
    async with services_of(request).sessions() as db:
        row = await keys.key_by_id(db, key_id, tenant_id=admin.tenant_id)
    created = await flash.pop(request)
    secret = created.get("secret") if created and created.get("key_id") == row.id else None
    return _detail_page(request, row, await _usable(request), secret=secret)


@post("/keys/{key_id:str}")
async def update_key(request: Request[Any, Any, Any], key_id: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    usable = await _usable(request)
    fields, caps = _read(form, usable)
    async with services.sessions() as db:
        current = await keys.key_by_id(db, key_id, tenant_id=admin.tenant_id)
    if not form.ok:
        return _detail_page(request, current, usable, form=form, status=400)
    try:
        async with services.sessions.begin() as db:
            row = await keys.key_by_id(db, key_id, tenant_id=admin.tenant_id)
            await keys.update_key(db, row, fields, actor=admin.actor.label)
            await limits.set_key_limits(db, row, actor=admin.actor.label, **caps)
    except GatewayError as exc:
        form.fail(exc)
        return _detail_page(request, current, usable, form=form, status=400)
    services.invalidation.invalidate("keys")  # every worker and replica, not only this one
    return redirect(request, f"/keys/{key_id}", notice="key-saved")


@post("/keys/{key_id:str}/revoke")
async def revoke_key(request: Request[Any, Any, Any], key_id: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions.begin() as db:
        row = await keys.key_by_id(db, key_id, tenant_id=admin.tenant_id)
        await keys.revoke_key(db, row.id, tenant_id=admin.tenant_id, actor=admin.actor.label)
    services.invalidation.invalidate("keys")  # every worker and replica, not only this one
    return redirect(request, f"/keys/{key_id}", notice="key-revoked")


KEY_HANDLERS = [keys_page, new_key_form, create_key, key_page, update_key, revoke_key]
