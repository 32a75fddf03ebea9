"""View as tenant: a platform admin opens a tenant's pages from Platform → Tenants; nobody else can."""

from __future__ import annotations

import re
from typing import Any

import httpx
import sqlalchemy as sa
from test_admin_access import create_key
from test_admin_auth import AdminClient, make_user, signed_in

from admin_ui.sessions import hash_id
from gateway.db.tables import AdminSession, ApiKey, AuditLog, User
from gateway.manage import tenants
from gateway.testing.fake_upstream import Reply

BANNER = "Viewing tenant <strong>{}</strong> as platform admin"


def _all(stack: Any, query: Any) -> list[Any]:
    async def run(s: Any) -> list[Any]:
        return list(await s.execute(query))

    return stack.seed.run(run)


def _acme(stack: Any, fake: Any) -> tuple[Any, str, str]:
    """A tenant set up like the README walkthrough (upstream, model, key) with one request made: (tenant,
    key id, owner email)."""
    tenant = stack.seed.tenant()
    up = stack.seed.upstream(tenant, base_url=fake.url + "/v1", dialect="openai")
    stack.seed.model(tenant, up, "acme-chat", input_price=1.0, output_price=2.0)
    key = stack.seed.key(tenant, name="laptop")
    fake.enqueue(Reply(text="hello", usage=(12, 5)))
    r = httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key.secret}"},
        json={"model": "acme-chat", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    stack.seed.usage_rows(tenant, expect=1)
    return tenant, key.row.id, make_user(stack, tenant)


def _row(page: str, tenant_name: str) -> str:
    found = re.search(r"<tr>(?:(?!</tr>).)*?" + re.escape(tenant_name) + r".*?</tr>", page, re.S)
    assert found, tenant_name
    return found.group(0)


def test_a_platform_admin_views_a_tenant_and_acts_in_it_as_themselves(stack, fake):
    acme, key_id, acme_owner = _acme(stack, fake)
    admin_email = make_user(stack, stack.seed.tenant(), platform_admin=True)
    admin = AdminClient(stack)
    assert admin.login(admin_email).status_code == 303
    listing = admin.get("/platform/tenants").text
    row = _row(listing, acme.name)
    assert f'action="/admin/platform/tenants/{acme.id}/view"' in row
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    assert cells[:3] == ["1", "1", "1"], cells  # members, live keys, requests this month
    assert cells[3] == "$0.000022"  # 12 input and 5 output tokens at $1 and $2 per million, this month

    r = admin.post(f"/platform/tenants/{acme.id}/view", csrf_from="/platform/tenants")
    assert r.status_code == 303 and r.headers["location"] == "/admin/dashboard"
    for path in ("/dashboard", "/keys", "/models", "/usage", "/members", f"/keys/{key_id}", "/account"):
        page = admin.get(path)
        assert page.status_code == 200 and BANNER.format(acme.name) in page.text, path
    assert "laptop" in admin.get("/keys").text and "acme-chat" in admin.get("/usage").text
    assert acme_owner in admin.get("/members").text

    new_key_id, _ = create_key(admin, name="made while viewing")
    made = _all(stack, sa.select(ApiKey.tenant_id).where(ApiKey.id == new_key_id))
    assert made == [(acme.id,)]
    audit = _all(
        stack,
        sa.select(AuditLog.action, AuditLog.actor).where(
            AuditLog.tenant_id == acme.id, AuditLog.action.in_(["tenant.view", "key.create"])
        ),
    )
    assert ("tenant.view", f"user:{admin_email}") in audit and ("key.create", f"user:{admin_email}") in audit

    r = admin.post("/view/end", csrf_from="/dashboard")
    assert r.status_code == 303 and r.headers["location"] == "/admin/platform/tenants?notice=view-ended"
    assert "Viewing tenant" not in admin.get("/dashboard").text and "laptop" not in admin.get("/keys").text


def test_only_platform_admins_can_view_and_the_session_column_alone_grants_nothing(stack, fake):
    acme, _, _ = _acme(stack, fake)
    own = stack.seed.tenant()
    owner = signed_in(stack, own)  # owner of another tenant, not a platform admin
    token = owner.csrf("/dashboard")
    r = owner.post(f"/platform/tenants/{acme.id}/view", {"csrf": token})
    assert r.status_code == 403 and "Only platform admins" in r.text

    # Even with the column forged onto the owner's session, their pages stay their own tenant's.
    async def forge(s: Any) -> None:
        forged = sa.update(AdminSession).where(AdminSession.id.in_(_ids(owner))).values(viewing_tenant_id=acme.id)
        await s.execute(forged)

    stack.seed.run(forge)
    page = owner.get("/keys").text
    assert "Viewing tenant" not in page and "laptop" not in page

    # CSRF and origin still guard the view switch of a platform admin.
    email = make_user(stack, own, platform_admin=True)
    admin = AdminClient(stack)
    assert admin.login(email).status_code == 303
    assert admin.post(f"/platform/tenants/{acme.id}/view", {}).status_code == 403
    token = admin.csrf("/platform/tenants")
    evil = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    r = admin.http.post(admin.base + f"/platform/tenants/{acme.id}/view", data={"csrf": token}, headers=evil)
    assert r.status_code == 403 and "Viewing tenant" not in admin.get("/dashboard").text

    # A platform admin who loses the role while viewing is back in their own tenant at the next request.
    assert admin.post(f"/platform/tenants/{acme.id}/view", csrf_from="/platform/tenants").status_code == 303
    assert BANNER.format(acme.name) in admin.get("/keys").text

    async def demote(s: Any) -> None:
        user = await s.scalar(sa.select(User).where(User.email == email))
        user.is_platform_admin = False
        await tenants.audit(s, user.tenant_id, "test", "user.demote", email)

    stack.seed.run(demote)
    page = admin.get("/keys").text
    assert "Viewing tenant" not in page and "laptop" not in page
    assert admin.get("/platform/tenants").status_code == 403


def _ids(client: AdminClient) -> list[str]:
    raw = client.session_cookie
    assert raw
    return [hash_id(raw)]


def test_a_platform_admin_deletes_a_tenant_from_the_tenants_page(stack, fake):
    """``relay tenants delete``'s twin: confirmed by name, refused while keys live unless ticked, never
    the admin's own tenant; the tenant's keys go and its usage history stays."""
    acme, _, _ = _acme(stack, fake)
    home = stack.seed.tenant()
    admin = AdminClient(stack)
    assert admin.login(make_user(stack, home, platform_admin=True)).status_code == 303
    form = {"delete_name": acme.name, "delete_confirm": acme.name + "x"}
    r = admin.post("/platform/tenants/delete", form, csrf_from="/platform/tenants")
    assert r.status_code == 400 and "Type the tenant&#39;s name exactly" in r.text
    r = admin.post("/platform/tenants/delete", {**form, "delete_confirm": acme.name}, csrf_from="/platform/tenants")
    assert r.status_code == 409 and "live key" in r.text
    own = {"delete_name": home.name, "delete_confirm": home.name, "delete_force": "on"}
    r = admin.post("/platform/tenants/delete", own, csrf_from="/platform/tenants")
    assert r.status_code == 400 and "your own account belongs to" in r.text
    forced = {"delete_name": acme.name, "delete_confirm": acme.name, "delete_force": "on"}
    r = admin.post("/platform/tenants/delete", forced, csrf_from="/platform/tenants")
    assert r.status_code == 303
    page = admin.follow(r).text
    assert f"Tenant <strong>{acme.name}</strong> deleted" in page
    assert admin.get("/platform/tenants").text.count(f"<strong>{acme.name}</strong> deleted") == 0  # shown once
    assert stack.seed.usage_rows(acme, expect=1)  # the ledger keeps its history
    assert _all(stack, sa.select(ApiKey.id).where(ApiKey.tenant_id == acme.id)) == []
    audited = _all(stack, sa.select(AuditLog.action).where(AuditLog.tenant_id == acme.id))
    assert ("tenant.delete",) in [tuple(a) for a in audited]


def test_a_tenant_owner_cannot_delete_tenants(stack, fake):
    acme, _, owner_email = _acme(stack, fake)
    owner = AdminClient(stack)
    assert owner.login(owner_email).status_code == 303
    form = {"delete_name": acme.name, "delete_confirm": acme.name, "delete_force": "on"}
    r = owner.post("/platform/tenants/delete", form, csrf_from="/dashboard")
    assert r.status_code in (403, 404)
    assert stack.seed.run(lambda s: tenants.get_tenant(s, acme.name)).id == acme.id
