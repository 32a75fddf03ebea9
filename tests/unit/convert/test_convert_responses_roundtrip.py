"""Property tests: a Responses conversation survives its round trips through each upstream dialect.

A client sends a request, the upstream answers, the client appends the answer's output items (and a
result per call) to its input and sends the next request, as Codex does with ``store: false``. What
the upstream receives as its own assistant turn must be what it said: text, tool call ids, names and
arguments, and the reasoning it needs back (a signed thinking block byte-exact; ``reasoning_content``
where the profile replays it).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from convert_streamkit import ROLE, id_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from responses_kit import (
    ANTHROPIC,
    DEEPSEEK,
    OPENAI,
    check_r_stream,
    final,
    message_end,
    message_start,
    neutral,
    run_a2r,
    run_chained,
    text_block,
    tool_block,
    writer,
)
from responses_kit import block_delta as a_delta
from responses_kit import block_start as a_start
from responses_kit import block_stop as a_stop

from gateway.convert import CapabilityProfile, ResponsesConverted
from gateway.convert.ids import shorten_tool_name
from gateway.convert.replies_x2r import anthropic_reply_to_responses, openai_reply_to_responses
from gateway.convert.requests_r2x import for_anthropic, for_openai

LONG = "lookup_" + "very_long_function_name_" * 3
TOOLS = [
    {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    {"type": "function", "name": LONG, "parameters": {"type": "object", "properties": {}}},
    {"type": "custom", "name": "apply_patch", "description": "Patch files"},
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Agents",
        "tools": [{"type": "function", "name": "spawn_agent"}],
    },
]
FUNCTIONS = ["get_weather", shorten_tool_name(LONG), "multi_agent_v1__spawn_agent"]
CUSTOM = "apply_patch"
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4)
suffixes = st.text(alphabet="abcdefXYZ0123456789_-", max_size=20)
signatures = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", min_size=8, max_size=80
)


def _pieces(draw: st.DrawFn | None, text: str) -> list[str]:
    """``text`` cut at random points (every piece non-empty); whole when there is no ``draw``."""
    if not text:
        return []
    cuts = draw(st.lists(st.integers(1, max(len(text) - 1, 1)), max_size=4)) if draw is not None else []
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(text)}), len(text)]
    return [text[i:j] for i, j in itertools.pairwise(bounds)]


def _call_input(draw: st.DrawFn, name: str) -> dict[str, Any]:
    return {"input": draw(st.text(max_size=60))} if name == CUSTOM else draw(arguments)


def _next_request(response: dict[str, Any], calls: list[tuple[str, str]]) -> dict[str, Any]:
    """The client's next turn: prior input, the output items verbatim, one result per call, a new prompt."""
    results = [
        {
            "type": "custom_tool_call_output" if name == CUSTOM else "function_call_output",
            "call_id": cid,
            "output": "ok",
        }
        for cid, name in calls
    ]
    items = [{"role": "user", "content": "hi"}, *response["output"], *results, {"role": "user", "content": "next"}]
    return {"model": "m", "input": json.loads(json.dumps(items)), "tools": TOOLS}


# -- (a) Responses → Chat Completions → Responses ----------------------------------------------


@st.composite
def chat_replies(draw: st.DrawFn) -> dict[str, Any]:
    n_calls = draw(st.integers(0, 3))
    calls = []
    for i in range(n_calls):
        name = draw(st.sampled_from([*FUNCTIONS, CUSTOM]))
        calls.append({"id": f"call_{i}{draw(suffixes)}", "name": name, "args": _call_input(draw, name)})
    text = draw(texts) if n_calls == 0 else draw(st.none() | texts)
    return {"text": text, "reasoning": draw(st.none() | texts), "calls": calls}


def _chat_completion(reply: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply["text"]}
    if reply["reasoning"] is not None:
        message["reasoning_content"] = reply["reasoning"]
    if reply["calls"]:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["args"])}}
            for c in reply["calls"]
        ]
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if reply["calls"] else "stop"}
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "up",
        "choices": [choice],
        "usage": usage,
    }


def _chat_chunks(draw: st.DrawFn, reply: dict[str, Any]) -> list[dict[str, Any] | str]:
    def delta(**fields: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": fields}]}

    chunks: list[dict[str, Any] | str] = [ROLE]
    chunks += [delta(reasoning_content=p) for p in _pieces(draw, reply["reasoning"] or "")]
    chunks += [delta(content=p) for p in _pieces(draw, reply["text"] or "")]
    for i, c in enumerate(reply["calls"]):
        head = {"index": i, "id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": ""}}
        chunks.append(delta(tool_calls=[head]))
        for piece in _pieces(draw, json.dumps(c["args"])):
            chunks.append(delta(tool_calls=[{"index": i, "function": {"arguments": piece}}]))
    finish = "tool_calls" if reply["calls"] else "stop"
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
    return [*chunks, "[DONE]"]


@SETTINGS
@given(
    reply=chat_replies(),
    streamed=st.booleans(),
    include=st.booleans(),
    profile=st.sampled_from([DEEPSEEK, OPENAI]),
    data=st.data(),
)
def test_chat_reply_survives_responses_round_trip(
    reply: dict[str, Any], streamed: bool, include: bool, profile: CapabilityProfile, data: st.DataObject
) -> None:
    first_req = {
        "model": "m",
        "input": "hi",
        "tools": TOOLS,
        "include": ["reasoning.encrypted_content"] if include else [],
    }
    shape = neutral(first_req)
    hints = for_openai(shape, upstream_model="up", profile=profile).hints
    if streamed:
        out, conv = run_chained(data.draw(_chunks_strategy(reply)), shape, hints=hints)
        payloads = check_r_stream(out)
        response = final(payloads)
        assert conv.response == response
    else:
        response = openai_reply_to_responses(_chat_completion(reply), writer(shape), new_id=id_factory(), hints=hints)
    assert response["status"] == "completed"

    calls = [(c["id"], c["name"]) for c in reply["calls"]]
    upstream = for_openai(neutral(_next_request(response, calls)), upstream_model="up", profile=profile).body
    messages = upstream["messages"]
    assert messages[0] == {"role": "user", "content": "hi"} and messages[-1] == {"role": "user", "content": "next"}
    assistant = messages[1]
    expected: dict[str, Any] = {"role": "assistant", "content": reply["text"]}
    if reply["calls"]:
        expected["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["args"])}}
            for c in reply["calls"]
        ]
    if reply["reasoning"] is not None and profile.reasoning_dialect == "deepseek":
        expected["reasoning_content"] = reply["reasoning"]
    assert _parsed(assistant) == _parsed(expected)
    assert [(m["tool_call_id"], m["content"]) for m in messages[2:-1]] == [(cid, "ok") for cid, _ in calls]


def _chunks_strategy(reply: dict[str, Any]) -> st.SearchStrategy[list[dict[str, Any] | str]]:
    return st.composite(lambda draw: _chat_chunks(draw, reply))()


def _parsed(message: dict[str, Any]) -> dict[str, Any]:
    out = dict(message)
    if "tool_calls" in out:
        out["tool_calls"] = [
            {**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
            for c in out["tool_calls"]
        ]
    return out


# -- (b) Responses → Anthropic Messages → Responses --------------------------------------------


@st.composite
def anthropic_contents(draw: st.DrawFn) -> list[dict[str, Any]]:
    kinds = draw(
        st.lists(st.sampled_from(["thinking", "redacted", "text", "tool"]), min_size=1, max_size=6).filter(
            lambda ks: any(k in ("text", "tool") for k in ks)
        )
    )
    blocks: list[dict[str, Any]] = []
    for i, kind in enumerate(kinds):
        if kind == "thinking":
            blocks.append({"type": "thinking", "thinking": draw(texts), "signature": draw(signatures)})
        elif kind == "redacted":
            blocks.append({"type": "redacted_thinking", "data": draw(signatures)})
        elif kind == "text":
            blocks.append({"type": "text", "text": draw(texts)})
        else:
            name = draw(st.sampled_from([*FUNCTIONS, CUSTOM]))
            tool_id = f"toolu_{i:02d}{draw(suffixes)}"
            blocks.append({"type": "tool_use", "id": tool_id, "name": name, "input": _call_input(draw, name)})
    return blocks


def _anthropic_events(draw: st.DrawFn | None, content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = [message_start()]
    for i, block in enumerate(content):
        if block["type"] == "text":
            events += text_block(i, *_pieces(draw, block["text"]))
        elif block["type"] == "tool_use":
            events += tool_block(i, block["id"], block["name"], *_pieces(draw, json.dumps(block["input"])))
        elif block["type"] == "thinking":
            deltas = [a_delta(i, {"type": "thinking_delta", "thinking": p}) for p in _pieces(draw, block["thinking"])]
            signature = a_delta(i, {"type": "signature_delta", "signature": block["signature"]})
            start = a_start(i, {"type": "thinking", "thinking": "", "signature": ""})
            events += [start, *deltas, signature, a_stop(i)]
        else:
            events += [a_start(i, block), a_stop(i)]
    return [*events, *message_end("tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn")]


def _merged(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive text blocks share one message item, so they come back as one text block."""
    out: list[dict[str, Any]] = []
    for block in content:
        if block["type"] == "text" and out and out[-1]["type"] == "text":
            out[-1] = {"type": "text", "text": out[-1]["text"] + block["text"]}
        else:
            out.append(dict(block))
    return out


@SETTINGS
@given(content=anthropic_contents(), streamed=st.booleans(), adaptive=st.booleans(), data=st.data())
def test_anthropic_reply_survives_responses_round_trip(
    content: list[dict[str, Any]], streamed: bool, adaptive: bool, data: st.DataObject
) -> None:
    first_req = {"model": "m", "input": "hi", "tools": TOOLS, "include": ["reasoning.encrypted_content"]}
    shape: ResponsesConverted = neutral(first_req)
    if streamed:
        events = data.draw(st.composite(lambda draw: _anthropic_events(draw, content))())
        out, conv = run_a2r(events, shape)
        assert conv.kept_response == conv.response
        response = final(check_r_stream(out))
    else:
        message = {
            "id": "msg_up",
            "type": "message",
            "role": "assistant",
            "model": "claude-up",
            "content": content,
            "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
        response = anthropic_reply_to_responses(message, writer(shape))
    assert response["status"] == "completed"

    calls = [(b["id"], b["name"]) for b in content if b["type"] == "tool_use"]
    profile = CapabilityProfile.for_dialect("anthropic", {"thinking_mode": "adaptive"}) if adaptive else ANTHROPIC
    sent = for_anthropic(neutral(_next_request(response, calls)), upstream_model="claude-up", profile=profile)
    messages = sent.body["messages"]
    assert messages[0] == {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    assert messages[1] == {"role": "assistant", "content": _merged(content)}
    tail = messages[2]["content"]
    assert [(b["tool_use_id"], b["content"]) for b in tail if b["type"] == "tool_result"] == [
        (i, "ok") for i, _ in calls
    ]
    assert tail[-1] == {"type": "text", "text": "next"} and len(messages) == 3
    assert "foreign_thinking_dropped" not in sent.notes


@SETTINGS
@given(content=anthropic_contents())
def test_anthropic_reasoning_without_include_is_kept_server_side(content: list[dict[str, Any]]) -> None:
    """Without ``include`` the client sees no carry; the kept response (server-held history) still has it."""
    shape = neutral({"model": "m", "input": "hi", "tools": TOOLS})
    out, conv = run_a2r(_anthropic_events(None, content), shape)
    assert "encrypted_content" not in b"".join(e.data.encode() for e in out).decode()
    assert "encrypted_content" not in json.dumps(conv.response)
    kept = conv.kept_response
    assert kept is not None
    calls = [(b["id"], b["name"]) for b in content if b["type"] == "tool_use"]
    sent = for_anthropic(neutral(_next_request(kept, calls)), upstream_model="claude-up", profile=ANTHROPIC)
    assert sent.body["messages"][1] == {"role": "assistant", "content": _merged(content)}
