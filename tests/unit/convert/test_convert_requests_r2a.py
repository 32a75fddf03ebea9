"""Responses request → neutral Anthropic body (requests_r2a), finished for each upstream (requests_r2x)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from responses_kit import (
    ANTHROPIC,
    DEEPSEEK,
    KEY,
    OPENAI,
    neutral,
    to_anthropic,
    to_openai,
)

from gateway.convert import CapabilityProfile, envelope
from gateway.convert.ids import hash_user, is_minted_signature
from gateway.convert.requests_o2a import JSON_TOOL
from gateway.convert.requests_r2a import JSON_OBJECT_LINE, ToolIdentity
from gateway.errors import InvalidRequest

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
PDF = base64.b64encode(b"%PDF-1.4 test").decode()
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
TOOLS = [
    WEATHER,
    {"type": "custom", "name": "apply_patch", "description": "Patch files"},
    {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "spawn_agent"}]},
]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def blocks(body: dict[str, Any], index: int = 0) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = body["messages"][index]["content"]
    return content


def parts(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": content}]}


def refused(body: dict[str, Any], where: str) -> str:
    with pytest.raises(InvalidRequest) as info:
        neutral(body)
    assert info.value.status_code == 400
    message = str(info.value)
    assert message.startswith(f"{where}:"), message
    return message


# -- input and messages -------------------------------------------------------------------------


def test_string_input_is_one_user_turn() -> None:
    n = neutral({"model": "m", "input": "Hi there"})
    assert n.body == {"messages": [user("Hi there")]}
    assert n.notes == () and n.tools == {} and not n.include_reasoning
    assert to_anthropic({"input": "Hi there"}).body == {
        "messages": [user("Hi there")],
        "model": "claude-up",
        "max_tokens": ANTHROPIC.default_max_tokens,
    }
    assert to_openai({"input": "Hi there"}).body == {
        "model": "gpt-up",
        "messages": [{"role": "user", "content": "Hi there"}],
        "max_tokens": OPENAI.default_max_tokens,
    }


@pytest.mark.parametrize(
    "item",
    [
        {"role": "user", "content": "Hi"},
        {"type": "message", "role": "user", "content": "Hi"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {
            "role": "user",
            "content": [{"type": "input_text", "text": "Hi"}],
            "id": "msg_client_1",
            "status": "completed",
        },
    ],
)
def test_message_items_with_and_without_type(item: dict[str, Any]) -> None:
    assert neutral({"input": [item]}).body["messages"] == [user("Hi")]


def test_assistant_output_message_replayed_as_assistant_turn() -> None:
    assistant = {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [
            {"type": "output_text", "text": "Sure.", "annotations": []},
            {"type": "refusal", "refusal": "Not that."},
        ],
    }
    body = neutral({"input": [{"role": "user", "content": "Q"}, assistant, {"role": "user", "content": "more"}]}).body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Sure."}, {"type": "text", "text": "Not that."}],
    }


def test_assistant_message_with_empty_content_is_tolerated() -> None:
    """Codex replays tool-only turns as an assistant message with ``content: []`` (vllm#35508)."""
    body = neutral(
        {
            "input": [
                {"role": "user", "content": "Q"},
                {"type": "message", "role": "assistant", "content": []},
                {"role": "user", "content": "again"},
            ]
        }
    ).body
    assert body["messages"] == [user("Q"), user("again")]


@pytest.mark.parametrize("role", ["system", "developer"])
def test_system_and_developer_messages_become_system(role: str) -> None:
    req = {
        "input": [
            {"role": role, "content": "Rule one."},
            {
                "role": role,
                "content": [{"type": "input_text", "text": "Rule "}, {"type": "input_text", "text": "two."}],
            },
            {"role": role, "content": "   "},
            {"role": "user", "content": "Hi"},
        ]
    }
    n = neutral(req)
    assert n.body["system"] == [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule \ntwo."}]
    assert n.body["messages"] == [user("Hi")]
    assert to_anthropic(req).body["system"] == n.body["system"]
    assert to_openai(req).body["messages"][0] == {"role": "system", "content": "Rule one.\n\nRule \ntwo."}


def test_instructions_string_comes_first() -> None:
    req = {
        "instructions": "Be brief.",
        "input": [{"role": "developer", "content": "dev"}, {"role": "user", "content": "x"}],
    }
    assert neutral(req).body["system"] == [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "dev"}]
    assert to_openai(req).body["messages"][0] == {"role": "system", "content": "Be brief.\n\ndev"}


def test_instructions_list_of_items() -> None:
    req = {
        "instructions": [
            {"role": "developer", "content": "A"},
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "B"}]},
        ],
        "input": "hi",
    }
    n = neutral(req)
    assert n.body["system"] == [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]
    assert n.echo["instructions"] == req["instructions"]


def test_blank_instructions_are_ignored() -> None:
    assert "system" not in neutral({"instructions": "  \n", "input": "hi"}).body


# -- content parts ------------------------------------------------------------------------------


def test_input_image_data_url_and_http_url() -> None:
    req = parts(
        [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
            {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "high"},
        ]
    )
    assert blocks(neutral(req).body) == [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert blocks(to_anthropic(req).body) == blocks(neutral(req).body)
    assert to_openai(req).body["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    ("part", "where", "words"),
    [
        ({"type": "input_image", "file_id": "file_1", "detail": "auto"}, "file_id", "file ids are not supported"),
        ({"type": "input_image", "detail": "auto"}, "image_url", "url required"),
        ({"type": "input_image", "image_url": "ftp://x/y.png"}, "image_url", "http(s) or base64"),
        ({"type": "input_image", "image_url": "data:image/tiff;base64,AAAA"}, "image_url", "image/tiff"),
        ({"type": "input_file", "file_id": "file_1"}, "file_id", "file ids are not supported"),
        ({"type": "input_file", "filename": "a.pdf"}, "file_data", "field required"),
        ({"type": "input_file", "file_data": "AAAA", "filename": "blob.bin"}, "file_data", "unsupported file type"),
        ({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}, "type", "audio"),
        ({"type": "video"}, "type", "unknown content part type 'video'"),
    ],
)
def test_unsupported_parts_are_refused_naming_the_field(part: dict[str, Any], where: str, words: str) -> None:
    req = {"input": [{"role": "user", "content": "first"}, {"role": "user", "content": [part]}]}
    assert words in refused(req, f"input[1].content[0].{where}")


def test_input_file_pdf_data_url_text_file_and_file_url() -> None:
    text = base64.b64encode("héllo text".encode()).decode()
    req = parts(
        [
            {"type": "input_file", "file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"},
            {"type": "input_file", "file_data": PDF, "filename": "raw.PDF"},
            {"type": "input_file", "file_data": text, "filename": "notes.txt"},
            {"type": "input_file", "file_data": f"data:text/markdown;base64,{text}"},
            {"type": "input_file", "file_url": "https://example.com/doc.pdf", "filename": "doc.pdf"},
        ]
    )
    pdf = {"type": "base64", "media_type": "application/pdf", "data": PDF}
    assert blocks(neutral(req).body) == [
        {"type": "document", "source": pdf, "title": "a.pdf"},
        {"type": "document", "source": pdf, "title": "raw.PDF"},
        {"type": "text", "text": "héllo text"},
        {"type": "text", "text": "héllo text"},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/doc.pdf"}, "title": "doc.pdf"},
    ]


def test_input_file_pdf_for_an_openai_upstream_with_pdf_input() -> None:
    req = parts([{"type": "input_file", "file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"}])
    profile = CapabilityProfile.for_dialect("openai", {"supports_pdf_input": True})
    assert to_openai(req, profile).body["messages"][0]["content"] == [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}}
    ]
    with pytest.raises(InvalidRequest, match="PDF input not supported"):
        to_openai(req, OPENAI)


def test_input_file_with_badly_padded_base64_text_is_refused() -> None:
    message = refused(
        parts([{"type": "input_file", "file_data": "abc", "filename": "x.txt"}]), "input[0].content[0].file_data"
    )
    assert "invalid base64" in message


def test_input_file_with_non_base64_text_is_refused() -> None:
    refused(parts([{"type": "input_file", "file_data": "@@@!", "filename": "x.txt"}]), "input[0].content[0].file_data")


# -- calls and results --------------------------------------------------------------------------


def test_function_call_and_output_paired_by_call_id() -> None:
    req = {
        "input": [
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_A",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
                "status": "completed",
            },
            {"type": "function_call", "call_id": "call_B", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            {"type": "function_call_output", "call_id": "call_B", "output": "rain"},
            {"type": "function_call_output", "call_id": "call_A", "output": "sun"},
        ],
        "tools": [WEATHER],
    }
    a = to_anthropic(req).body
    assert a["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_A", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_B", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    assert a["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_B", "content": "rain"},
            {"type": "tool_result", "tool_use_id": "call_A", "content": "sun"},
        ],
    }
    o = to_openai(req).body["messages"]
    assert o[1]["tool_calls"] == [
        {"id": "call_A", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_B", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
    ]
    assert o[2:] == [
        {"role": "tool", "tool_call_id": "call_B", "content": "rain"},
        {"role": "tool", "tool_call_id": "call_A", "content": "sun"},
    ]


def test_function_call_output_with_parts_and_empty_output() -> None:
    req = {
        "input": [
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": ""},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": [
                    {"type": "input_text", "text": "see"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
                ],
            },
            {"type": "function_call_output", "call_id": "c2", "output": ""},
        ]
    }
    body = neutral(req).body
    assert body["messages"][0]["content"][0]["input"] == {}
    assert body["messages"][2]["content"][0]["content"] == [
        {"type": "text", "text": "see"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]
    assert body["messages"][3]["content"][0]["content"] == ""


def test_unanswered_call_and_orphan_output_are_repaired_for_the_upstream() -> None:
    req = {
        "input": [
            {"role": "user", "content": "go"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"role": "user", "content": "never mind"},
            {"type": "function_call_output", "call_id": "zz", "output": "stray"},
        ]
    }
    a = to_anthropic(req)
    results = [b for b in a.body["messages"][2]["content"] if b["type"] == "tool_result"]
    assert [r["tool_use_id"] for r in results] == ["c1"] and results[0]["is_error"] is True
    assert {"orphan_tool_use", "orphan_tool_result"} <= set(a.notes)


def test_call_ids_are_sanitized_for_the_upstream_consistently() -> None:
    req = {
        "input": [
            {"type": "function_call", "call_id": "call:1/x", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call:1/x", "output": "ok"},
        ]
    }
    body = to_anthropic(req).body
    tool_id = body["messages"][1]["content"][0]["id"]
    assert tool_id.startswith("call_1_x_") and body["messages"][2]["content"][0]["tool_use_id"] == tool_id


@pytest.mark.parametrize(
    ("item", "where"),
    [
        ({"type": "function_call", "name": "f", "arguments": "{}"}, "input[0].call_id"),
        ({"type": "function_call", "call_id": "c1", "arguments": "{}"}, "input[0].name"),
        ({"type": "custom_tool_call", "call_id": "c1", "input": "x"}, "input[0].name"),
        ({"type": "function_call_output", "output": "x"}, "input[0].call_id"),
        ({"type": "custom_tool_call_output", "call_id": "", "output": "x"}, "input[0].call_id"),
    ],
)
def test_calls_without_ids_or_names_are_refused(item: dict[str, Any], where: str) -> None:
    assert "field required" in refused({"input": [item]}, where)


def test_custom_tool_call_and_output() -> None:
    req = {
        "input": [
            {"role": "user", "content": "patch it"},
            {"type": "custom_tool_call", "id": "ctc_1", "call_id": "c1", "name": "apply_patch", "input": "*** Begin"},
            {"type": "custom_tool_call_output", "call_id": "c1", "output": "done"},
        ],
        "tools": TOOLS,
    }
    a = to_anthropic(req).body["messages"]
    assert a[1]["content"] == [{"type": "tool_use", "id": "c1", "name": "apply_patch", "input": {"input": "*** Begin"}}]
    assert a[2]["content"] == [{"type": "tool_result", "tool_use_id": "c1", "content": "done"}]
    o = to_openai(req).body["messages"]
    assert o[1]["tool_calls"][0]["function"] == {"name": "apply_patch", "arguments": '{"input":"*** Begin"}'}


def test_namespaced_function_call_is_flattened() -> None:
    req = {
        "input": [
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "spawn_agent",
                "namespace": "multi_agent_v1",
                "arguments": '{"task":"x"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ],
        "tools": TOOLS,
    }
    block = neutral(req).body["messages"][0]["content"][0]
    assert block["name"] == "multi_agent_v1__spawn_agent" and block["input"] == {"task": "x"}


# -- reasoning items ----------------------------------------------------------------------------


def _reasoning_req(encrypted: Any, summary: str = "summary text") -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": summary}]}
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return {
        "input": [
            {"role": "user", "content": "Q"},
            item,
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "sun"},
        ],
        "tools": [WEATHER],
    }


def test_sealed_thinking_carry_restores_the_signed_block_byte_exact() -> None:
    signature = "EqQBCkYIBxgCKkDx+/==\nsig\u00e9"
    token = envelope.seal(KEY, {"k": "thinking", "t": "Let me think.", "s": signature})
    req = _reasoning_req(token)
    assert neutral(req).body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": signature}
    ]
    a = to_anthropic(req)
    assert a.body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "Let me think.",
        "signature": signature,
    }
    assert a.body["messages"][1]["content"][1]["type"] == "tool_use"
    assert "foreign_thinking_dropped" not in a.notes


def test_sealed_redacted_carry_restores_redacted_thinking() -> None:
    token = envelope.seal(KEY, {"k": "redacted", "d": "opaque-redacted-data"})
    a = to_anthropic(_reasoning_req(token, summary=""))
    assert a.body["messages"][1]["content"][0] == {"type": "redacted_thinking", "data": "opaque-redacted-data"}
    # Nothing to replay to an OpenAI-compatible upstream, not even for a deepseek profile.
    assert "reasoning_content" not in to_openai(_reasoning_req(token, summary=""), DEEPSEEK).body["messages"][1]


def test_sealed_reasoning_content_carry() -> None:
    token = envelope.seal(KEY, {"k": "reasoning", "t": "raw chain"})
    req = _reasoning_req(token)
    [block] = neutral(req).body["messages"][1]["content"]
    assert block["thinking"] == "raw chain" and is_minted_signature(block["signature"])
    assert to_openai(req, DEEPSEEK).body["messages"][1]["reasoning_content"] == "raw chain"
    a = to_anthropic(req)
    assert all(b["type"] != "thinking" for m in a.body["messages"] for b in m["content"])
    assert "foreign_thinking_dropped" in a.notes


@pytest.mark.parametrize(
    "encrypted",
    [
        None,
        "gAAAAABopenai-native-token",
        envelope.seal(b"another-relay-key-xxxxxxxxxxxxxxx", {"k": "thinking", "t": "x", "s": "forged"}),
        envelope.seal(KEY, {"k": "thinking", "t": "x", "s": "sig"})[:-3] + "AAA",
    ],
    ids=["absent", "foreign", "other-key", "tampered"],
)
def test_reasoning_without_a_valid_carry_is_unsigned_summary_text(encrypted: Any) -> None:
    req = _reasoning_req(encrypted)
    [block] = neutral(req).body["messages"][1]["content"]
    assert block["thinking"] == "summary text" and is_minted_signature(block["signature"])
    a = to_anthropic(req)
    assert a.body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Rome"}}
    ]
    assert "foreign_thinking_dropped" in a.notes
    ds = to_openai(req, DEEPSEEK).body["messages"][1]
    assert ds["reasoning_content"] == "summary text" and ds["tool_calls"][0]["id"] == "c1"
    assert "reasoning_content" not in to_openai(req, OPENAI).body["messages"][1]


def test_reasoning_with_content_text_and_empty_reasoning() -> None:
    item = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "A"}],
        "content": [{"type": "reasoning_text", "text": "B"}],
    }
    req = {"input": [{"role": "user", "content": "Q"}, item, {"role": "user", "content": "next"}]}
    assert neutral(req).body["messages"][1]["content"][0]["thinking"] == "AB"
    empty = {"type": "reasoning", "id": "rs_2", "summary": []}
    assert neutral({"input": [{"role": "user", "content": "Q"}, empty]}).body["messages"] == [user("Q")]


# -- tools --------------------------------------------------------------------------------------


def test_function_tool_with_strict_and_description() -> None:
    n = neutral({"input": "x", "tools": [WEATHER, {"type": "function", "name": "bare"}]})
    assert n.body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["parameters"],
            "strict": True,
            "description": "Weather in a city",
        },
        {"name": "bare", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert n.tools["get_weather"] == ToolIdentity("function", "get_weather")
    o = to_openai({"input": "x", "tools": [WEATHER]}).body["tools"]
    assert o == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["parameters"],
                "description": "Weather in a city",
                "strict": True,
            },
        }
    ]


def test_custom_tool_becomes_a_function_with_one_string_input() -> None:
    tool = {
        "type": "custom",
        "name": "apply_patch",
        "description": "Patch files",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: BEGIN body END"},
    }
    n = neutral({"input": "x", "tools": [tool, {"type": "custom", "name": "free", "format": {"type": "text"}}]})
    patch, free = n.body["tools"]
    assert patch["name"] == "apply_patch" and patch["description"] == "Patch files"
    schema = patch["input_schema"]
    assert schema["required"] == ["input"] and list(schema["properties"]) == ["input"]
    assert schema["properties"]["input"]["type"] == "string"
    assert "lark grammar" in schema["properties"]["input"]["description"]
    assert "start: BEGIN body END" in schema["properties"]["input"]["description"]
    assert "grammar" not in free["input_schema"]["properties"]["input"]["description"]
    assert n.tools == {"apply_patch": ToolIdentity("custom", "apply_patch"), "free": ToolIdentity("custom", "free")}


def test_namespace_tools_are_flattened() -> None:
    ns = {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "agents",
        "tools": [
            {"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}},
            {"type": "custom", "name": "send_input"},
        ],
    }
    n = neutral({"input": "x", "tools": [ns]})
    assert [t["name"] for t in n.body["tools"]] == ["multi_agent_v1__spawn_agent", "multi_agent_v1__send_input"]
    assert n.tools == {
        "multi_agent_v1__spawn_agent": ToolIdentity("function", "spawn_agent", "multi_agent_v1"),
        "multi_agent_v1__send_input": ToolIdentity("custom", "send_input", "multi_agent_v1"),
    }
    assert [t["function"]["name"] for t in to_openai({"input": "x", "tools": [ns]}).body["tools"]] == [
        "multi_agent_v1__spawn_agent",
        "multi_agent_v1__send_input",
    ]


def test_long_flattened_names_are_shortened_within_upstream_limits() -> None:
    ns = {"type": "namespace", "name": "n" * 40, "tools": [{"type": "function", "name": "x" * 40}]}
    n = neutral({"input": "x", "tools": [ns]})
    [name] = [t["name"] for t in n.body["tools"]]
    assert len(name) <= 64 and name != "n" * 40 + "__" + "x" * 40
    assert n.tools[name] == ToolIdentity("function", "x" * 40, "n" * 40)
    assert to_openai({"input": "x", "tools": [ns]}).body["tools"][0]["function"]["name"] == name


def test_a_tool_without_a_name_is_refused() -> None:
    refused({"input": "x", "tools": [{"type": "function"}]}, "tools[0].name")
    ns = {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": ""}]}
    refused({"input": "x", "tools": [ns]}, "tools[0].tools[0].name")


@pytest.mark.parametrize(
    "kind",
    [
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
        "programmatic_tool_calling",
    ],
)
def test_droppable_hosted_tools_are_dropped_with_a_note(kind: str) -> None:
    req = {"input": "x", "tools": [{"type": kind, "external_web_access": True}, WEATHER]}
    n = neutral(req)
    assert [t["name"] for t in n.body["tools"]] == ["get_weather"]
    assert n.notes == (f"{kind}_tool_dropped",)
    assert f"{kind}_tool_dropped" in to_anthropic(req).notes
    assert f"{kind}_tool_dropped" in to_openai(req).notes


@pytest.mark.parametrize(
    "kind",
    ["file_search", "code_interpreter", "computer", "computer_use", "computer_use_preview", "image_generation", "mcp"],
)
def test_hosted_tools_that_change_the_answer_are_refused(kind: str) -> None:
    assert f"'{kind}'" in refused({"input": "x", "tools": [WEATHER, {"type": kind}]}, "tools[1].type")


def test_unknown_tool_type_is_refused() -> None:
    assert "unknown tool type 'gizmo'" in refused({"input": "x", "tools": [{"type": "gizmo"}]}, "tools[0].type")


def test_only_a_dropped_hosted_tool_means_no_tools_at_all() -> None:
    req = {"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "auto"}
    for body in (neutral(req).body, to_anthropic(req).body, to_openai(req).body):
        assert "tools" not in body and "tool_choice" not in body


# -- tool_choice --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "anthropic", "openai"),
    [
        ("auto", {"type": "auto"}, "auto"),
        ("none", {"type": "none"}, "none"),
        ("required", {"type": "any"}, "required"),
        (
            {"type": "function", "name": "get_weather"},
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        (
            {"type": "custom", "name": "apply_patch"},
            {"type": "tool", "name": "apply_patch"},
            {"type": "function", "function": {"name": "apply_patch"}},
        ),
        (
            {"type": "function", "name": "spawn_agent", "namespace": "multi_agent_v1"},
            {"type": "tool", "name": "multi_agent_v1__spawn_agent"},
            {"type": "function", "function": {"name": "multi_agent_v1__spawn_agent"}},
        ),
    ],
)
def test_tool_choice_forms(choice: Any, anthropic: dict[str, Any], openai: Any) -> None:
    req = {"input": "x", "tools": TOOLS, "tool_choice": choice}
    assert neutral(req).body["tool_choice"] == anthropic
    assert to_anthropic(req).body["tool_choice"] == anthropic
    o = to_openai(req).body
    assert o["tool_choice"] == openai and "parallel_tool_calls" not in o


@pytest.mark.parametrize(("mode", "anthropic", "openai"), [("auto", "auto", "auto"), ("required", "any", "required")])
def test_allowed_tools_narrows_the_tools(mode: str, anthropic: str, openai: str) -> None:
    choice = {
        "type": "allowed_tools",
        "mode": mode,
        "tools": [
            {"type": "function", "name": "get_weather"},
            {"type": "function", "name": "spawn_agent", "namespace": "multi_agent_v1"},
        ],
    }
    req = {"input": "x", "tools": TOOLS, "tool_choice": choice}
    n = neutral(req).body
    assert [t["name"] for t in n["tools"]] == ["get_weather", "multi_agent_v1__spawn_agent"]
    assert n["tool_choice"] == {"type": anthropic}
    o = to_openai(req).body
    assert [t["function"]["name"] for t in o["tools"]] == ["get_weather", "multi_agent_v1__spawn_agent"]
    assert o["tool_choice"] == openai


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "file_search"},
        {"type": "web_search_preview"},
        {"type": "computer_use_preview"},
        {"type": "code_interpreter"},
        {"type": "image_generation"},
        {"type": "mcp", "server_label": "deepwiki"},
        {"type": "shell"},
    ],
)
def test_hosted_tool_choice_is_refused(choice: dict[str, Any]) -> None:
    message = refused({"input": "x", "tools": TOOLS, "tool_choice": choice}, "tool_choice.type")
    assert f"'{choice['type']}'" in message


def test_tool_choice_naming_an_unknown_tool_or_a_bad_string_is_refused() -> None:
    refused({"input": "x", "tools": TOOLS, "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name")
    refused({"input": "x", "tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice")
    refused({"input": "x", "tools": TOOLS, "tool_choice": 3}, "tool_choice")


@pytest.mark.parametrize(
    ("choice", "anthropic"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "name": "get_weather"},
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        ("none", {"type": "none"}),
    ],
)
def test_parallel_tool_calls_false(choice: Any, anthropic: dict[str, Any]) -> None:
    req: dict[str, Any] = {"input": "x", "tools": TOOLS, "parallel_tool_calls": False}
    if choice is not None:
        req["tool_choice"] = choice
    assert to_anthropic(req).body["tool_choice"] == anthropic
    o = to_openai(req).body
    assert o.get("parallel_tool_calls") is (None if choice == "none" else False)


def test_parallel_tool_calls_false_without_tools_adds_nothing() -> None:
    req = {"input": "x", "parallel_tool_calls": False}
    assert "tool_choice" not in to_anthropic(req).body and "parallel_tool_calls" not in to_openai(req).body


# -- reasoning effort ---------------------------------------------------------------------------


@pytest.mark.parametrize("effort", ["minimal", "low", "medium", "high", "xhigh", "max"])
def test_effort_is_neutral_adaptive_thinking(effort: str) -> None:
    body = neutral({"input": "x", "reasoning": {"effort": effort, "summary": "auto"}}).body
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": effort}


@pytest.mark.parametrize(
    ("effort", "budget", "max_tokens"),
    [("minimal", 1024, 9216), ("low", 2048, 10240), ("medium", 8192, 16384), ("high", 16384, 24576)],
)
def test_effort_for_a_budget_thinking_model(effort: str, budget: int, max_tokens: int) -> None:
    a = to_anthropic({"input": "x", "reasoning": {"effort": effort}}).body
    assert a["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert a["max_tokens"] == max_tokens and "output_config" not in a


@pytest.mark.parametrize(("effort", "sent"), [("minimal", "low"), ("high", "high"), ("max", "max")])
def test_effort_for_an_adaptive_thinking_model(effort: str, sent: str) -> None:
    profile = CapabilityProfile.for_dialect("anthropic", {"thinking_mode": "adaptive"})
    a = to_anthropic({"input": "x", "reasoning": {"effort": effort}}, profile).body
    assert a["thinking"] == {"type": "adaptive"} and a["output_config"] == {"effort": sent}
    assert a["max_tokens"] == profile.default_max_tokens


def test_effort_fits_under_max_output_tokens() -> None:
    a = to_anthropic({"input": "x", "reasoning": {"effort": "high"}, "max_output_tokens": 2000}).body
    assert a["max_tokens"] == 2000 and a["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    tight = to_anthropic({"input": "x", "reasoning": {"effort": "high"}, "max_output_tokens": 1000}).body
    assert tight["max_tokens"] == 1000 and "thinking" not in tight


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"reasoning_dialect": "openai"}, {"reasoning_effort": "high"}),
        ({"reasoning_dialect": "deepseek"}, {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
        ({"reasoning_dialect": "qwen"}, {"enable_thinking": True, "thinking_budget": 16384}),
        ({"reasoning_dialect": "openrouter"}, {"reasoning": {"effort": "high"}}),
    ],
)
def test_effort_for_openai_compatible_dialects(overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    o = to_openai({"input": "x", "reasoning": {"effort": "high"}}, CapabilityProfile.for_dialect("openai", overrides))
    assert {k: v for k, v in o.body.items() if k in expected} == expected


def test_effort_xhigh_is_clamped_for_openai() -> None:
    profile = CapabilityProfile.for_dialect("openai", {"reasoning_dialect": "openai"})
    assert to_openai({"input": "x", "reasoning": {"effort": "xhigh"}}, profile).body["reasoning_effort"] == "high"


def test_effort_none_or_summary_only_means_no_thinking() -> None:
    for reasoning in ({"effort": "none"}, {"summary": "auto"}, {}):
        req = {"input": "x", "reasoning": reasoning}
        assert "thinking" not in neutral(req).body and "output_config" not in neutral(req).body
        assert "thinking" not in to_anthropic(req).body
        o = to_openai(req, CapabilityProfile.for_dialect("openai", {"reasoning_dialect": "openai"})).body
        assert "reasoning_effort" not in o
    assert to_openai({"input": "x", "reasoning": {"effort": "none"}}, DEEPSEEK).body["thinking"] == {"type": "disabled"}


def test_thinking_is_disabled_when_a_tool_is_forced() -> None:
    req = {"input": "x", "tools": TOOLS, "tool_choice": "required", "reasoning": {"effort": "low"}}
    a = to_anthropic(req)
    assert "thinking" not in a.body and "thinking_disabled_forced_tool" in a.notes


# -- text.format --------------------------------------------------------------------------------


def _fmt(**extra: Any) -> dict[str, Any]:
    return {
        "input": "x",
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True}},
        **extra,
    }


def test_json_schema_is_neutral_output_config() -> None:
    assert neutral(_fmt()).body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}


def test_json_schema_native_for_a_structured_outputs_anthropic_model() -> None:
    profile = CapabilityProfile.for_dialect(
        "anthropic", {"supports_structured_outputs": True, "thinking_mode": "adaptive"}
    )
    a = to_anthropic(_fmt(reasoning={"effort": "low"}), profile)
    assert a.body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"}
    assert "tools" not in a.body and a.hints.json_tool is None


def test_json_schema_as_a_forced_tool_for_other_anthropic_models() -> None:
    a = to_anthropic(_fmt())
    assert a.body["tools"] == [
        {
            "name": JSON_TOOL,
            "description": "Return the final answer by calling this tool with it as the input.",
            "input_schema": SCHEMA,
        }
    ]
    assert a.body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    assert a.hints.json_tool == JSON_TOOL and "output_config" not in a.body


def test_json_schema_with_client_tools_is_asked_for_in_words() -> None:
    a = to_anthropic(_fmt(tools=[WEATHER]))
    assert [t["name"] for t in a.body["tools"]] == ["get_weather"] and a.hints.json_tool is None
    assert a.body["system"][-1]["text"].startswith(JSON_OBJECT_LINE + " It must match this JSON schema: {")
    assert '"answer"' in a.body["system"][-1]["text"]


def test_json_schema_for_openai_upstreams() -> None:
    profile = CapabilityProfile.for_dialect("openai", {"supports_structured_outputs": True})
    fmt = to_openai(_fmt(), profile).body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"] == SCHEMA["properties"]
    plain = to_openai(_fmt())
    assert "response_format" not in plain.body  # no native mechanism: a forced json_output function
    assert plain.body["tool_choice"] == {"type": "function", "function": {"name": JSON_TOOL}}
    assert plain.body["tools"][0]["function"]["parameters"]["properties"] == SCHEMA["properties"]
    assert plain.hints.json_tool == JSON_TOOL


def test_json_schema_without_a_schema_is_refused() -> None:
    refused({"input": "x", "text": {"format": {"type": "json_schema", "name": "a"}}}, "text.format.schema")


def test_json_object_and_text_formats() -> None:
    req = {"input": "x", "instructions": "Be terse.", "text": {"format": {"type": "json_object"}}}
    system = [{"type": "text", "text": "Be terse."}, {"type": "text", "text": JSON_OBJECT_LINE}]
    assert neutral(req).body["system"] == system
    assert to_anthropic(req).body["system"] == system
    assert to_openai(req).body["messages"][0] == {"role": "system", "content": f"Be terse.\n\n{JSON_OBJECT_LINE}"}
    plain = {"input": "x", "text": {"format": {"type": "text"}, "verbosity": "low"}}
    assert neutral(plain).body == {"messages": [user("x")]}


# -- limits, sampling, identity -----------------------------------------------------------------


def test_max_output_tokens() -> None:
    assert "max_tokens" not in neutral({"input": "x"}).body
    assert neutral({"input": "x", "max_output_tokens": 321}).body["max_tokens"] == 321
    assert to_anthropic({"input": "x", "max_output_tokens": 321}).body["max_tokens"] == 321
    capped = CapabilityProfile.for_dialect("anthropic", {"max_output_tokens": 100})
    assert to_anthropic({"input": "x", "max_output_tokens": 321}, capped).body["max_tokens"] == 100
    profile = CapabilityProfile.for_dialect("openai", {"max_tokens_field": "max_completion_tokens"})
    assert to_openai({"input": "x", "max_output_tokens": 321}, profile).body["max_completion_tokens"] == 321


def test_temperature_and_top_p() -> None:
    req = {"input": "x", "temperature": 1.5, "top_p": 0.9}
    a = to_anthropic(req)
    assert a.body["temperature"] == 1.0 and "top_p" not in a.body and "top_p_dropped" in a.notes
    both = CapabilityProfile.for_dialect("anthropic", {"temperature_top_p_exclusive": False})
    assert to_anthropic(req, both).body["top_p"] == 0.9
    o = to_openai(req).body
    assert o["temperature"] == 1.5 and o["top_p"] == 0.9


def test_temperature_and_top_p_dropped_with_thinking() -> None:
    req = {"input": "x", "temperature": 0.2, "top_p": 0.5, "reasoning": {"effort": "low"}}
    a = to_anthropic(req)
    assert "temperature" not in a.body and "top_p" not in a.body
    assert {"temperature_dropped", "top_p_dropped"} <= set(a.notes)
    o = to_openai(req, CapabilityProfile.for_dialect("openai", {"reasoning_dialect": "openai"}))
    assert "temperature" not in o.body and "top_p" not in o.body


@pytest.mark.parametrize(
    ("fields", "who"), [({"user": "bob"}, "bob"), ({"safety_identifier": "sid", "user": "bob"}, "sid")]
)
def test_user_identity_is_hashed(fields: dict[str, str], who: str) -> None:
    req = {"input": "x", **fields}
    assert neutral(req).body["metadata"] == {"user_id": who}
    assert to_anthropic(req).body["metadata"] == {"user_id": hash_user(who)}
    assert to_openai(req).body["user"] == hash_user(who)[:64]
    assert who not in str(to_anthropic(req).body) and who not in str(to_openai(req).body)


def test_stream_flag() -> None:
    assert neutral({"input": "x", "stream": True}).body["stream"] is True
    assert to_anthropic({"input": "x", "stream": True}).body["stream"] is True
    o = to_openai({"input": "x", "stream": True}).body
    assert o["stream"] is True and o["stream_options"] == {"include_usage": True}


def test_echo_fields_and_include() -> None:
    req = {
        "model": "m",
        "input": "x",
        "instructions": "I",
        "metadata": {"a": "b"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "ses_1",
        "client_metadata": {"session_id": "s"},
        "stream_options": {"include_obfuscation": False},
    }
    n = neutral(req)
    assert n.include_reasoning is True
    assert n.echo == {"instructions": "I", "metadata": {"a": "b"}, "store": False, "prompt_cache_key": "ses_1"}
    assert neutral({"input": "x", "include": ["message.output_text.logprobs"]}).include_reasoning is False


# -- refused and dropped items ------------------------------------------------------------------


def test_unknown_item_type_is_refused() -> None:
    req = {"input": [{"role": "user", "content": "x"}, {"type": "teleport", "id": "t_1"}]}
    assert "unknown input item type 'teleport'" in refused(req, "input[1].type")


@pytest.mark.parametrize("role", ["tool", "function", None])
def test_unknown_role_is_refused(role: str | None) -> None:
    assert "unknown role" in refused({"input": [{"role": role, "content": "x"}]}, "input[0].role")


def test_unknown_item_in_instructions_names_instructions() -> None:
    refused({"instructions": [{"type": "function_call_output"}], "input": "x"}, "instructions[0].call_id")
    refused({"instructions": [{"role": "robot", "content": "x"}], "input": "x"}, "instructions[0].role")


def test_item_reference_is_refused() -> None:
    message = refused({"input": [{"type": "item_reference", "id": "msg_123"}]}, "input[0].type")
    assert "item references are not supported" in message


def test_non_list_content_is_refused() -> None:
    refused({"input": [{"role": "user", "content": 42}]}, "input[0].content")


@pytest.mark.parametrize(
    "item",
    [
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": []},
        {"type": "local_shell_call", "id": "lsh_1", "call_id": "c", "status": "completed", "action": {}},
        {"type": "mcp_list_tools", "id": "mcp_1", "server_label": "s", "tools": []},
        {"type": "compaction", "id": "cmp_1", "encrypted_content": "x"},
    ],
)
def test_hosted_items_replayed_as_input_are_dropped_with_a_note(item: dict[str, Any]) -> None:
    req = {"input": [{"role": "user", "content": "a"}, item, {"role": "user", "content": "b"}]}
    n = neutral(req)
    assert n.body["messages"] == [user("a"), user("b")] and n.notes == ("hosted_tool_item_dropped",)
    assert to_anthropic(req).body["messages"] == [
        {"role": "user", "content": [*user("a")["content"], *user("b")["content"]]}
    ]
    assert "hosted_tool_item_dropped" in to_openai(req).notes


def test_unknown_request_fields_are_ignored() -> None:
    req = {"input": "x", "prompt_cache_options": {"mode": "explicit"}, "moderation": {}, "background_options": {}}
    assert neutral(req).body == {"messages": [user("x")]}


def test_bad_field_types_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequest, match=r"^max_output_tokens: "):
        neutral({"input": "x", "max_output_tokens": "lots"})
    with pytest.raises(InvalidRequest, match=r"^input: "):
        neutral({"input": 5})


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_file", "file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"},
        {"type": "input_file", "file_url": "https://example.com/doc.pdf"},
    ],
    ids=["pdf-without-pdf-input", "file-url"],
)
def test_openai_upstream_refusals_name_the_clients_field(part: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest, match=r"^input\[0\]\.content\[0\]"):
        to_openai(parts([part]), OPENAI)


def test_prompt_cache_key_marks_cache_breakpoints_for_anthropic() -> None:
    request = {
        "model": "m",
        "instructions": "Be brief.",
        "tools": TOOLS,
        "input": [user("first"), {"role": "assistant", "content": "ok"}, user("second")],
    }
    plain = to_anthropic(request).body
    assert "cache_control" not in str(plain)
    cached = to_anthropic({**request, "prompt_cache_key": "session-1"}).body
    assert cached["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert cached["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert cached["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert str(cached).count("cache_control") == 3  # within Anthropic's four breakpoints
    assert "cache_control" not in str(to_openai({**request, "prompt_cache_key": "session-1"}).body)
