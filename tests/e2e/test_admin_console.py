"""The operator's console in the admin UI (issue 13, item 8): upstreams, the keys list, the request log.

Over a real gateway on both backends, through the admin UI's own forms (CSRF and all): an upstream's key is
never rendered, one tenant never sees another's upstreams or requests, the platform's upstreams are for
platform admins only, and every change goes through ``gateway.manage`` (so it is audited).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
import sqlalchemy as sa
from test_admin_auth import signed_in
from test_management_api import Api, make_token

from gateway.db.tables import ApiKey, AuditLog, ModelRow, UpstreamRow, UsageEvent
from gateway.domain import Usage
from gateway.manage import keys
from gateway.metering import UsageRecord, rollup
from gateway.testing.fake_upstream import Reply

SECRET = "sk-upstream-secret-abcd1234WXYZ"
ROTATED = "sk-rotated-secret-zzzz9999NEW9"
HEALTHY = [Reply(text="pong"), Reply(text="pong"), Reply(text="sunny"), Reply(text="red")]


def _setup(stack: Any, fake: Any, tenant: Any | None = None) -> tuple[Any, Any, Any]:
    """(tenant, upstream, model): an OpenAI-dialect upstream on the fake with a stored key and one priced model."""
    tenant = tenant or stack.seed.tenant()
    up = stack.seed.upstream(tenant, base_url=fake.url + "/v1", api_key=SECRET)
    model = stack.seed.model(tenant, up, f"gpt-{up.name}", upstream_model="gpt-x", input_price=1.0, output_price=2.0)
    return tenant, up, model


def _chat(stack: Any, secret: str, model: str) -> httpx.Response:
    return httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def _row(stack: Any, table: Any, row_id: str) -> Any:
    async def get(s: Any) -> Any:
        return await s.get(table, row_id)

    return stack.seed.run(get)


def _actions(stack: Any, tenant_id: str | None) -> dict[str, str]:
    async def run(s: Any) -> dict[str, str]:
        scope = AuditLog.tenant_id.is_(None) if tenant_id is None else AuditLog.tenant_id == tenant_id
        return {row[0]: row[1] for row in await s.execute(sa.select(AuditLog.action, AuditLog.actor).where(scope))}

    return stack.seed.run(run)


def test_upstream_list_edit_rotate_and_delete_never_render_the_key(stack, fake):
    tenant, up, model = _setup(stack, fake)
    owner = signed_in(stack, tenant, role="admin")
    listing = owner.get("/upstreams")
    assert listing.status_code == 200 and up.name in listing.text and "••••WXYZ" in listing.text
    assert SECRET not in listing.text and "openai" in listing.text and fake.url in listing.text
    page = owner.get(f"/upstreams/{up.id}")
    assert page.status_code == 200 and SECRET not in page.text and "••••WXYZ" in page.text
    assert "none recorded" in page.text and ">closed<" in page.text and model.name in page.text

    form = {
        "name": up.name,
        "base_url": fake.url + "/v1/",
        "timeout_s": "45",
        "profile": '{"max_output_tokens": 4096}',
        "extra_headers": "X-Org-Id: org-secret-value-77",
    }
    r = owner.post(f"/upstreams/{up.id}", form, csrf_from=f"/upstreams/{up.id}")
    assert r.status_code == 303, r.text[:500]
    page = owner.follow(r)
    assert "Upstream saved." in page.text and "X-Org-Id: …e-77" in page.text
    assert "org-secret-value-77" not in page.text and SECRET not in page.text
    saved = _row(stack, UpstreamRow, up.id)
    assert saved.timeout_s == 45 and saved.profile == {"max_output_tokens": 4096}
    assert saved.extra_headers == {"X-Org-Id": "org-secret-value-77"} and saved.base_url == fake.url + "/v1"
    # an empty header box keeps the headers; bad input is a 400 next to the field, in words
    r = owner.post(f"/upstreams/{up.id}", {**form, "extra_headers": ""}, csrf_from=f"/upstreams/{up.id}")
    assert r.status_code == 303 and _row(stack, UpstreamRow, up.id).extra_headers == {"X-Org-Id": "org-secret-value-77"}
    bad = {**form, "profile": "{not json", "timeout_s": "-3"}
    r = owner.post(f"/upstreams/{up.id}", bad, csrf_from=f"/upstreams/{up.id}")
    assert r.status_code == 400 and 'id="e-profile"' in r.text and "Not valid JSON" in r.text
    assert 'id="e-timeout_s"' in r.text and "Traceback" not in r.text
    r = owner.post(f"/upstreams/{up.id}", {**form, "profile": '{"bogus": 1}'}, csrf_from=f"/upstreams/{up.id}")
    assert r.status_code == 400 and 'id="e-profile"' in r.text and "unknown capability key" in r.text

    # rotate: the new key is used upstream, never shown; the page answers POST/redirect/GET
    r = owner.post(f"/upstreams/{up.id}/key", {"api_key": ROTATED}, csrf_from=f"/upstreams/{up.id}")
    assert r.status_code == 303 and "notice=upstream-key" in r.headers["location"]
    page = owner.follow(r).text
    assert "••••NEW9" in page and ROTATED not in page and SECRET not in page
    assert owner.post(f"/upstreams/{up.id}/key", {}, csrf_from=f"/upstreams/{up.id}").status_code == 400
    fake.enqueue(*HEALTHY)
    r = owner.post(f"/upstreams/{up.id}/test", {"upstream_model": "gpt-x"}, csrf_from=f"/upstreams/{up.id}")
    assert r.status_code == 303 and "flash=" in r.headers["location"]
    tested = owner.follow(r)
    assert "Upstream works" in tested.text and ROTATED not in tested.text
    assert "Upstream works" not in owner.http.get(tested.url).text  # shown once
    sent = [q for q in fake.requests if q.path.endswith("/chat/completions")]
    assert sent and all(q.headers.get("authorization") == f"Bearer {ROTATED}" for q in sent)
    assert all(q.headers.get("x-org-id") == "org-secret-value-77" for q in sent)

    # delete: refused while a model uses it (naming it), then with "also delete its models"
    r = owner.post(f"/upstreams/{up.id}/delete", {}, csrf_from=f"/upstreams/{up.id}")
    assert r.status_code == 409 and model.name in r.text and "Also delete its models" in r.text
    assert _row(stack, UpstreamRow, up.id) is not None
    r = owner.post(f"/upstreams/{up.id}/delete", {"force": "on"}, csrf_from=f"/upstreams/{up.id}")
    assert r.status_code == 303 and owner.follow(r).text.count("Upstream deleted.") == 1
    assert _row(stack, UpstreamRow, up.id) is None and _row(stack, ModelRow, model.id) is None
    audited = _actions(stack, tenant.id)
    for action in ("upstream.update", "upstream.delete", "model.delete"):
        assert audited.get(action, "").startswith("user:u-"), (action, audited)


def test_upstreams_of_another_tenant_and_of_the_platform_stay_hidden(stack, fake):
    tenant, up, _ = _setup(stack, fake)
    platform_up = stack.seed.upstream(None, base_url=fake.url + "/v1", api_key=SECRET, name=f"plat-{up.name}")
    intruder = signed_in(stack, stack.seed.tenant(), role="admin")
    listing = intruder.get("/upstreams").text
    assert up.name not in listing and platform_up.name not in listing
    token = intruder.csrf("/upstreams")
    for target in (up, platform_up):
        assert intruder.get(f"/upstreams/{target.id}").status_code == 404
        for action in ("", "/key", "/delete", "/test"):
            data = {"csrf": token, "name": "hijack", "base_url": "http://127.0.0.1:9/v1", "api_key": "x" * 20,
                    "force": "on", "upstream_model": "m"}  # fmt: skip
            r = intruder.http.post(intruder.base + f"/upstreams/{target.id}{action}", data=data)
            assert r.status_code == 404, (action, r.status_code)
    assert _row(stack, UpstreamRow, up.id).name == up.name
    assert _row(stack, UpstreamRow, platform_up.id).name == platform_up.name
    # a member of the owning tenant reads, but cannot change
    member = signed_in(stack, tenant, role="member")
    page = member.get(f"/upstreams/{up.id}").text
    assert up.name in page and "Delete upstream" not in page and "Rotate key" not in page
    r = member.http.post(member.base + f"/upstreams/{up.id}/delete", data={"csrf": member.csrf("/upstreams")})
    assert r.status_code == 403
    # a platform admin sees and edits the platform's upstream too
    operator = signed_in(stack, stack.seed.tenant(), platform_admin=True)
    listing = operator.get("/upstreams").text
    assert platform_up.name in listing and "platform</span>" in listing and SECRET not in listing
    form = {"name": platform_up.name, "base_url": fake.url + "/v2", "timeout_s": "", "profile": ""}
    r = operator.post(f"/upstreams/{platform_up.id}", form, csrf_from=f"/upstreams/{platform_up.id}")
    assert r.status_code == 303 and _row(stack, UpstreamRow, platform_up.id).base_url == fake.url + "/v2"
    assert _actions(stack, None).get("upstream.update", "").startswith("user:u-")


def test_upstream_page_shows_the_last_failed_request(stack, fake):
    tenant, up, model = _setup(stack, fake)
    secret = stack.seed.key(tenant, name="fails").secret
    fake.enqueue(Reply(status=503, body=b'{"error": {"message": "overloaded"}}', content_type="application/json"))
    r = _chat(stack, secret, model.name)
    assert r.status_code >= 500
    request_id = r.headers["request-id"]
    stack.seed.usage_rows(tenant, expect=1)
    owner = signed_in(stack, tenant)
    page = owner.get(f"/upstreams/{up.id}").text
    health = page.split("<h2>Health</h2>")[1].split("</dl>")[0]
    assert f'<span class="badge bad">{r.status_code}</span>' in health and request_id in health
    assert "none recorded" not in health and ">closed<" in health
    breakers = stack.gateway.services.relay.breakers  # this worker's breaker: the page reads the same object
    while breakers.state(up.id) != "open":
        breakers.failure(up.id)
    try:
        assert '<span class="badge bad" title="Requests skip this upstream' in owner.get(f"/upstreams/{up.id}").text
        assert ">open</span>" in owner.get("/upstreams").text
    finally:
        breakers.success(up.id)
    intruder = signed_in(stack, stack.seed.tenant())
    r = intruder.get(f"/upstreams/{up.id}")
    assert r.status_code == 404 and "belongs to someone else" in r.text and up.name not in r.text


def _many_keys(stack: Any, tenant: Any, n: int) -> None:
    async def run(s: Any) -> None:
        for i in range(n):
            await keys.create_key(s, tenant=tenant, secret_key=stack.settings.secret_key, name=f"batch-{i:02d}")

    stack.seed.run(run)


def test_keys_list_searches_pages_and_shows_this_months_spend(stack, fake):
    tenant, _, model = _setup(stack, fake)
    spender = stack.seed.key(tenant, name="the spender")
    fake.enqueue(Reply(text="hello", usage=(400_000, 100_000)))  # $0.40 + $0.20 at 1 and 2 $/M
    assert _chat(stack, spender.secret, model.name).status_code == 200
    stack.seed.usage_rows(tenant, expect=1)
    _many_keys(stack, tenant, 55)
    owner = signed_in(stack, tenant)
    first = owner.get("/keys").text
    assert first.count("/admin/keys/") - first.count("/admin/keys/new") == 50 and "page 1 of 2" in first
    assert "56 keys" in first and "Next →" in first and "Previous" not in first
    assert spender.secret not in first
    second = owner.get("/keys", params={"page": "2"}).text
    assert second.count('<tr>\n        <td><a href="/admin/keys/') == 6 and "← Previous" in second
    found = owner.get("/keys", params={"q": "SPENDER"}).text
    row = found.split("the spender")[1].split("</tr>")[0]
    assert "$0.60" in row and "1 of 56 keys match" in found
    by_prefix = owner.get("/keys", params={"q": spender.row.prefix}).text
    assert "the spender" in by_prefix and "batch-" not in by_prefix
    nothing = owner.get("/keys", params={"q": "no-such-key"}).text
    assert "No key matches" in nothing
    assert _count(stack, tenant) == 56


def _count(stack: Any, tenant: Any) -> int:
    async def run(s: Any) -> int:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.tenant_id == tenant.id)))

    return stack.seed.run(run)


def test_request_log_finds_a_request_by_id_and_shows_its_detail(stack, fake):
    tenant, _, model = _setup(stack, fake)
    key = stack.seed.key(tenant, name="detail key")
    fake.enqueue(Reply(text="hello", usage=(1200, 34), cache_read_tokens=1000))
    r = _chat(stack, key.secret, model.name)
    assert r.status_code == 200
    request_id = r.headers["request-id"]
    stack.seed.usage_rows(tenant, expect=1)
    owner = signed_in(stack, tenant)
    found = owner.get("/usage", params={"request_id": request_id})
    assert found.status_code == 303 and found.headers["location"].endswith(f"/usage/requests/{request_id}")
    detail = owner.follow(found)
    text = re.sub(r"\s+", " ", detail.text)
    assert detail.status_code == 200 and request_id in text and "detail key" in text and model.name in text
    for shown in ("Model asked", "Model served", "Attempts</dt><dd>1", "1,200", "34", "1,000", " ms", "First token"):
        assert shown in text, shown
    assert key.secret not in detail.text
    log = owner.get("/usage").text
    assert f"/admin/usage/requests/{request_id}" in log
    # the model filter is a contains-match
    assert model.name in owner.get("/usage", params={"model": model.name[4:10]}).text.split("<tbody>")[1]
    assert "No requests match" in owner.get("/usage", params={"model": "zz-nothing"}).text
    # another tenant's request id is not found, by search or by URL
    other = signed_in(stack, stack.seed.tenant())
    r = other.get(f"/usage/requests/{request_id}")
    assert r.status_code == 404 and model.name not in r.text and "<html" in r.text.lower()
    r = other.get("/usage", params={"request_id": request_id})
    assert r.status_code == 404 and "No request with the id" in r.text and model.name not in r.text
    # a request refused before any upstream: its id is not in the log, and the page says why it may not be
    refused = _chat(stack, key.secret, "no-such-model")
    assert refused.status_code == 404
    r = owner.get("/usage", params={"request_id": refused.headers["request-id"]})
    assert r.status_code == 404 and "refused before an upstream was called" in r.text


def test_a_request_routed_by_an_alias_keeps_the_model_the_client_asked(stack, fake):
    """Claude Code asks for ``claude-sonnet-4-5``; the key's alias routes it to the tenant's model. The log
    showed only the target, as "Model asked"; the name the client sent was kept nowhere."""
    tenant, _, model = _setup(stack, fake)
    key = stack.seed.key(tenant, name="alias key", aliases=[("claude-*", model.name)])
    r = httpx.post(
        stack.url + "/v1/messages",
        headers={"x-api-key": key.secret, "anthropic-version": "2023-06-01"},
        json={"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    direct = _chat(stack, key.secret, model.name)  # no alias: nothing more is kept
    assert direct.status_code == 200, direct.text
    rows = stack.seed.usage_rows(tenant, expect=2)
    assert [(row.model, row.asked_model) for row in rows] == [(model.name, "claude-sonnet-4-5"), (model.name, None)]
    owner = signed_in(stack, tenant)
    text = re.sub(r"\s+", " ", owner.get(f"/usage/requests/{r.headers['request-id']}").text)
    assert "claude-sonnet-4-5" in text and "by the key's alias" in text, text
    api = Api(stack, make_token(stack, tenant, "member"))
    try:
        logged = api.get("/usage/requests", params={"limit": 10}).json()["requests"]
    finally:
        api.close()
    assert [(q["model"], q["asked_model"]) for q in logged] == [(model.name, None), (model.name, "claude-sonnet-4-5")]


def test_dashboard_shows_spend_over_time_by_model_and_by_key(stack, fake):
    tenant, _, model = _setup(stack, fake)
    key = stack.seed.key(tenant, name="charted key")
    fake.enqueue(Reply(text="hello", usage=(100_000, 10_000)))
    assert _chat(stack, key.secret, model.name).status_code == 200
    stack.seed.usage_rows(tenant, expect=1)
    owner = signed_in(stack, tenant)
    for range_ in ("24h", "7d", "30d"):
        by_model = owner.get("/dashboard", params={"range": range_, "spend": "model"}).text
        spend = by_model.split('id="spend"')[1].split('<div class="card">')[0]
        assert f"Spend of {model.name} over time" in spend and "$0.12" in spend, range_
        by_key = owner.get("/dashboard", params={"range": range_, "spend": "key"}).text
        spend = by_key.split('id="spend"')[1].split('<div class="card">')[0]
        assert "Spend of charted key" in spend and '<rect class="bar"' in spend, range_


def test_request_detail_lists_the_stored_conversion_notes(stack, fake):
    """The ledger keeps a request's conversion notes (``usage_events.conversion_notes``); the detail page lists them."""
    tenant, up, model = _setup(stack, fake)
    rec = UsageRecord(
        request_id=f"req_notes{secrets.token_hex(8)}",
        tenant_id=tenant.id,
        key_id=None,
        model=model.name,
        upstream_id=up.id,
        door_dialect="anthropic",
        upstream_dialect="openai",
        stream=False,
        usage=Usage(input_tokens=10, output_tokens=2),
        cost_micro_usd=14,
        status=200,
        latency_ms=120,
        conversion_notes=("thinking_dropped", "web_search_dropped"),
    )

    async def write(s: Any) -> None:
        await s.execute(sa.insert(UsageEvent).values(**rollup.event_row(rec)))

    stack.seed.run(write)
    owner = signed_in(stack, tenant)
    page = owner.get(f"/usage/requests/{rec.request_id}").text
    notes = page.split("Conversion notes</dt>")[1].split("</dd>")[0]
    assert "<li>thinking_dropped</li>" in notes and "<li>web_search_dropped</li>" in notes
    csv = owner.get("/usage.csv").text
    assert "thinking_dropped,web_search_dropped" in csv
