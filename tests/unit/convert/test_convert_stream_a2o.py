"""Anthropic SSE → OpenAI chunks (conversion.md §8, §12.2)."""

from __future__ import annotations

import json

import pytest
from convert_streamkit import check_o_stream, run_a2o, sdk_completion

from gateway.convert import ResponseHints

START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [],
        "usage": {"input_tokens": 20, "cache_read_input_tokens": 100, "output_tokens": 1},
    },
}
STOP = {"type": "message_stop"}


def _block(index: int, block: dict, *deltas: dict) -> list[dict]:
    events = [{"type": "content_block_start", "index": index, "content_block": block}]
    events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
    return [*events, {"type": "content_block_stop", "index": index}]


def _text(index: int, *texts: str) -> list[dict]:
    return _block(index, {"type": "text", "text": ""}, *[{"type": "text_delta", "text": t} for t in texts])


def _tool(index: int, tool_id: str, name: str, *parts: str) -> list[dict]:
    block = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
    return _block(index, block, *[{"type": "input_json_delta", "partial_json": p} for p in parts])


def _delta(stop: str | None, output: int = 5, **usage: int) -> dict:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
        "usage": {"output_tokens": output, **usage},
    }


EXAMPLE_12_2 = [
    START,
    {"type": "ping"},
    *_block(
        0,
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "thinking_delta", "thinking": "Need weather."},
        {"type": "signature_delta", "signature": "EqQB"},
    ),
    *_text(1, "Let me check."),
    *_tool(2, "toolu_01", "get_weather", "", '{"city":', '"Paris"}'),
    _delta("tool_use", 55),
    STOP,
]


def _deltas(chunks: list[dict]) -> list[dict]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def test_worked_example_12_2_verbatim() -> None:
    out, conv = run_a2o(EXAMPLE_12_2)
    chunks = check_o_stream(out)
    deltas = [d for d in _deltas(chunks) if "thinking_blocks" not in d]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "Need weather."},
        {"content": "Let me check."},
        {
            "tool_calls": [
                {"index": 0, "id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 55,
        "total_tokens": 175,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    assert out[-1].data == "[DONE]"
    assert {(c["id"], c["created"], c["model"]) for c in chunks} == {(chunks[0]["id"], 1700000000, "gpt-alias")}
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert conv.usage.input_tokens == 20 and conv.usage.cache_read_tokens == 100 and conv.usage.output_tokens == 55
    final = sdk_completion(out)
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert message.tool_calls[0].function.name == "get_weather"
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}


def test_thinking_carrier_holds_signed_block() -> None:
    chunks = check_o_stream(run_a2o(EXAMPLE_12_2)[0])
    carried = [d["thinking_blocks"] for d in _deltas(chunks) if "thinking_blocks" in d]
    assert carried == [[{"index": 0, "type": "thinking", "thinking": "Need weather.", "signature": "EqQB"}]]


def test_no_usage_chunk_without_include_usage() -> None:
    chunks = check_o_stream(run_a2o(EXAMPLE_12_2, include_usage=False)[0])
    assert all(c["choices"] for c in chunks) and all("usage" not in c for c in chunks)


def test_edge_53_tool_index_is_tool_counter_not_block_index() -> None:
    events = [
        START,
        *_text(0, "a"),
        *_tool(1, "t1", "f", "{}"),
        *_text(2, "b"),
        *_tool(3, "t2", "g", "{}"),
        _delta("tool_use"),
        STOP,
    ]
    chunks = check_o_stream(run_a2o(events)[0])
    indexes = [tc["index"] for d in _deltas(chunks) for tc in d.get("tool_calls", [])]
    assert indexes == [0, 0, 1, 1]
    final = sdk_completion(run_a2o(events)[0])
    assert [t.id for t in final.choices[0].message.tool_calls] == ["t1", "t2"]


def test_edge_54_role_id_name_only_in_first_delta() -> None:
    out, _ = run_a2o([START, *_tool(0, "t1", "get_weather", '{"a"', ": 1}"), _delta("tool_use"), STOP])
    chunks = check_o_stream(out)  # the grammar rejects repeats
    assert sum("role" in d for d in _deltas(chunks)) == 1
    message = sdk_completion(out).choices[0].message
    assert message.role == "assistant" and message.tool_calls[0].function.name == "get_weather"


def test_edge_32_tool_without_arguments_gets_braces() -> None:
    chunks = check_o_stream(run_a2o([START, *_tool(0, "t1", "now", ""), _delta("tool_use"), STOP])[0])
    args = [tc["function"]["arguments"] for d in _deltas(chunks) for tc in d.get("tool_calls", [])]
    assert "".join(args) == "{}"


def test_edge_55_all_text_blocks_kept() -> None:
    events = [START, *_text(0, "one "), *_tool(1, "t", "f", "{}"), *_text(2, "two"), _delta("tool_use"), STOP]
    assert sdk_completion(run_a2o(events)[0]).choices[0].message.content == "one two"


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        (None, "stop"),
        ("brand_new_reason", "stop"),
    ],
)
def test_edge_56_stop_reason_table(stop: str | None, finish: str) -> None:
    chunks = check_o_stream(run_a2o([START, *_text(0, "x"), _delta(stop), STOP])[0])
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == finish


def test_mid_stream_error_event_becomes_error_chunk_without_done() -> None:
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    out, conv = run_a2o([START, *_text(0, "x"), err])
    chunks = check_o_stream(out)
    assert chunks[-1] == {
        "error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}
    }
    assert all(e.data != "[DONE]" for e in out)
    assert conv.finished


def test_eof_before_message_stop_is_an_error() -> None:
    out, _ = run_a2o([START, *_text(0, "x")])
    chunks = check_o_stream(out)
    assert chunks[-1]["error"]["message"] == "upstream stream ended unexpectedly"


def test_unknown_events_and_pings_are_ignored() -> None:
    events = [START, {"type": "ping"}, {"type": "future_event", "x": 1}, *_text(0, "x"), _delta("end_turn"), STOP]
    chunks = check_o_stream(run_a2o(events)[0])
    assert list(_deltas(chunks)) == [{"role": "assistant", "content": ""}, {"content": "x"}, {}]


def test_usage_input_side_kept_when_message_delta_has_only_output() -> None:
    _, conv = run_a2o([START, *_text(0, "x"), _delta("end_turn", 9), STOP])
    assert (conv.usage.input_tokens, conv.usage.output_tokens, conv.usage.cache_read_tokens) == (20, 9, 100)


def test_message_delta_input_counts_override_message_start() -> None:
    _, conv = run_a2o([START, *_text(0, "x"), _delta("end_turn", 9, input_tokens=25), STOP])
    assert conv.usage.input_tokens == 25


def test_shortened_names_restored_and_json_tool_becomes_content() -> None:
    hints = ResponseHints(tool_names={"short_abcd1234": "long.name"}, json_tool="json_output")
    events = [START, *_tool(0, "t", "short_abcd1234", "{}"), _delta("tool_use"), STOP]
    assert sdk_completion(run_a2o(events, hints=hints)[0]).choices[0].message.tool_calls[0].function.name == "long.name"
    events = [START, *_tool(0, "t", "json_output", '{"title": ', '"Hi"}'), _delta("tool_use"), STOP]
    out, _ = run_a2o(events, hints=hints)
    chunks = check_o_stream(out)
    final = sdk_completion(out).choices[0]
    assert json.loads(final.message.content) == {"title": "Hi"} and final.finish_reason == "stop"
    assert chunks


def test_redacted_thinking_is_carried_not_shown() -> None:
    events = [START, *_block(0, {"type": "redacted_thinking", "data": "abc"}), *_text(1, "x"), _delta("end_turn"), STOP]
    deltas = _deltas(check_o_stream(run_a2o(events)[0]))
    assert {"thinking_blocks": [{"index": 0, "type": "redacted_thinking", "data": "abc"}]} in deltas
    assert not any("reasoning_content" in d for d in deltas)


def test_server_tool_blocks_are_dropped() -> None:
    server = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    result = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}
    events = [START, *_block(0, server), *_block(1, result), *_text(2, "found"), _delta("end_turn"), STOP]
    message = sdk_completion(run_a2o(events)[0]).choices[0].message
    assert message.content == "found" and not message.tool_calls
