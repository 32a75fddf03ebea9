"""Anthropic request → OpenAI request (conversion.md §3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.convert import CapabilityProfile, anthropic_request_to_openai
from gateway.errors import InvalidRequest

OPENAI = CapabilityProfile.for_dialect("openai")


def convert(body: dict[str, Any], **overrides: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    base = {"model": "claude-opus-4-8", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
    profile = CapabilityProfile.for_dialect("openai", overrides)
    result = anthropic_request_to_openai({**base, **body}, upstream_model="up-model", profile=profile)
    return result.body, result.notes


def msgs(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] != "system"]


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(t: str, **kw: Any) -> dict[str, Any]:
    return {"type": "text", "text": t, **kw}


def tool_use(tid: str, name: str = "Bash", inp: dict | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": tid, "name": name, "input": inp if inp is not None else {"cmd": "ls"}}


def result(tid: str, content: Any = "ok", **kw: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tid, "content": content, **kw}


TOOL = {
    "name": "Bash",
    "description": "run",
    "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}},
}


# -- top-level fields (table-driven) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "overrides", "expected", "absent"),
    [
        ({"max_tokens": 64000}, {"max_output_tokens": 8192}, {"max_tokens": 8192}, ()),
        (
            {"max_tokens": 500},
            {"max_tokens_field": "max_completion_tokens"},
            {"max_completion_tokens": 500},
            ("max_tokens",),
        ),
        ({"temperature": 0.3, "top_p": 0.9}, {}, {"temperature": 0.3, "top_p": 0.9}, ()),
        ({"temperature": 0.3}, {"supports_sampling_params": False}, {}, ("temperature",)),
        ({"top_k": 5}, {}, {}, ("top_k",)),
        ({"top_k": 5}, {"supports_top_k": True}, {"top_k": 5}, ()),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, {}, {"stop": ["a", "b", "c", "d"]}, ()),
        ({"stop_sequences": ["a"]}, {"max_stop_sequences": 0}, {}, ("stop",)),
        ({"stream": True}, {}, {"stream": True, "stream_options": {"include_usage": True}}, ()),
        ({"stream": True}, {"supports_stream_options": False}, {"stream": True}, ("stream_options",)),
        ({"stream": False}, {}, {}, ("stream", "stream_options")),
    ],
)
def test_top_level_mapping(body: dict, overrides: dict, expected: dict, absent: tuple[str, ...]) -> None:
    out, _ = convert(body, **overrides)
    for key, value in expected.items():
        assert out[key] == value
    for key in absent:
        assert key not in out
    assert out["model"] == "up-model"


def test_edge_43_max_tokens_clamped_with_note() -> None:
    out, notes = convert({"max_tokens": 32000}, max_output_tokens=8192)
    assert out["max_tokens"] == 8192 and "max_tokens_clamped" in notes


def test_edge_44_max_completion_tokens_field_per_profile() -> None:
    out, _ = convert({"max_tokens": 2000}, max_tokens_field="max_completion_tokens")
    assert out["max_completion_tokens"] == 2000 and "max_tokens" not in out


def test_notes_for_dropped_fields() -> None:
    _, notes = convert({"top_k": 3, "stop_sequences": list("abcde"), "context_management": {"edits": []}})
    assert {"top_k_dropped", "stop_sequences_truncated", "context_management_dropped"} <= set(notes)


def test_metadata_user_id_json_string_is_hashed() -> None:
    uid = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "s"})
    out, _ = convert({"metadata": {"user_id": uid}})
    assert len(out["user"]) == 64 and uid not in out["user"]
    assert convert({"metadata": {"user_id": uid}})[0]["user"] == out["user"]


def test_claude_code_fields_are_accepted_and_dropped() -> None:
    body = {
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "thinking": {"type": "adaptive"},
        "metadata": {"user_id": '{"device_id":"x"}'},
        "service_tier": "auto",
        "brand_new_field": {"x": 1},
    }
    out, _ = convert(body)
    assert not {"context_management", "output_config", "thinking", "metadata", "brand_new_field"} & set(out)


# -- system ------------------------------------------------------------------------------------


def test_edge_48_system_blocks_become_one_string_without_cache_control() -> None:
    system = [text("A", cache_control={"type": "ephemeral"}), text("B")]
    out, _ = convert({"system": system})
    assert out["messages"][0] == {"role": "system", "content": "A\n\nB"}


def test_edge_49_billing_header_block_dropped() -> None:
    system = [
        text("x-anthropic-billing-header: cc_version=2.1.197.abc; cc_entrypoint=sdk-cli;"),
        text("You are Claude Code"),
    ]
    out, _ = convert({"system": system})
    assert out["messages"][0]["content"] == "You are Claude Code"


def test_edge_60_system_role_never_developer() -> None:
    out, _ = convert({"system": "S"})
    assert out["messages"][0]["role"] == "system"
    assert all(m["role"] != "developer" for m in out["messages"])


def test_role_system_messages_fold_into_user_turns_even_last() -> None:
    messages = [user(text("hello")), {"role": "system", "content": "agent list"}]
    out, _ = convert({"messages": messages})
    assert msgs(out) == [{"role": "user", "content": "hello\n\n<system-reminder>\nagent list\n</system-reminder>"}]


def test_role_system_between_tool_use_and_result_keeps_tool_pairing() -> None:
    messages = [
        user(text("go")),
        assistant(tool_use("t1")),
        {"role": "system", "content": "reminder"},
        user(result("t1", "done")),
    ]
    roles = [m["role"] for m in msgs(convert({"messages": messages})[0])]
    assert roles == ["user", "assistant", "tool", "user"]


# -- content blocks ----------------------------------------------------------------------------


def test_image_base64_and_url_edge_62() -> None:
    b64 = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}
    url = {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
    out, _ = convert({"messages": [user(text("look"), b64, url)]})
    parts = msgs(out)[0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://x/y.png"}}


def test_image_without_vision_is_replaced_by_text() -> None:
    b64 = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}
    out, notes = convert({"messages": [user(text("look"), b64)]}, supports_image_input=False)
    assert "image omitted" in msgs(out)[0]["content"] and "image_dropped" in notes


def test_pdf_document_when_supported_and_400_when_not() -> None:
    pdf = {
        "type": "document",
        "title": "r.pdf",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
    }
    out, _ = convert({"messages": [user(pdf, text("summarize"))]}, supports_pdf_input=True)
    part = msgs(out)[0]["content"][0]
    assert part == {"type": "file", "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBE"}}
    with pytest.raises(InvalidRequest, match=r"messages\.0\.content\.0\.source: PDF input not supported"):
        convert({"messages": [user(pdf)]})


def test_text_document_and_search_result_become_text() -> None:
    doc = {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "body"}}
    sr = {"type": "search_result", "source": "https://s", "title": "T", "content": [text("snippet")]}
    out, _ = convert({"messages": [user(doc, sr)]})
    assert msgs(out)[0]["content"] == "Notes\n\nbody\n\nT\nhttps://s\nsnippet"


def test_unknown_block_type_is_a_400_naming_the_field() -> None:
    with pytest.raises(InvalidRequest, match=r"messages\.0\.content\.1\.type: unknown block type 'foo'"):
        convert({"messages": [user(text("a"), {"type": "foo"})]})


def test_invalid_field_type_is_a_400_naming_the_field() -> None:
    with pytest.raises(InvalidRequest, match=r"messages\.0\.content\.0\.text"):
        convert({"messages": [user({"type": "text", "text": 5})]})
    with pytest.raises(InvalidRequest, match=r"max_tokens"):
        convert({"max_tokens": "many"})


# -- tools -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Bash"}, {"type": "function", "function": {"name": "Bash"}}),
    ],
)
def test_tool_choice_table_edge_15(choice: dict, expected: Any) -> None:
    out, _ = convert({"tools": [TOOL], "tool_choice": choice})
    assert out["tool_choice"] == expected


def test_disable_parallel_tool_use() -> None:
    out, _ = convert({"tools": [TOOL], "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}})
    assert out["parallel_tool_calls"] is False
    out, _ = convert(
        {"tools": [TOOL], "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
        supports_parallel_tool_calls_param=False,
    )
    assert "parallel_tool_calls" not in out


def test_edge_31_only_schema_keys_reach_parameters() -> None:
    tool = {**TOOL, "type": "custom", "cache_control": {"type": "ephemeral"}, "strict": True}
    out, _ = convert({"tools": [tool]})
    fn = out["tools"][0]["function"]
    assert fn["parameters"]["type"] == "object" and "cache_control" not in json.dumps(out["tools"])
    assert fn["strict"] is True and out["tools"][0]["type"] == "function"


def test_parameters_get_type_object_and_properties() -> None:
    out, _ = convert({"tools": [{"name": "noop", "input_schema": {}}]})
    assert out["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


def test_edge_65_schema_sanitizer_strips_keywords_not_property_names() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "format": {"type": "string", "format": "uri"},
            "list": {"type": "array", "items": {"format": "x"}},
        },
        "additionalProperties": False,
    }
    out, _ = convert({"tools": [{"name": "f", "input_schema": schema}]})
    params = out["tools"][0]["function"]["parameters"]
    assert params == {
        "type": "object",
        "properties": {"format": {"type": "string"}, "list": {"type": "array", "items": {}}},
        "additionalProperties": False,
    }


def test_edge_64_server_tools_dropped_with_note_and_forced_choice_dropped() -> None:
    web = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
    out, notes = convert({"tools": [web], "tool_choice": {"type": "tool", "name": "web_search"}})
    assert "tools" not in out and "tool_choice" not in out
    assert {"server_tool_dropped", "tool_choice_dropped"} <= set(notes)


def test_edge_30_long_tool_names_shortened_everywhere_and_map_returned() -> None:
    long = "mcp__my_server__" + "a_really_long_tool_name_" * 3
    tool = {"name": long, "input_schema": {"type": "object"}}
    messages = [user(text("go")), assistant(tool_use("t1", long)), user(result("t1"))]
    body = {"tools": [tool], "tool_choice": {"type": "tool", "name": long}, "messages": messages}
    res = anthropic_request_to_openai({"model": "m", "max_tokens": 10, **body}, upstream_model="u", profile=OPENAI)
    short = res.body["tools"][0]["function"]["name"]
    assert len(short) <= 64 and short != long
    assert res.body["tool_choice"]["function"]["name"] == short
    assert msgs(res.body)[1]["tool_calls"][0]["function"]["name"] == short
    assert res.tool_name_map == {short: long}


# -- history -----------------------------------------------------------------------------------


def test_assistant_text_tool_calls_and_null_content() -> None:
    messages = [user(text("go")), assistant(text("A"), text("B"), tool_use("t1", inp={"x": "é"})), user(result("t1"))]
    out, _ = convert({"messages": messages})
    a = msgs(out)[1]
    assert a["content"] == "AB"
    assert a["tool_calls"] == [{"id": "t1", "type": "function", "function": {"name": "Bash", "arguments": '{"x":"é"}'}}]
    only_tool = msgs(convert({"messages": [user(text("go")), assistant(tool_use("t1")), user(result("t1"))]})[0])[1]
    assert only_tool["content"] is None
    empty_str = convert(
        {"messages": [user(text("go")), assistant(tool_use("t1")), user(result("t1"))]}, null_assistant_content=False
    )
    assert msgs(empty_str[0])[1]["content"] == ""


def test_edge_32_empty_input_is_braces() -> None:
    out, _ = convert({"messages": [user(text("go")), assistant(tool_use("t1", inp={})), user(result("t1"))]})
    assert msgs(out)[1]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_edge_18_and_19_tool_messages_first_then_user_text_kept() -> None:
    messages = [user(text("go")), assistant(tool_use("t1")), user(text("and also this"), result("t1", "out"))]
    out = msgs(convert({"messages": messages})[0])
    assert [m["role"] for m in out] == ["user", "assistant", "tool", "user"]
    assert out[2] == {"role": "tool", "tool_call_id": "t1", "content": "out"}
    assert out[3]["content"] == "and also this"


def test_several_results_in_one_turn_in_order_with_is_error() -> None:
    messages = [
        user(text("go")),
        assistant(tool_use("t1"), tool_use("t2")),
        user(result("t2", [text("b1"), text("b2")]), result("t1", "boom", is_error=True)),
    ]
    out = msgs(convert({"messages": messages})[0])
    assert out[2:] == [
        {"role": "tool", "tool_call_id": "t2", "content": "b1\nb2"},
        {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
    ]


def test_edge_17_images_in_tool_results_move_to_a_user_message() -> None:
    img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QQ"}}
    messages = [user(text("shot")), assistant(tool_use("t1", "Screenshot")), user(result("t1", [text("taken"), img]))]
    out = msgs(convert({"messages": messages})[0])
    assert out[2] == {"role": "tool", "tool_call_id": "t1", "content": "taken\n[image attached below]"}
    assert out[3] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Images returned by tool Screenshot:"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ"}},
        ],
    }


def test_empty_tool_result_is_no_output() -> None:
    messages = [user(text("go")), assistant(tool_use("t1")), user(result("t1", ""))]
    assert msgs(convert({"messages": messages})[0])[2]["content"] == "(no output)"


def test_orphan_tool_use_gets_interrupted_result_and_orphan_result_becomes_text() -> None:
    messages = [user(text("go")), assistant(tool_use("t1")), user(result("zz", "stray"), text("next"))]
    out = msgs(convert({"messages": messages})[0])
    assert out[2] == {"role": "tool", "tool_call_id": "t1", "content": "Error: (no result: tool call was interrupted)"}
    assert out[3]["content"] == "Result of tool zz: stray\n\nnext"


def test_edge_47_cache_control_never_forwarded() -> None:
    messages = [user(text("a", cache_control={"type": "ephemeral", "ttl": "1h"}))]
    system = [text("s", cache_control={"type": "ephemeral"})]
    out, _ = convert(
        {"messages": messages, "system": system, "tools": [{**TOOL, "cache_control": {"type": "ephemeral"}}]}
    )
    assert "cache_control" not in json.dumps(out)


def test_edge_02_empty_text_blocks_dropped_on_request_path() -> None:
    messages = [user(text("hi")), assistant(text(""), tool_use("t1")), user(result("t1"))]
    out = msgs(convert({"messages": messages})[0])
    assert out[1]["content"] is None


def test_prefill_dropped_unless_supported() -> None:
    messages = [user(text("hi")), assistant(text("{"))]
    out, notes = convert({"messages": messages})
    assert msgs(out)[-1]["role"] == "user" and "prefill_dropped" in notes
    out, _ = convert({"messages": messages}, supports_assistant_prefill=True)
    assert msgs(out)[-1] == {"role": "assistant", "content": "{"}


# -- thinking ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "thinking", "effort", "expected"),
    [
        ("openai", {"type": "enabled", "budget_tokens": 2048}, None, {"reasoning_effort": "low"}),
        ("openai", {"type": "enabled", "budget_tokens": 8000}, None, {"reasoning_effort": "medium"}),
        ("openai", {"type": "enabled", "budget_tokens": 20000}, None, {"reasoning_effort": "high"}),
        ("openai", {"type": "enabled", "budget_tokens": 31999}, None, {"reasoning_effort": "high"}),
        ("openai", {"type": "adaptive"}, "low", {"reasoning_effort": "low"}),
        ("openai", {"type": "adaptive"}, None, {"reasoning_effort": "medium"}),
        ("openai", {"type": "disabled"}, None, {}),
        ("deepseek", {"type": "adaptive"}, "high", {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
        ("deepseek", None, None, {"thinking": {"type": "disabled"}}),
        ("qwen", {"type": "enabled", "budget_tokens": 4000}, None, {"enable_thinking": True, "thinking_budget": 4000}),
        ("qwen", {"type": "disabled"}, None, {"enable_thinking": False}),
        ("openrouter", {"type": "enabled", "budget_tokens": 4000}, None, {"reasoning": {"max_tokens": 4000}}),
        ("openrouter", {"type": "adaptive"}, "high", {"reasoning": {"effort": "high"}}),
        ("none", {"type": "adaptive"}, "high", {}),
    ],
)
def test_thinking_to_reasoning_table(dialect: str, thinking: Any, effort: str | None, expected: dict) -> None:
    body: dict[str, Any] = {"max_tokens": 32000}
    if thinking is not None:
        body["thinking"] = thinking
    if effort is not None:
        body["output_config"] = {"effort": effort}
    out, _ = convert(body, reasoning_dialect=dialect)
    keys = {"reasoning_effort", "thinking", "enable_thinking", "thinking_budget", "reasoning"}
    assert {k: v for k, v in out.items() if k in keys} == expected


def test_xhigh_effort_passes_when_upstream_accepts_it() -> None:
    out, _ = convert(
        {"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}},
        reasoning_dialect="openai",
        reasoning_efforts=["low", "medium", "high", "xhigh"],
    )
    assert out["reasoning_effort"] == "xhigh"


def test_sampling_dropped_when_reasoning_on_for_openai_dialect() -> None:
    out, notes = convert(
        {"thinking": {"type": "enabled", "budget_tokens": 4096}, "temperature": 1.0}, reasoning_dialect="openai"
    )
    assert "temperature" not in out and "temperature_dropped" in notes


def test_edge_33_deepseek_reasoning_replay() -> None:
    messages = [
        user(text("q1")),
        assistant({"type": "thinking", "thinking": "plan", "signature": "rly1.x.y"}, tool_use("t1")),
        user(result("t1")),
        assistant(text("a2")),
        user(text("q3")),
    ]
    out = msgs(convert({"messages": messages}, reasoning_dialect="deepseek", requires_reasoning_replay=True)[0])
    replayed = [m.get("reasoning_content") for m in out if m["role"] == "assistant"]
    assert replayed[0] == "plan"
    assert replayed[1] and replayed[1].strip() and replayed[1] != replayed[0]


def test_thinking_dropped_for_openai_dialect_without_replay() -> None:
    messages = [
        user(text("q")),
        assistant({"type": "thinking", "thinking": "t", "signature": "sig"}, text("a")),
        user(text("q2")),
    ]
    out = msgs(convert({"messages": messages})[0])
    assert "reasoning_content" not in out[1] and out[1]["content"] == "a"


def test_output_config_json_schema_to_response_format_when_supported() -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "tags": {"type": "object", "properties": {"a": {"type": "string"}}},
        },
    }
    body = {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    out, _ = convert(body, supports_structured_outputs=True)
    rf = out["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    strict = rf["json_schema"]["schema"]
    assert strict["additionalProperties"] is False and strict["required"] == ["title", "tags"]
    assert strict["properties"]["tags"]["required"] == ["a"]


def test_output_config_json_schema_is_a_forced_tool_when_unsupported() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    body = {"output_config": {"format": {"type": "json_schema", "schema": schema}}, "system": "S"}
    out, _ = convert(body)
    assert "response_format" not in out
    assert out["messages"][0]["content"] == "S"
    (tool,) = out["tools"]
    assert tool["function"]["name"] == "json_output" and tool["function"]["parameters"]["required"] == ["city"]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "json_output"}}


def test_output_config_json_schema_goes_in_the_system_prompt_beside_client_tools() -> None:
    body = {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}, "tools": [TOOL]}
    out, _ = convert(body)
    assert [t["function"]["name"] for t in out["tools"]] == ["Bash"] and "tool_choice" not in out
    assert out["messages"][0]["content"].startswith("Respond only with a JSON object")


def test_max_tokens_zero_noted() -> None:
    out, notes = convert({"max_tokens": 0})
    assert out["max_tokens"] == 1 and "max_tokens_zero" in notes


# -- Claude Code 2.1.3xx: ToolSearch and deferred tools (issue 14) ---------------------------------------

DEFERRED_TOOLS = [
    {"name": "ToolSearch", "description": "Find tools", "input_schema": {"type": "object", "properties": {}}},
    {"name": "mcp__db__query", "description": "Run SQL", "defer_loading": True, "input_schema": {"type": "object"}},
    {
        "name": "DeferredToolPlaceholder",
        "description": "Reserved placeholder. Never call this.",
        "defer_loading": True,
        "input_schema": {"type": "object", "properties": {}},
    },
]


def test_the_deferred_placeholder_is_never_offered_and_deferred_tools_are_plain_functions() -> None:
    out, notes = convert({"tools": DEFERRED_TOOLS, "messages": [user(text("hi"))]})
    functions = [t["function"] for t in out["tools"]]
    assert [f["name"] for f in functions] == ["ToolSearch", "mcp__db__query"]
    assert all("defer_loading" not in json.dumps(t) for t in out["tools"])
    assert "deferred_placeholder_dropped" in notes


def test_a_tool_search_result_names_the_loaded_tools() -> None:
    reference = {"type": "tool_reference", "tool_name": "mcp__db__query"}
    body = {
        "tools": DEFERRED_TOOLS,
        "messages": [
            user(text("query the db")),
            assistant(tool_use("ts_1", "ToolSearch", {"query": "select:mcp__db__query"})),
            user({"type": "tool_result", "tool_use_id": "ts_1", "content": [reference]}),
        ],
    }
    out, _ = convert(body)
    result = msgs(out)[-1]
    assert result["role"] == "tool" and result["tool_call_id"] == "ts_1"
    assert result["content"] == "Tools loaded and available to call now: mcp__db__query"


def test_the_latest_system_messages_effort_wins() -> None:
    """Claude Code 2.1.3xx: ``{"role": "system", "content": [], "output_config": {"effort": …}}`` mid-session."""
    body = {
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "low"},
        "messages": [
            user(text("hi")),
            {"role": "system", "content": [], "output_config": {"effort": "medium"}},
            assistant(text("hello")),
            {"role": "system", "content": [], "output_config": {"effort": "high"}},
            user(text("think hard")),
        ],
    }
    out, notes = convert(body, reasoning_dialect="openai")
    assert out["reasoning_effort"] == "high"
    assert [m["role"] for m in out["messages"]].count("user") == 2
    assert "effort_dropped" not in notes


def test_effort_and_display_without_a_place_upstream_are_noted() -> None:
    _, notes = convert({"output_config": {"effort": "high"}}, reasoning_dialect="openai")
    assert "effort_dropped" in notes  # thinking is off
    _, notes = convert({"thinking": {"type": "adaptive", "display": "summarized"}}, reasoning_dialect="openai")
    assert "thinking_display_dropped" in notes
    _, notes = convert({"thinking": {"type": "adaptive", "display": "omitted"}}, reasoning_dialect="openai")
    assert "thinking_display_dropped" not in notes
