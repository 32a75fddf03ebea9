"""Who may call the management API: tokens (made by `relay tokens`), their roles, and what is refused."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from test_cli import ok as cli_ok
from test_cli import relay
from test_management_api import Api, error, make_token, ok


@pytest.fixture
def tenant(stack: Any) -> Any:
    return stack.seed.tenant()


def test_tokens_from_the_cli_create_list_revoke(stack, tenant):
    out = cli_ok(relay(stack, "tokens", "create", "--tenant", tenant.name, "--name", "ci", "--role", "member"))
    token = out.strip().splitlines()[-1]
    assert token.startswith("rlm-") and len(token) == 52
    api = Api(stack, token)
    me = ok(api.get("/me"))
    assert me["role"] == "member" and me["tenant_id"] == tenant.id and me["label"] == f"token:{token[:11]}"

    listing = cli_ok(relay(stack, "tokens", "list", "--tenant", tenant.name))
    assert token[:11] in listing and "active" in listing and "member" in listing and token not in listing
    cli_ok(relay(stack, "tokens", "revoke", token[:11]))
    assert "revoked" in cli_ok(relay(stack, "tokens", "list", "--tenant", tenant.name))
    err = error(api.get("/me"), 401)  # at once: tokens are not cached
    assert "revoked" in err["message"] and err["code"] == "invalid_token"
    assert token not in api.texts()
    api.close()

    platform = cli_ok(relay(stack, "tokens", "create", "--platform")).strip().splitlines()[-1]
    assert ok(httpx.get(stack.url + "/api/v1/me", headers={"authorization": f"Bearer {platform}"}))["platform"]
    assert platform[:11] in cli_ok(relay(stack, "tokens", "list", "--platform"))


def test_cli_token_errors(stack):
    r = relay(stack, "tokens", "create", "--tenant", "no-such-tenant")
    assert r.returncode == 1 and "not found" in r.stderr
    r = relay(stack, "tokens", "revoke", "rlm-nothere")
    assert r.returncode == 1 and "not found" in r.stderr
    r = relay(stack, "tokens", "create")
    assert r.returncode == 2  # argparse: --tenant or --platform is required


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "missing management token"),
        ("Bearer", "missing management token"),
        ("Bearer garbage", "malformed"),
        ("Basic dXNlcjpwYXNz", "missing management token"),
        ("Bearer rlm-" + "A" * 48, "no such token"),
    ],
)
def test_missing_or_garbage_token_is_401(stack, authorization, message):
    headers = {"authorization": authorization} if authorization else {}
    for method, path in (("GET", "/upstreams"), ("POST", "/keys"), ("GET", "/catalog"), ("GET", "/me")):
        r = httpx.request(method, stack.url + "/api/v1" + path, headers=headers, json={})
        err = error(r, 401)
        assert message in err["message"] and r.headers["www-authenticate"].startswith("Bearer")


def test_an_sk_key_is_not_a_management_token(stack, tenant):
    key = stack.seed.key(tenant).secret
    r = httpx.get(stack.url + "/api/v1/keys", headers={"authorization": f"Bearer {key}"})
    assert "API key" in error(r, 401)["message"] and key not in r.text
    # ... nor a management token an API key.
    token = make_token(stack, tenant)
    r = httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json={"model": "x", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 401 and token not in r.text


def test_member_reads_admin_manages_owner_manages_users(stack, tenant, fake):
    member, admin, owner = (Api(stack, make_token(stack, tenant, role)) for role in ("member", "admin", "owner"))
    up_body = {"name": f"u-{secrets.token_hex(3)}", "dialect": "openai", "base_url": fake.url + "/v1"}
    for path in ("/upstreams", "/models", "/keys", "/catalog", "/me"):
        ok(member.get(path))
    err = error(member.post("/upstreams", json=up_body), 403)
    assert err["code"] == "permission_denied" and "member" in err["message"]
    error(member.post("/keys", json={}), 403)
    error(member.get("/users"), 403)

    up = ok(admin.post("/upstreams", json=up_body), 201)
    error(member.patch(f"/upstreams/{up['id']}", json={"name": "x"}), 403)
    error(member.delete(f"/upstreams/{up['id']}"), 403)
    key = ok(admin.post("/keys", json={}), 201)
    error(member.post(f"/keys/{key['id']}/revoke"), 403)
    user = {"email": f"u-{secrets.token_hex(3)}@example.com", "password": "long enough password"}
    error(admin.post("/users", json=user), 403)
    error(admin.get("/users"), 403)
    ok(owner.post("/users", json=user), 201)

    for tenant_api in (member, admin, owner):
        error(tenant_api.get("/tenants"), 403)
        error(tenant_api.post("/tenants", json={"name": "nope"}), 403)
        error(tenant_api.post("/platform/upstreams", json=up_body), 403)
        tenant_api.close()


def test_platform_member_only_reads(stack, tenant):
    reader = Api(stack, make_token(stack, None, "member"))
    ok(reader.get("/tenants"))
    ok(reader.get("/platform/models"))
    ok(reader.get("/keys", params={"tenant_id": tenant.id}))
    error(reader.post("/tenants", json={"name": f"t-{secrets.token_hex(3)}"}), 403)
    error(reader.post("/keys", params={"tenant_id": tenant.id}, json={}), 403)
    reader.close()


def test_permission_is_checked_before_the_body(stack, tenant):
    member = Api(stack, make_token(stack, tenant, "member"))
    error(member.post("/upstreams", content=b"{broken", headers={"content-type": "application/json"}), 403)
    anonymous = httpx.post(stack.url + "/api/v1/upstreams", content=b"{broken")
    error(anonymous, 401)
    member.close()
