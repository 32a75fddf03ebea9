"""Managing webhooks: ``relay webhooks``, ``/api/v1/[platform/]webhooks`` and the admin UI's Webhooks page, on
both backends, against the module's gateway and the loopback receiver of ``test_webhooks``.

The secret is shown once (the CLI's last line, the creation answer, a one-time flash); one tenant never sees
or removes another's webhook; a tenant URL on loopback is refused with the allowlist hint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import SECRET
from test_admin_auth import signed_in
from test_management_api import Api, error, make_token, ok
from test_webhooks import Hooks, running_hooks

from gateway.cli import main
from gateway.manage import webhooks
from gateway.webhooks.signing import verify


@pytest.fixture(scope="module")
def hooks(backend: tuple[str, Any], _fake_upstream: Any) -> Iterator[Hooks]:
    yield from running_hooks(backend, _fake_upstream)


def cli(hooks: Hooks, monkeypatch: Any, capsys: Any, *args: str) -> tuple[int, str, str]:
    """``relay …`` in this process (the same code path as the installed command, minus interpreter start-up)."""
    monkeypatch.setenv("RELAY_DATABASE_URL", hooks.settings.database_url)
    monkeypatch.setenv("RELAY_SECRET_KEY", SECRET)
    monkeypatch.setenv("RELAY_UPSTREAM_ALLOWLIST", hooks.settings.upstream_allowlist)
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_add_list_test_remove(hooks, monkeypatch, capsys):
    tenant = hooks.seed.tenant()
    url = f"{hooks.receiver.url}/cli/{tenant.id}"
    code, out, _ = cli(hooks, monkeypatch, capsys, "webhooks", "add", "--tenant", tenant.name, url, "--events",
                       "key.disabled,webhook.test")  # fmt: skip
    assert code == 0
    lines = out.strip().splitlines()
    secret = lines[-1]
    assert secret.startswith("whsec_") and secret not in "\n".join(lines[:-1])
    webhook_id = lines[0].split()[1]

    code, out, _ = cli(hooks, monkeypatch, capsys, "webhooks", "list", "--tenant", tenant.name, "--json")
    listed = json.loads(out)
    assert code == 0 and [w["id"] for w in listed] == [webhook_id]
    assert listed[0]["events"] == ["key.disabled", "webhook.test"] and listed[0]["url"] == url
    assert "secret" not in out and secret not in out
    code, out, _ = cli(hooks, monkeypatch, capsys, "webhooks", "list")
    assert code == 0 and webhook_id in out and tenant.name in out and secret not in out

    code, out, _ = cli(hooks, monkeypatch, capsys, "webhooks", "test", webhook_id)
    assert code == 0 and "answered 200" in out
    got = hooks.receiver.wait(f"/cli/{tenant.id}", 1)[0]
    assert got.doc["type"] == "webhook.test" and got.headers["relay-event"] == "webhook.test"
    assert verify(secret, got.headers["relay-signature"], got.body, now=int(time.time()))

    code, out, _ = cli(hooks, monkeypatch, capsys, "webhooks", "remove", webhook_id)
    assert code == 0 and "removed" in out
    code, out, _ = cli(hooks, monkeypatch, capsys, "webhooks", "list", "--tenant", tenant.name, "--json")
    assert json.loads(out) == []
    code, _, err = cli(hooks, monkeypatch, capsys, "webhooks", "test", webhook_id)
    assert code == 1 and "not found" in err


def test_cli_refuses_a_tenant_url_on_loopback_but_not_the_platforms(hooks, monkeypatch, capsys):
    tenant = hooks.seed.tenant()
    code, _, err = cli(hooks, monkeypatch, capsys, "webhooks", "add", "--tenant", tenant.name, "http://127.0.0.1:9/x")
    assert code == 1 and "loopback" in err and "RELAY_UPSTREAM_ALLOWLIST" in err
    code, out, _ = cli(hooks, monkeypatch, capsys, "webhooks", "add", "--platform", "http://127.0.0.1:9/x",
                       "--events", "webhook.test")  # fmt: skip
    assert code == 0
    webhook_id = out.split()[1]
    code, out, _ = cli(hooks, monkeypatch, capsys, "webhooks", "test", webhook_id)  # nothing listens on port 9
    assert code == 1 and "not delivered: could not connect" in out
    assert cli(hooks, monkeypatch, capsys, "webhooks", "remove", webhook_id)[0] == 0


def test_api_create_list_test_delete_with_tenant_isolation(hooks):
    a, b = hooks.seed.tenant(), hooks.seed.tenant()
    api_a, api_b = Api(hooks, make_token(hooks, a, "admin")), Api(hooks, make_token(hooks, b, "admin"))
    url = f"{hooks.receiver.url}/api/{a.id}"
    created = ok(api_a.post("/webhooks", json={"url": url, "events": ["webhook.test"]}), 201)
    secret, webhook_id = created["secret"], created["id"]
    assert secret.startswith("whsec_") and created["tenant_id"] == a.id and created["events"] == ["webhook.test"]
    listed = ok(api_a.get("/webhooks"))
    assert [w["id"] for w in listed] == [webhook_id] and "secret" not in listed[0]

    # Tenant B sees nothing of it and cannot test, read or delete it.
    assert ok(api_b.get("/webhooks")) == []
    for method, path in (("delete", ""), ("post", "/test"), ("get", "/deliveries")):
        assert error(getattr(api_b, method)(f"/webhooks/{webhook_id}{path}"), 404)["code"] == "not_found"

    result = ok(api_a.post(f"/webhooks/{webhook_id}/test"))
    assert result == {"delivered": True, "status": 200, "error": None}
    got = hooks.receiver.wait(f"/api/{a.id}", 1)[0]
    assert verify(secret, got.headers["relay-signature"], got.body, now=int(time.time()))
    deliveries = ok(api_a.get(f"/webhooks/{webhook_id}/deliveries"))
    assert [(d["event"], d["status"], d["attempts"]) for d in deliveries] == [("webhook.test", "delivered", 1)]

    refused = error(api_a.post("/webhooks", json={"url": "http://127.0.0.1:9/x"}), 400)
    assert "RELAY_UPSTREAM_ALLOWLIST" in refused["message"]
    assert "unknown event" in error(api_a.post("/webhooks", json={"url": url, "events": ["nope"]}), 400)["message"]
    # Members do not see webhook URLs (they often carry a token); the platform's webhooks are the platform's.
    member = Api(hooks, make_token(hooks, a, "member"))
    assert member.get("/webhooks").status_code == 403
    assert api_a.get("/platform/webhooks").status_code == 403
    platform = Api(hooks, make_token(hooks, None))
    made = ok(
        platform.post("/platform/webhooks", json={"url": "http://127.0.0.1:9/p", "events": ["webhook.test"]}), 201
    )
    assert made["tenant_id"] is None and webhook_id not in {w["id"] for w in ok(platform.get("/platform/webhooks"))}
    assert platform.delete(f"/platform/webhooks/{made['id']}").status_code == 204

    assert api_a.delete(f"/webhooks/{webhook_id}").status_code == 204
    assert ok(api_a.get("/webhooks")) == []
    assert sum(secret in r.text for r in api_a.seen) == 1 and secret not in api_b.texts()  # the creation answer
    for client in (api_a, api_b, member, platform):
        client.close()


def test_admin_page_adds_shows_the_secret_once_tests_and_removes(hooks):
    tenant = hooks.seed.tenant()
    admin = signed_in(hooks, tenant, role="admin")
    page = admin.get("/webhooks")
    assert page.status_code == 200 and "No webhooks yet" in page.text and 'href="/admin/webhooks"' in page.text
    url = f"{hooks.receiver.url}/ui/{tenant.id}"
    r = admin.post("/webhooks", {"url": url, "events": "webhook.test"}, csrf_from="/webhooks")
    shown = admin.follow(r)
    assert shown.status_code == 200 and url in shown.text and "whsec_" in shown.text
    secret = shown.text.split('value="whsec_', 1)[1].split('"', 1)[0]
    again = admin.get("/webhooks")  # a reload shows the webhook, not the secret
    assert url in again.text and "whsec_" not in again.text
    [hook] = hooks.seed.run(lambda s: webhooks.list_webhooks(s, tenant_id=tenant.id))

    r = admin.post(f"/webhooks/{hook.id}/test", csrf_from="/webhooks")
    tested = admin.follow(r)
    assert "Test event delivered: the receiver answered 200." in tested.text and ">delivered<" in tested.text
    got = hooks.receiver.wait(f"/ui/{tenant.id}", 1)[0]
    assert verify("whsec_" + secret, got.headers["relay-signature"], got.body, now=int(time.time()))

    r = admin.post("/webhooks", {"url": "http://127.0.0.1:9/x"}, csrf_from="/webhooks")
    assert r.status_code == 400 and "RELAY_UPSTREAM_ALLOWLIST" in r.text
    member = signed_in(hooks, tenant, role="member")
    assert member.get("/webhooks").status_code == 403 and 'href="/admin/webhooks"' not in member.get("/keys").text

    r = admin.post(f"/webhooks/{hook.id}/delete", csrf_from="/webhooks")
    assert "Webhook removed." in admin.follow(r).text and url not in admin.get("/webhooks").text
    admin.close()
    member.close()
