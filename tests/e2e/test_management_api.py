"""The JSON management API under /api/v1/, on each backend: CRUD of every resource, secrets, errors, schema, audit."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.db.tables import AuditLog
from gateway.manage import tokens
from gateway.testing.fake_upstream import Reply

UP_KEY = "up-secret-mgmt-" + "q" * 24


class Api:
    """An httpx client on /api/v1 with one management token, keeping every response it saw."""

    def __init__(self, stack: Any, token: str | None) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.seen: list[httpx.Response] = []
        self.http = httpx.Client(
            base_url=stack.url + "/api/v1", headers=headers, timeout=30, event_hooks={"response": [self._keep]}
        )

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self.seen.append(response)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)

    def texts(self) -> str:
        return "\n".join(r.text for r in self.seen) + "\n".join(str(r.headers) for r in self.seen)


def make_token(stack: Any, tenant: Any | None, role: str = "admin") -> str:
    new = stack.seed.run(
        lambda s: tokens.create_token(s, tenant=tenant, secret_key=stack.settings.secret_key, role=role, name="test")
    )
    return str(new.secret)


@pytest.fixture
def tenant(stack: Any) -> Any:
    return stack.seed.tenant()


@pytest.fixture
def api(stack: Any, tenant: Any) -> Iterator[Api]:
    client = Api(stack, make_token(stack, tenant, "owner"))
    yield client
    client.close()


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body["error"]) >= {"message", "type", "code"}, body
    return dict(body["error"])


def chat(stack: Any, key: str, model: str) -> httpx.Response:
    return httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def new_upstream(api: Api, fake: Any, **kw: Any) -> dict[str, Any]:
    body = {"name": f"up-{secrets.token_hex(3)}", "dialect": "openai", "base_url": fake.url + "/v1", **kw}
    return dict(ok(api.post("/upstreams", json=body), 201))


def test_upstream_crud_keeps_the_credential_write_only(stack, api, fake):
    up = new_upstream(api, fake, api_key=UP_KEY, extra_headers={"x-org": "org-123456789"}, timeout_s=30)
    assert up["has_api_key"] is True and up["api_key_hint"] == "…" + UP_KEY[-4:]
    assert up["extra_headers"] == {"x-org": "…6789"} and up["timeout_s"] == 30 and up["platform"] is False
    assert [u["id"] for u in ok(api.get("/upstreams"))] == [up["id"]]
    assert ok(api.get(f"/upstreams/{up['id']}"))["name"] == up["name"]

    renamed = ok(api.patch(f"/upstreams/{up['id']}", json={"name": "renamed", "timeout_s": None}))
    assert renamed["name"] == "renamed" and renamed["timeout_s"] is None and renamed["has_api_key"] is True
    model = ok(api.post("/models", json={"name": "crud-gpt", "upstream_id": up["id"], "upstream_model": "m1"}), 201)
    key = ok(api.post("/keys", json={"allow_custom_models": True}), 201)["secret"]
    fake.enqueue(Reply(text="kept"))
    assert ok(chat(stack, key, "crud-gpt"))["choices"][0]["message"]["content"] == "kept"
    assert fake.requests[-1].headers["authorization"] == f"Bearer {UP_KEY}"  # PATCH without api_key kept it

    ok(api.patch(f"/upstreams/{up['id']}", json={"api_key": "up-secret-rotated-key"}))
    chat(stack, key, "crud-gpt")
    assert fake.requests[-1].headers["authorization"] == "Bearer up-secret-rotated-key"
    cleared = ok(api.patch(f"/upstreams/{up['id']}", json={"api_key": None}))
    assert cleared["has_api_key"] is False and cleared["api_key_hint"] is None

    refused = error(api.delete(f"/upstreams/{up['id']}"), 409)
    assert "crud-gpt" in refused["message"]
    ok(api.delete(f"/models/{model['id']}"), 204)
    ok(api.delete(f"/upstreams/{up['id']}"), 204)
    error(api.get(f"/upstreams/{up['id']}"), 404)
    texts = api.texts()
    assert UP_KEY not in texts and "up-secret-rotated-key" not in texts and "org-123456789" not in texts


def test_model_crud_and_the_doors_follow(stack, api, fake):
    up = new_upstream(api, fake, api_key=UP_KEY)
    body = {
        "name": "api-gpt",
        "upstream_id": up["id"],
        "upstream_model": "first-id",
        "input_price": 1.5,
        "output_price": 3,
        "max_output_tokens": 4096,
        "profile": {"supports_top_k": True},
        "fallbacks": ["other-model"],
    }
    model = ok(api.post("/models", json=body), 201)
    assert model["upstream_name"] == up["name"] and model["dialect"] == "openai" and model["input_price"] == 1.5
    assert model["effective_profile"]["supports_top_k"] is True
    assert model["effective_profile"]["max_output_tokens"] == 4096
    assert [m["name"] for m in ok(api.get("/models"))] == ["api-gpt"]
    key = ok(api.post("/keys", json={"allow_custom_models": True}), 201)["secret"]
    assert ok(chat(stack, key, "api-gpt"))["model"] == "api-gpt"
    assert fake.requests[-1].json["model"] == "first-id"

    changed = ok(api.patch(f"/models/{model['id']}", json={"upstream_model": "second-id", "output_price": 4}))
    assert changed["upstream_model"] == "second-id" and changed["output_price"] == 4 and changed["input_price"] == 1.5
    ok(chat(stack, key, "api-gpt"))
    assert fake.requests[-1].json["model"] == "second-id"
    assert ok(api.get(f"/models/{model['id']}"))["upstream_model"] == "second-id"

    ok(api.patch(f"/models/{model['id']}", json={"enabled": False}))
    error(chat(stack, key, "api-gpt"), 404)
    ok(api.delete(f"/models/{model['id']}"), 204)
    error(api.get(f"/models/{model['id']}"), 404)
    assert ok(api.get("/models")) == []


def test_key_crud_shows_the_secret_once(stack, api, fake, tenant):
    up = new_upstream(api, fake)
    ok(api.post("/models", json={"name": "k-gpt", "upstream_id": up["id"], "upstream_model": "x"}), 201)
    body = {
        "name": "laptop",
        "allow_custom_models": True,
        "allowed_models": ["k-*"],
        "aliases": [{"pattern": "gpt-*", "model": "k-gpt"}],
        "claude_code_profile": {"opus": "k-gpt"},
        "expires_at": "2099-01-01T00:00:00Z",
    }
    created = ok(api.post("/keys", json=body), 201)
    secret = created["secret"]
    assert secret.startswith("sk-") and created["prefix"] == secret[:10] and created["state"] == "active"
    assert created["aliases"] == [{"pattern": "gpt-*", "model": "k-gpt"}]
    assert created["expires_at"].startswith("2099-01-01")
    assert ok(chat(stack, secret, "gpt-4o"))["model"] == "k-gpt"  # the alias

    listed = ok(api.get("/keys"))
    assert [k["id"] for k in listed] == [created["id"]] and "secret" not in listed[0] and "digest" not in listed[0]
    ok(api.patch(f"/keys/{created['id']}", json={"allowed_models": ["nothing-*"], "name": "desk"}))
    shown = ok(api.get(f"/keys/{created['id']}"))
    assert shown["name"] == "desk" and shown["allowed_models"] == ["nothing-*"]
    error(chat(stack, secret, "k-gpt"), 403)

    revoked = ok(api.post(f"/keys/{created['id']}/revoke"))
    assert revoked["state"] == "revoked" and revoked["revoked_at"]
    assert error(chat(stack, secret, "k-gpt"), 401)["message"].count("revoked") == 1
    texts = api.texts()
    assert texts.count(secret) == 1  # in the creation response only
    digests = stack.seed.run(lambda s: _scalars(s, sa.text("SELECT digest FROM api_keys")))
    assert not any(d in texts for d in digests)


def test_users_me_and_passwords_are_write_only(stack, api, tenant):
    me = ok(api.get("/me"))
    assert me == {
        "kind": "token",
        "label": me["label"],
        "role": "owner",
        "platform": False,
        "tenant_id": tenant.id,
        "tenant_name": tenant.name,
    }
    assert me["label"].startswith("token:rlm-")
    email = f"ann-{secrets.token_hex(3)}@example.com"
    user = ok(api.post("/users", json={"email": email, "password": "correct horse battery", "role": "admin"}), 201)
    assert user["email"] == email and user["role"] == "admin" and user["is_platform_admin"] is False
    assert [u["email"] for u in ok(api.get("/users"))] == [email]
    error(api.post("/users", json={"email": email, "password": "correct horse battery"}), 409)
    denied = error(api.post("/users", json={"email": "b" + email, "password": "x" * 10, "platform_admin": True}), 403)
    assert "platform_admin" in denied["message"]
    assert "correct horse" not in api.texts() and "argon2" not in api.texts()


def test_catalog_lists_providers_models_and_prices(api):
    catalog = ok(api.get("/catalog"))
    providers = {p["name"]: p for p in catalog["providers"]}
    assert "anthropic" in providers and isinstance(providers["anthropic"]["enabled"], bool)
    model = providers["anthropic"]["models"][0]
    assert {"name", "input_price", "output_price", "cache_read_price", "context_window", "capabilities"} <= set(model)
    assert "api_key" not in str(catalog)


def test_platform_manages_tenants_and_built_in_models(stack, fake):
    platform = Api(stack, make_token(stack, None))
    name = f"org-{secrets.token_hex(3)}"
    created = ok(platform.post("/tenants", json={"name": name}), 201)
    assert name in [t["name"] for t in ok(platform.get("/tenants"))]
    assert ok(platform.get(f"/tenants/{created['id']}"))["name"] == name
    error(platform.post("/tenants", json={"name": name}), 409)

    up = ok(
        platform.post("/platform/upstreams", json={"name": name, "dialect": "openai", "base_url": fake.url + "/v1"}),
        201,
    )
    assert up["platform"] is True
    model = ok(
        platform.post("/platform/models", json={"name": f"{name}-m", "upstream_id": up["id"], "upstream_model": "b"}),
        201,
    )
    assert model["id"] in [m["id"] for m in ok(platform.get("/platform/models"))]
    # A tenant's key (custom models off) reaches the built-in model; the tenant's own lists don't show it.
    tenant_api = Api(stack, make_token(stack, stack.seed.tenant()))
    key = ok(tenant_api.post("/keys", json={}), 201)["secret"]
    ok(chat(stack, key, f"{name}-m"))
    assert fake.requests[-1].json["model"] == "b"
    assert ok(tenant_api.get("/models")) == [] and ok(tenant_api.get("/upstreams")) == []
    error(tenant_api.get(f"/models/{model['id']}"), 404)

    # A platform token acts on a tenant's objects by naming it.
    on_tenant = ok(platform.post(f"/keys?tenant_id={created['id']}", json={"name": "ops"}), 201)
    assert [k["id"] for k in ok(platform.get("/keys", params={"tenant_id": created["id"]}))] == [on_tenant["id"]]
    assert error(platform.get("/keys"), 400)["param"] == "tenant_id"
    error(platform.get("/keys", params={"tenant_id": "no-such-tenant"}), 404)

    ok(platform.delete(f"/platform/models/{model['id']}"), 204)
    ok(platform.delete(f"/platform/upstreams/{up['id']}"), 204)
    platform.close()
    tenant_api.close()


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/upstreams", {"dialect": "openai", "base_url": "http://x/v1"}, 400, "name"),
        ("/upstreams", {"name": "u", "dialect": "grpc", "base_url": "http://x/v1"}, 400, "dialect"),
        ("/upstreams", {"name": "u", "dialect": "openai", "base_url": "ftp://x/v1"}, 400, "base_url"),
        ("/upstreams", {"name": "u", "dialect": "openai", "base_url": "http://u:p@x/v1"}, 400, "base_url"),
        ("/upstreams", {"name": "u", "dialect": "openai", "base_url": "http://10.1.2.3/v1"}, 400, "base_url"),
        (
            "/upstreams",
            {"name": "u", "dialect": "openai", "base_url": "http://x", "profile": {"bogus": 1}},
            400,
            "profile.bogus",
        ),
        ("/upstreams", {"name": "u", "dialect": "openai", "base_url": "http://x", "apikey": "k"}, 400, "apikey"),
        ("/upstreams", {"name": "u", "dialect": "openai", "base_url": "http://x", "timeout_s": -1}, 400, "timeout_s"),
        (
            "/upstreams",
            {"name": "u", "dialect": "openai", "base_url": "http://x", "extra_headers": {"a": "b\r\nc"}},
            400,
            "extra_headers",
        ),
        ("/models", {"name": "m", "upstream_id": "nope", "upstream_model": "x"}, 404, "upstream_id"),
        ("/models", {"name": "m", "upstream_model": "x"}, 400, "upstream_id"),
        ("/models", {"name": "has space", "upstream_id": "nope", "upstream_model": "x"}, 400, "name"),
        ("/models", {"name": "m", "upstream_id": "nope", "upstream_model": "x", "input_price": -1}, 400, "input_price"),
        ("/keys", {"expires_at": "2030-01-01T00:00:00"}, 400, "expires_at"),
        ("/keys", {"claude_code_profile": {"gpt": "x"}}, 400, "claude_code_profile"),
        ("/keys", {"aliases": [{"pattern": "a"}]}, 400, "aliases[0].model"),
        ("/keys", {"allow_custom_models": "yes please"}, 400, "allow_custom_models"),
        ("/users", {"email": "x@example.com", "password": "short"}, 400, "password"),
        ("/users", {"email": "not-an-email", "password": "long enough"}, 400, "email"),
        ("/users", {"email": "r@example.com", "password": "long enough", "role": "god"}, 400, "role"),
    ],
)
def test_bad_input_names_the_field(api, path, body, status, field):
    err = error(api.post(path, json=body), status)
    assert err["message"].startswith(field + ":") and err["param"] == field, err


def test_bad_model_profile_and_bad_json(api, fake):
    up = new_upstream(api, fake)
    body = {"name": "p", "upstream_id": up["id"], "upstream_model": "x", "profile": {"supports_top_k": "yes"}}
    assert error(api.post("/models", json=body), 400)["param"] == "profile.supports_top_k"
    err = error(api.post("/models", content=b"{not json", headers={"content-type": "application/json"}), 400)
    assert err["param"] == "body"
    err = error(api.patch(f"/upstreams/{up['id']}", json={"base_url": "gopher://x"}), 400)
    assert err["param"] == "base_url"
    err = error(
        api.patch(f"/upstreams/{up['id']}", json={"dialect": "anthropic", "profile": {"supports_stream_options": 3}}),
        400,
    )
    assert "supports_stream_options" in err["message"]


def test_openapi_schema_lists_the_management_api_only(stack):
    schema = ok(httpx.get(stack.url + "/api/v1/schema/openapi.json"))
    paths = set(schema["paths"])
    assert {"/api/v1/models", "/api/v1/upstreams", "/api/v1/keys", "/api/v1/catalog"} <= paths
    assert not any(p.startswith("/v1/") for p in paths)
    assert schema["components"]["securitySchemes"]["managementToken"]["scheme"] == "bearer"
    assert "secret" in schema["components"]["schemas"]["KeyCreated"]["properties"]
    assert "api_key" not in schema["components"]["schemas"]["Upstream"]["properties"]


def test_every_change_is_audited(stack, api, fake, tenant):
    up = new_upstream(api, fake, api_key=UP_KEY)
    ok(api.patch(f"/upstreams/{up['id']}", json={"api_key": "up-secret-audited"}))
    model = ok(api.post("/models", json={"name": "aud", "upstream_id": up["id"], "upstream_model": "x"}), 201)
    ok(api.patch(f"/models/{model['id']}", json={"input_price": 2}))
    key = ok(api.post("/keys", json={"name": "k"}), 201)
    ok(api.patch(f"/keys/{key['id']}", json={"name": "k2"}))
    ok(api.post(f"/keys/{key['id']}/revoke"))
    ok(api.delete(f"/models/{model['id']}"), 204)
    ok(api.delete(f"/upstreams/{up['id']}"), 204)
    label = ok(api.get("/me"))["label"]
    rows = stack.seed.run(
        lambda s: _scalars(
            s, sa.select(AuditLog).where(AuditLog.tenant_id == tenant.id, AuditLog.actor == label).order_by(AuditLog.id)
        )
    )
    actions = [r.action for r in rows]
    assert actions == [
        "upstream.create",
        "upstream.update",
        "model.create",
        "model.update",
        "key.create",
        "key.update",
        "key.revoke",
        "model.delete",
        "upstream.delete",
    ]
    assert "up-secret" not in str([r.detail for r in rows])


async def _scalars(session: Any, query: Any) -> list[Any]:
    return list(await session.scalars(query))


@pytest.mark.parametrize(
    "name",
    ["acme\r\nINFO forged log line", "evil\u202eedoc", "tab\tname", "left\u2066isolate\u2069"],
    ids=["crlf", "rlo", "control", "isolate"],
)
def test_names_refuse_control_and_bidi_characters(stack, api, fake, name):
    """Issue 12.10: tenant, upstream, model and key names are one printable line without bidi tricks."""
    platform = Api(stack, make_token(stack, None))
    assert "not allowed" in error(platform.post("/tenants", json={"name": name}), 400)["message"]
    body = {"name": name, "dialect": "openai", "base_url": fake.url + "/v1"}
    assert "not allowed" in error(api.post("/upstreams", json=body), 400)["message"]
    up = new_upstream(api, fake)
    model = {"name": name.replace(" ", ""), "upstream_id": up["id"], "upstream_model": "x"}
    assert error(api.post("/models", json=model), 400)
    assert "not allowed" in error(api.post("/keys", json={"name": name}), 400)["message"]
    ok(platform.post("/tenants", json={"name": f"plain name {secrets.token_hex(3)}"}), 201)  # spaces stay fine
