"""The real Claude Code CLI (npm `@anthropic-ai/claude-code`), headless, through Relay.

Relay routes the model Claude Code asks for to a scripted fake upstream that first asks for a
tool call (write a file) and then answers; the test checks the file and the final text.
The CLI is installed from npm into `.cache/claude-code` on first use (about 6 s) and kept offline
with `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` (shared/reference/claude-code-wire.md §1).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support import npm_cli

from gateway.testing.fake_upstream import Reply, ToolCall

pytestmark = pytest.mark.claude_code
CLAUDE_CODE_VERSION = os.environ.get("RELAY_TEST_CLAUDE_CODE_VERSION", "2.1.197")
"""The pinned older version."""
CLAUDE_CODE_NEWEST = os.environ.get("RELAY_TEST_CLAUDE_CODE_NEWEST", "2.1.332")
"""The newest version on npm when last checked (README's tested-versions table)."""


def claude_binary(version: str = CLAUDE_CODE_VERSION) -> Path:
    cache = "claude-code" if version == CLAUDE_CODE_VERSION else "claude-code-newest"
    return npm_cli("@anthropic-ai/claude-code", version, "claude", cache)


def run_claude(
    binary: Path, base_url: str, key: str, prompt: str, cwd: Path, home: Path, model: str, **extra_env: str
) -> dict:
    env = {
        **extra_env,
        "HOME": str(home),
        "PATH": os.environ["PATH"],
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # --dangerously-skip-permissions refuses root otherwise
    proc = subprocess.run(
        [
            str(binary),
            "-p",
            prompt,
            "--output-format",
            "json",
            "--max-turns",
            "4",
            "--dangerously-skip-permissions",
            "--model",
            model,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.stdout.strip(), f"no output (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("version", [CLAUDE_CODE_VERSION, CLAUDE_CODE_NEWEST])
@pytest.mark.parametrize("upstream_dialect", ["openai", "anthropic"])
def test_claude_code_writes_a_file_through_relay(stack, fake, tmp_path, upstream_dialect, version):
    binary = claude_binary(version)
    seed = stack.seed
    tenant = seed.tenant()
    base = fake.url + ("/v1" if upstream_dialect == "openai" else "")
    up = seed.upstream(tenant, base_url=base, dialect=upstream_dialect)
    seed.model(tenant, up, "cc-model", upstream_model="scripted-upstream-model")
    key = seed.key(tenant, aliases=[("claude-*", "cc-model")]).secret

    work = tmp_path / "work"
    work.mkdir()
    target = work / "hello.txt"
    fake.enqueue(
        Reply(
            tool_calls=[ToolCall(name="Write", arguments={"file_path": str(target), "content": "written via relay\n"})]
        )
    )
    fake.set_default(Reply(text="The file hello.txt is written."))

    result = run_claude(
        binary,
        stack.url,
        key,
        "Create hello.txt saying 'written via relay'.",
        work,
        tmp_path / "home",
        "claude-sonnet-5",
    )

    assert result["is_error"] is False, result
    assert result["result"] == "The file hello.txt is written."
    assert target.read_text() == "written via relay\n"
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


def test_newest_claude_code_tool_search_write_and_a_128k_max_tokens_on_an_8k_upstream(stack, fake, tmp_path):
    """Claude Code 2.1.3xx to an OpenAI-dialect upstream that refuses more than 8192 output tokens (as
    DeepSeek does) and has no profile saying so: ToolSearch loads a deferred tool, Write writes the file,
    and the answer arrives. Relay clamps after the first refusal and remembers the limit."""
    binary = claude_binary(CLAUDE_CODE_NEWEST)
    seed = stack.seed
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=fake.url + "/v1", dialect="openai")
    seed.model(tenant, up, "cc-8k", upstream_model="deepseek-like")
    key = seed.key(tenant, aliases=[("claude-*", "cc-8k")]).secret
    work = tmp_path / "work"
    work.mkdir()
    target = work / "found.txt"
    fake.max_output_tokens = 8192
    fake.enqueue(
        Reply(tool_calls=[ToolCall(name="ToolSearch", arguments={"query": "select:Monitor", "max_results": 1})]),
        Reply(tool_calls=[ToolCall(name="Write", arguments={"file_path": str(target), "content": "found\n"})]),
    )
    fake.set_default(Reply(text="Done: found.txt is written."))

    result = run_claude(
        binary, stack.url, key, "Find the Monitor tool, then write found.txt.", work, tmp_path / "home",
        "claude-sonnet-5", ENABLE_TOOL_SEARCH="true",
    )  # fmt: skip

    calls = [r.json for r in fake.requests if r.path.endswith("/chat/completions")]
    assert result["is_error"] is False, (result, [c.get("max_tokens") for c in calls])
    assert result["result"] == "Done: found.txt is written."
    assert target.read_text() == "found\n"
    assert calls[0]["max_tokens"] > 8192 and all(c["max_tokens"] <= 8192 for c in calls[1:])
    offered = {t["function"]["name"] for t in calls[-1]["tools"]}
    assert "ToolSearch" in offered and "DeferredToolPlaceholder" not in offered
    tool_texts = [m["content"] for c in calls for m in c["messages"] if m["role"] == "tool"]
    assert any(t.startswith("Tools loaded and available to call now:") for t in tool_texts), tool_texts
