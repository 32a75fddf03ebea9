"""The `relay` command, as a user runs it from a shell, against each backend and the running gateway."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import SECRET, free_port

from gateway.testing.fake_upstream import Reply, ToolCall

RELAY = [sys.executable, "-m", "gateway"]


def relay(stack, *args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    full_env = {
        **os.environ,
        "RELAY_DATABASE_URL": stack.settings.database_url,
        "RELAY_SECRET_KEY": SECRET,
        "RELAY_UPSTREAM_ALLOWLIST": "127.0.0.1",  # the fake upstream lives on loopback
        **(env or {}),
    }
    return subprocess.run([*RELAY, *args], input=stdin, capture_output=True, text=True, env=full_env, timeout=60)


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_walkthrough_from_the_shell(stack, fake):
    tenant = f"cli-{time.monotonic_ns()}"
    ok(relay(stack, "tenants", "create", tenant))
    out = ok(
        relay(
            stack,
            "upstreams",
            "add",
            "fake-o",
            "--tenant",
            tenant,
            "--dialect",
            "openai",
            "--base-url",
            fake.url + "/v1",
            "--api-key-stdin",
            stdin="up-secret-from-stdin\n",
        )
    )
    assert "up-secret-from-stdin" not in out
    ok(
        relay(
            stack,
            "upstreams",
            "add",
            "fake-a",
            "--tenant",
            tenant,
            "--dialect",
            "anthropic",
            "--base-url",
            fake.url,
            "--api-key-env",
            "FAKE_KEY",
            env={"FAKE_KEY": "up-secret-from-env"},
        )
    )
    ok(
        relay(
            stack,
            "models",
            "add",
            "cli-gpt",
            "--tenant",
            tenant,
            "--upstream",
            "fake-o",
            "--upstream-model",
            "gpt-x",
            "--input-price",
            "2",
            "--output-price",
            "4",
        )
    )
    ok(
        relay(
            stack,
            "models",
            "add",
            "cli-claude",
            "--tenant",
            tenant,
            "--upstream",
            "fake-a",
            "--upstream-model",
            "claude-x",
        )
    )
    listing = ok(relay(stack, "models", "list", "--tenant", tenant))
    assert "cli-gpt" in listing and "cli-claude" in listing
    out = ok(
        relay(
            stack,
            "keys",
            "create",
            "--tenant",
            tenant,
            "--name",
            "laptop",
            "--allow-custom-models",
            "--alias",
            "claude-*=cli-claude",
        )
    )
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("sk-") and len(secret) == 51

    fake.enqueue(Reply(text="via cli-made key"))
    r = httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": "cli-gpt", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "via cli-made key"
    assert fake.requests[-1].headers["authorization"] == "Bearer up-secret-from-stdin"

    fake.enqueue(Reply(text="aliased"))
    r = httpx.post(
        stack.url + "/v1/messages",
        headers={"x-api-key": secret},
        json={"model": "claude-opus-4-8", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "cli-claude"
    assert fake.requests[-1].headers["x-api-key"] == "up-secret-from-env"

    keys = ok(relay(stack, "keys", "list", "--tenant", tenant))
    assert secret[:10] in keys and "active" in keys and secret not in keys
    ok(relay(stack, "keys", "revoke", secret[:10]))
    assert "revoked" in ok(relay(stack, "keys", "list", "--tenant", tenant))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = httpx.post(
            stack.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {secret}"},
            json={"model": "cli-gpt", "messages": [{"role": "user", "content": "hi"}]},
        )
        if r.status_code == 401:
            break
        time.sleep(0.2)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_users_create_with_password_stdin(stack):
    tenant = f"cli-u-{time.monotonic_ns()}"
    ok(relay(stack, "tenants", "create", tenant))
    out = ok(
        relay(
            stack,
            "users",
            "create",
            f"ann-{tenant}@example.com",
            "--tenant",
            tenant,
            "--role",
            "admin",
            "--password-stdin",
            stdin="correct horse battery\n",
        )
    )
    assert "admin" in out and "correct horse" not in out
    bad = relay(stack, "users", "create", "short@example.com", "--tenant", tenant, "--password-stdin", stdin="x\n")
    assert bad.returncode == 1 and "at least 12" in bad.stderr  # the UI's policy too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tenants", "create", ""], "must not be empty"),
        (
            ["upstreams", "add", "u", "--tenant", "no-such-tenant", "--dialect", "openai", "--base-url", "http://x/v1"],
            "tenant 'no-such-tenant' not found",
        ),
        (["upstreams", "add", "u", "--platform", "--dialect", "openai", "--base-url", "ftp://x"], "http(s) URL"),
        (
            [
                "upstreams",
                "add",
                "u",
                "--platform",
                "--dialect",
                "openai",
                "--base-url",
                "http://x/v1",
                "--api-key-env",
                "RELAY_NO_SUCH_VAR",
            ],
            "RELAY_NO_SUCH_VAR is not set",
        ),
        (
            [
                "upstreams",
                "add",
                "u",
                "--platform",
                "--dialect",
                "openai",
                "--base-url",
                "http://x/v1",
                "--profile",
                "[1",
            ],
            "--profile: not valid JSON",
        ),
        (
            ["models", "add", "m", "--platform", "--upstream", "no-such-up", "--upstream-model", "x"],
            "upstream 'no-such-up' not found",
        ),
        (["keys", "create", "--tenant", "no-such-tenant"], "not found"),
        (["keys", "revoke", "sk-nothere"], "not found"),
    ],
)
def test_errors_are_one_line_and_non_zero(stack, args, message):
    result = relay(stack, *args)
    assert result.returncode == 1
    assert result.stderr.startswith("relay: error:") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_bad_alias_and_expiry_rejected(stack):
    tenant = f"cli-k-{time.monotonic_ns()}"
    ok(relay(stack, "tenants", "create", tenant))
    r = relay(stack, "keys", "create", "--tenant", tenant, "--alias", "nomodel")
    assert r.returncode == 1 and "PATTERN=MODEL" in r.stderr
    r = relay(stack, "keys", "create", "--tenant", tenant, "--expires", "tomorrow")
    assert r.returncode == 1 and "ISO 8601" in r.stderr
    r = relay(stack, "keys", "create", "--tenant", tenant, "--claude-code-profile", "gpt=x")
    assert r.returncode == 1 and "unknown family 'gpt'" in r.stderr
    r = relay(stack, "keys", "create", "--tenant", tenant, "--claude-code-profile", "opus")
    assert r.returncode == 1 and "NAME=VALUE" in r.stderr
    ok(relay(stack, "keys", "create", "--tenant", tenant, "--claude-code-profile", "opus=a,sonnet=b,haiku=c"))


def test_serve_on_the_embedded_default(tmp_path: Path):
    """The README's first command, minus the install: a fresh directory, no services, no configuration."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    proc = subprocess.Popen(
        [*RELAY, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "relay serve did not come up"
            time.sleep(0.1)
        assert httpx.head(f"http://127.0.0.1:{port}/").status_code == 200  # Claude Code's pre-connect
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["database"] == "ok"
        r = httpx.post(f"http://127.0.0.1:{port}/v1/messages", json={})
        assert r.status_code == 401 and r.json()["type"] == "error"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert "password (shown once):" in out
    assert (tmp_path / "relay.db").exists() and (tmp_path / ".relay-secret-key").exists()
    assert oct((tmp_path / ".relay-secret-key").stat().st_mode & 0o777) == "0o600"


def test_a_command_run_where_no_database_is_says_it_makes_one(tmp_path: Path):
    """Run in the wrong directory, a command worked on a new empty database without a word, and the keys it
    made were refused by the gateway ("no such key")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    run = [*RELAY, "tenants", "create", "acme"]
    first = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert f"no database at {tmp_path / 'relay.db'}" in first.stderr and "relay serve" in first.stderr
    listed = subprocess.run([*RELAY, "tenants", "list"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "acme" in listed.stdout and "no database" not in listed.stderr  # said once, when it was made


def test_serve_on_a_taken_port_fails_before_announcing_anything(tmp_path: Path):
    """It said "Relay listening on …" (and on a first run would have spent the one-time password) and then
    failed to bind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [*RELAY, "serve", "--port", str(port)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "address already in use" in r.stderr.lower()
    assert "listening" not in r.stdout + r.stderr.replace("cannot listen", "")
    assert "password" not in r.stdout + r.stderr


def test_capability_profile_from_the_cli(stack, fake):
    tenant = f"cli-p-{time.monotonic_ns()}"
    ok(relay(stack, "tenants", "create", tenant))
    ok(
        relay(
            stack,
            "upstreams",
            "add",
            "ds",
            "--tenant",
            tenant,
            "--dialect",
            "openai",
            "--base-url",
            fake.url + "/v1",
            "--profile",
            '{"reasoning_dialect": "deepseek", "supports_top_k": true}',
        )
    )
    ok(
        relay(
            stack,
            "models",
            "add",
            "ds-chat",
            "--tenant",
            tenant,
            "--upstream",
            "ds",
            "--upstream-model",
            "x",
            "--max-output-tokens",
            "8192",
            "--profile",
            '{"supports_top_k": false}',
        )
    )
    shown = json.loads(ok(relay(stack, "models", "show", "ds-chat", "--tenant", tenant)))
    assert shown["profile"]["reasoning_dialect"] == "deepseek"  # from the upstream
    assert shown["profile"]["supports_top_k"] is False  # the model's key wins
    assert shown["profile"]["max_output_tokens"] == 8192
    assert shown["upstream"]["dialect"] == "openai" and "api_key" not in json.dumps(shown)
    bad = relay(
        stack,
        "upstreams",
        "add",
        "bad",
        "--tenant",
        tenant,
        "--dialect",
        "openai",
        "--base-url",
        fake.url + "/v1",
        "--profile",
        '{"no_such_key": 1}',
    )
    assert bad.returncode == 1 and "no_such_key" in bad.stderr
    bad = relay(
        stack,
        "models",
        "add",
        "bad",
        "--tenant",
        tenant,
        "--upstream",
        "ds",
        "--upstream-model",
        "x",
        "--profile",
        '{"supports_top_k": "yes"}',
    )
    assert bad.returncode == 1 and "supports_top_k" in bad.stderr

    # The converter reads it: max_tokens is clamped to the model's cap, and the client is told.
    key = ok(relay(stack, "keys", "create", "--tenant", tenant, "--allow-custom-models")).strip().splitlines()[-1]
    r = httpx.post(
        stack.url + "/v1/messages",
        headers={"x-api-key": key},
        json={"model": "ds-chat", "max_tokens": 64000, "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 200, r.text
    sent = fake.requests[-1].json
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 8192
    assert "max_tokens_clamped" in r.headers["relay-conversion-notes"]


def test_models_test_probes_and_stores_the_profile(stack, fake):
    tenant = f"cli-probe-{time.monotonic_ns()}"
    ok(relay(stack, "tenants", "create", tenant))
    ok(
        relay(
            stack,
            "upstreams",
            "add",
            "ds",
            "--tenant",
            tenant,
            "--dialect",
            "openai",
            "--base-url",
            fake.url + "/v1",
            "--api-key-env",
            "PROBE_KEY",
            env={"PROBE_KEY": "probe-secret-key"},
        )
    )
    ok(relay(stack, "models", "add", "ds-r1", "--tenant", tenant, "--upstream", "ds", "--upstream-model", "r1"))
    # The probe's requests, in order: completion, streaming, tools, images.
    fake.enqueue(
        Reply(text="pong", reasoning="thinking about pong"),
        Reply(text="pong", reasoning="thinking about pong"),
        Reply(tool_calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})]),
        Reply(text="red"),
    )
    out = ok(relay(stack, "models", "test", "ds-r1", "--tenant", tenant))
    assert "ok   completion" in out and "ok   streaming" in out and "ok   tools" in out
    assert "probe-secret-key" not in out
    shown = json.loads(ok(relay(stack, "models", "show", "ds-r1", "--tenant", tenant)))
    assert shown["profile"]["reasoning_dialect"] == "deepseek"  # learned from reasoning_content
    assert shown["profile_overrides"]["model"]["supports_stream_options"] is True


def test_models_test_reports_a_dead_upstream(stack):
    tenant = f"cli-probe-dead-{time.monotonic_ns()}"
    ok(relay(stack, "tenants", "create", tenant))
    ok(
        relay(
            stack,
            "upstreams",
            "add",
            "dead",
            "--tenant",
            tenant,
            "--dialect",
            "anthropic",
            "--base-url",
            f"http://127.0.0.1:{free_port()}",
        )
    )
    ok(relay(stack, "models", "add", "gone", "--tenant", tenant, "--upstream", "dead", "--upstream-model", "x"))
    r = relay(stack, "models", "test", "gone", "--tenant", tenant)
    assert r.returncode == 1 and "FAIL completion" in r.stdout and "skip streaming" in r.stdout
    assert "{" not in r.stdout  # no profile dump after the failure


def test_models_test_marks_a_model_without_reasoning_as_none_not_failed(stack, fake):
    tenant = f"cli-probe-plain-{time.monotonic_ns()}"
    ok(relay(stack, "tenants", "create", tenant))
    base = fake.url + "/v1"
    ok(relay(stack, "upstreams", "add", "plain", "--tenant", tenant, "--dialect", "openai", "--base-url", base))
    ok(relay(stack, "models", "add", "plain", "--tenant", tenant, "--upstream", "plain", "--upstream-model", "p"))
    fake.enqueue(
        Reply(text="pong"),
        Reply(text="pong"),
        Reply(tool_calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})]),
        Reply(text="red"),
    )
    out = ok(relay(stack, "models", "test", "plain", "--tenant", tenant))
    assert "none reasoning" in out and "FAIL" not in out, out
