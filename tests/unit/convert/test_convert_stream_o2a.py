"""OpenAI chunk stream → Anthropic SSE (conversion.md §5, §12.1, edge cases of §11)."""

from __future__ import annotations

import json

import pytest
from convert_streamkit import (
    ROLE,
    check_a_stream,
    finish_chunk,
    names,
    o_events,
    run_o2a,
    sdk_message,
    text_chunk,
    tool_chunk,
    usage_chunk,
)

from gateway.convert import ResponseHints
from gateway.protocols.sse import SSEDecoder

EXAMPLE_12_1 = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"choices": [{"index": 0, "delta": {"content": "Checking both."}}]},
    {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "read", "arguments": ""}}
                    ]
                },
            }
        ]
    },
    {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "read", "arguments": ""}}
                    ]
                },
            }
        ]
    },
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"path":"a'}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"arguments": '{"path":"b.py"}'}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '.py"}'}}]}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {
        "choices": [],
        "usage": {
            "prompt_tokens": 900,
            "completion_tokens": 40,
            "total_tokens": 940,
            "prompt_tokens_details": {"cached_tokens": 512},
        },
    },
    "[DONE]",
]


def _blocks(payloads: list[dict]) -> list[dict]:
    """Fold payloads into blocks with concatenated deltas (text / thinking / partial_json)."""
    blocks: list[dict] = []
    for p in payloads:
        if p["type"] == "content_block_start":
            blocks.append({**p["content_block"], "_json": ""})
        elif p["type"] == "content_block_delta":
            d = p["delta"]
            b = blocks[p["index"]]
            if d["type"] == "text_delta":
                b["text"] += d["text"]
            elif d["type"] == "thinking_delta":
                b["thinking"] += d["thinking"]
            elif d["type"] == "signature_delta":
                b["signature"] = d["signature"]
            else:
                b["_json"] += d["partial_json"]
    return blocks


def _final(payloads: list[dict]) -> dict:
    return next(p for p in payloads if p["type"] == "message_delta")


def test_worked_example_12_1_verbatim() -> None:
    out, conv = run_o2a(EXAMPLE_12_1, hint=400)
    payloads = check_a_stream(out)
    assert names(payloads) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert payloads[0]["message"]["usage"]["input_tokens"] == 400
    assert payloads[0]["message"]["model"] == "claude-alias"
    assert payloads[0]["message"]["id"].startswith("msg_")
    blocks = _blocks(payloads)
    assert blocks[0]["text"] == "Checking both."
    assert (blocks[1]["id"], blocks[1]["name"], blocks[1]["_json"]) == ("call_a", "read", '{"path":"a.py"}')
    assert (blocks[2]["id"], blocks[2]["name"], blocks[2]["_json"]) == ("call_b", "read", '{"path":"b.py"}')
    final = _final(payloads)
    assert final["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert final["usage"] == {
        "input_tokens": 388,
        "output_tokens": 40,
        "cache_read_input_tokens": 512,
        "cache_creation_input_tokens": 0,
    }
    assert conv.finished and conv.usage.input_tokens == 388 and not conv.usage.estimated
    message = sdk_message(out)
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[1].input == {"path": "a.py"}


def test_edge_01_every_event_has_an_event_line() -> None:
    out, _ = run_o2a([ROLE, text_chunk("hi"), finish_chunk(), "[DONE]"])
    assert all(e.event for e in out)
    check_a_stream(out)


def test_edge_02_no_empty_leading_text_block_for_tool_only_reply() -> None:
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
    out, _ = run_o2a([ROLE, text_chunk(""), text_chunk("\n\n"), tool_chunk(call), finish_chunk("tool_calls"), "[DONE]"])
    blocks = _blocks(check_a_stream(out))
    assert [b["type"] for b in blocks] == ["tool_use"]


def test_whitespace_before_text_is_kept_once_text_follows() -> None:
    out, _ = run_o2a([ROLE, text_chunk("\n"), text_chunk("Hello"), finish_chunk(), "[DONE]"])
    assert _blocks(check_a_stream(out))[0]["text"] == "\nHello"


def test_edge_03_concatenated_partial_json_equals_upstream_arguments() -> None:
    pieces = ['{"com', 'mand": "ls', ' -la", "timeout"', ": 5", "}"]
    chunks = [ROLE, tool_chunk({"index": 0, "id": "c1", "function": {"name": "Bash", "arguments": ""}})]
    chunks += [tool_chunk({"index": 0, "function": {"arguments": p}}) for p in pieces]
    out, _ = run_o2a([*chunks, finish_chunk("tool_calls"), "[DONE]"])
    assert _blocks(check_a_stream(out))[0]["_json"] == "".join(pieces)
    assert sdk_message(out).content[0].input == {"command": "ls -la", "timeout": 5}


def test_edge_04_truncated_arguments_still_streamed_and_fragments_before_name_kept() -> None:
    chunks = [
        ROLE,
        tool_chunk({"index": 0, "id": "c1", "function": {"arguments": '{"pa'}}),
        tool_chunk({"index": 0, "function": {"name": "Read", "arguments": 'th": "/tm'}}),
        finish_chunk("length"),
        "[DONE]",
    ]
    payloads = check_a_stream(run_o2a(chunks)[0])
    block = _blocks(payloads)[0]
    assert (block["name"], block["_json"]) == ("Read", '{"path": "/tm')
    assert _final(payloads)["delta"]["stop_reason"] == "max_tokens"


def test_edge_05_chunk_opening_a_tool_also_carries_full_arguments() -> None:
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    chunks = [ROLE, {"choices": [{"index": 0, "delta": {"content": "Sure.", "tool_calls": [call]}}]}]
    out, _ = run_o2a([*chunks, finish_chunk("tool_calls"), "[DONE]"])
    blocks = _blocks(check_a_stream(out))
    assert blocks[0]["text"] == "Sure." and blocks[1]["_json"] == '{"x": 1}'


def test_edge_05_first_text_after_thinking_not_lost() -> None:
    both = {"choices": [{"index": 0, "delta": {"reasoning_content": "hmm", "content": "Answer"}}]}
    blocks = _blocks(check_a_stream(run_o2a([ROLE, both, finish_chunk(), "[DONE]"])[0]))
    assert [b["type"] for b in blocks] == ["thinking", "text"]
    assert blocks[0]["thinking"] == "hmm" and blocks[1]["text"] == "Answer"


def test_edge_06_content_and_finish_reason_in_one_chunk() -> None:
    one = {
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "All at once."}, "finish_reason": "stop"}]
    }
    payloads = check_a_stream(run_o2a([one, "[DONE]"])[0])
    assert _blocks(payloads)[0]["text"] == "All at once."
    assert _final(payloads)["delta"]["stop_reason"] == "end_turn"


def test_edge_07_usage_after_finish_reason_is_folded_into_message_delta() -> None:
    chunks = [ROLE, text_chunk("x"), finish_chunk(), usage_chunk(100, 7, cached=60), "[DONE]"]
    payloads = check_a_stream(run_o2a(chunks)[0])
    usage = _final(payloads)["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["cache_read_input_tokens"]) == (40, 7, 60)
    assert names(payloads).count("message_delta") == 1


def test_edge_08_finish_without_usage_finalizes_at_eof_with_estimate() -> None:
    out, conv = run_o2a([ROLE, text_chunk("hello world"), finish_chunk()], hint=123)
    payloads = check_a_stream(out)
    usage = _final(payloads)["usage"]
    assert usage["input_tokens"] == 123 and usage["output_tokens"] > 0
    assert conv.usage.estimated


def test_edge_09_eof_without_done_or_finish_is_an_error_not_end_turn() -> None:
    payloads = check_a_stream(run_o2a([ROLE, text_chunk("partial")])[0])
    assert payloads[-1]["type"] == "error"
    assert "message_delta" not in names(payloads)
    assert payloads[-1]["error"]["message"] == "upstream stream ended unexpectedly"


def test_edge_09_eof_after_finish_reason_closes_normally() -> None:
    payloads = check_a_stream(run_o2a([ROLE, text_chunk("done"), finish_chunk()])[0])
    assert names(payloads)[-2:] == ["message_delta", "message_stop"]


def test_done_without_finish_reason_is_end_turn_or_tool_use() -> None:
    assert _final(check_a_stream(run_o2a([ROLE, text_chunk("a"), "[DONE]"])[0]))["delta"]["stop_reason"] == "end_turn"
    call = {"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}
    payloads = check_a_stream(run_o2a([ROLE, tool_chunk(call), "[DONE]"])[0])
    assert _final(payloads)["delta"]["stop_reason"] == "tool_use"


def test_edge_10_input_estimate_in_message_start_and_real_counts_in_message_delta() -> None:
    payloads = check_a_stream(
        run_o2a([ROLE, text_chunk("x"), finish_chunk(), usage_chunk(5000, 3), "[DONE]"], hint=4800)[0]
    )
    assert payloads[0]["message"]["usage"]["input_tokens"] == 4800
    assert _final(payloads)["usage"]["input_tokens"] == 5000


def _parallel(calls_by_chunk: list[list[dict]]) -> list[dict]:
    return [_blocks_only(b) for b in _blocks(check_a_stream(run_o2a(_with_end(calls_by_chunk))[0]))]


def _with_end(calls_by_chunk: list[list[dict]]) -> list:
    return [ROLE, *[tool_chunk(*calls) for calls in calls_by_chunk], finish_chunk("tool_calls"), "[DONE]"]


def _blocks_only(block: dict) -> dict:
    return {"id": block["id"], "name": block["name"], "args": json.loads(block["_json"] or "{}")}


def test_edge_20_parallel_calls_all_at_index_zero() -> None:
    blocks = _parallel(
        [
            [{"index": 0, "id": "a", "function": {"name": "get", "arguments": '{"k": 1}'}}],
            [{"index": 0, "id": "b", "function": {"name": "put", "arguments": '{"k": 2}'}}],
        ]
    )
    assert blocks == [{"id": "a", "name": "get", "args": {"k": 1}}, {"id": "b", "name": "put", "args": {"k": 2}}]


def test_edge_21_missing_index_keys_by_id_else_last_call() -> None:
    blocks = _parallel(
        [
            [{"id": "a", "function": {"name": "get", "arguments": '{"k":'}}],
            [{"function": {"arguments": " 1}"}}],
            [{"id": "b", "function": {"name": "put", "arguments": "{}"}}],
        ]
    )
    assert blocks == [{"id": "a", "name": "get", "args": {"k": 1}}, {"id": "b", "name": "put", "args": {}}]


def test_edge_22_same_call_repeated_at_several_indexes_is_merged_by_id() -> None:
    full = {"id": "a", "type": "function", "function": {"name": "get", "arguments": '{"k": 1}'}}
    blocks = _parallel([[{"index": 0, **full}], [{"index": 1, **full}]])
    assert blocks == [{"id": "a", "name": "get", "args": {"k": 1}}]


def test_edge_23_continuation_with_fresh_index_and_no_id_goes_to_last_call() -> None:
    blocks = _parallel(
        [
            [{"index": 0, "id": "a", "function": {"name": "get", "arguments": '{"k"'}}],
            [{"index": 1, "function": {"arguments": ": 1}"}}],
        ]
    )
    assert blocks == [{"id": "a", "name": "get", "args": {"k": 1}}]


def test_edge_24_cumulative_resend_only_contributes_suffix() -> None:
    chunks = _with_end(
        [
            [{"index": 0, "id": "a", "function": {"name": "get", "arguments": '{"k"'}}],
            [{"index": 0, "function": {"arguments": '{"k": 1'}}],
            [{"index": 0, "function": {"arguments": '{"k": 1}'}}],
        ]
    )
    out, _ = run_o2a(chunks, hints=ResponseHints(cumulative_tool_args=True))
    assert _blocks(check_a_stream(out))[0]["_json"] == '{"k": 1}'


def test_edge_24_prefix_test_not_applied_without_the_profile_flag() -> None:
    """A legitimate incremental stream can look cumulative ('{"a":' then '{"a":1}}')."""
    blocks = _blocks(
        check_a_stream(
            run_o2a(
                _with_end(
                    [
                        [{"index": 0, "id": "x", "function": {"name": "f", "arguments": '{"a":'}}],
                        [{"index": 0, "function": {"arguments": '{"a":1}}'}}],
                    ]
                )
            )[0]
        )
    )
    assert blocks[0]["_json"] == '{"a":{"a":1}}'


def test_edge_24_identical_full_copy_is_dropped_for_every_upstream() -> None:
    call = {"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"k": 1}'}}
    again = {"index": 0, "function": {"arguments": '{"k": 1}'}}
    assert _parallel([[call], [again]]) == [{"id": "a", "name": "f", "args": {"k": 1}}]


def test_edge_25_interleaved_parallel_deltas_never_go_to_a_closed_block() -> None:
    calls = [[{"index": i, "id": f"c{i}", "function": {"name": f"t{i}", "arguments": ""}}] for i in range(3)]
    for _ in range(3):
        for i in range(3):
            calls.append([{"index": i, "function": {"arguments": ['{"n":', f" {i}", "}"][_]}}])
    blocks = _parallel(calls)
    assert blocks == [{"id": f"c{i}", "name": f"t{i}", "args": {"n": i}} for i in range(3)]


def test_stream_all_tools_live_switches_blocks_and_late_delta_is_an_error() -> None:
    chunks = _with_end(
        [
            [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}],
            [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{"}}],
            [{"index": 1, "function": {"arguments": "}"}}],
        ]
    )
    out, _ = run_o2a(chunks, hints=ResponseHints(stream_all_tools_live=True))
    assert [b["id"] for b in _blocks(check_a_stream(out))] == ["a", "b"]
    late = _with_end(
        [
            [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}}],
            [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}],
            [{"index": 0, "function": {"arguments": "}"}}],
        ]
    )
    payloads = check_a_stream(run_o2a(late, hints=ResponseHints(stream_all_tools_live=True))[0])
    assert payloads[-1]["type"] == "error"


def test_edge_26_tool_name_split_across_chunks() -> None:
    blocks = _parallel(
        [
            [{"index": 0, "id": "a", "function": {"name": "get_"}}],
            [{"index": 0, "function": {"name": "weather"}}],
            [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}],
        ]
    )
    assert blocks == [{"id": "a", "name": "get_weather", "args": {"city": "Paris"}}]


def test_repeated_identical_name_is_not_appended() -> None:
    blocks = _parallel(
        [
            [{"index": 0, "id": "a", "function": {"name": "get", "arguments": ""}}],
            [{"index": 0, "id": "a", "function": {"name": "get", "arguments": "{}"}}],
        ]
    )
    assert blocks == [{"id": "a", "name": "get", "args": {}}]


def test_edge_27_finish_stop_with_tool_calls_is_tool_use() -> None:
    call = {"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}
    payloads = check_a_stream(run_o2a([ROLE, tool_chunk(call), finish_chunk("stop"), "[DONE]"])[0])
    assert _final(payloads)["delta"]["stop_reason"] == "tool_use"


def test_edge_28_non_conforming_tool_ids_are_sanitized_for_a_clients() -> None:
    blocks = _parallel([[{"index": 0, "id": "functions.Bash:0", "function": {"name": "Bash", "arguments": "{}"}}]])
    assert blocks[0]["id"].startswith("functions_Bash_0_") and len(blocks[0]["id"]) <= 64


def test_edge_29_missing_tool_ids_are_generated_unique() -> None:
    blocks = _parallel(
        [
            [{"index": 0, "function": {"name": "a", "arguments": "{}"}}],
            [{"index": 1, "id": "", "function": {"name": "b", "arguments": "{}"}}],
        ]
    )
    ids = [b["id"] for b in blocks]
    assert all(i.startswith("toolu_") for i in ids) and len(set(ids)) == 2


def test_edge_30_shortened_tool_names_are_restored_in_stream() -> None:
    hints = ResponseHints(tool_names={"mcp__short_1234abcd": "mcp__server__" + "x" * 80})
    chunks = _with_end([[{"index": 0, "id": "a", "function": {"name": "mcp__short_1234abcd", "arguments": "{}"}}]])
    blocks = _blocks(check_a_stream(run_o2a(chunks, hints=hints)[0]))
    assert blocks[0]["name"] == "mcp__server__" + "x" * 80


def test_edge_32_parameterless_tool_yields_empty_object_input() -> None:
    out, _ = run_o2a(_with_end([[{"index": 0, "id": "a", "function": {"name": "now", "arguments": ""}}]]))
    check_a_stream(out)
    assert sdk_message(out).content[0].input == {}


def test_edge_33_reasoning_becomes_thinking_blocks_with_minted_signature() -> None:
    chunks = [ROLE, {"choices": [{"index": 0, "delta": {"reasoning_content": "Let me think."}}]}, text_chunk("Hi")]
    blocks = _blocks(check_a_stream(run_o2a([*chunks, finish_chunk(), "[DONE]"])[0]))
    assert blocks[0]["type"] == "thinking" and blocks[0]["thinking"] == "Let me think."
    assert blocks[0]["signature"].startswith("rly1.")


def test_edge_36_empty_reasoning_never_opens_a_thinking_block() -> None:
    empty = {"choices": [{"index": 0, "delta": {"reasoning_content": "", "content": "x"}}]}
    blocks = _blocks(check_a_stream(run_o2a([ROLE, empty, finish_chunk(), "[DONE]"])[0]))
    assert [b["type"] for b in blocks] == ["text"]


def test_edge_37_no_empty_deltas_and_delta_types_match_blocks() -> None:
    chunks = [
        ROLE,
        {"choices": [{"index": 0, "delta": {"reasoning_content": "a"}}]},
        text_chunk(""),
        {"choices": [{"index": 0, "delta": {"reasoning_content": "b", "content": ""}}]},
        text_chunk("c"),
        finish_chunk(),
        "[DONE]",
    ]
    payloads = check_a_stream(run_o2a(chunks)[0])  # grammar rejects empty or mismatched deltas
    assert _blocks(payloads)[0]["thinking"] == "ab"


def test_edge_38_block_indexes_are_sequential_and_unique() -> None:
    chunks = [
        ROLE,
        {"choices": [{"index": 0, "delta": {"reasoning": "r1"}}]},
        text_chunk("t1"),
        {"choices": [{"index": 0, "delta": {"reasoning": "r2"}}]},
        text_chunk("t2"),
        tool_chunk({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}),
        finish_chunk("tool_calls"),
        "[DONE]",
    ]
    payloads = check_a_stream(run_o2a(chunks)[0])
    starts = [p["index"] for p in payloads if p["type"] == "content_block_start"]
    assert starts == [0, 1, 2, 3, 4]


def test_edge_39_reasoning_opens_a_thinking_block_not_text() -> None:
    chunks = [ROLE, text_chunk("Hi "), {"choices": [{"index": 0, "delta": {"reasoning_content": "why"}}]}]
    blocks = _blocks(check_a_stream(run_o2a([*chunks, finish_chunk(), "[DONE]"])[0]))
    assert [b["type"] for b in blocks] == ["text", "thinking"]


@pytest.mark.parametrize(
    "delta",
    [
        {"reasoning_content": "zoo"},
        {"reasoning": "zoo"},
        {"reasoning_details": [{"type": "reasoning.text", "text": "zoo"}]},
    ],
)
def test_edge_40_reasoning_field_zoo(delta: dict) -> None:
    chunks = [ROLE, {"choices": [{"index": 0, "delta": delta}]}, finish_chunk(), "[DONE]"]
    assert _blocks(check_a_stream(run_o2a(chunks)[0]))[0]["thinking"] == "zoo"


def test_think_tags_split_across_chunks_when_profile_says_so() -> None:
    pieces = ["<thi", "nk>plan", "ning</th", "ink>Answer"]
    chunks = [ROLE, *[text_chunk(p) for p in pieces], finish_chunk(), "[DONE]"]
    blocks = _blocks(check_a_stream(run_o2a(chunks, hints=ResponseHints(think_tags=True))[0]))
    assert [(b["type"], b.get("thinking") or b.get("text")) for b in blocks] == [
        ("thinking", "planning"),
        ("text", "Answer"),
    ]


def test_omitted_reasoning_is_not_streamed() -> None:
    chunks = [ROLE, {"choices": [{"index": 0, "delta": {"reasoning_content": "secret"}}]}, text_chunk("ok")]
    out, _conv = run_o2a([*chunks, finish_chunk(), "[DONE]"], hints=ResponseHints(omit_reasoning=True))
    assert [b["type"] for b in _blocks(check_a_stream(out))] == ["text"]


def test_edge_41_usage_inside_choices_zero() -> None:
    kimi = {
        "choices": [
            {"index": 0, "delta": {}, "finish_reason": "stop", "usage": {"prompt_tokens": 9, "completion_tokens": 2}}
        ]
    }
    payloads = check_a_stream(run_o2a([ROLE, text_chunk("x"), kimi, "[DONE]"])[0])
    assert _final(payloads)["usage"]["input_tokens"] == 9


def test_edge_42_choices_null_on_usage_chunk() -> None:
    chunks = [
        ROLE,
        text_chunk("x"),
        finish_chunk(),
        {"choices": None, "usage": {"prompt_tokens": 4, "completion_tokens": 1}},
    ]
    payloads = check_a_stream(run_o2a([*chunks, "[DONE]"])[0])
    assert _final(payloads)["usage"]["output_tokens"] == 1


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({"error": {"message": "boom", "type": "server_error"}}, "api_error"),
        ({"object": "error", "message": "vllm broke", "type": "BadRequestError", "code": 400}, "api_error"),
        (
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {},
                        "finish_reason": "error",
                        "error": {"message": "provider down", "code": 502},
                    }
                ]
            },
            "api_error",
        ),
        ({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}, "rate_limit_error"),
        (
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens"
                }
            },
            "invalid_request_error",
        ),
    ],
)
def test_edge_50_mid_stream_error_payloads_end_with_an_error_event(payload: dict, kind: str) -> None:
    payloads = check_a_stream(run_o2a([ROLE, text_chunk("partial"), payload, finish_chunk(), "[DONE]"])[0])
    assert payloads[-1]["type"] == "error" and payloads[-1]["error"]["type"] == kind
    assert "message_stop" not in names(payloads)


def test_edge_50_context_error_mid_stream_uses_prompt_is_too_long_wording() -> None:
    msg = "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens"
    payloads = check_a_stream(run_o2a([ROLE, {"error": {"message": msg}}])[0])
    assert payloads[-1]["error"]["message"] == "prompt is too long: 9000 tokens > 8192 maximum"


def test_edge_51_sse_comments_are_ignored_by_decoder_and_converter() -> None:
    wire = b": OPENROUTER PROCESSING\n\ndata: " + json.dumps(ROLE).encode() + b"\n\n: keep-alive\n\n"
    wire += b"data:" + json.dumps(text_chunk("ok")).encode() + b"\r\n\r\ndata: [DONE]\n\n"
    from gateway.convert import OpenAIStreamToAnthropic

    conv = OpenAIStreamToAnthropic(model="m", new_id=lambda p: p + "1")
    out = [o for e in SSEDecoder().feed(wire) for o in conv.feed(e)]
    assert _blocks(check_a_stream(out))[0]["text"] == "ok"


def test_non_json_garbage_line_is_skipped_but_bad_json_object_fails() -> None:
    payloads = check_a_stream(run_o2a([ROLE, "OPENROUTER PROCESSING", text_chunk("ok"), finish_chunk(), "[DONE]"])[0])
    assert names(payloads)[-1] == "message_stop"
    payloads = check_a_stream(run_o2a([ROLE, '{"choices": [', finish_chunk(), "[DONE]"])[0])
    assert payloads[-1]["type"] == "error"


def test_edge_67_stop_reason_always_present_for_tool_only_stream() -> None:
    call = {"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}
    payloads = check_a_stream(run_o2a([tool_chunk(call), "[DONE]"])[0])
    assert _final(payloads)["delta"]["stop_reason"] == "tool_use"


def test_edge_68_nothing_after_message_stop_or_error() -> None:
    out, conv = run_o2a([ROLE, text_chunk("x"), "[DONE]"])
    assert conv.feed(o_events([text_chunk("late")])[0]) == []
    assert conv.finish() == [] and conv.fail("x") == [] and conv.ping() == []
    check_a_stream(out)


def test_edge_69_message_delta_immediately_followed_by_message_stop() -> None:
    payloads = check_a_stream(run_o2a([ROLE, text_chunk("x"), finish_chunk(), usage_chunk(), "[DONE]"])[0])
    i = names(payloads).index("message_delta")
    assert names(payloads)[i + 1 :] == ["message_stop"]


def test_edge_70_insufficient_system_resource_is_an_overloaded_error() -> None:
    payloads = check_a_stream(
        run_o2a([ROLE, text_chunk("x"), finish_chunk("insufficient_system_resource"), "[DONE]"])[0]
    )
    assert payloads[-1]["type"] == "error" and payloads[-1]["error"]["type"] == "overloaded_error"


def test_fail_mid_stream_with_open_block_ends_with_error_only() -> None:
    out, conv = run_o2a([ROLE, text_chunk("x")], finish=False)
    out += conv.fail("connection reset", "overloaded_error")
    payloads = check_a_stream(out)
    assert names(payloads)[-2:] == ["content_block_delta", "error"]


def test_fail_before_any_event_is_a_lone_error() -> None:
    out, conv = run_o2a([], finish=False)
    payloads = check_a_stream(out + conv.fail("upstream died"))
    assert names(payloads) == ["error"]


def test_ping_after_start_is_valid() -> None:
    out, conv = run_o2a([ROLE], finish=False)
    out += conv.ping()
    out += [e for c in o_events([text_chunk("x"), "[DONE]"]) for e in conv.feed(c)]
    assert names(check_a_stream(out))[:2] == ["message_start", "ping"]


def test_upstream_event_error_line() -> None:
    from gateway.protocols.sse import SSEEvent

    out, conv = run_o2a([ROLE], finish=False)
    out += conv.feed(SSEEvent("error", json.dumps({"error": {"message": "overloaded", "code": 529}})))
    payloads = check_a_stream(out)
    assert payloads[-1]["error"]["type"] == "overloaded_error"


def test_refusal_delta_becomes_text_and_content_filter_refusal() -> None:
    refusal = {"choices": [{"index": 0, "delta": {"refusal": "I can't help."}}]}
    payloads = check_a_stream(run_o2a([ROLE, refusal, finish_chunk("content_filter"), "[DONE]"])[0])
    assert _blocks(payloads)[0]["text"] == "I can't help."
    assert _final(payloads)["delta"]["stop_reason"] == "refusal"


def test_edge_63_vllm_stop_reason_maps_to_stop_sequence() -> None:
    chunks = [
        ROLE,
        text_chunk("x"),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}]},
    ]
    payloads = check_a_stream(run_o2a([*chunks, "[DONE]"], hints=ResponseHints(stop_sequences=("END",)))[0])
    assert _final(payloads)["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_legacy_function_call_delta() -> None:
    chunks = [
        ROLE,
        {"choices": [{"index": 0, "delta": {"function_call": {"name": "f", "arguments": '{"a"'}}}]},
        {"choices": [{"index": 0, "delta": {"function_call": {"arguments": ": 1}"}}}]},
        finish_chunk("function_call"),
        "[DONE]",
    ]
    blocks = _blocks(check_a_stream(run_o2a(chunks)[0]))
    assert blocks[0]["name"] == "f" and json.loads(blocks[0]["_json"]) == {"a": 1}


def test_text_after_tool_phase_is_buffered_and_emitted_after_tools() -> None:
    call = {"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}}
    chunks = [ROLE, tool_chunk(call), text_chunk("trailing"), tool_chunk({"index": 0, "function": {"arguments": "}"}})]
    blocks = _blocks(check_a_stream(run_o2a([*chunks, finish_chunk("tool_calls"), "[DONE]"])[0]))
    assert [b["type"] for b in blocks] == ["tool_use", "text"]
    assert blocks[0]["_json"] == "{}"


def test_the_forced_json_output_call_streams_as_the_text_answer() -> None:
    """Structured output through an upstream without ``response_format``: the forced ``json_output`` call's
    arguments are the answer, streamed as text, and the message ends as a turn, not a tool use."""
    pieces = ['{"ci', 'ty": "Os', 'lo"}']
    chunks = [ROLE, tool_chunk({"index": 0, "id": "c1", "function": {"name": "json_output", "arguments": ""}})]
    chunks += [tool_chunk({"index": 0, "function": {"arguments": p}}) for p in pieces]
    out, _ = run_o2a([*chunks, finish_chunk("tool_calls"), "[DONE]"], hints=ResponseHints(json_tool="json_output"))
    message = sdk_message(out)
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == '{"city": "Oslo"}' and message.stop_reason == "end_turn"
