"""The ``relay`` verbs of issue 13 on each backend, run in-process (``gateway.cli.main``) against a real database.

Every failure must be one line on stderr (``relay: error: …``), a non-zero status, and no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import secrets
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from support import SECRET

from gateway.cli import main
from gateway.cli.run import run
from gateway.db.tables import AuditLog, UsageDaily
from gateway.settings import Settings

PASSWORD = "correct horse battery staple"


@dataclass
class Result:
    code: int
    out: str
    err: str


class Relay:
    """``relay ARGS`` in this process, on one backend's database."""

    def __init__(self, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self.settings = settings
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        monkeypatch.setenv("RELAY_DATABASE_URL", settings.database_url)
        monkeypatch.setenv("RELAY_SECRET_KEY", SECRET)
        monkeypatch.setenv("RELAY_UPSTREAM_ALLOWLIST", "127.0.0.1")

    def __call__(self, *args: str, stdin: str = "") -> Result:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: usage errors and --help
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return Result(code, out, err)

    def ok(self, *args: str, stdin: str = "") -> str:
        r = self(*args, stdin=stdin)
        assert r.code == 0, r.err
        assert r.err == "", r.err
        return r.out

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: str, stdin: str = "", code: int = 1) -> str:
        """The one error line of a command that must fail."""
        r = self(*args, stdin=stdin)
        assert r.code == code, (r.code, r.out, r.err)
        assert "Traceback" not in r.err
        assert r.err.startswith("relay: error: ") and r.err.count("\n") == 1, r.err
        return r.err

    def execute(self, statement: Any) -> Any:
        """One statement in its own committed transaction; the rows of a SELECT."""

        async def go() -> Any:
            engine = create_async_engine(self.settings.database_url, poolclass=NullPool)
            try:
                async with engine.begin() as conn:
                    result = await conn.execute(statement)
                    return list(result.all()) if result.returns_rows else None
            finally:
                await engine.dispose()

        return asyncio.run(go())


@pytest.fixture
def relay(backend: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Relay:
    return Relay(backend[1], monkeypatch, capsys)


def new_tenant(relay: Relay) -> str:
    name = f"v-{secrets.token_hex(4)}"
    relay.ok("tenants", "create", name)
    return name


def test_tenants_list_and_delete(relay):
    tenant = new_tenant(relay)
    listed = relay.json("tenants", "list")
    doc = next(t for t in listed if t["name"] == tenant)
    assert set(doc) == {"id", "name", "created_at"}  # GET /api/v1/tenants's fields
    relay.ok("users", "create", f"o@{tenant}.example", "--tenant", tenant, "--role", "owner", "--password-stdin",
             stdin=PASSWORD + "\n")  # fmt: skip
    relay.ok("keys", "create", "--tenant", tenant)
    relay.ok("upstreams", "add", "u", "--tenant", tenant, "--dialect", "openai", "--base-url", "http://127.0.0.1:9/v1")
    relay.ok("models", "add", "m", "--tenant", tenant, "--upstream", "u", "--upstream-model", "x")
    relay.execute(
        sa.insert(UsageDaily).values(tenant_id=doc["id"], day=date(2026, 1, 1), model="m", key_id="", requests=1)
    )

    assert "1 live key" in relay.fails("tenants", "delete", tenant)
    assert any(t["name"] == tenant for t in relay.json("tenants", "list"))
    assert "deleted" in relay.ok("tenants", "delete", tenant, "--force")
    assert not any(t["name"] == tenant for t in relay.json("tenants", "list"))
    assert "not found" in relay.fails("tenants", "delete", tenant)
    # Billing history and the audit trail stay; the tenant's objects are gone.
    assert relay.execute(sa.select(UsageDaily.requests).where(UsageDaily.tenant_id == doc["id"])) == [(1,)]
    actions = {a for (a,) in relay.execute(sa.select(AuditLog.action).where(AuditLog.tenant_id == doc["id"]))}
    assert {"tenant.create", "key.create", "tenant.delete"} <= actions
    assert all(u["tenant_id"] != doc["id"] for u in relay.json("users", "list"))


def test_a_tenant_without_live_keys_deletes_without_force(relay):
    tenant = new_tenant(relay)
    key = relay.ok("keys", "create", "--tenant", tenant).splitlines()[-1]
    relay.ok("keys", "revoke", key[:10])
    relay.ok("tenants", "delete", tenant)


def test_users_list_delete_and_reset_password(relay):
    tenant = new_tenant(relay)
    owner, member = f"owner@{tenant}.example", f"member@{tenant}.example"
    for email, role in ((owner, "owner"), (member, "member")):
        relay.ok("users", "create", email, "--tenant", tenant, "--role", role, "--password-stdin", stdin=PASSWORD)
    users = relay.json("users", "list", "--tenant", tenant)
    assert [u["email"] for u in users] == [member, owner]
    assert set(users[0]) >= {"id", "email", "role", "is_platform_admin", "created_at"}  # GET /api/v1/users's
    assert "owner" in relay.ok("users", "list")  # every tenant's, as a table

    out = relay.ok("users", "reset-password", member, "--tenant", tenant)
    one_time = out.splitlines()[-1]
    assert len(one_time) >= 12 and " " not in one_time
    assert {u["email"]: u["must_change_password"] for u in relay.json("users", "list", "--tenant", tenant)} == {
        member: True,
        owner: False,
    }
    out = relay.ok("users", "reset-password", member, "--password-stdin", stdin="another long password\n")
    assert "another long password" not in out
    assert not next(u for u in relay.json("users", "list", "--tenant", tenant) if u["email"] == member)[
        "must_change_password"
    ]
    assert "at least 12" in relay.fails("users", "reset-password", member, "--password-stdin", stdin="short\n")
    assert "standard input was empty" in relay.fails("users", "reset-password", member, "--password-stdin")

    relay.ok("users", "delete", member)
    assert "not found" in relay.fails("users", "delete", member)
    assert "at least one owner" in relay.fails("users", "delete", owner, "--tenant", tenant)

    other = new_tenant(relay)
    relay.ok("users", "create", owner, "--tenant", other, "--password-stdin", stdin=PASSWORD)
    assert "several tenants" in relay.fails("users", "reset-password", owner)
    assert "several tenants" in relay.fails("users", "delete", owner)
    relay.ok("users", "delete", owner, "--tenant", other)


def test_upstreams_list_show_update_delete(relay, monkeypatch):
    tenant = new_tenant(relay)
    secret = "sk-upstream-" + secrets.token_hex(8)
    relay.ok("upstreams", "add", "up", "--tenant", tenant, "--dialect", "openai", "--base-url", "http://127.0.0.1:9/v1",
             "--api-key-stdin", stdin=secret + "\n")  # fmt: skip
    relay.ok("models", "add", "m1", "--tenant", tenant, "--upstream", "up", "--upstream-model", "x")

    listed = relay.json("upstreams", "list", "--tenant", tenant)
    assert [u["name"] for u in listed] == ["up"]
    assert listed[0]["has_api_key"] and listed[0]["api_key_hint"] == "…" + secret[-4:]
    everything = relay.ok("upstreams", "list") + relay.ok("upstreams", "show", "up", "--tenant", tenant)
    assert secret not in everything and secret[-4:] in everything

    monkeypatch.setenv("NEW_UP_KEY", "sk-new-" + "z" * 20)
    out = relay.ok("upstreams", "update", "up", "--tenant", tenant, "--base-url", "http://127.0.0.1:10/v1",
                   "--timeout", "42", "--header", "X-Org: acme", "--api-key-env", "NEW_UP_KEY")  # fmt: skip
    assert "z" * 20 not in out
    shown = json.loads(relay.ok("upstreams", "show", "up", "--tenant", tenant))
    assert shown["base_url"] == "http://127.0.0.1:10/v1" and shown["timeout_s"] == 42
    assert shown["api_key_hint"] == "…zzzz" and list(shown["extra_headers"]) == ["X-Org"]
    relay.ok("upstreams", "update", "up", "--tenant", tenant, "--remove-api-key", "--header", "", "--timeout", "0")
    shown = json.loads(relay.ok("upstreams", "show", "up", "--tenant", tenant))
    assert not shown["has_api_key"] and shown["extra_headers"] == {} and shown["timeout_s"] is None

    assert "used by models m1" in relay.fails("upstreams", "delete", "up", "--tenant", tenant)
    assert "m1" in relay.ok("upstreams", "delete", "up", "--tenant", tenant, "--force")
    assert relay.json("upstreams", "list", "--tenant", tenant) == []
    assert relay.json("models", "list", "--tenant", tenant) == []


def test_models_update_and_delete(relay):
    tenant = new_tenant(relay)
    for up in ("a", "b"):
        relay.ok(
            "upstreams", "add", up, "--tenant", tenant, "--dialect", "openai", "--base-url", "http://127.0.0.1:9/v1"
        )
    relay.ok("models", "add", "m", "--tenant", tenant, "--upstream", "a", "--upstream-model", "x", "--input-price", "1",
             "--fallback", "f1", "--context-window", "1000")  # fmt: skip
    relay.ok("models", "update", "m", "--tenant", tenant, "--output-price", "4", "--upstream", "b",
             "--upstream-model", "y", "--fallback", "f2", "--fallback", "f3", "--no-enabled")  # fmt: skip
    (doc,) = relay.json("models", "list", "--tenant", tenant)
    assert (doc["upstream_name"], doc["upstream_model"], doc["input_price"], doc["output_price"]) == ("b", "y", 1, 4)
    assert doc["fallbacks"] == ["f2", "f3"] and doc["context_window"] == 1000 and doc["enabled"] is False
    relay.ok("models", "update", "m", "--tenant", tenant, "--fallback", "", "--context-window", "0", "--rename", "n")
    (doc,) = relay.json("models", "list", "--tenant", tenant)
    assert doc["name"] == "n" and doc["fallbacks"] == [] and doc["context_window"] is None
    assert "nothing to change" in relay.fails("models", "update", "n", "--tenant", tenant)
    assert "must not be negative" in relay.fails("models", "update", "n", "--tenant", tenant, "--input-price", "-1")
    assert "upstream 'zz' not found" in relay.fails("models", "update", "n", "--tenant", tenant, "--upstream", "zz")
    relay.ok("models", "delete", "n", "--tenant", tenant)
    assert "model 'n' not found" in relay.fails("models", "delete", "n", "--tenant", tenant)


def test_keys_update_sets_and_clears_fields(relay):
    tenant = new_tenant(relay)
    prefix = relay.ok("keys", "create", "--tenant", tenant, "--name", "k").splitlines()[-1][:10]
    aliases = ("--alias", "claude-*=m1", "--alias", "gpt-*=m2")
    relay.ok("keys", "update", prefix, *aliases, "--models", "m1,m2", "--expires", "2030-01-02T03:04:05Z",
             "--name", "renamed", "--rpm", "7", "--allow-custom-models")  # fmt: skip
    (key,) = relay.json("keys", "list", "--tenant", tenant)
    assert key["aliases"] == [{"pattern": "claude-*", "model": "m1"}, {"pattern": "gpt-*", "model": "m2"}]
    assert key["allowed_models"] == ["m1", "m2"] and key["name"] == "renamed" and key["allow_custom_models"]
    assert key["expires_at"].startswith("2030-01-02T03:04:05")
    relay.ok("keys", "update", prefix, "--alias", "", "--models", "", "--expires", "never", "--name", "")
    (key,) = relay.json("keys", "list", "--tenant", tenant)
    assert (key["aliases"], key["allowed_models"], key["expires_at"], key["name"]) == ([], [], None, "")
    assert "rpm 7" in relay.ok("keys", "update", prefix, "--tpm", "100")  # the limit flags work as before
    assert "ISO 8601" in relay.fails("keys", "update", prefix, "--expires", "tomorrow")
    assert "PATTERN=MODEL" in relay.fails("keys", "update", prefix, "--alias", "nomodel")


def test_every_list_has_json(relay):
    tenant = new_tenant(relay)
    relay.ok("tokens", "create", "--tenant", tenant, "--role", "member")
    relay.ok("keys", "create", "--tenant", tenant)
    (token,) = relay.json("tokens", "list", "--tenant", tenant)
    assert token["role"] == "member" and token["state"] == "active" and token["prefix"].startswith("rlm-")
    (key,) = relay.json("keys", "list", "--tenant", tenant)
    assert key["state"] == "active" and "secret" not in key
    providers = relay.json("providers", "list")
    assert {"name", "enabled", "key_source", "base_url"} <= set(providers[0])
    catalog = relay.json("catalog", "list", "--provider", "deepseek")
    assert [p["name"] for p in catalog["providers"]] == ["deepseek"] and catalog["providers"][0]["models"]
    assert isinstance(relay.json("models", "list", "--platform"), list)
    assert relay.json("upstreams", "list", "--tenant", tenant) == []
    assert isinstance(relay.json("users", "list"), list)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["users", "create", "a@b.example", "--tenant", "x"], "", "--password-stdin"),  # no terminal to ask
        (["users", "create", "a@b.example", "--tenant", "no-such", "--password-stdin"], PASSWORD, "not found"),
        (["users", "reset-password", "nobody@nowhere.example"], "", "not found"),
        (["users", "delete", "nobody@nowhere.example", "--tenant", "no-such"], "", "not found"),
        (["tenants", "delete", "no-such-tenant"], "", "tenant 'no-such-tenant' not found"),
        (["upstreams", "show", "nope", "--platform"], "", "upstream 'nope' not found"),
        (["upstreams", "update", "nope", "--platform", "--timeout", "3"], "", "upstream 'nope' not found"),
        (["upstreams", "update", "nope", "--platform", "--profile", "{bad"], "", "--profile: not valid JSON"),
        (["upstreams", "update", "nope", "--platform"], "", "nothing to change"),
        (["upstreams", "delete", "nope", "--tenant", "no-such"], "", "not found"),
        (["models", "update", "nope", "--platform", "--input-price", "1"], "", "model 'nope' not found"),
        (["models", "update", "nope", "--platform", "--profile", "[1]"], "", "--profile: must be a JSON object"),
        (["keys", "update", "sk-nothere", "--name", "x"], "", "not found"),
        (["keys", "update", "sk-nothere", "--expires", "31/12/2030"], "", "ISO 8601"),
        (["usage", "--tenant", "no-such", "--since", "yesterday"], "", "--since"),
        (["catalog", "list", "--provider", "no-such"], "", "not a catalog provider"),
    ],
)
def test_bad_input_is_one_line(relay, args, stdin, message):
    assert message in relay.fails(*args, stdin=stdin)


def test_usage_errors_are_one_line_too(relay):
    assert "required: name" in relay.fails("tenants", "delete", code=2)
    assert "invalid int value" in relay.fails("keys", "update", "k", "--rpm", "many", code=2)
    assert "invalid choice" in relay.fails("nosuchcommand", code=2)


def test_an_unreachable_database_is_one_line(relay, monkeypatch):
    monkeypatch.setenv("RELAY_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    assert "database unavailable" in relay.fails("tenants", "list")


def test_interrupt_and_unexpected_errors_are_one_line(capsys):
    def interrupted(args: argparse.Namespace, settings: Settings) -> int:
        raise KeyboardInterrupt

    def broken(args: argparse.Namespace, settings: Settings) -> int:
        raise RuntimeError("something\nmultiline")

    assert run(argparse.Namespace(handler=interrupted)) == 130
    assert capsys.readouterr().err == "relay: error: interrupted\n"
    assert run(argparse.Namespace(handler=broken)) == 1
    assert capsys.readouterr().err == "relay: error: unexpected RuntimeError: something\n"


def test_users_create_without_a_terminal_from_a_real_shell(backend):
    """The issue's case, as a process: no TTY, no --password-stdin: one line, no traceback, no prompt hanging."""
    env = {"RELAY_DATABASE_URL": backend[1].database_url, "RELAY_SECRET_KEY": SECRET, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "users", "create", "a@b.example", "--tenant", "x"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == "relay: error: no terminal to ask for the password: pipe it in with --password-stdin\n"
