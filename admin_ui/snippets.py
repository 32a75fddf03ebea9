"""Ready-to-paste configuration for a key: Claude Code's settings.json, curl through both doors, the OpenAI SDK."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from gateway.db.tables import ApiKey

PLACEHOLDER = "sk-…paste-the-key-shown-when-it-was-created"


@dataclass(frozen=True, slots=True)
class Snippet:
    id: str
    title: str
    hint: str
    text: str


def _py(text: str) -> str:
    """A Python string literal (JSON's escaping is Python's, kept readable: no \\u escapes)."""
    return json.dumps(text, ensure_ascii=False)


def main_models(row: ApiKey, usable: list[str]) -> tuple[str | None, str | None]:
    """The model Claude Code should run (main) and its small/fast model, from the key's Claude Code profile,
    else its first allowed model that is not a glob, else the first model the key can use."""
    profile = row.claude_code_profile or {}
    plain = [m for m in row.allowed_models or [] if not any(c in m for c in "*?[")]
    main = profile.get("opus") or profile.get("sonnet") or profile.get("haiku") or (plain[0] if plain else None)
    if main is None and usable:
        main = usable[0]
    small = profile.get("haiku") or main
    return main, small


def for_key(row: ApiKey, *, base_url: str, secret: str | None, usable: list[str]) -> list[Snippet]:
    key = secret or PLACEHOLDER
    main, small = main_models(row, usable)
    example = main or "MODEL"
    env = {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_AUTH_TOKEN": key}
    if main:
        env["ANTHROPIC_MODEL"] = main
    if small:
        env["ANTHROPIC_SMALL_FAST_MODEL"] = small
    settings = json.dumps({"env": env}, indent=2, ensure_ascii=False)
    anthropic_body = json.dumps(
        {"model": example, "max_tokens": 256, "messages": [{"role": "user", "content": "Hello!"}]}
    )
    openai_body = json.dumps({"model": example, "messages": [{"role": "user", "content": "Hello!"}]})
    curl_anthropic = "\n".join(
        [
            f"curl {shlex.quote(base_url + '/v1/messages')} \\",
            f"  -H {shlex.quote('x-api-key: ' + key)} \\",
            "  -H 'anthropic-version: 2023-06-01' \\",
            "  -H 'content-type: application/json' \\",
            f"  -d {shlex.quote(anthropic_body)}",
        ]
    )
    curl_openai = "\n".join(
        [
            f"curl {shlex.quote(base_url + '/v1/chat/completions')} \\",
            f"  -H {shlex.quote('Authorization: Bearer ' + key)} \\",
            "  -H 'content-type: application/json' \\",
            f"  -d {shlex.quote(openai_body)}",
        ]
    )
    python = "\n".join(
        [
            "from openai import OpenAI",
            "",
            f"client = OpenAI(base_url={_py(base_url + '/v1')}, api_key={_py(key)})",
            "reply = client.chat.completions.create(",
            f"    model={_py(example)},",
            '    messages=[{"role": "user", "content": "Hello!"}],',
            ")",
            "print(reply.choices[0].message.content)",
        ]
    )
    return [
        Snippet(
            "claude-code",
            "Claude Code",
            "Put this in ~/.claude/settings.json (or .claude/settings.json in a project), then run claude.",
            settings,
        ),
        Snippet(
            "curl-anthropic",
            "curl — Anthropic door",
            "POST /v1/messages, as the Anthropic SDKs send it.",
            curl_anthropic,
        ),
        Snippet(
            "curl-openai", "curl — OpenAI door", "POST /v1/chat/completions, as the OpenAI SDKs send it.", curl_openai
        ),
        Snippet("python-openai", "OpenAI Python SDK", "pip install openai", python),
    ]
