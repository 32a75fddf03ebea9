"""The management API's account and deletion endpoints (issue 13): users get/delete/reset-password, tenant
delete, upstream delete with ``?force=true``; and tenant isolation on each."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from test_management_api import Api, chat, error, make_token, new_upstream, ok

from gateway.manage import tenants

PASSWORD = "correct horse battery"


def new_user(api: Api, role: str = "member") -> dict[str, Any]:
    email = f"u-{secrets.token_hex(4)}@example.com"
    return dict(ok(api.post("/users", json={"email": email, "password": PASSWORD, "role": role}), 201))


@pytest.fixture
def owner_api(stack: Any) -> Any:
    tenant = stack.seed.tenant()
    api = Api(stack, make_token(stack, tenant, "owner"))
    yield tenant, api
    api.close()


def test_reset_password_one_time_or_chosen(owner_api):
    _, api = owner_api
    user = new_user(api)
    assert ok(api.get(f"/users/{user['id']}")) == user | {"must_change_password": False}
    done = ok(api.post(f"/users/{user['id']}/reset-password"))
    assert len(done["one_time_password"]) >= 12 and done["user"]["must_change_password"] is True
    done = ok(api.post(f"/users/{user['id']}/reset-password", json={"password": "a brand new passphrase"}))
    assert done["one_time_password"] is None and done["user"]["must_change_password"] is False
    assert "a brand new passphrase" not in api.texts()
    err = error(api.post(f"/users/{user['id']}/reset-password", json={"password": "short"}), 400)
    assert err["param"] == "password" and "at least 12" in err["message"]
    assert error(api.post(f"/users/{user['id']}/reset-password", json={"pasword": "x"}), 400)["param"] == "pasword"


def test_delete_user_keeps_an_owner(owner_api):
    _, api = owner_api
    owner, member = new_user(api, "owner"), new_user(api)
    ok(api.delete(f"/users/{member['id']}"), 204)
    error(api.get(f"/users/{member['id']}"), 404)
    error(api.delete(f"/users/{member['id']}"), 404)
    assert "at least one owner" in error(api.delete(f"/users/{owner['id']}"), 400)["message"]
    assert [u["id"] for u in ok(api.get("/users"))] == [owner["id"]]


def test_roles_users_endpoints_need_an_owner(stack, owner_api):
    tenant, owner = owner_api
    user = new_user(owner)
    admin = Api(stack, make_token(stack, tenant, "admin"))
    for r in (
        admin.get(f"/users/{user['id']}"),
        admin.delete(f"/users/{user['id']}"),
        admin.post(f"/users/{user['id']}/reset-password"),
        admin.delete(f"/tenants/{tenant.id}"),
    ):
        error(r, 403)
    admin.close()
    assert ok(owner.get(f"/users/{user['id']}"))["id"] == user["id"]


def test_a_tenant_owner_cannot_take_over_a_platform_admin(stack, owner_api):
    """A platform admin whose account sits in a tenant: its owner resetting that password would own the platform."""
    tenant, api = owner_api
    admin = stack.seed.run(
        lambda s: tenants.create_user(
            s, tenant=tenant, email=f"pa-{secrets.token_hex(3)}@example.com", password=PASSWORD, platform_admin=True
        )
    )
    error(api.post(f"/users/{admin.id}/reset-password"), 403)
    error(api.delete(f"/users/{admin.id}"), 403)
    platform = Api(stack, make_token(stack, None))
    done = ok(platform.post(f"/users/{admin.id}/reset-password", params={"tenant_id": tenant.id}))
    assert done["one_time_password"] and done["user"]["is_platform_admin"] is True
    platform.close()


def test_platform_deletes_a_tenant_refused_while_keys_live(stack, fake):
    platform = Api(stack, make_token(stack, None))
    tenant = ok(platform.post("/tenants", json={"name": f"gone-{secrets.token_hex(3)}"}), 201)
    on = {"tenant_id": tenant["id"]}
    up = ok(
        platform.post("/upstreams", params=on, json={"name": "u", "dialect": "openai", "base_url": fake.url + "/v1"}),
        201,
    )
    ok(platform.post("/models", params=on, json={"name": "gm", "upstream_id": up["id"], "upstream_model": "x"}), 201)
    key = ok(platform.post("/keys", params=on, json={"allow_custom_models": True}), 201)
    err = error(platform.delete(f"/tenants/{tenant['id']}"), 409)
    assert "1 live key" in err["message"] and err["code"] == "conflict"
    ok(platform.delete(f"/tenants/{tenant['id']}", params={"force": "true"}), 204)
    error(platform.get(f"/tenants/{tenant['id']}"), 404)
    assert tenant["id"] not in [t["id"] for t in ok(platform.get("/tenants"))]
    assert chat(stack, key["secret"], "gm").status_code == 401  # its keys went with it
    error(platform.delete(f"/tenants/{tenant['id']}"), 404)
    platform.close()


def test_upstream_delete_names_its_models_and_force_takes_them(owner_api, fake):
    _, api = owner_api
    up = new_upstream(api, fake)
    model = ok(api.post("/models", json={"name": "on-it", "upstream_id": up["id"], "upstream_model": "x"}), 201)
    err = error(api.delete(f"/upstreams/{up['id']}"), 409)
    assert "on-it" in err["message"]
    ok(api.delete(f"/upstreams/{up['id']}", params={"force": "true"}), 204)
    error(api.get(f"/models/{model['id']}"), 404)
    error(api.get(f"/upstreams/{up['id']}"), 404)
