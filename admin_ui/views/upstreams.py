"""Upstreams: the tenant's provider endpoints (and, for platform admins, the platform's own).

Every rule lives in ``gateway.manage.upstreams`` (the CLI and the management API use the same functions);
this module reads forms and renders. The API key is write-only: pages show "•••• last4" of it at most
(``documents.upstream_doc``), and extra-header values are masked the same way, since they may carry
credentials too. Another tenant's upstream, or the platform's for anyone but a platform admin, is a 404.

The "Keys" section is the pool (``gateway.manage.upstream_keys``, as ``relay upstreams keys`` and the
management API): add, enable, disable, remove, each a POST/redirect/GET whose one-line result is a flash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, get, post
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from admin_ui import flash
from admin_ui.forms import Form
from admin_ui.guard import admin_of
from admin_ui.sessions import Admin
from admin_ui.upstream_form import read_settings, settings_form
from admin_ui.web import page, redirect, services_of
from gateway.db.tables import ModelRow, UpstreamRow, UsageEvent
from gateway.db.upstreams import load_upstream
from gateway.errors import GatewayError, InvalidRequest, NotFound, PermissionDenied
from gateway.manage import upstream_keys, upstreams
from gateway.manage.documents import Upstream, upstream_doc, upstreams_out
from gateway.probe import probe
from gateway.services import Services
from gateway.ssrf import Allowlist

USAGE_WINDOW = timedelta(days=30)
"""How far back the Keys table counts each key's requests, tokens and errors."""


@dataclass(frozen=True, slots=True)
class LastError:
    """The newest failed request that went to an upstream (from the ledger)."""

    at: datetime
    status: int
    error_code: str | None
    request_id: str | None
    """Set only when the request is the shown tenant's (a platform upstream serves every tenant)."""


async def _find(db: AsyncSession, admin: Admin, upstream_id: str) -> UpstreamRow:
    """The shown tenant's upstream, else (platform admins only) the platform's; anything else is not found."""
    owners = [admin.tenant_id, None] if admin.platform_admin else [admin.tenant_id]
    for owner in owners:
        try:
            return await upstreams.upstream_by_id(db, upstream_id, tenant_id=owner)
        except NotFound:
            continue
    raise NotFound("This upstream does not exist, or it belongs to someone else.")


def _may_change(admin: Admin, row: UpstreamRow) -> None:
    if row.tenant_id is None and not admin.allows("platform"):
        raise PermissionDenied("Only platform admins can change the platform's upstreams.")


async def _models_on(db: AsyncSession, upstream_id: str) -> list[str]:
    names = await db.scalars(sa.select(ModelRow.name).where(ModelRow.upstream_id == upstream_id))
    return sorted(names)


async def last_error(db: AsyncSession, row: UpstreamRow, tenant_id: str) -> LastError | None:
    where = [UsageEvent.upstream_id == row.id, UsageEvent.status >= sa.literal_column("400")]
    if row.tenant_id is not None:  # the tenant's index of errors (tenant_id, created_at, id) where status >= 400
        where.append(UsageEvent.tenant_id == row.tenant_id)
    query = (
        sa.select(UsageEvent.created_at, UsageEvent.status, UsageEvent.error_code, UsageEvent.request_id,
                  UsageEvent.tenant_id)
        .where(*where)
        .order_by(UsageEvent.created_at.desc(), UsageEvent.id.desc())
        .limit(1)
    )  # fmt: skip
    found = (await db.execute(query)).first()
    if found is None:
        return None
    mine = found.request_id if found.tenant_id == tenant_id else None
    return LastError(found.created_at, found.status, found.error_code, mine)


def _circuit(services: Services, upstream_id: str) -> str:
    """This process's circuit breaker for the upstream (each worker keeps its own)."""
    return services.relay.breakers.state(upstream_id)


@get("/upstreams")
async def upstreams_page(request: Request[Any, Any, Any]) -> Response[str]:
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions() as db:
        rows = await upstreams.list_upstreams(db, tenant_id=admin.tenant_id)
        if admin.platform_admin:
            rows += await upstreams.list_upstreams(db, tenant_id=None)
        counted = sa.select(ModelRow.upstream_id, sa.func.count()).group_by(ModelRow.upstream_id)
        models: dict[str, int] = {u: n for u, n in await db.execute(counted)}  # noqa: C416 (a Result is no mapping)
        docs = await upstreams_out(db, rows, services.box)
    return page(
        request,
        "upstreams.html",
        upstreams=docs,
        models=models,
        circuits={d.id: _circuit(services, d.id) for d in docs},
    )


async def _detail(
    request: Request[Any, Any, Any],
    upstream_id: str,
    *,
    form: Form | None = None,
    status: int = 200,
    delete_error: str | None = None,
    key_error: str | None = None,
    probe_result: dict[str, Any] | None = None,
    key_form: Form | None = None,
    keys_notice: str | None = None,
) -> Response[str]:
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions() as db:
        row = await _find(db, admin, upstream_id)
        used_by = await _models_on(db, row.id)
        failure = await last_error(db, row, admin.tenant_id)
        test_models = list(await db.scalars(sa.select(ModelRow.upstream_model).where(ModelRow.upstream_id == row.id)))
        doc: Upstream = await upstream_doc(db, row, services.box)
        usage = await upstream_keys.key_usage(db, row.id, datetime.now(UTC) - USAGE_WINDOW)
        live = services.relay.pool.states(await load_upstream(db, row, services.box))
    can = admin.allows("manage") and (row.tenant_id is not None or admin.allows("platform"))
    return page(
        request,
        "upstream_detail.html",
        status=status,
        up=doc,
        can=can,
        form=form or settings_form(row),
        used_by=used_by,
        test_models=sorted(set(test_models)),
        last_error=failure,
        circuit=_circuit(services, row.id),
        delete_error=delete_error,
        key_error=key_error,
        probe=probe_result,
        profile=upstreams.effective_profile(row).to_dict(),
        key_form=key_form or Form.empty(key_weight=1, key_priority=1),
        key_usage=usage,
        no_usage=upstream_keys.KeyUsage(),
        keys_notice=keys_notice,
        live=live,
    )


@get("/upstreams/{upstream_id:str}")
async def upstream_page(request: Request[Any, Any, Any], upstream_id: FromPath[str]) -> Response[str]:
    shown = await flash.pop(request)
    mine = shown if shown and shown.get("upstream_id") == upstream_id else {}
    result, notice = mine.get("probe"), mine.get("keys_notice")
    return await _detail(
        request,
        upstream_id,
        probe_result=result if isinstance(result, dict) else None,
        keys_notice=notice if isinstance(notice, str) else None,
    )


@post("/upstreams/{upstream_id:str}")
async def update_upstream(request: Request[Any, Any, Any], upstream_id: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    changes = read_settings(form)
    if not form.ok:
        return await _detail(request, upstream_id, form=form, status=400)
    try:
        async with services.sessions.begin() as db:
            row = await _find(db, admin, upstream_id)
            _may_change(admin, row)
            await upstreams.update_upstream(
                db, row, changes, box=services.box, allowlist=Allowlist.parse(services.settings.upstream_allowlist),
                actor=admin.actor.label,
            )  # fmt: skip
    except GatewayError as exc:
        if exc.status_code in (403, 404):
            raise
        form.fail(exc)
        return await _detail(request, upstream_id, form=form, status=400)
    services.invalidation.invalidate("models")  # every worker and replica, not only this one
    return redirect(request, f"/upstreams/{upstream_id}", notice="upstream-saved")


@post("/upstreams/{upstream_id:str}/key")
async def rotate_key(request: Request[Any, Any, Any], upstream_id: FromPath[str]) -> Response[Any]:
    """Replace (or remove) the stored key. The new key is never shown back: the page says "•••• last4"."""
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    remove = form.checked("remove_key")
    new_key = form.secret("api_key")
    if not new_key and not remove:
        return await _detail(request, upstream_id, status=400, key_error="Paste the new key, or tick “Remove”.")
    async with services.sessions.begin() as db:
        row = await _find(db, admin, upstream_id)
        _may_change(admin, row)
        await upstreams.update_upstream(
            db, row, {"api_key": None if remove else new_key}, box=services.box, actor=admin.actor.label
        )
    services.invalidation.invalidate("models")  # every worker and replica, not only this one
    return redirect(request, f"/upstreams/{upstream_id}", notice="upstream-key-removed" if remove else "upstream-key")


@post("/upstreams/{upstream_id:str}/delete")
async def delete_upstream(request: Request[Any, Any, Any], upstream_id: FromPath[str]) -> Response[Any]:
    """Refused while models use it, unless "also delete its models" is ticked (``relay upstreams delete --force``)."""
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    force = form.checked("force")
    async with services.sessions.begin() as db:
        row = await _find(db, admin, upstream_id)
        _may_change(admin, row)
        used_by = await _models_on(db, row.id)
        if used_by and not force:
            refused = True
        else:
            refused = False
            await upstreams.delete_upstream(db, row, force=force, actor=admin.actor.label)
    if refused:
        names = ", ".join(used_by)
        message = f"Models use this upstream: {names}. Move them first, or tick “Also delete its models”."
        return await _detail(request, upstream_id, status=409, delete_error=message)
    services.invalidation.invalidate("models")  # every worker and replica, not only this one
    return redirect(request, "/upstreams", notice="upstream-deleted")


@post("/upstreams/{upstream_id:str}/test")
async def test_upstream(request: Request[Any, Any, Any], upstream_id: FromPath[str]) -> Response[Any]:
    """Test connection: the models page's probe, against a model id of this upstream; the result is shown once."""
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    model = form.text("upstream_model", label="Upstream model id", required=True)
    if not form.ok:
        return await _detail(request, upstream_id, status=400, probe_result={"error": form.errors["upstream_model"]})
    async with services.sessions() as db:
        row = await _find(db, admin, upstream_id)
        _may_change(admin, row)
        target = await load_upstream(db, row, services.box)
    # Tenant upstreams only through the SSRF-guarded session; the platform's through the plain pool.
    http = services.http if target.tenant_id is None else services.guarded_http
    result = (await probe(http, target, model, timeout_s=20.0)).to_dict()
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["model"] = model
    shown = await flash.stash(request, {"upstream_id": upstream_id, "probe": result})
    return redirect(request, f"/upstreams/{upstream_id}", flash=shown)


# --- the key pool ---

_KEY_FIELDS = {"weight": "key_weight", "priority": "key_priority", "rpm": "key_rpm", "tpm": "key_tpm"}


def _key_failed(form: Form, exc: InvalidRequest) -> None:
    """The service's "weight: …" message beside the add form's own field (its names carry a ``key_`` prefix)."""
    field = _KEY_FIELDS.get(exc.message.partition(":")[0])
    if field is None and "key name" in exc.message:
        field = "key_name"
    elif field is None and "key is empty" in exc.message:
        field = "new_key"
    if field is not None:
        form.errors[field] = exc.message
    else:
        form.fail(exc)


async def _keys_done(request: Request[Any, Any, Any], upstream_id: str, notice: str) -> Response[Any]:
    services_of(request).invalidation.invalidate("models")  # every worker and replica, not only this one
    shown = await flash.stash(request, {"upstream_id": upstream_id, "keys_notice": notice})
    return redirect(request, f"/upstreams/{upstream_id}", flash=shown)


@post("/upstreams/{upstream_id:str}/keys")
async def add_key(request: Request[Any, Any, Any], upstream_id: FromPath[str]) -> Response[Any]:
    """A new key in the pool; the secret is never shown back (the table says "••••last4")."""
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    secret = form.secret("new_key")
    name = form.text("key_name", label="Name")
    weight = form.integer("key_weight", label="Weight", minimum=0)
    priority = form.integer("key_priority", label="Priority")
    rpm = form.integer("key_rpm", label="RPM")
    tpm = form.integer("key_tpm", label="TPM")
    if not secret:
        form.errors["new_key"] = "Paste the key to add."
    if not form.ok:
        return await _detail(request, upstream_id, status=400, key_form=form)
    try:
        async with services.sessions.begin() as db:
            row = await _find(db, admin, upstream_id)
            _may_change(admin, row)
            key = await upstream_keys.add_key(
                db, row, secret, services.box, name=name, weight=1 if weight is None else weight,
                priority=priority or 1, rpm=rpm, tpm=tpm, actor=admin.actor.label,
            )  # fmt: skip
            added = key.name
    except InvalidRequest as exc:
        _key_failed(form, exc)
        return await _detail(request, upstream_id, status=400, key_form=form)
    notice = f"Key “{added}” added to the pool. Only its last four characters are shown from now on."
    return await _keys_done(request, upstream_id, notice)


@post("/upstreams/{upstream_id:str}/keys/{key_id:str}/{action:str}")
async def change_key(
    request: Request[Any, Any, Any], upstream_id: FromPath[str], key_id: FromPath[str], action: FromPath[str]
) -> Response[Any]:
    """``enable`` (back in the pool, reason cleared), ``disable`` (out until enabled) or ``remove``."""
    admin = admin_of(request)
    services = services_of(request)
    if action not in ("enable", "disable", "remove"):
        raise NotFound("There is no such action on a key.")
    async with services.sessions.begin() as db:
        row = await _find(db, admin, upstream_id)
        _may_change(admin, row)
        key = await upstream_keys.get_key(db, row, key_id)
        name = key.name
        if action == "remove":
            await upstream_keys.remove_key(db, row, key, actor=admin.actor.label)
        else:
            await upstream_keys.set_key_state(
                db, row, key, enabled=action == "enable", reason="disabled in the admin console",
                actor=admin.actor.label,
            )  # fmt: skip
    if action == "enable":
        services.relay.pool.enabled(key_id)  # every worker lets it in at once, not after its minute
    done = {"enable": "enabled: back in the pool", "disable": "disabled: out of the pool until enabled",
            "remove": "removed from the pool"}  # fmt: skip
    return await _keys_done(request, upstream_id, f"Key “{name}” {done[action]}.")


UPSTREAM_HANDLERS = [
    upstreams_page,
    upstream_page,
    update_upstream,
    rotate_key,
    delete_upstream,
    test_upstream,
    add_key,
    change_key,
]
