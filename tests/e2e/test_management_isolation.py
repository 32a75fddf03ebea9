"""Tenant isolation through the management API: another tenant's objects are "not found", whatever the verb."""

from __future__ import annotations

from typing import Any

import pytest
from test_management_api import Api, chat, error, make_token, new_upstream, ok

from gateway.testing.fake_upstream import Reply


@pytest.fixture
def two(stack: Any, fake: Any) -> Any:
    """Tenants A and B, each with an admin token, an upstream, a model named ``shared`` and a key."""

    class Side:
        def __init__(self, upstream_model: str) -> None:
            self.tenant = stack.seed.tenant()
            self.api = Api(stack, make_token(stack, self.tenant, "admin"))
            self.upstream = new_upstream(self.api, fake, api_key=f"up-secret-{upstream_model}")
            body = {"name": "shared", "upstream_id": self.upstream["id"], "upstream_model": upstream_model}
            self.model = ok(self.api.post("/models", json=body), 201)
            self.key = ok(self.api.post("/keys", json={"allow_custom_models": True}), 201)

    a, b = Side("a-upstream-model"), Side("b-upstream-model")
    yield a, b
    a.api.close()
    b.api.close()


def test_same_model_name_resolves_to_each_tenants_own_upstream(stack, two, fake):
    a, b = two
    fake.enqueue(Reply(text="from a"), Reply(text="from b"))
    assert ok(chat(stack, a.key["secret"], "shared"))["choices"][0]["message"]["content"] == "from a"
    assert fake.requests[-1].json["model"] == "a-upstream-model"
    assert fake.requests[-1].headers["authorization"] == "Bearer up-secret-a-upstream-model"
    ok(chat(stack, b.key["secret"], "shared"))
    assert fake.requests[-1].json["model"] == "b-upstream-model"
    assert fake.requests[-1].headers["authorization"] == "Bearer up-secret-b-upstream-model"


@pytest.mark.parametrize("kind", ["upstreams", "models", "keys"])
def test_another_tenants_objects_are_not_found(two, kind):
    a, b = two
    target = {"upstreams": a.upstream, "models": a.model, "keys": a.key}[kind]
    own = {"upstreams": b.upstream, "models": b.model, "keys": b.key}[kind]
    assert [o["id"] for o in ok(b.api.get(f"/{kind}"))] == [own["id"]]
    for r in (
        b.api.get(f"/{kind}/{target['id']}"),
        b.api.patch(f"/{kind}/{target['id']}", json={"name": "stolen"}),
        b.api.delete(f"/{kind}/{target['id']}") if kind != "keys" else b.api.post(f"/{kind}/{target['id']}/revoke"),
    ):
        err = error(r, 404)
        assert err["code"] == "not_found" and "stolen" not in r.text
    # Untouched, as A sees it.
    assert ok(a.api.get(f"/{kind}/{target['id']}"))["name"] == target["name"]
    if kind == "keys":
        assert ok(a.api.get(f"/keys/{target['id']}"))["state"] == "active"


def test_another_tenants_upstream_cannot_carry_a_model(two):
    a, b = two
    body = {"name": "borrow", "upstream_id": a.upstream["id"], "upstream_model": "x"}
    assert error(b.api.post("/models", json=body), 404)["param"] == "upstream_id"
    err = error(b.api.patch(f"/models/{b.model['id']}", json={"upstream_id": a.upstream["id"]}), 404)
    assert err["param"] == "upstream_id"
    assert ok(b.api.get(f"/models/{b.model['id']}"))["upstream_id"] == b.upstream["id"]


def test_a_tenant_token_cannot_name_another_tenant(two):
    a, b = two
    for path in ("/upstreams", "/models", "/keys"):
        err = error(b.api.get(path, params={"tenant_id": a.tenant.id}), 404)
        assert a.tenant.name not in err["message"]
    assert ok(b.api.get("/keys", params={"tenant_id": b.tenant.id}))[0]["id"] == b.key["id"]


def test_platform_routes_hold_built_ins_only(stack, two):
    a, _ = two
    error(a.api.get("/platform/models"), 403)
    error(a.api.get(f"/platform/upstreams/{a.upstream['id']}"), 403)
    platform = Api(stack, make_token(stack, None))
    error(platform.get(f"/platform/upstreams/{a.upstream['id']}"), 404)  # a tenant's upstream is not a built-in
    error(platform.get(f"/platform/models/{a.model['id']}"), 404)
    assert ok(platform.get(f"/upstreams/{a.upstream['id']}", params={"tenant_id": a.tenant.id}))["id"]
    platform.close()


def test_another_tenants_users_and_tenant_are_out_of_reach(stack, two):
    """The account endpoints (owners only) and deletes with force: another tenant's objects stay "not found"."""
    a, b = two
    a_owner = Api(stack, make_token(stack, a.tenant, "owner"))
    b_owner = Api(stack, make_token(stack, b.tenant, "owner"))
    body = {"email": "victim@example.com", "password": "correct horse battery"}
    victim = ok(a_owner.post("/users", json=body), 201)
    for r in (
        b_owner.get(f"/users/{victim['id']}"),
        b_owner.delete(f"/users/{victim['id']}"),
        b_owner.post(f"/users/{victim['id']}/reset-password"),
        b_owner.post(f"/users/{victim['id']}/reset-password", json={"password": "taken over by b!"}),
        b_owner.get("/users", params={"tenant_id": a.tenant.id}),
        b.api.delete(f"/upstreams/{a.upstream['id']}", params={"force": "true"}),
    ):
        assert error(r, 404)["code"] == "not_found"
    assert "victim" not in b_owner.texts()
    for r in (b_owner.delete(f"/tenants/{a.tenant.id}"), b_owner.delete(f"/tenants/{b.tenant.id}")):
        error(r, 403)  # tenants are the platform's to delete, even one's own
    assert ok(a_owner.get(f"/users/{victim['id']}"))["must_change_password"] is False  # untouched
    assert ok(a.api.get(f"/models/{a.model['id']}"))["name"] == "shared"
    a_owner.close()
    b_owner.close()
