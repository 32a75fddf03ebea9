"""Webhooks: list, add (the signing secret shown once), remove, send a test, recent deliveries.

Adding answers POST/redirect/GET: the secret travels in a one-time sealed flash (``admin_ui.flash``), like a
new API key's; remove and test report back the same way, so a reload repeats nothing.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath

from admin_ui import flash
from admin_ui.forms import Form
from admin_ui.guard import admin_of
from admin_ui.lookups import tenant_of
from admin_ui.web import page, redirect, services_of
from gateway.errors import GatewayError
from gateway.manage import webhooks
from gateway.ssrf import Allowlist
from gateway.webhooks import EVENTS

MANAGE = {"access": "manage"}
"""Webhook URLs often carry a token of the receiving service: members do not see them."""


async def _page(request: Request[Any, Any, Any], form: Form, *, status: int = 200) -> Response[str]:
    admin = admin_of(request)
    async with services_of(request).sessions() as db:
        hooks = await webhooks.list_webhooks(db, tenant_id=admin.tenant_id)
        deliveries = await webhooks.recent_deliveries(db, [h.id for h in hooks])
    shown = await flash.pop(request) if status == 200 else None
    return page(
        request,
        "webhooks.html",
        status=status,
        form=form,
        events=EVENTS,
        hooks=hooks,
        deliveries=[webhooks.delivery_out(d) for d in deliveries],
        created=shown if shown and shown.get("secret") else None,
        message=(shown or {}).get("message"),
    )


@get("/webhooks", opt=MANAGE)
async def webhooks_page(request: Request[Any, Any, Any]) -> Response[str]:
    return await _page(request, Form.empty())


@post("/webhooks", opt=MANAGE)
async def add_webhook(request: Request[Any, Any, Any]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    form = await Form.read(request)
    url = form.text("url", label="URL", required=True, max_len=webhooks.MAX_URL)
    chosen = [e for e in form.values("events") if e]
    if not form.ok:
        return await _page(request, form, status=400)
    try:
        async with services.sessions.begin() as db:
            new = await webhooks.add_webhook(
                db,
                box=services.box,
                tenant=await tenant_of(db, admin.tenant_id),
                url=url,
                events=webhooks.check_events(chosen),
                allowlist=Allowlist.parse(services.settings.upstream_allowlist),
                actor=admin.actor.label,
            )
            webhook_id, secret = new.row.id, new.secret
    except GatewayError as exc:
        form.errors["url"] = exc.message
        return await _page(request, form, status=400)
    shown = await flash.stash(request, {"webhook_id": webhook_id, "secret": secret})
    return redirect(request, "/webhooks", flash=shown)


@post("/webhooks/{webhook_id:str}/delete", opt=MANAGE)
async def remove_webhook(request: Request[Any, Any, Any], webhook_id: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    async with services_of(request).sessions.begin() as db:
        row = await webhooks.webhook_by_id(db, webhook_id, tenant_id=admin.tenant_id)
        await webhooks.remove_webhook(db, row, actor=admin.actor.label)
    shown = await flash.stash(request, {"message": "Webhook removed. Its queued deliveries will not be sent."})
    return redirect(request, "/webhooks", flash=shown)


@post("/webhooks/{webhook_id:str}/test", opt=MANAGE)
async def test_webhook(request: Request[Any, Any, Any], webhook_id: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    services = services_of(request)
    async with services.sessions() as db:
        row = await webhooks.webhook_by_id(db, webhook_id, tenant_id=admin.tenant_id)
    outcome = await services.alerts.test(row.id)
    if outcome.ok:
        message = f"Test event delivered: the receiver answered {outcome.status}."
    else:
        message = f"Test event not delivered: {outcome.error}."
    shown = await flash.stash(request, {"message": message})
    return redirect(request, "/webhooks", flash=shown)


WEBHOOK_HANDLERS = [webhooks_page, add_webhook, remove_webhook, test_webhook]
