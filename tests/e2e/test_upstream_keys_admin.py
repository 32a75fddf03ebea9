"""An upstream's key pool through its three management surfaces, on each backend: ``relay upstreams keys``,
``/api/v1/[platform/]upstreams/{id}/keys`` and the admin UI's Keys section (its forms, CSRF and all).

A pool key's secret never comes back out of any of them; another tenant's pool is "not found"; a member reads
but never changes; every change goes through ``gateway.manage.upstream_keys`` (so it is audited).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from test_admin_auth import signed_in
from test_cli_verbs import Relay, new_tenant
from test_management_api import Api, error, make_token, new_upstream, ok

from gateway.db.tables import AuditLog, UpstreamKeyRow, UsageEvent
from gateway.manage import upstream_keys
from gateway.manage.documents import UpstreamKey
from gateway.settings import Settings

FIRST = "sk-first-secret-" + "a" * 12 + "AAA1"
SECOND = "sk-second-secret-" + "b" * 12 + "BBB2"
THIRD = "sk-third-secret-" + "c" * 12 + "CCC3"


@pytest.fixture
def relay(backend: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Relay:
    return Relay(backend[1], monkeypatch, capsys)


def _actions(stack: Any, tenant_id: str) -> list[tuple[str, str]]:
    async def run(s: Any) -> list[tuple[str, str]]:
        query = sa.select(AuditLog.action, AuditLog.actor).where(
            AuditLog.tenant_id == tenant_id, AuditLog.action.like("upstream_key.%")
        )
        return [(a, b) for a, b in await s.execute(query)]

    return stack.seed.run(run)


# --- the CLI ---


def test_cli_verbs_add_list_update_disable_enable_remove(relay):
    tenant = new_tenant(relay)
    relay.ok("upstreams", "add", "up", "--tenant", tenant, "--dialect", "openai", "--base-url", "http://127.0.0.1:9/v1",
             "--api-key-stdin", stdin=FIRST + "\n")  # fmt: skip
    scope = ("--tenant", tenant)
    out = relay.ok("upstreams", "keys", "add", "up", *scope, "--api-key-stdin", "--name", "backup", "--weight", "3",
                   "--priority", "2", "--rpm", "60", stdin=SECOND + "\n")  # fmt: skip
    assert out.startswith("key ") and "(backup)" in out and SECOND not in out and out.count("\n") == 1
    added_id = out.split()[1]

    listed = relay.json("upstreams", "keys", "list", "up", *scope)
    assert set(listed[0]) == set(UpstreamKey.__struct_fields__)  # the management API's field names
    assert [(k["name"], k["hint"], k["weight"], k["priority"], k["rpm"]) for k in listed] == [
        ("default", "…AAA1", 1, 1, None),
        ("backup", "…BBB2", 3, 2, 60),
    ]
    assert listed[1]["id"] == added_id
    lines = relay.ok("upstreams", "keys", "list", "up", *scope).splitlines()
    assert len(lines) == 2 and lines[1].split("\t")[:3] == [added_id, "backup", "…BBB2"]
    assert "weight 3" in lines[1] and "priority 2" in lines[1] and "rpm/tpm 60/-" in lines[1] and "active" in lines[1]

    # a key is named by its id or its name; --rpm 0 removes the key's own limit
    out = relay.ok(
        "upstreams", "keys", "update", "up", "backup", *scope, "--weight", "5", "--rpm", "0", "--tpm", "9000"
    )
    assert out.count("\n") == 1 and "rpm, tpm, weight" in out
    doc = relay.json("upstreams", "keys", "list", "up", *scope)[1]
    assert (doc["weight"], doc["rpm"], doc["tpm"]) == (5, None, 9000)

    out = relay.ok("upstreams", "keys", "disable", "up", added_id, *scope, "--reason", "billing  ran out")
    assert out.count("\n") == 1 and "disabled" in out
    line = relay.ok("upstreams", "keys", "list", "up", *scope).splitlines()[1]
    assert line.endswith("disabled: billing ran out")
    doc = relay.json("upstreams", "keys", "list", "up", *scope)[1]
    assert doc["state"] == "disabled" and doc["disabled_at"] and doc["disabled_reason"] == "billing ran out"
    assert relay.json("upstreams", "list", "--tenant", tenant)[0]["has_api_key"] is True  # the first still serves

    relay.ok("upstreams", "keys", "enable", "up", added_id, *scope)
    doc = relay.json("upstreams", "keys", "list", "up", *scope)[1]
    assert doc["state"] == "active" and doc["disabled_reason"] is None and doc["disabled_at"] is None

    out = relay.ok("upstreams", "keys", "remove", "up", added_id, *scope)
    assert out.count("\n") == 1 and "removed" in out
    assert [k["name"] for k in relay.json("upstreams", "keys", "list", "up", *scope)] == ["default"]
    everything = relay.ok("upstreams", "keys", "list", "up", *scope) + relay.ok("upstreams", "show", "up", *scope)
    assert FIRST not in everything and SECOND not in everything


def test_cli_errors_are_one_line(relay):
    tenant = new_tenant(relay)
    relay.ok("upstreams", "add", "up", "--tenant", tenant, "--dialect", "openai", "--base-url", "http://127.0.0.1:9/v1")
    scope = ("--tenant", tenant)
    add = ("upstreams", "keys", "add", "up", *scope, "--api-key-stdin")
    assert "upstream 'nope' not found" in relay.fails("upstreams", "keys", "list", "nope", *scope)
    assert "not found" in relay.fails("upstreams", "keys", "add", "nope", *scope, "--api-key-stdin", stdin="k\n")
    assert "has no key 'missing'" in relay.fails("upstreams", "keys", "disable", "up", "missing", *scope)
    assert "has no key 'missing'" in relay.fails("upstreams", "keys", "remove", "up", "missing", *scope)
    assert "empty" in relay.fails(*add, stdin="   \n")
    assert "standard input was empty" in relay.fails(*add, stdin="")
    assert "weight" in relay.fails(*add, "--weight", "5000", stdin=SECOND + "\n")
    assert "priority" in relay.fails(*add, "--priority", "0", stdin=SECOND + "\n")
    assert "rpm" in relay.fails(*add, "--rpm", "-1", stdin=SECOND + "\n")
    assert relay.json("upstreams", "keys", "list", "up", *scope) == []  # nothing half-added
    relay.ok(*add, "--name", "only", stdin=SECOND + "\n")
    assert "weight" in relay.fails("upstreams", "keys", "update", "up", "only", *scope, "--weight", "-1")
    assert "nothing to change" in relay.fails("upstreams", "keys", "update", "up", "only", *scope)
    other = new_tenant(relay)  # another tenant's upstream of the same name does not exist for this one
    assert "not found" in relay.fails("upstreams", "keys", "list", "up", "--tenant", other)


# --- the management API ---


def test_api_crud_keeps_the_secret_write_only(stack, fake):
    tenant = stack.seed.tenant()
    api = Api(stack, make_token(stack, tenant, "admin"))
    up = new_upstream(api, fake, api_key=FIRST)
    base = f"/upstreams/{up['id']}/keys"
    [first] = ok(api.get(base))
    assert first["name"] == "default" and first["hint"] == "…AAA1" and first["state"] == "active"

    added = ok(api.post(base, json={"api_key": SECOND, "name": "backup", "weight": 2, "priority": 3, "tpm": 500}), 201)
    assert (added["name"], added["hint"], added["weight"], added["priority"], added["tpm"], added["rpm"]) == (
        "backup", "…BBB2", 2, 3, 500, None,
    )  # fmt: skip
    assert [k["id"] for k in ok(api.get(base))] == [first["id"], added["id"]]
    assert [k["name"] for k in ok(api.get(f"/upstreams/{up['id']}"))["keys"]] == ["default", "backup"]

    changed = ok(api.patch(f"{base}/{added['id']}", json={"weight": 7, "rpm": 30, "tpm": None, "name": "spare"}))
    assert (changed["weight"], changed["rpm"], changed["tpm"], changed["name"]) == (7, 30, None, "spare")
    off = ok(api.patch(f"{base}/{added['id']}", json={"state": "disabled", "disabled_reason": "quota"}))
    assert off["state"] == "disabled" and off["disabled_reason"] == "quota" and off["disabled_at"]
    on = ok(api.patch(f"{base}/{added['id']}", json={"state": "active"}))
    assert on["state"] == "active" and on["disabled_reason"] is None

    for body, param in (
        ({"weight": 1001}, "weight"),
        ({"priority": 0}, "priority"),
        ({"rpm": -1}, "rpm"),
        ({"state": "cooling"}, "state"),
        ({"disabled_reason": "why"}, "disabled_reason"),
        ({"colour": "red"}, "colour"),
    ):
        assert error(api.patch(f"{base}/{added['id']}", json=body), 400)["param"] == param, body
    assert error(api.post(base, json={"api_key": ""}), 400)["param"] == "api_key"
    assert error(api.post(base, json={"api_key": "   "}), 400)["code"] == "invalid_request"
    assert error(api.post(base, json={"api_key": THIRD, "weight": -1}), 400)["param"] == "weight"
    assert error(api.patch(f"{base}/nope", json={"weight": 1}), 404)["code"] == "not_found"
    assert error(api.delete(f"{base}/nope"), 404)["code"] == "not_found"
    assert error(api.get("/upstreams/nope/keys"), 404)["code"] == "not_found"

    ok(api.delete(f"{base}/{added['id']}"), 204)
    assert [k["id"] for k in ok(api.get(base))] == [first["id"]]
    texts = api.texts()
    assert FIRST not in texts and SECOND not in texts
    actions = [a for a, _ in _actions(stack, tenant.id)]
    assert {"upstream_key.add", "upstream_key.update", "upstream_key.disable", "upstream_key.enable",
            "upstream_key.remove"} <= set(actions)  # fmt: skip
    api.close()


def test_api_another_tenant_and_a_member_cannot_change_a_pool(stack, fake):
    tenant = stack.seed.tenant()
    owner = Api(stack, make_token(stack, tenant, "admin"))
    up = new_upstream(owner, fake, api_key=FIRST)
    base = f"/upstreams/{up['id']}/keys"
    [first] = ok(owner.get(base))

    intruder = Api(stack, make_token(stack, stack.seed.tenant(), "owner"))
    for r in (
        intruder.get(base),
        intruder.post(base, json={"api_key": THIRD}),
        intruder.patch(f"{base}/{first['id']}", json={"state": "disabled"}),
        intruder.delete(f"{base}/{first['id']}"),
        intruder.get(base, params={"tenant_id": tenant.id}),
    ):
        assert error(r, 404)["code"] == "not_found"
    member = Api(stack, make_token(stack, tenant, "member"))
    assert [k["id"] for k in ok(member.get(base))] == [first["id"]]  # members read
    for r in (
        member.post(base, json={"api_key": THIRD}),
        member.patch(f"{base}/{first['id']}", json={"state": "disabled"}),
        member.delete(f"{base}/{first['id']}"),
    ):
        assert error(r, 403)["code"] == "permission_denied"
    # the platform routes hold the built-ins only
    assert error(owner.get(f"/platform/upstreams/{up['id']}/keys"), 403)["code"] == "permission_denied"
    platform = Api(stack, make_token(stack, None))
    assert error(platform.get(f"/platform/upstreams/{up['id']}/keys"), 404)["code"] == "not_found"
    built_in = stack.seed.upstream(None, base_url=fake.url + "/v1", api_key=FIRST, name=f"p-{secrets.token_hex(3)}")
    pbase = f"/platform/upstreams/{built_in.id}/keys"
    added = ok(platform.post(pbase, json={"api_key": SECOND, "name": "platform-spare"}), 201)
    assert [k["name"] for k in ok(platform.get(pbase))] == ["default", "platform-spare"]
    assert ok(platform.patch(f"{pbase}/{added['id']}", json={"state": "disabled"}))["state"] == "disabled"
    ok(platform.delete(f"{pbase}/{added['id']}"), 204)
    assert error(owner.get(f"/upstreams/{built_in.id}/keys"), 404)["code"] == "not_found"

    assert ok(owner.get(base)) == [first]  # untouched
    for client in (owner, intruder, member, platform):
        client.close()


# --- the admin UI ---


def _page_keys(html: str) -> str:
    return html.split('id="keys"')[1].split("Replace the first key")[0]


def test_admin_ui_add_disable_enable_remove_through_the_forms(stack, fake):
    tenant = stack.seed.tenant()
    up = stack.seed.upstream(tenant, base_url=fake.url + "/v1", api_key=FIRST)
    admin = signed_in(stack, tenant, role="admin")
    path = f"/upstreams/{up.id}"
    keys = _page_keys(admin.get(path).text)
    assert "default" in keys and "••••AAA1" in keys and "Add key" in keys and FIRST not in keys

    form = {
        "new_key": SECOND,
        "key_name": "backup",
        "key_weight": "2",
        "key_priority": "1",
        "key_rpm": "",
        "key_tpm": "",
    }
    r = admin.post(f"{path}/keys", form, csrf_from=path)
    assert r.status_code == 303 and "flash=" in r.headers["location"]
    page = admin.follow(r).text
    assert "Key “backup” added to the pool." in page and "••••BBB2" in page and SECOND not in page
    assert "Key “backup” added" not in admin.get(path).text  # the flash is shown once
    assert "2 keys" in admin.get("/upstreams").text

    async def pool(s: Any) -> list[UpstreamKeyRow]:
        return list(await s.scalars(sa.select(UpstreamKeyRow).where(UpstreamKeyRow.upstream_id == up.id)))

    backup = next(k for k in stack.seed.run(pool) if k.name == "backup")
    assert backup.weight == 2 and backup.rpm_limit is None

    # bad input: 400 beside its field, the secret not echoed back
    for bad, field in (({"key_weight": "5000"}, "key_weight"), ({"key_priority": "0"}, "key_priority"),
                       ({"new_key": ""}, "new_key"), ({"key_rpm": "x"}, "key_rpm")):  # fmt: skip
        r = admin.post(f"{path}/keys", {**form, **bad}, csrf_from=path)
        assert r.status_code == 400 and f'id="e-{field}"' in r.text and SECOND not in r.text, bad
    assert len(stack.seed.run(pool)) == 2
    # without the CSRF token nothing changes
    assert admin.http.post(admin.base + f"{path}/keys/{backup.id}/disable", data={}).status_code == 403

    r = admin.post(f"{path}/keys/{backup.id}/disable", {}, csrf_from=path)
    page = admin.follow(r).text
    assert "Key “backup” disabled" in page and "disabled in the admin console" in _page_keys(page)
    assert "2 keys (1 disabled)" in admin.get("/upstreams").text
    assert next(k for k in stack.seed.run(pool) if k.id == backup.id).state == "disabled"
    r = admin.post(f"{path}/keys/{backup.id}/enable", {}, csrf_from=path)
    assert "Key “backup” enabled" in admin.follow(r).text
    assert next(k for k in stack.seed.run(pool) if k.id == backup.id).state == "active"
    r = admin.post(f"{path}/keys/{backup.id}/remove", {}, csrf_from=path)
    assert "Key “backup” removed" in admin.follow(r).text
    assert [k.name for k in stack.seed.run(pool)] == ["default"]
    assert admin.post(f"{path}/keys/{backup.id}/enable", {}, csrf_from=path).status_code == 404
    assert admin.post(f"{path}/keys/{backup.id}/explode", {}, csrf_from=path).status_code == 404

    # the "replace key" form still replaces the pool's first key
    r = admin.post(f"{path}/key", {"api_key": THIRD}, csrf_from=path)
    assert "••••CCC3" in _page_keys(admin.follow(r).text)
    assert [(k.name, upstream_keys.key_hint(k, stack.seed.box)) for k in stack.seed.run(pool)] == [("default", "…CCC3")]
    actions = _actions(stack, tenant.id)
    assert {a for a, _ in actions} >= {"upstream_key.add", "upstream_key.disable", "upstream_key.enable",
                                       "upstream_key.remove"}  # fmt: skip
    assert all(actor.startswith("user:u-") for _, actor in actions)

    member = signed_in(stack, tenant, role="member")
    keys = _page_keys(member.get(path).text + "Replace the first key")
    assert "••••CCC3" in keys and "Add key" not in keys and "/remove" not in keys
    r = member.post(f"{path}/keys", form, csrf_from=path)
    assert r.status_code == 403
    intruder = signed_in(stack, stack.seed.tenant(), role="admin")
    r = intruder.post(f"{path}/keys", form, csrf_from="/upstreams")
    assert r.status_code == 404 and len(stack.seed.run(pool)) == 1


def test_the_keys_table_counts_each_keys_last_30_days(stack, fake):
    tenant = stack.seed.tenant()
    up = stack.seed.upstream(tenant, base_url=fake.url + "/v1", api_key=FIRST)
    spare = stack.seed.run(lambda s: upstream_keys.add_key(s, up, SECOND, stack.seed.box, name="spare"))
    first_id = stack.seed.run(lambda s: upstream_keys.get_key(s, up, "default")).id
    now = datetime.now(UTC)

    def event(key_id: str, status: int, tokens: tuple[int, int, int], age: timedelta) -> UsageEvent:
        return UsageEvent(
            request_id="r-" + secrets.token_hex(8), created_at=now - age, tenant_id=tenant.id, model="m",
            upstream_id=up.id, upstream_key_id=key_id, door_dialect="openai", input_tokens=tokens[0],
            output_tokens=tokens[1], cache_read_tokens=tokens[2], status=status,
        )  # fmt: skip

    async def insert(s: Any) -> None:
        s.add_all([
            event(first_id, 200, (1000, 200, 50), timedelta(hours=1)),
            event(first_id, 200, (500, 100, 0), timedelta(days=29)),
            event(first_id, 429, (0, 0, 0), timedelta(minutes=5)),
            event(first_id, 200, (9999, 9999, 0), timedelta(days=31)),  # outside the window
            event(spare.id, 401, (0, 0, 0), timedelta(minutes=1)),
            event("someone-elses", 200, (7, 7, 0), timedelta(minutes=1)),  # not this upstream's key
        ])  # fmt: skip

    stack.seed.run(insert)
    usage = stack.seed.run(lambda s: upstream_keys.key_usage(s, up.id, now - timedelta(days=30)))
    assert usage == {
        first_id: upstream_keys.KeyUsage(requests=3, input_tokens=1500, output_tokens=300, cache_read_tokens=50,
                                         errors=1),
        spare.id: upstream_keys.KeyUsage(requests=1, errors=1),
    }  # fmt: skip
    rows = _page_keys(signed_in(stack, tenant, role="member").get(f"/upstreams/{up.id}").text).split("<tr>")
    first_row = next(r for r in rows if "default" in r)
    assert "1.5k / 300" in first_row and "+50 cached" in first_row and '<span class="badge bad">1</span>' in first_row
