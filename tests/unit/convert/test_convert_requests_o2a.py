"""OpenAI request → Anthropic request (conversion.md §6)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gateway.convert import CapabilityProfile, openai_request_to_anthropic
from gateway.convert.ids import mint_signature
from gateway.errors import InvalidRequest


def convert(body: dict[str, Any], **overrides: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    base = {"model": "claude-sonnet", "messages": [{"role": "user", "content": "hi"}]}
    profile = CapabilityProfile.for_dialect("anthropic", overrides)
    result = openai_request_to_anthropic({**base, **body}, upstream_model="claude-up", profile=profile)
    return result.body, result.notes


def call(cid: str, name: str = "get", args: str = '{"a": 1}') -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


FN = {
    "type": "function",
    "function": {"name": "get", "description": "d", "parameters": {"type": "object", "properties": {}}},
}


@pytest.mark.parametrize(
    ("body", "overrides", "expected", "absent"),
    [
        ({}, {}, {"max_tokens": 8192}, ("temperature",)),
        ({"max_tokens": 100}, {}, {"max_tokens": 100}, ()),
        ({"max_tokens": 100, "max_completion_tokens": 200}, {}, {"max_tokens": 200}, ()),
        ({"max_tokens": 100000}, {"max_output_tokens": 64000}, {"max_tokens": 64000}, ()),
        ({"temperature": 1.7}, {}, {"temperature": 1.0}, ()),
        ({"temperature": 0.5, "top_p": 0.9}, {}, {"temperature": 0.5}, ("top_p",)),
        ({"temperature": 0.5, "top_p": 0.9}, {"temperature_top_p_exclusive": False}, {"top_p": 0.9}, ()),
        ({"top_k": 40}, {}, {"top_k": 40}, ()),
        ({"stop": "END"}, {}, {"stop_sequences": ["END"]}, ()),
        ({"stop": ["a", "b"]}, {}, {"stop_sequences": ["a", "b"]}, ()),
        ({"stop": ["\n\n", "END", " "]}, {}, {"stop_sequences": ["END"]}, ()),
        ({"stop": "\n\n"}, {}, {}, ("stop_sequences",)),
        ({"stream": True, "stream_options": {"include_usage": True}}, {}, {"stream": True}, ("stream_options",)),
        ({"n": 1, "seed": 3, "presence_penalty": 1, "store": True}, {}, {}, ("n", "seed", "presence_penalty", "store")),
    ],
)
def test_top_level_mapping(body: dict, overrides: dict, expected: dict, absent: tuple[str, ...]) -> None:
    out, _ = convert(body, **overrides)
    for key, value in expected.items():
        assert out[key] == value
    for key in absent:
        assert key not in out
    assert out["model"] == "claude-up"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"tools": [{"type": "custom", "custom": {"name": "g"}}]}, "tools.0.type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages.0.content.0.type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f1"}}]}]},
            "messages.0.content.0.file.file_id",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}}],
                    }
                ]
            },
            "messages.0.content.0.image_url",
        ),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"messages": "nope"}, "messages"),
    ],
)
def test_unsupported_inputs_are_400_naming_the_field(body: dict, field: str) -> None:
    with pytest.raises(InvalidRequest, match="^" + re.escape(field) + ": "):
        convert(body)


def test_edge_61_user_is_hashed() -> None:
    out, _ = convert({"user": "alice@example.com"})
    assert "@" not in out["metadata"]["user_id"] and len(out["metadata"]["user_id"]) == 64


def test_edge_57_every_system_and_developer_message_hoisted() -> None:
    messages = [
        {"role": "system", "content": "one"},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "three"},
        {"role": "user", "content": "again"},
    ]
    out, _ = convert({"messages": messages})
    assert out["system"] == [{"type": "text", "text": t} for t in ("one", "two", "three")]
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]


def test_user_content_parts() -> None:
    parts = [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
        {"type": "file", "file": {"file_data": "data:text/plain;base64,aGVsbG8="}},
    ]
    out, _ = convert({"messages": [{"role": "user", "content": parts}]})
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "see"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://x/y.jpg"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
            "title": "a.pdf",
        },
        {"type": "text", "text": "hello"},
    ]


def test_edge_58_consecutive_tool_messages_one_user_turn_results_first() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Working.", "tool_calls": [call("c1"), call("c2", "put", "")]},
        {"role": "tool", "tool_call_id": "c1", "content": "r1"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "r2"}]},
        {"role": "user", "content": "thanks"},
    ]
    out, _ = convert({"messages": messages, "tools": [FN]})
    assistant, results = out["messages"][1], out["messages"][2]
    assert assistant["content"] == [
        {"type": "text", "text": "Working."},
        {"type": "tool_use", "id": "c1", "name": "get", "input": {"a": 1}},
        {"type": "tool_use", "id": "c2", "name": "put", "input": {}},
    ]
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "r1"},
            {"type": "tool_result", "tool_use_id": "c2", "content": "r2"},
            {"type": "text", "text": "thanks"},
        ],
    }
    assert len(out["messages"]) == 3


def test_edge_28_tool_ids_sanitized_consistently_in_history() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call("functions.Bash:0")]},
        {"role": "tool", "tool_call_id": "functions.Bash:0", "content": "ok"},
    ]
    out, _ = convert({"messages": messages})
    use_id = out["messages"][1]["content"][0]["id"]
    assert use_id == out["messages"][2]["content"][0]["tool_use_id"]
    assert use_id.startswith("functions_Bash_0_")


def test_edge_59_empty_messages_dropped_and_first_turn_user() -> None:
    messages = [
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "   "},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "q"},
    ]
    out, _ = convert({"messages": messages})
    assert out["messages"][0] == {"role": "user", "content": [{"type": "text", "text": "(conversation start)"}]}
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert all(m["content"] for m in out["messages"])


def test_orphan_tool_message_becomes_text() -> None:
    messages = [{"role": "user", "content": "go"}, {"role": "tool", "tool_call_id": "nope", "content": "stray"}]
    out, _ = convert({"messages": messages})
    assert out["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "go"}, {"type": "text", "text": "Result of tool nope: stray"}],
        }
    ]


def test_legacy_functions_and_function_role() -> None:
    body = {
        "functions": [{"name": "get", "parameters": {"type": "object"}}],
        "function_call": {"name": "get"},
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "function_call": {"name": "get", "arguments": "{}"}},
            {"role": "function", "name": "get", "content": "42"},
        ],
    }
    out, _ = convert(body)
    assert out["tools"] == [{"name": "get", "input_schema": {"type": "object", "properties": {}}}]
    assert out["tool_choice"] == {"type": "tool", "name": "get"}
    tid = out["messages"][1]["content"][0]["id"]
    assert out["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": tid, "content": "42"}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "get"}}, None, {"type": "tool", "name": "get"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "get"}}]},
            },
            None,
            {"type": "any"},
        ),
    ],
)
def test_edge_16_tool_choice_table(choice: Any, parallel: bool | None, expected: dict) -> None:
    body: dict[str, Any] = {"tools": [FN]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    out, _ = convert(body)
    assert out["tool_choice"] == expected


def test_no_tools_means_no_tool_choice() -> None:
    out, _ = convert({"tool_choice": "required", "parallel_tool_calls": False})
    assert "tool_choice" not in out and "tools" not in out


def test_allowed_tools_filters() -> None:
    other = {"type": "function", "function": {"name": "other"}}
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "get"}}]},
    }
    out, _ = convert({"tools": [FN, other], "tool_choice": choice})
    assert [t["name"] for t in out["tools"]] == ["get"]


@pytest.mark.parametrize(
    ("effort", "max_tokens", "thinking", "out_max"),
    [
        ("minimal", 4000, {"type": "enabled", "budget_tokens": 1024}, 4000),
        ("low", 4000, {"type": "enabled", "budget_tokens": 2048}, 4000),
        ("medium", None, {"type": "enabled", "budget_tokens": 8192}, 16384),
        ("high", 10000, {"type": "enabled", "budget_tokens": 8976}, 10000),
        ("xhigh", 64000, {"type": "enabled", "budget_tokens": 32000}, 64000),
        ("high", 1000, None, 1000),
        ("none", 1000, None, 1000),
    ],
)
def test_reasoning_effort_to_budget_edge_46(
    effort: str, max_tokens: int | None, thinking: dict | None, out_max: int
) -> None:
    body: dict[str, Any] = {"reasoning_effort": effort, "temperature": 0.5, "top_k": 5}
    if max_tokens:
        body["max_tokens"] = max_tokens
    out, _ = convert(body)
    assert out.get("thinking") == thinking and out["max_tokens"] == out_max
    if thinking:
        assert "temperature" not in out and "top_k" not in out


def test_adaptive_thinking_mode_uses_output_config_effort() -> None:
    out, _ = convert({"reasoning_effort": "high", "max_tokens": 2000}, thinking_mode="adaptive")
    assert out["thinking"] == {"type": "adaptive"} and out["output_config"] == {"effort": "high"}
    out, _ = convert({"reasoning": {"effort": "minimal"}}, thinking_mode="adaptive")
    assert out["output_config"] == {"effort": "low"}


def test_edge_46_forced_tool_choice_disables_thinking() -> None:
    out, notes = convert({"reasoning_effort": "high", "tools": [FN], "tool_choice": "required"})
    assert "thinking" not in out and "thinking_disabled_forced_tool" in notes


def test_edge_45_top_p_kept_with_thinking_only_when_high() -> None:
    out, _ = convert({"reasoning_effort": "low", "max_tokens": 4000, "top_p": 0.97})
    assert out["top_p"] == 0.97
    out, _ = convert({"reasoning_effort": "low", "max_tokens": 4000, "top_p": 0.5})
    assert "top_p" not in out


def test_edge_35_thinking_disabled_when_last_tool_turn_has_no_signed_thinking() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "reasoning_content": "unsigned", "tool_calls": [call("c1")]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    out, notes = convert({"messages": messages, "reasoning_effort": "high", "tools": [FN]})
    assert "thinking" not in out and "thinking_disabled_unsigned_history" in notes


def test_carried_signed_thinking_is_restored_and_minted_dropped_edge_34() -> None:
    carried = [{"index": 0, "type": "thinking", "thinking": "plan", "signature": "EqQB"}]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "thinking_blocks": carried, "tool_calls": [call("c1")]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    out, _ = convert({"messages": messages, "reasoning_effort": "high", "tools": [FN], "max_tokens": 20000})
    assert out["messages"][1]["content"][0] == {"type": "thinking", "thinking": "plan", "signature": "EqQB"}
    assert out["thinking"]["type"] == "enabled"
    minted = [{"type": "thinking", "thinking": "x", "signature": mint_signature("deepseek")}]
    messages[1]["thinking_blocks"] = minted
    out, _ = convert({"messages": messages})
    assert all(b["type"] != "thinking" for b in out["messages"][1]["content"])


def test_response_format_json_schema_native_or_json_tool() -> None:
    rf = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"t": {"type": "string"}}}},
    }
    out, _ = convert({"response_format": rf}, supports_structured_outputs=True)
    assert out["output_config"]["format"]["type"] == "json_schema"
    res = openai_request_to_anthropic(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": rf},
        upstream_model="u",
        profile=CapabilityProfile.for_dialect("anthropic"),
    )
    assert res.body["tool_choice"] == {"type": "tool", "name": "json_output"}
    assert res.hints.json_tool == "json_output"


def test_response_format_json_object_adds_system_line() -> None:
    out, _ = convert({"response_format": {"type": "json_object"}})
    assert out["system"][-1]["text"] == "Respond with a single JSON object only."


def test_edge_60_developer_role_never_forwarded() -> None:
    out, _ = convert({"messages": [{"role": "developer", "content": "rules"}, {"role": "user", "content": "x"}]})
    assert "developer" not in json.dumps(out["messages"])


def test_malformed_tool_arguments_become_objects() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "tool_calls": [call("c1", args='{"a": 1'), call("c2", args="[1, 2]"), call("c3", args="nonsense")],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        {"role": "tool", "tool_call_id": "c2", "content": "2"},
        {"role": "tool", "tool_call_id": "c3", "content": "3"},
    ]
    out, _ = convert({"messages": messages})
    inputs = [b["input"] for b in out["messages"][1]["content"]]
    assert inputs == [{"a": 1}, {"value": [1, 2]}, {}]


def test_whitespace_only_stop_sequences_are_dropped_with_a_note() -> None:
    _, notes = convert({"stop": ["\n\n", "END"]})
    assert "stop_whitespace_dropped" in notes
    _, notes = convert({"stop": ["END"]})
    assert "stop_whitespace_dropped" not in notes
