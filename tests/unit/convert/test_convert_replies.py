"""Non-streaming responses both ways (conversion.md §4, §7)."""

from __future__ import annotations

from typing import Any

import pytest
from convert_streamkit import id_factory

from gateway.convert import ResponseHints, anthropic_reply_to_openai, openai_reply_to_anthropic
from gateway.errors import UpstreamError


def o2a(message: dict[str, Any], finish: str | None = "stop", usage: dict | None = None, **kw: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    choice.update(kw.pop("choice", {}))
    body = {"id": "chatcmpl-up", "object": "chat.completion", "model": "up", "choices": [choice]}
    if usage is not None:
        body["usage"] = usage
    return openai_reply_to_anthropic(body, model="claude-alias", new_id=id_factory(), **kw)


def test_text_response_shape() -> None:
    msg = o2a(
        {"content": "Hello"},
        usage={"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 40}},
    )
    assert msg == {
        "id": msg["id"],
        "type": "message",
        "role": "assistant",
        "model": "claude-alias",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 60,
            "output_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 40,
        },
    }
    assert msg["id"].startswith("msg_")


def test_block_order_thinking_text_tools_and_edge_27() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]
    msg = o2a({"content": "Doing it", "reasoning_content": "plan", "tool_calls": calls}, finish="stop")
    assert [b["type"] for b in msg["content"]] == ["thinking", "text", "tool_use"]
    assert msg["content"][0]["signature"].startswith("rly1.")
    assert msg["content"][2] == {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}
    assert msg["stop_reason"] == "tool_use"


@pytest.mark.parametrize("content", ["", None, "   \n"])
def test_edge_02_no_empty_or_whitespace_text_block(content: str | None) -> None:
    assert o2a({"content": content})["content"] == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("", {}),
        (None, {}),
        ('{"a": [1, 2', {"a": [1, 2]}),
        ("[1]", {"value": [1]}),
        ("garbage", {}),
        ({"x": 1}, {"x": 1}),
    ],
)
def test_edge_32_arguments_parsing(arguments: Any, expected: dict) -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]
    assert o2a({"content": None, "tool_calls": calls}, finish="tool_calls")["content"][0]["input"] == expected


def test_edge_28_29_ids_sanitized_or_generated() -> None:
    calls = [
        {"id": "functions.Bash:0", "type": "function", "function": {"name": "Bash", "arguments": "{}"}},
        {"type": "function", "function": {"name": "Read", "arguments": "{}"}},
    ]
    ids = [b["id"] for b in o2a({"tool_calls": calls}, finish="tool_calls")["content"]]
    assert ids[0].startswith("functions_Bash_0_") and ids[1].startswith("toolu_")


def test_edge_30_names_restored() -> None:
    calls = [{"id": "c", "type": "function", "function": {"name": "short_1", "arguments": "{}"}}]
    msg = o2a({"tool_calls": calls}, hints=ResponseHints(tool_names={"short_1": "very.long.name"}))
    assert msg["content"][0]["name"] == "very.long.name"


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "end_turn"),
        ("content_filter", "refusal"),
        ("weird", "end_turn"),
    ],
)
def test_finish_reason_table(finish: str, stop: str) -> None:
    assert o2a({"content": "x"}, finish=finish)["stop_reason"] == stop


def test_edge_63_stop_sequence_from_vllm_stop_reason() -> None:
    msg = o2a({"content": "x"}, choice={"stop_reason": "###"}, hints=ResponseHints(stop_sequences=("###",)))
    assert (msg["stop_reason"], msg["stop_sequence"]) == ("stop_sequence", "###")
    assert o2a({"content": "x"}, choice={"stop_reason": 128001})["stop_reason"] == "end_turn"


def test_refusal_message() -> None:
    msg = o2a({"content": None, "refusal": "No."})
    assert msg["content"] == [{"type": "text", "text": "No."}] and msg["stop_reason"] == "refusal"


def test_content_parts_and_think_tags() -> None:
    msg = o2a(
        {"content": [{"type": "text", "text": "<think>hmm</think>"}, {"type": "text", "text": "Yes"}]},
        hints=ResponseHints(think_tags=True),
    )
    assert [(b["type"], b.get("thinking") or b.get("text")) for b in msg["content"]] == [
        ("thinking", "hmm"),
        ("text", "Yes"),
    ]


def test_no_choices_is_502() -> None:
    with pytest.raises(UpstreamError) as err:
        openai_reply_to_anthropic({"choices": []}, model="m", new_id=id_factory())
    assert err.value.status_code == 502


def test_edge_70_failure_finish_reason_is_an_error() -> None:
    with pytest.raises(UpstreamError) as err:
        o2a({"content": "x"}, finish="insufficient_system_resource")
    assert err.value.status_code == 529 and err.value.error_type == "overloaded_error"


def test_missing_usage_is_estimated_not_zero_output() -> None:
    assert o2a({"content": "some words here"})["usage"]["output_tokens"] > 0


# -- A -> O --------------------------------------------------------------------------------------


def a2o(content: list[dict[str, Any]], stop: str | None = "end_turn", **kw: Any) -> dict[str, Any]:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-up",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 5,
        },
    }
    return anthropic_reply_to_openai(body, model="gpt-alias", new_id=id_factory(), created=123, **kw)


def test_a2o_shape_and_usage() -> None:
    out = a2o([{"type": "text", "text": "Hi"}])
    assert out == {
        "id": out["id"],
        "object": "chat.completion",
        "created": 123,
        "model": "gpt-alias",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 45,
            "completion_tokens": 20,
            "total_tokens": 65,
            "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 5},
        },
    }
    assert out["id"].startswith("chatcmpl-")


def test_edge_55_all_text_blocks_concatenated_and_thinking_carried() -> None:
    content = [
        {"type": "thinking", "thinking": "T", "signature": "sig"},
        {"type": "text", "text": "one "},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        {"type": "text", "text": "two"},
    ]
    message = a2o(content, "tool_use")["choices"][0]["message"]
    assert message["content"] == "one two"
    assert message["reasoning_content"] == "T"
    assert message["thinking_blocks"] == [{"type": "thinking", "thinking": "T", "signature": "sig"}]
    assert message["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]


def test_tool_only_content_is_null_and_empty_is_empty_string() -> None:
    tool = [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]
    assert a2o(tool, "tool_use")["choices"][0]["message"]["content"] is None
    assert a2o([], "end_turn")["choices"][0]["message"]["content"] == ""


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        (None, "stop"),
    ],
)
def test_edge_56_stop_reasons_non_stream(stop: str | None, finish: str) -> None:
    out = a2o([{"type": "text", "text": "x"}], stop)
    assert out["choices"][0]["finish_reason"] == finish
    if stop == "refusal":
        assert out["choices"][0]["message"]["refusal"] == "x"


def test_a2o_json_tool_answer_becomes_content() -> None:
    content = [{"type": "tool_use", "id": "toolu_1", "name": "json_output", "input": {"title": "T"}}]
    out = a2o(content, "tool_use", hints=ResponseHints(json_tool="json_output"))
    assert out["choices"][0]["message"]["content"] == '{"title":"T"}' and out["choices"][0]["finish_reason"] == "stop"


def test_a2o_error_body_raises() -> None:
    with pytest.raises(UpstreamError) as err:
        anthropic_reply_to_openai(
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
            model="m",
            new_id=id_factory(),
            created=1,
        )
    assert err.value.status_code == 529


def test_the_forced_json_output_call_is_the_text_answer() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "json_output", "arguments": '{"city": "Oslo"}'}}
    msg = o2a({"content": None, "tool_calls": [call]}, "tool_calls", hints=ResponseHints(json_tool="json_output"))
    assert msg["content"] == [{"type": "text", "text": '{"city": "Oslo"}'}] and msg["stop_reason"] == "end_turn"
