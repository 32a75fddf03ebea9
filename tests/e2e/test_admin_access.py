"""Admin UI authorization and output safety: CSRF, roles, tenant isolation, XSS, write-only credentials."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from test_admin_auth import AdminClient, signed_in

from gateway.db.tables import ApiKey, AuditLog
from gateway.testing.fake_upstream import Reply

XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
UPSTREAM_KEY = "sk-upstream-secret-abcd1234WXYZ"


def _count_keys(stack: Any, tenant: Any) -> int:
    async def run(s: Any) -> int:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.tenant_id == tenant.id)))

    return stack.seed.run(run)


def _model_id(r: httpx.Response) -> str:
    assert r.status_code == 303, r.text[:800]
    found = re.search(r"/admin/models/([0-9a-f]{32})", r.headers["location"])
    assert found, r.headers["location"]
    return found.group(1)


def add_model(client: AdminClient, fake_url: str, name: str, **extra: str) -> str:
    data = {
        "name": name,
        "upstream_model": "upstream-model-x",
        "upstream": "new",
        "dialect": "openai",
        "base_url": fake_url + "/v1",
        "api_key": UPSTREAM_KEY,
        "input_price": "1",
        "output_price": "2",
        **extra,
    }
    return _model_id(client.post("/models/new", data, csrf_from="/models/new"))


def create_key(client: AdminClient, **fields: Any) -> tuple[str, str]:
    """(key id, secret): the form answers 303 to the key's page, which shows the secret once."""
    r = client.post(
        "/keys/new", {"allow_custom_models": "on", "budget_period": "month", **fields}, csrf_from="/keys/new"
    )
    assert r.status_code == 303, r.text[:800]
    page = client.follow(r)
    secret = re.search(r'id="secret" type="text" readonly value="(sk-[A-Za-z0-9]+)"', page.text)
    key_id = re.search(r'action="/admin/keys/([0-9a-f]{32})"', page.text)
    assert secret and key_id, page.text[:800]
    return key_id.group(1), secret.group(1)


@pytest.mark.parametrize("how", ["missing", "wrong", "other-session", "cross-origin", "no-origin"], ids=lambda h: h)
def test_state_changes_need_a_valid_csrf_token_and_same_origin(stack, how):
    tenant = stack.seed.tenant()
    client = signed_in(stack, tenant)
    data: dict[str, str] = {"name": "csrf-probe", "budget_period": "month"}
    headers: dict[str, str] = {}
    if how == "wrong":
        data["csrf"] = "A" * 43
    elif how == "other-session":
        data["csrf"] = signed_in(stack, tenant).csrf("/keys/new")
    elif how in ("cross-origin", "no-origin"):
        data["csrf"] = client.csrf("/keys/new")
    if how == "cross-origin":
        headers = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    if how == "no-origin":
        client.http.headers.pop("origin")
    r = client.http.post(client.base + "/keys/new", data=data, headers=headers)
    assert r.status_code == 403, r.text[:300]
    assert "This form expired or came from another site" in r.text
    assert _count_keys(stack, tenant) == 0
    # and every other state-changing route is behind the same gate
    for path in ("/logout", "/models/new", "/members", "/platform/tenants"):
        assert client.http.post(client.base + path, data={"csrf": "nope"}).status_code == 403


def test_member_reads_but_cannot_manage(stack, fake):
    tenant = stack.seed.tenant()
    owner = signed_in(stack, tenant)
    key_id, _ = create_key(owner, name="team key")
    member = signed_in(stack, tenant, role="member")
    assert member.get("/keys").status_code == 200
    page = member.get(f"/keys/{key_id}")
    assert page.status_code == 200 and "Revoke key" not in page.text and "Save changes" not in page.text
    assert member.get("/keys/new").status_code == 403
    token = member.csrf("/dashboard")
    r = member.http.post(member.base + "/keys/new", data={"csrf": token, "name": "sneaky"})
    assert r.status_code == 403 and "Members have read-only access" in r.text
    r = member.http.post(member.base + f"/keys/{key_id}/revoke", data={"csrf": token})
    assert r.status_code == 403
    assert member.http.post(member.base + "/models/new", data={"csrf": token}).status_code == 403
    assert member.get("/members").status_code == 403
    assert member.get("/platform/tenants").status_code == 403
    admin = signed_in(stack, tenant, role="admin")
    assert admin.get("/keys/new").status_code == 200
    assert admin.get("/members").status_code == 403  # owners only
    assert admin.get("/platform/providers").status_code == 403  # platform admins only
    assert _count_keys(stack, tenant) == 1


def test_another_tenant_cannot_open_pages_by_url(stack, fake):
    first, second = stack.seed.tenant(), stack.seed.tenant()
    owner = signed_in(stack, first)
    model_id = add_model(owner, fake.url, "iso-model")
    key_id, _ = create_key(owner, name="iso key")
    intruder = signed_in(stack, second)
    for path in (f"/models/{model_id}", f"/keys/{key_id}"):
        r = intruder.get(path)
        assert r.status_code == 404 and "iso" not in r.text, path
    token = intruder.csrf("/dashboard")
    for path in (f"/keys/{key_id}/revoke", f"/models/{model_id}/delete", f"/models/{model_id}/test", f"/keys/{key_id}"):
        assert intruder.http.post(intruder.base + path, data={"csrf": token, "name": "x"}).status_code == 404, path
    assert "iso-model" not in intruder.get("/models").text
    assert owner.get(f"/keys/{key_id}").text.count("badge ok") >= 1  # still active
    assert owner.get(f"/models/{model_id}").status_code == 200


def test_xss_payloads_are_rendered_inert(stack, fake):
    tenant = stack.seed.tenant()
    owner = signed_in(stack, tenant, platform_admin=True)
    model_id = add_model(owner, fake.url, XSS[0], upstream_name=XSS[1])
    key_ids = [create_key(owner, name=payload)[0] for payload in XSS]
    r = owner.post("/platform/tenants", {"tenant_name": XSS[1] + "-tenant"}, csrf_from="/platform/tenants")
    assert r.status_code == 303
    pages = ["/models", f"/models/{model_id}", "/keys", *(f"/keys/{k}" for k in key_ids), "/platform/tenants"]
    for path in pages:
        text = owner.get(path).text
        for payload in XSS:
            assert payload not in text, path
        assert "<img src=x" not in text and "<script>alert" not in text, path
    listing = owner.get("/keys").text
    assert html.escape(XSS[0], quote=False) in listing or "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in listing


def test_upstream_key_is_write_only(stack, fake):
    owner = signed_in(stack, stack.seed.tenant())
    model_id = add_model(owner, fake.url, "secretive")
    page = owner.get(f"/models/{model_id}").text
    assert UPSTREAM_KEY not in page and "••••WXYZ" in page
    profile = page.split("Show the effective profile")[1].split("</table>")[0]
    values = re.findall(r'<td class="mono">([^<]*)</td></tr>', profile)
    assert values and "true" in values and not {"True", "False", "None"} & set(values)  # JSON, not Python
    # saving the form with an empty key field keeps the stored key
    form = {
        "name": "secretive",
        "upstream_model": "upstream-model-y",
        "dialect": "openai",
        "base_url": fake.url + "/v1",
        "api_key": "",
        "enabled": "on",
        "input_price": "1",
        "output_price": "2",
    }
    r = owner.post(f"/models/{model_id}", form, csrf_from=f"/models/{model_id}")
    assert r.status_code == 303, r.text[:500]
    assert "••••WXYZ" in owner.get(f"/models/{model_id}").text
    fake.enqueue(Reply(text="pong"), Reply(text="pong"), Reply(text="sunny"), Reply(text="red"))
    r = owner.post(f"/models/{model_id}/test", csrf_from=f"/models/{model_id}")
    assert r.status_code == 303
    sent = [req for req in fake.requests if req.path.endswith("/chat/completions")]
    assert sent and all(req.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}" for req in sent)
    assert sent[0].json["model"] == "upstream-model-y"
    page = owner.get(f"/models/{model_id}").text
    assert "Upstream works" in page and UPSTREAM_KEY not in page


def test_keys_made_in_the_ui_work_and_their_usage_is_listed(stack, fake):
    tenant = stack.seed.tenant()
    owner = signed_in(stack, tenant)
    add_model(owner, fake.url, "ui-made-model")
    key_id, secret = create_key(owner, name="cli key", profile_opus="ui-made-model", rpm="60", budget_usd="5")
    r = httpx.post(
        stack.url + "/v1/messages",
        headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
        json={"model": "claude-opus-4-8", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    stack.seed.usage_rows(tenant, expect=1)
    log = owner.get("/usage", params={"key": key_id}).text
    assert "ui-made-model" in log and "cli key" in log
    assert owner.get("/usage", params={"status": "error"}).text.count("ui-made-model") == 0
    for range_ in ("24h", "7d", "30d"):  # the last day from the ledger, weeks and months from the daily rollup
        dash = owner.get("/dashboard", params={"range": range_}).text
        assert "ui-made-model" in dash and "cli key" in dash and '<rect class="bar"' in dash, range_
    csv = owner.get("/usage.csv", params={"key": key_id})
    assert csv.status_code == 200 and csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert "ui-made-model" in csv.text and secret not in csv.text
    page = owner.get(f"/keys/{key_id}").text
    assert secret not in page  # the detail page shows a placeholder, never the secret
    assert '"ANTHROPIC_MODEL": "ui-made-model"' in page.replace("&#34;", '"')
    r = owner.post(f"/keys/{key_id}/revoke", csrf_from=f"/keys/{key_id}")
    assert r.status_code == 303
    audited = dict(stack.seed.run(lambda s: _audit(s, tenant.id)))
    for action in ("model.create", "upstream.create", "key.create", "key.limits", "key.revoke", "session.login"):
        assert audited.get(action, "").startswith("user:u-"), (action, audited)


def test_a_key_with_only_failed_requests_is_listed_by_requests_on_the_dashboard(stack, fake):
    """Failed requests have no tokens: "By key" counts requests then, instead of saying "No requests yet"."""
    tenant = stack.seed.tenant()
    owner = signed_in(stack, tenant)
    add_model(owner, fake.url, "failing-model")
    _, secret = create_key(owner, name="failing key")
    fake.enqueue(Reply(status=400, text="bad request"))
    r = httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": "failing-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 400
    stack.seed.usage_rows(tenant, expect=1)
    by_key = owner.get("/dashboard").text.split("By key", 1)[1].split("</div>", 1)[0]
    assert "requests" in by_key and "failing key" in by_key and "No requests yet" not in by_key


async def _audit(s: Any, tenant_id: str) -> list[tuple[str, str]]:
    rows = await s.execute(sa.select(AuditLog.action, AuditLog.actor).where(AuditLog.tenant_id == tenant_id))
    return [(a, b) for a, b in rows]


def test_form_errors_are_shown_next_to_the_field(stack, fake):
    owner = signed_in(stack, stack.seed.tenant())
    data = {
        "name": "",
        "upstream_model": "m",
        "upstream": "new",
        "dialect": "openai",
        "base_url": "ftp://x",
        "input_price": "-1",
    }
    r = owner.post("/models/new", data, csrf_from="/models/new")
    assert r.status_code == 400
    assert 'id="e-name"' in r.text and "Model name is required." in r.text
    assert 'id="e-input_price"' in r.text
    data.update(name="fine-name", input_price="1")
    r = owner.post("/models/new", data, csrf_from="/models/new")
    assert r.status_code == 400 and 'id="e-base_url"' in r.text and "must be an http(s) URL" in r.text


def test_management_api_accepts_the_session_with_its_csrf_header(stack):
    tenant = stack.seed.tenant()
    client = signed_in(stack, tenant)
    api = stack.url + "/api/v1"
    me = client.http.get(api + "/me").json()
    assert me["kind"] == "session" and me["tenant_id"] == tenant.id and me["role"] == "owner"
    r = client.http.post(api + "/keys", json={"name": "from-js"})
    assert r.status_code == 403 and "X-CSRF-Token" in r.text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', client.get("/dashboard").text)
    assert token
    r = client.http.post(api + "/keys", json={"name": "from-js"}, headers={"x-csrf-token": token.group(1)})
    assert r.status_code == 201 and r.json()["secret"].startswith("sk-")
    evil = {"x-csrf-token": token.group(1), "origin": "https://evil.example"}
    assert client.http.post(api + "/keys", json={"name": "x"}, headers=evil).status_code == 403
    member = signed_in(stack, tenant, role="member")
    member_token = re.search(r'name="csrf-token" content="([^"]+)"', member.get("/dashboard").text)
    assert member_token
    r = member.http.post(api + "/keys", json={"name": "x"}, headers={"x-csrf-token": member_token.group(1)})
    assert r.status_code == 403  # the role check of the management API applies to sessions as well
    client.post("/logout", csrf_from="/dashboard")
    assert client.http.get(api + "/me").status_code == 401
    assert _count_keys(stack, tenant) == 1


def test_failed_connection_test_shows_the_failure_inert(stack, fake):
    owner = signed_in(stack, stack.seed.tenant())
    model_id = add_model(owner, fake.url, "broken-upstream")
    page = b"<html><body><script>alert(1)</script><img src=x onerror=alert(1)>Bad gateway</body></html>"
    fake.enqueue(Reply(status=401, body=page, content_type="text/html"))
    r = owner.post(f"/models/{model_id}/test", csrf_from=f"/models/{model_id}")
    assert r.status_code == 303
    text = owner.get(f"/models/{model_id}").text
    assert "Upstream failed" in text and "<script>alert" not in text and "<img src=x" not in text
    assert text.count('<span class="badge bad">fail</span>') == 1 and "skipped" in text


def test_an_unknown_admin_page_is_a_styled_html_404_and_the_api_stays_json(stack):
    """Issue 13, item 9: /admin/nowhere showed a raw JSON 404 (model_not_found) in the browser."""
    page = httpx.get(stack.url + "/admin/nowhere")
    assert page.status_code == 404 and page.headers["content-type"] == "text/html; charset=utf-8"  # charset once
    assert "<html" in page.text.lower() and "model_not_found" not in page.text
    login = httpx.get(stack.url + "/admin/login", follow_redirects=True)
    assert login.headers["content-type"] == "text/html; charset=utf-8"
    api = httpx.get(stack.url + "/v1/nowhere")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
