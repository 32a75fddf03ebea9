"""Wire models tolerate what real clients send (claude-code-wire.md §4)."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from gateway.convert import CapabilityProfile, anthropic_request_to_openai, openai_request_to_anthropic
from gateway.protocols.anthropic import MessagesRequest, StreamEvent
from gateway.protocols.openai import ChatChunk, ChatCompletion, ChatRequest

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"url": {"type": "string", "format": "uri"}, "n": {"type": "integer", "enum": [1, 2]}},
    "required": ["url"],
    "additionalProperties": False,
}

CLAUDE_CODE_BODY: dict[str, Any] = {
    "model": "claude-opus-4-8",
    "max_tokens": 64000,
    "stream": True,
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.a1b; cc_entrypoint=sdk-cli;"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Primary working directory: /tmp", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>today</system-reminder>"},
                {"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}},
            ],
        },
        {"role": "system", "content": "Available agents: general"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I'll run ls.", "signature": "EqQBCkYIBxgCKkA"},
                {"type": "tool_use", "id": "toolu_01A", "name": "Bash", "input": {"command": "ls"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A",
                    "content": "a.txt",
                    "is_error": False,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
        {"role": "system", "content": "Skills: none"},
    ],
    "tools": [
        {"name": "Bash", "description": "Run a command", "input_schema": SCHEMA},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 8},
    ],
    "metadata": {"user_id": json.dumps({"device_id": "f" * 64, "account_uuid": "", "session_id": "0000"})},
    "thinking": {"type": "adaptive"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "brand_new_top_level": True,
}


def test_claude_code_request_decodes_and_converts() -> None:
    req = msgspec.convert(CLAUDE_CODE_BODY, MessagesRequest)
    assert req.thinking is not None and req.thinking.type == "adaptive"
    profile = CapabilityProfile.for_dialect("openai", {"reasoning_dialect": "deepseek", "max_output_tokens": 8192})
    out = anthropic_request_to_openai(CLAUDE_CODE_BODY, upstream_model="deepseek-chat", profile=profile)
    body = out.body
    assert body["messages"][0] == {
        "role": "system",
        "content": "You are Claude Code.\n\nPrimary working directory: /tmp",
    }
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert body["messages"][-1]["content"] == "<system-reminder>\nSkills: none\n</system-reminder>"
    assert body["messages"][2]["reasoning_content"] == "I'll run ls."
    assert [t["function"]["name"] for t in body["tools"]] == ["Bash"]
    assert body["tools"][0]["function"]["parameters"] == {
        "type": "object",
        "properties": {"url": {"type": "string"}, "n": {"type": "integer", "enum": [1, 2]}},
        "required": ["url"],
        "additionalProperties": False,
    }
    assert body["max_tokens"] == 8192 and body["reasoning_effort"] == "high"
    assert "cache_control" not in json.dumps(body)
    assert "server_tool_dropped" in out.notes


def test_unknown_fields_everywhere_are_ignored() -> None:
    chunk = msgspec.json.decode(
        b'{"id":"x","object":"chat.completion.chunk","system_fingerprint":"fp","provider":"p",'
        b'"choices":[{"index":0,"delta":{"content":"a","audio":null},"logprobs":null,"native_finish_reason":"x"}]}',
        type=ChatChunk,
    )
    assert chunk.choices is not None and chunk.choices[0].delta.content == "a"
    completion = msgspec.convert(
        {"choices": [{"message": {"content": "x", "annotations": []}}], "service_tier": "default"}, ChatCompletion
    )
    assert completion.choices is not None
    event = msgspec.json.decode(
        b'{"type":"message_delta","delta":{"stop_reason":"end_turn","container":null},"usage":{"output_tokens":3},"context_management":{}}',
        type=StreamEvent,
    )
    assert event.usage == {"output_tokens": 3}


def test_openai_sdk_style_request_with_extras_converts() -> None:
    body = {
        "model": "gpt-x",
        "messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi", "name": "bob"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "prompt_cache_key": "k",
        "verbosity": "low",
        "web_search_options": {},
        "metadata": {"a": "b"},
        "store": False,
        "seed": 1,
    }
    msgspec.convert(body, ChatRequest)
    out = openai_request_to_anthropic(body, upstream_model="claude", profile=CapabilityProfile.for_dialect("anthropic"))
    assert set(out.body) == {"model", "messages", "system", "max_tokens", "stream"}
