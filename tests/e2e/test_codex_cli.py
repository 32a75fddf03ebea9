"""The real Codex CLI (npm `@openai/codex`), headless, through Relay's Responses door.

Relay routes the model Codex asks for to a scripted fake upstream (Chat Completions or Anthropic)
that first asks for a tool call (`exec_command`, which writes a file) and then answers; the test
checks the file and the final text. The CLI is installed from npm into `.cache/codex` on first use
(about 6 s, 430 MB with the native binary) and kept offline by its config.toml: `[features]
plugins = false` and `[analytics] enabled = false` (docs/codex-cli-wire.md §2).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from support import npm_cli

from gateway.testing.fake_upstream import Reply, ToolCall

pytestmark = pytest.mark.codex_cli
CODEX_VERSION = os.environ.get("RELAY_TEST_CODEX_VERSION", "0.171.0")


def codex_binary() -> Path:
    return npm_cli("@openai/codex", CODEX_VERSION, "codex", "codex")


def codex_config(base_url: str, model: str) -> str:
    """A config.toml for a Responses provider at `base_url` that never leaves it (no plugin sync,
    no analytics), never asks for approval, does not retry and fails fast when it cannot connect."""
    return f"""\
model = {json.dumps(model)}
model_provider = "relay"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[model_providers.relay]
name = "Relay"
base_url = {json.dumps(base_url)}
env_key = "RELAY_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[features]
plugins = false
unbounded_connection_retries = false

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"
"""


def run_codex(
    binary: Path, base_url: str, key: str, prompt: str, cwd: Path, home: Path, model: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    (codex_home / "config.toml").write_text(codex_config(base_url, model))
    last_message = home / "last-message.txt"
    env = {
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "PATH": os.environ["PATH"],
        "RELAY_API_KEY": key,
    }
    proc = subprocess.run(
        [
            str(binary),
            "exec",
            "--skip-git-repo-check",
            "--ephemeral",
            "--color",
            "never",
            "--output-last-message",
            str(last_message),
            prompt,
        ],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return proc, last_message.read_text() if last_message.exists() else ""


@pytest.mark.parametrize("upstream_dialect", ["openai", "anthropic"])
def test_codex_cli_writes_a_file_through_relay(stack, fake, tmp_path, upstream_dialect):
    binary = codex_binary()
    seed = stack.seed
    tenant = seed.tenant()
    base = fake.url + ("/v1" if upstream_dialect == "openai" else "")
    up = seed.upstream(tenant, base_url=base, dialect=upstream_dialect)
    seed.model(tenant, up, "cx-model", upstream_model="scripted-upstream-model")
    key = seed.key(tenant).secret

    work = tmp_path / "work"
    work.mkdir()
    target = work / "hello.txt"
    # With a model Codex has no metadata for, its only file-writing tool is `exec_command` (a shell command).
    command = f"printf 'written via relay\\n' > {shlex.quote(str(target))}"
    fake.enqueue(Reply(tool_calls=[ToolCall(name="exec_command", arguments={"cmd": command})]))
    fake.set_default(Reply(text="The file hello.txt is written."))

    proc, last_message = run_codex(
        binary,
        stack.url + "/v1",
        key,
        "Create hello.txt saying 'written via relay'.",
        work,
        tmp_path / "home",
        "cx-model",
    )

    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    assert target.read_text() == "written via relay\n"
    assert last_message.strip() == "The file hello.txt is written."
    assert "The file hello.txt is written." in proc.stdout
    calls = [r for r in fake.requests if r.path.endswith("/messages") or r.path.endswith("/chat/completions")]
    assert len(calls) >= 2
    assert all(r.json["model"] == "scripted-upstream-model" for r in calls)
    tool_turn = calls[1].json["messages"]
    assert any(
        isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
        for m in tool_turn
    ) or any(m.get("role") == "tool" for m in tool_turn)
    rows = seed.usage_rows(tenant, expect=len(calls))
    assert len(rows) >= len(calls) and all(r.status == 200 for r in rows)
