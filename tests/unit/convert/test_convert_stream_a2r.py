"""Anthropic SSE → Responses SSE (streams_a2r), OpenAI chunks through ``Chained``, replies (replies_x2r)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from convert_streamkit import ROLE, finish_chunk, id_factory, text_chunk, tool_chunk, usage_chunk
from openai.types.responses import Response, ResponseCustomToolCall
from responses_kit import (
    EVENTS,
    KEY,
    block_delta,
    block_start,
    block_stop,
    carry,
    check_r_stream,
    final,
    message_end,
    message_start,
    names,
    neutral,
    run_a2r,
    run_chained,
    text_block,
    thinking_block,
    to_openai,
    tool_block,
    writer,
)

from gateway.convert import ResponseHints, ResponsesConverted, envelope
from gateway.convert.grammar import GrammarError
from gateway.convert.grammar_responses import ResponsesGrammar
from gateway.convert.r_objects import responses_usage
from gateway.convert.replies_x2r import anthropic_reply_to_responses, openai_reply_to_responses
from gateway.convert.requests_r2a import ToolIdentity
from gateway.domain import Usage
from gateway.errors import UpstreamError, UpstreamUnavailable
from gateway.protocols.sse import SSEEvent

INCLUDE = ResponsesConverted(body={}, include_reasoning=True)
SHAPE = ResponsesConverted(
    body={},
    tools={
        "get_weather": ToolIdentity("function", "get_weather"),
        "apply_patch": ToolIdentity("custom", "apply_patch"),
        "multi_agent_v1__spawn_agent": ToolIdentity("function", "spawn_agent", "multi_agent_v1"),
    },
)
SIGNATURE = "EqQBCkgIARABGAIiQL+/weird==\u00e9/sig"
TEXT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def only(payloads: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [p for p in payloads if p["type"] == kind]


def done_items(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p["item"] for p in only(payloads, "response.output_item.done")]


# -- text ---------------------------------------------------------------------------------------


def test_text_answer_in_canonical_order() -> None:
    out, conv = run_a2r([message_start(), *text_block(0, "Hel", "lo"), *message_end()])
    payloads = check_r_stream(out)
    assert names(payloads) == TEXT_ORDER
    added = payloads[2]["item"]
    assert added["type"] == "message" and added["status"] == "in_progress" and added["id"].startswith("msg_")
    assert added["role"] == "assistant" and added["content"] == []
    assert payloads[3]["part"] == {"type": "output_text", "text": "", "annotations": []}
    assert [p["delta"] for p in only(payloads, "response.output_text.delta")] == ["Hel", "lo"]
    assert all(p["item_id"] == added["id"] and p["content_index"] == 0 for p in payloads[3:8])
    item = {**added, "status": "completed", "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}
    assert payloads[-2]["item"] == item
    response = final(payloads)
    assert response["status"] == "completed" and response["output"] == [item]
    assert response["id"] == "resp_test" and response["object"] == "response" and response["model"] == "relay-model"
    assert conv.finished and conv.response == response
    assert Response.model_validate(response).output_text == "Hello"


def test_created_and_in_progress_carry_an_empty_in_progress_response() -> None:
    out, _ = run_a2r([message_start(), *text_block(0, "x"), *message_end()])
    created, progress = check_r_stream(out)[:2]
    for event in (created, progress):
        assert event["response"]["status"] == "in_progress"
        assert event["response"]["output"] == [] and event["response"]["usage"] is None


def test_consecutive_text_blocks_share_one_message_item() -> None:
    events = [message_start(), *text_block(0, "Hello"), *text_block(1, ", "), *text_block(2, "world"), *message_end()]
    payloads = check_r_stream(run_a2r(events)[0])
    assert len(only(payloads, "response.output_item.added")) == 1
    assert len(only(payloads, "response.content_part.added")) == 1
    assert {p["content_index"] for p in only(payloads, "response.output_text.delta")} == {0}
    assert only(payloads, "response.output_text.done")[0]["text"] == "Hello, world"
    assert [i["content"][0]["text"] for i in final(payloads)["output"]] == ["Hello, world"]


def test_text_start_with_initial_text_and_empty_deltas() -> None:
    events = [
        message_start(),
        block_start(0, {"type": "text", "text": "Hi"}),
        block_delta(0, {"type": "text_delta", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "!"}),
        block_stop(0),
        *message_end(),
    ]
    payloads = check_r_stream(run_a2r(events)[0])
    assert [p["delta"] for p in only(payloads, "response.output_text.delta")] == ["Hi", "!"]


def test_text_after_a_tool_call_opens_a_new_message_item() -> None:
    events = [
        message_start(),
        *text_block(0, "First."),
        *tool_block(1, "toolu_1", "get_weather", "{}"),
        *text_block(2, "Then."),
        *message_end("end_turn"),
    ]
    payloads = check_r_stream(run_a2r(events, SHAPE)[0])
    output = final(payloads)["output"]
    assert [i["type"] for i in output] == ["message", "function_call", "message"]
    assert [p["output_index"] for p in only(payloads, "response.output_item.added")] == [0, 1, 2]
    assert len({i["id"] for i in output}) == 3


# -- reasoning ----------------------------------------------------------------------------------


def test_thinking_becomes_a_reasoning_item_with_summary_events() -> None:
    events = [message_start(), *thinking_block(0, "Let me think.", SIGNATURE), *text_block(1, "Answer"), *message_end()]
    payloads = check_r_stream(run_a2r(events, INCLUDE)[0])
    rs = payloads[2]["item"]
    assert rs == {"type": "reasoning", "id": rs["id"], "summary": []} and rs["id"].startswith("rs_")
    at = {"item_id": rs["id"], "output_index": 0, "summary_index": 0}
    assert [p["delta"] for p in only(payloads, "response.reasoning_summary_text.delta")] == ["Let me think."]
    [text_done] = only(payloads, "response.reasoning_summary_text.done")
    assert text_done == {**text_done, **at, "text": "Let me think."}
    [part_done] = only(payloads, "response.reasoning_summary_part.done")
    assert part_done["part"] == {"type": "summary_text", "text": "Let me think."}
    reasoning = final(payloads)["output"][0]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    assert final(payloads)["output"][1]["content"][0]["text"] == "Answer"


def test_thinking_carry_is_sealed_with_the_signature_byte_exact() -> None:
    events = [message_start(), *thinking_block(0, "Deep thought.", SIGNATURE), *message_end()]
    out, conv = run_a2r(events, INCLUDE)
    payloads = check_r_stream(out)
    token = done_items(payloads)[0]["encrypted_content"]
    assert final(payloads)["output"][0]["encrypted_content"] == token
    assert "encrypted_content" not in payloads[2]["item"]
    assert envelope.unseal(KEY, token) == {"k": "thinking", "t": "Deep thought.", "s": SIGNATURE}
    assert envelope.unseal(b"some-other-relay-key-xxxxxxxxxxx", token) is None
    assert SIGNATURE not in token and "Deep thought." not in token  # opaque (base64), not plain text
    assert conv.kept_response == conv.response


def test_encrypted_content_only_when_the_client_asked_for_it() -> None:
    events = [message_start(), *thinking_block(0, "Hidden.", SIGNATURE), *text_block(1, "ok"), *message_end()]
    out, conv = run_a2r(events, ResponsesConverted(body={}, include_reasoning=False))
    payloads = check_r_stream(out)
    assert "encrypted_content" not in json.dumps(payloads)
    assert conv.response is not None and "encrypted_content" not in conv.response["output"][0]
    kept = conv.kept_response
    assert kept is not None
    assert carry(kept["output"][0]["encrypted_content"]) == {"k": "thinking", "t": "Hidden.", "s": SIGNATURE}
    assert kept["output"][1] == conv.response["output"][1]


def test_redacted_thinking_becomes_an_empty_reasoning_item_with_its_data() -> None:
    events = [
        message_start(),
        block_start(0, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}),
        block_stop(0),
        *text_block(1, "Done."),
        *message_end(),
    ]
    payloads = check_r_stream(run_a2r(events, INCLUDE)[0])
    assert names(payloads)[2:4] == ["response.output_item.added", "response.output_item.done"]
    reasoning = final(payloads)["output"][0]
    assert reasoning["type"] == "reasoning" and reasoning["summary"] == []
    assert carry(reasoning["encrypted_content"]) == {"k": "redacted", "d": "EmwKAhgBEgy3va3pzix/LafPsn4a"}


def test_thinking_without_signature_carries_its_text_as_reasoning() -> None:
    events = [
        message_start(),
        block_start(0, {"type": "thinking", "thinking": "pre-", "signature": ""}),
        block_delta(0, {"type": "thinking_delta", "thinking": "text"}),
        block_stop(0),
        *message_end(),
    ]
    payloads = check_r_stream(run_a2r(events, INCLUDE)[0])
    assert names(payloads)[3:5] == ["response.reasoning_summary_part.added", "response.reasoning_summary_text.delta"]
    assert carry(final(payloads)["output"][0]["encrypted_content"]) == {"k": "reasoning", "t": "pre-text"}


def test_reasoning_summary_part_is_added_before_its_first_delta() -> None:
    events = [message_start(), *thinking_block(0, "Let me think.", SIGNATURE), *message_end()]
    payloads = check_r_stream(run_a2r(events, INCLUDE)[0])
    assert names(payloads)[2:8] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]


def test_signed_thinking_with_empty_text_is_not_taken_for_redacted() -> None:
    events = [
        message_start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        block_delta(0, {"type": "signature_delta", "signature": SIGNATURE}),
        block_stop(0),
        *text_block(1, "ok"),
        *message_end(),
    ]
    payloads = check_r_stream(run_a2r(events, INCLUDE)[0])
    assert carry(final(payloads)["output"][0]["encrypted_content"]) == {"k": "thinking", "t": "", "s": SIGNATURE}


# -- tool calls ---------------------------------------------------------------------------------


def test_tool_use_becomes_function_call_with_call_id_from_the_upstream() -> None:
    events = [
        message_start(),
        *tool_block(0, "toolu_01A", "get_weather", '{"city":', '"Paris"}'),
        *tool_block(1, "toolu_01B", "get_weather", '{"city":"Oslo"}'),
        *message_end("tool_use"),
    ]
    payloads = check_r_stream(run_a2r(events, SHAPE)[0])
    first, second = only(payloads, "response.output_item.added")
    assert first["output_index"] == 0 and second["output_index"] == 1
    assert first["item"] == {
        "type": "function_call",
        "id": first["item"]["id"],
        "call_id": "toolu_01A",
        "name": "get_weather",
        "arguments": "",
        "status": "in_progress",
    }
    assert first["item"]["id"].startswith("fc_") and first["item"]["id"] != second["item"]["id"]
    deltas = [p["delta"] for p in only(payloads, "response.function_call_arguments.delta") if p["output_index"] == 0]
    assert deltas == ['{"city":', '"Paris"}']
    assert [p["arguments"] for p in only(payloads, "response.function_call_arguments.done")] == [
        '{"city":"Paris"}',
        '{"city":"Oslo"}',
    ]
    output = final(payloads)["output"]
    assert [(i["call_id"], i["name"], json.loads(i["arguments"]), i["status"]) for i in output] == [
        ("toolu_01A", "get_weather", {"city": "Paris"}, "completed"),
        ("toolu_01B", "get_weather", {"city": "Oslo"}, "completed"),
    ]
    assert final(payloads)["status"] == "completed"


def test_tool_use_without_arguments_gets_an_empty_object() -> None:
    payloads = check_r_stream(run_a2r([message_start(), *tool_block(0, "toolu_1", "get_weather"), *message_end()])[0])
    assert not only(payloads, "response.function_call_arguments.delta")
    assert final(payloads)["output"][0]["arguments"] == "{}"


def test_unknown_tool_names_pass_through_as_functions() -> None:
    payloads = check_r_stream(run_a2r([message_start(), *tool_block(0, "toolu_1", "mystery", "{}"), *message_end()])[0])
    assert final(payloads)["output"][0]["name"] == "mystery" and "namespace" not in final(payloads)["output"][0]


def test_namespaced_tool_is_split_back() -> None:
    events = [message_start(), *tool_block(0, "toolu_1", "multi_agent_v1__spawn_agent", '{"task":"x"}'), *message_end()]
    payloads = check_r_stream(run_a2r(events, SHAPE)[0])
    item = final(payloads)["output"][0]
    assert (item["type"], item["name"], item["namespace"], item["call_id"]) == (
        "function_call",
        "spawn_agent",
        "multi_agent_v1",
        "toolu_1",
    )
    assert payloads[2]["item"]["namespace"] == "multi_agent_v1"


def test_custom_tool_input_is_unwrapped() -> None:
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"
    wrapped = json.dumps({"input": patch})
    events = [message_start(), *tool_block(0, "toolu_1", "apply_patch", wrapped[:10], wrapped[10:]), *message_end()]
    payloads = check_r_stream(run_a2r(events, SHAPE)[0])
    assert not only(payloads, "response.function_call_arguments.delta")
    assert [p["delta"] for p in only(payloads, "response.custom_tool_call_input.delta")] == [patch]
    assert only(payloads, "response.custom_tool_call_input.done")[0]["input"] == patch
    item = final(payloads)["output"][0]
    assert item == {
        "type": "custom_tool_call",
        "id": item["id"],
        "call_id": "toolu_1",
        "name": "apply_patch",
        "input": patch,
    }
    assert item["id"].startswith("ctc_")
    assert Response.model_validate(final(payloads)).output[0].type == "custom_tool_call"


def test_custom_tool_input_without_the_wrapper_is_passed_raw() -> None:
    events = [message_start(), *tool_block(0, "toolu_1", "apply_patch", '{"patch":"x"}'), *message_end()]
    payloads = check_r_stream(run_a2r(events, SHAPE)[0])
    assert final(payloads)["output"][0]["input"] == '{"patch":"x"}'


def test_custom_tool_stream_validates_against_the_sdk() -> None:
    events = [message_start(), *tool_block(0, "toolu_1", "apply_patch", '{"input":"x"}'), *message_end()]
    out = run_a2r(events, SHAPE)[0]
    added = only(check_r_stream(out, sdk=False), "response.output_item.added")[0]["item"]
    ResponseCustomToolCall.model_validate(added)
    check_r_stream(out)


def test_json_tool_becomes_message_text() -> None:
    events = [
        message_start(),
        *tool_block(0, "toolu_1", "json_output", '{"answer":', '"42"}'),
        *message_end("tool_use"),
    ]
    payloads = check_r_stream(run_a2r(events, json_tool="json_output")[0])
    assert not only(payloads, "response.function_call_arguments.delta")
    assert [p["delta"] for p in only(payloads, "response.output_text.delta")] == ['{"answer":', '"42"}']
    [item] = final(payloads)["output"]
    assert item["type"] == "message" and json.loads(item["content"][0]["text"]) == {"answer": "42"}
    assert final(payloads)["status"] == "completed"


def test_text_then_json_tool_share_one_message() -> None:
    events = [message_start(), *text_block(0, "Here: "), *tool_block(1, "toolu_1", "json_output", "{}"), *message_end()]
    payloads = check_r_stream(run_a2r(events, json_tool="json_output")[0])
    assert [i["content"][0]["text"] for i in final(payloads)["output"]] == ["Here: {}"]


# -- stop reasons -------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["end_turn", "stop_sequence", "tool_use", "pause_turn", None])
def test_ordinary_stops_complete(reason: str | None) -> None:
    payloads = check_r_stream(run_a2r([message_start(), *text_block(0, "x"), *message_end(reason)])[0])  # type: ignore[arg-type]
    assert final(payloads)["status"] == "completed" and final(payloads)["incomplete_details"] is None


@pytest.mark.parametrize("reason", ["max_tokens", "model_context_window_exceeded"])
def test_max_tokens_is_incomplete(reason: str) -> None:
    events = [
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "cut sho"}),
        *message_end(reason),
    ]
    payloads = check_r_stream(run_a2r(events)[0])
    assert payloads[-1]["type"] == "response.incomplete"
    response = final(payloads)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][-1]["status"] == "incomplete" and done_items(payloads)[-1]["status"] == "incomplete"
    assert response["usage"]["output_tokens"] == 7


def test_max_tokens_inside_a_tool_call_marks_the_call_incomplete() -> None:
    events = [message_start(), *text_block(0, "Calling"), *tool_block(1, "toolu_1", "get_weather", '{"city":')]
    payloads = check_r_stream(run_a2r([*events[:-1], *message_end("max_tokens")], SHAPE)[0])
    message, call = final(payloads)["output"]
    assert message["status"] == "completed"
    assert call["status"] == "incomplete" and call["arguments"] == '{"city":'


def test_refusal_is_incomplete_content_filter() -> None:
    payloads = check_r_stream(run_a2r([message_start(), *text_block(0, "I can't."), *message_end("refusal")])[0])
    response = final(payloads)
    assert payloads[-1]["type"] == "response.incomplete"
    assert response["incomplete_details"] == {"reason": "content_filter"}
    assert response["output"][0]["status"] == "incomplete"


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"type": "rate_limit_error", "message": "Rate limited. Please try again in 1.2s"}, "rate_limit_exceeded"),
        ({"type": "overloaded_error", "message": "Overloaded"}, "server_error"),
        ({"type": "api_error", "message": "Internal"}, "server_error"),
        ({"type": "invalid_request_error", "message": "bad thing"}, "server_error"),
        ({}, "server_error"),
    ],
)
def test_error_event_fails_the_response(error: dict[str, Any], code: str) -> None:
    events = [message_start(), *text_block(0, "partial")[:2], {"type": "error", "error": error}]
    out, conv = run_a2r(events)
    payloads = check_r_stream(out)
    assert payloads[-1]["type"] == "response.failed"
    response = final(payloads)
    assert response["status"] == "failed"
    assert response["error"] == {"code": code, "message": error.get("message") or "upstream error"}
    assert conv.finished and conv.finish() == [] and conv.feed(SSEEvent("ping", '{"type":"ping"}')) == []


def test_prompt_too_long_is_context_length_exceeded() -> None:
    """Codex special-cases this code; the SDK's ResponseError literal lacks it: only the event shell is SDK-checked."""
    error = {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}
    out, _ = run_a2r([message_start(), {"type": "error", "error": error}])
    payloads = check_r_stream(out, sdk=False)
    assert names(payloads) == ["response.created", "response.in_progress", "response.failed"]
    assert final(payloads)["error"] == {"code": "context_length_exceeded", "message": error["message"]}
    sdk_shaped = {
        **payloads[-1],
        "response": {**final(payloads), "error": {**final(payloads)["error"], "code": "server_error"}},
    }
    EVENTS.validate_python(sdk_shaped)


def test_eof_without_message_stop_fails() -> None:
    payloads = check_r_stream(run_a2r([message_start(), *text_block(0, "half")[:2]])[0])
    assert final(payloads)["error"] == {"code": "server_error", "message": "upstream stream ended unexpectedly"}
    assert final(payloads)["status"] == "failed"


def test_eof_before_anything_still_opens_then_fails() -> None:
    out, _ = run_a2r([])
    assert names(check_r_stream(out)) == ["response.created", "response.in_progress", "response.failed"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "upstream sent a malformed event"),
        ("[1, 2]", "upstream sent a malformed event"),
        ('{"type":"content_block_start","index":0}', "relay could not convert the stream: 'content_block'"),
        ('{"type":"content_block_delta","index":0}', "relay could not convert the stream"),
    ],
)
def test_malformed_event_fails(raw: str, message: str) -> None:
    conv = writer()
    out = conv.feed(SSEEvent("message_start", json.dumps(message_start())))
    out += conv.feed(SSEEvent("content_block_start", json.dumps(block_start(0, {"type": "text", "text": ""}))))
    out += conv.feed(SSEEvent("x", raw))
    out += conv.feed(SSEEvent("message_stop", '{"type":"message_stop"}'))
    out += conv.finish()
    payloads = check_r_stream(out)
    assert final(payloads)["status"] == "failed" and final(payloads)["error"]["message"].startswith(message)


def test_pings_unknown_events_and_blank_data_are_ignored() -> None:
    conv = writer()
    assert conv.feed(SSEEvent("ping", '{"type":"ping"}')) == []
    assert conv.feed(SSEEvent(None, "  ")) == []
    assert conv.feed(SSEEvent("future", '{"type":"future_event"}')) == []
    out = [
        e
        for ev in [message_start(), *text_block(0, "x"), {"type": "ping"}, *message_end()]
        for e in conv.feed(SSEEvent(ev["type"], json.dumps(ev)))
    ]
    assert names(check_r_stream(out)) == TEXT_ORDER[:5] + TEXT_ORDER[6:]


def test_explicit_fail_before_the_stream_started() -> None:
    conv = writer()
    out = conv.fail("connection reset", "api_error")
    payloads = check_r_stream(out)
    assert names(payloads) == ["response.created", "response.in_progress", "response.failed"]
    assert conv.fail("again") == [] and conv.finish() == []


def test_delta_for_an_unknown_block_is_ignored() -> None:
    events = [
        message_start(),
        block_delta(5, {"type": "text_delta", "text": "ghost"}),
        *text_block(0, "x"),
        *message_end(),
    ]
    payloads = check_r_stream(run_a2r(events)[0])
    assert final(payloads)["output"][0]["content"][0]["text"] == "x"


# -- usage and the response object --------------------------------------------------------------


def test_usage_includes_cached_input_and_cache_writes() -> None:
    events = [
        message_start(input_tokens=100, cache_read=40, cache_write=25),
        *text_block(0, "x"),
        *message_end(output_tokens=9),
    ]
    out, conv = run_a2r(events)
    usage = final(check_r_stream(out))["usage"]
    assert usage == {
        "input_tokens": 165,
        "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 25},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 174,
    }
    assert conv.usage.input_tokens == 100 and conv.usage.cache_read_tokens == 40
    assert conv.usage.cache_write_tokens == 25 and conv.usage.output_tokens == 9


def test_responses_usage_from_a_domain_usage() -> None:
    usage = Usage(input_tokens=3, output_tokens=4, cache_read_tokens=5, cache_write_tokens=6)
    assert responses_usage(usage)["input_tokens"] == 14 and responses_usage(usage)["total_tokens"] == 18


def test_response_echoes_the_request() -> None:
    req = {
        "model": "m",
        "input": "x",
        "instructions": [{"role": "developer", "content": "A"}],
        "metadata": {"k": "v"},
        "store": False,
        "parallel_tool_calls": False,
        "tool_choice": {"type": "function", "name": "get_weather"},
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True}},
        "max_output_tokens": 100,
        "temperature": 0.3,
        "top_p": 0.9,
        "user": "u",
        "truncation": "auto",
        "previous_response_id": "resp_0",
        "tools": [
            {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False},
            {
                "type": "custom",
                "name": "apply_patch",
                "format": {"type": "grammar", "syntax": "lark", "definition": "s"},
            },
            {"type": "namespace", "name": "ns", "description": "d", "tools": [{"type": "function", "name": "g"}]},
            {"type": "web_search", "external_web_access": True},
        ],
    }
    payloads = check_r_stream(run_a2r([message_start(), *text_block(0, "x"), *message_end()], neutral(req))[0])
    response = final(payloads)
    for key in ("instructions", "metadata", "store", "parallel_tool_calls", "tool_choice", "reasoning", "text"):
        assert response[key] == req[key], key
    for key in ("max_output_tokens", "temperature", "top_p", "user", "truncation", "previous_response_id", "tools"):
        assert response[key] == req[key], key
    assert payloads[0]["response"]["tools"] == req["tools"]


def test_response_defaults_without_echo() -> None:
    response = final(check_r_stream(run_a2r([message_start(), *text_block(0, "x"), *message_end()])[0]))
    assert response["tools"] == [] and response["tool_choice"] == "auto" and response["parallel_tool_calls"] is True
    assert response["metadata"] == {} and response["instructions"] is None and response["error"] is None
    assert response["created_at"] == 1700000000


# -- Chained: OpenAI chunks → Anthropic → Responses ----------------------------------------------


def test_chained_reasoning_text_and_tool_call() -> None:
    chunks = [
        ROLE,
        {"choices": [{"index": 0, "delta": {"reasoning_content": "Think "}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": "hard."}}]},
        text_chunk("Checking."),
        tool_chunk(
            {"index": 0, "id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        ),
        tool_chunk({"index": 0, "function": {"arguments": '{"city":'}}),
        tool_chunk({"index": 0, "function": {"arguments": '"Rome"}'}}),
        finish_chunk("tool_calls"),
        usage_chunk(prompt=100, completion=20, cached=30),
        "[DONE]",
    ]
    shape = ResponsesConverted(body={}, tools=SHAPE.tools, include_reasoning=True)
    out, conv = run_chained(chunks, shape)
    payloads = check_r_stream(out)
    reasoning, message, call = final(payloads)["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Think hard."}]
    assert carry(reasoning["encrypted_content"]) == {"k": "reasoning", "t": "Think hard."}
    assert message["content"][0]["text"] == "Checking."
    assert (call["call_id"], call["name"], json.loads(call["arguments"])) == ("call_9", "get_weather", {"city": "Rome"})
    assert final(payloads)["usage"]["input_tokens"] == 100
    assert final(payloads)["usage"]["input_tokens_details"]["cached_tokens"] == 30
    assert final(payloads)["usage"]["output_tokens"] == 20
    assert conv.usage.input_tokens == 70 and conv.usage.cache_read_tokens == 30 and not conv.usage.estimated
    assert conv.finished and conv.response == final(payloads) and conv.kept_response == final(payloads)


def test_chained_parallel_calls_and_flattened_names() -> None:
    req = {
        "input": "x",
        "tools": [
            {"type": "function", "name": "get_weather"},
            {
                "type": "namespace",
                "name": "multi_agent_v1",
                "description": "agents",
                "tools": [{"type": "function", "name": "spawn_agent"}],
            },
        ],
    }
    n = neutral(req)
    hints = to_openai(req).hints
    chunks = [
        ROLE,
        tool_chunk(
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        ),
        tool_chunk(
            {
                "index": 1,
                "id": "call_b",
                "type": "function",
                "function": {"name": "multi_agent_v1__spawn_agent", "arguments": '{"t":1}'},
            }
        ),
        finish_chunk("tool_calls"),
        "[DONE]",
    ]
    payloads = check_r_stream(run_chained(chunks, n, hints=hints)[0])
    output = final(payloads)["output"]
    assert [(i["call_id"], i["name"], i.get("namespace")) for i in output] == [
        ("call_a", "get_weather", None),
        ("call_b", "spawn_agent", "multi_agent_v1"),
    ]


def test_chained_length_is_incomplete() -> None:
    payloads = check_r_stream(run_chained([ROLE, text_chunk("Hi"), finish_chunk("length"), "[DONE]"])[0])
    assert final(payloads)["status"] == "incomplete"
    assert final(payloads)["incomplete_details"] == {"reason": "max_output_tokens"}


def test_chained_eof_without_finish_fails() -> None:
    out, conv = run_chained([ROLE, text_chunk("Hi")])
    payloads = check_r_stream(out)
    assert final(payloads)["error"] == {"code": "server_error", "message": "upstream stream ended unexpectedly"}
    assert conv.finished and conv.finish() == []


def test_chained_malformed_chunk_fails() -> None:
    payloads = check_r_stream(run_chained([ROLE, "{broken"])[0])
    assert final(payloads)["error"]["message"] == "upstream sent a malformed chunk"


def test_chained_upstream_error_event_maps_its_code() -> None:
    out, conv = run_chained([ROLE, text_chunk("x")], finish=False)
    error = {"error": {"type": "rate_limit_exceeded", "code": "rate_limit_exceeded", "message": "slow down"}}
    out += conv.feed(SSEEvent("error", json.dumps(error)))
    payloads = check_r_stream(out)
    assert final(payloads)["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}


def test_chained_context_length_error_is_context_length_exceeded() -> None:
    out, conv = run_chained([ROLE], finish=False)
    message = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."
    error = {"error": {"code": "context_length_exceeded", "type": "invalid_request_error", "message": message}}
    out += conv.feed(SSEEvent("error", json.dumps(error)))
    payloads = check_r_stream(out, sdk=False)
    assert final(payloads)["error"]["code"] == "context_length_exceeded"
    assert final(payloads)["error"]["message"].startswith("prompt is too long")


def test_chained_explicit_fail() -> None:
    out, conv = run_chained([ROLE, text_chunk("x")], finish=False)
    out += conv.fail("upstream connection broke")
    assert final(check_r_stream(out))["error"]["message"] == "upstream connection broke"


# -- non-streamed replies -----------------------------------------------------------------------


ANTHROPIC_REPLY = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-up",
    "content": [
        {"type": "thinking", "thinking": "Hmm.", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": "REDACTED=="},
        {"type": "text", "text": "A"},
        {"type": "text", "text": "B"},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}},
        {"type": "tool_use", "id": "toolu_2", "name": "apply_patch", "input": {"input": "raw patch"}},
        {"type": "tool_use", "id": "toolu_3", "name": "multi_agent_v1__spawn_agent", "input": {}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 2},
}


def test_anthropic_reply_to_responses() -> None:
    shape = ResponsesConverted(body={}, tools=SHAPE.tools, include_reasoning=True)
    response = anthropic_reply_to_responses(ANTHROPIC_REPLY, writer(shape))
    Response.model_validate(response)
    output = response["output"]
    assert [i["type"] for i in output] == [
        "reasoning",
        "reasoning",
        "message",
        "function_call",
        "custom_tool_call",
        "function_call",
    ]
    assert carry(output[0]["encrypted_content"]) == {"k": "thinking", "t": "Hmm.", "s": SIGNATURE}
    assert carry(output[1]["encrypted_content"]) == {"k": "redacted", "d": "REDACTED=="}
    assert output[2]["content"] == [{"type": "output_text", "text": "AB", "annotations": []}]
    assert (output[3]["call_id"], json.loads(output[3]["arguments"])) == ("toolu_1", {"city": "Rome"})
    assert (output[4]["call_id"], output[4]["input"]) == ("toolu_2", "raw patch")
    assert (output[5]["name"], output[5]["namespace"]) == ("spawn_agent", "multi_agent_v1")
    assert response["status"] == "completed" and response["usage"]["input_tokens"] == 7
    assert len({i["id"] for i in output}) == len(output)


def test_anthropic_reply_max_tokens_is_returned_incomplete() -> None:
    reply = {**ANTHROPIC_REPLY, "content": [{"type": "text", "text": "cut"}], "stop_reason": "max_tokens"}
    response = anthropic_reply_to_responses(reply, writer())
    assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": "max_output_tokens"}


def test_anthropic_error_reply_raises_upstream_error() -> None:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
    with pytest.raises(UpstreamError) as info:
        anthropic_reply_to_responses(body, writer())
    assert info.value.status_code == 429 and "slow" in str(info.value)


def test_invalid_anthropic_reply_is_unavailable() -> None:
    with pytest.raises(UpstreamUnavailable):
        anthropic_reply_to_responses({"content": "nope"}, writer())


OPENAI_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-up",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello",
                "reasoning_content": "Because.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 30,
        "completion_tokens": 4,
        "total_tokens": 34,
        "prompt_tokens_details": {"cached_tokens": 10},
    },
}


def test_openai_reply_to_responses() -> None:
    shape = ResponsesConverted(body={}, tools=SHAPE.tools, include_reasoning=True)
    response = openai_reply_to_responses(OPENAI_REPLY, writer(shape), new_id=id_factory(), hints=ResponseHints())
    Response.model_validate(response)
    reasoning, message, call = response["output"]
    assert carry(reasoning["encrypted_content"]) == {"k": "reasoning", "t": "Because."}
    assert message["content"][0]["text"] == "Hello"
    assert (call["call_id"], call["name"], call["arguments"]) == ("call_1", "get_weather", '{"city":"Rome"}')
    assert response["usage"]["input_tokens"] == 30 and response["usage"]["input_tokens_details"]["cached_tokens"] == 10


def test_openai_reply_length_and_no_choices() -> None:
    cut = {
        **OPENAI_REPLY,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "length"}],
    }
    response = openai_reply_to_responses(cut, writer(), new_id=id_factory(), hints=ResponseHints())
    assert response["status"] == "incomplete"
    with pytest.raises(UpstreamUnavailable):
        openai_reply_to_responses({**OPENAI_REPLY, "choices": []}, writer(), new_id=id_factory(), hints=ResponseHints())


# -- the grammar itself -------------------------------------------------------------------------


def _ev(seq: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "sequence_number": seq, **fields}


def _life(seq: int, kind: str, rid: str = "resp_1") -> dict[str, Any]:
    return _ev(seq, kind, response={"id": rid})


def _added(seq: int, index: int) -> dict[str, Any]:
    return _ev(seq, "response.output_item.added", output_index=index, item={"type": "message"})


def _run(events: list[dict[str, Any]]) -> ResponsesGrammar:
    grammar = ResponsesGrammar()
    for event in events:
        grammar.check(event)
    return grammar


@pytest.mark.parametrize(
    ("events", "words"),
    [
        ([_life(0, "response.in_progress")], "before response.created"),
        ([_life(1, "response.created")], "sequence_number 1 after -1"),
        ([_life(0, "response.created"), _life(2, "response.in_progress")], "sequence_number 2"),
        ([_life(0, "response.created"), _life(1, "response.in_progress", "resp_2")], "names response"),
        ([_life(0, "response.created"), _life(1, "response.created")], "twice"),
        ([_life(0, "response.created"), _added(1, 1)], "output_index 1, expected 0"),
        ([_life(0, "response.created"), _added(1, 0), _added(2, 1)], "while another item is open"),
        (
            [_life(0, "response.created"), _ev(1, "response.output_text.delta", output_index=0, content_index=0)],
            "not open",
        ),
        (
            [
                _life(0, "response.created"),
                _added(1, 0),
                _ev(2, "response.output_text.delta", output_index=0, content_index=0),
            ],
            "before its content part was added",
        ),
        ([_life(0, "response.created"), _added(1, 0), _life(2, "response.completed")], "unfinished output items"),
        ([_life(0, "response.created"), _added(1, 0), _life(2, "response.incomplete")], "unfinished output items"),
        ([_life(0, "response.created"), _life(1, "response.completed"), _life(2, "response.failed")], "after the end"),
        ([_life(0, "response.created"), _ev(1, "response.teleport")], "unknown event"),
        ([{"sequence_number": 0}], "without a type"),
    ],
)
def test_grammar_rejects(events: list[dict[str, Any]], words: str) -> None:
    with pytest.raises(GrammarError, match=words):
        _run(events)


def test_grammar_lets_failed_end_with_open_items() -> None:
    grammar = _run([_life(0, "response.created"), _added(1, 0), _life(2, "response.failed")])
    assert grammar.state == "ended"


def test_grammar_accepts_the_error_event() -> None:
    _run([_life(0, "response.created"), _ev(1, "error", code="x", message="y")])
