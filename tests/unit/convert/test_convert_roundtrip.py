"""Property tests: conversations survive A → O → A; streamed tool arguments survive any chunking."""

from __future__ import annotations

import itertools
import json
from typing import Any

from convert_streamkit import check_a_stream, run_o2a, sdk_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.convert import CapabilityProfile, anthropic_request_to_openai, openai_request_to_anthropic

OPENAI = CapabilityProfile.for_dialect("openai")
ANTHROPIC = CapabilityProfile.for_dialect("anthropic")
TOOL_NAMES = ["Bash", "Read", "mcp__server__" + "long_tool_name_" * 4]

texts = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != "")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
inputs = st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    counter = iter(range(10_000))
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [{"type": "text", "text": t} for t in draw(st.lists(texts, min_size=1, max_size=3))],
        }
    ]
    for _ in range(draw(st.integers(0, 4))):
        calls = [
            {
                "type": "tool_use",
                "id": f"toolu_{next(counter):08d}",
                "name": draw(st.sampled_from(TOOL_NAMES)),
                "input": draw(inputs),
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        said = [{"type": "text", "text": t} for t in draw(st.lists(texts, min_size=0 if calls else 1, max_size=2))]
        messages.append({"role": "assistant", "content": said + calls})
        results = [
            {
                "type": "tool_result",
                "tool_use_id": c["id"],
                "content": draw(
                    texts | st.lists(texts.map(lambda t: {"type": "text", "text": t}), min_size=1, max_size=2)
                ),
                "is_error": draw(st.booleans()),
            }
            for c in calls
        ]
        follow = [{"type": "text", "text": t} for t in draw(st.lists(texts, min_size=0 if results else 1, max_size=2))]
        messages.append({"role": "user", "content": results + follow})
    body: dict[str, Any] = {"model": "claude", "max_tokens": 1000, "messages": messages}
    body["tools"] = [
        {"name": n, "description": "d", "input_schema": {"type": "object", "properties": {}}} for n in TOOL_NAMES
    ]
    if draw(st.booleans()):
        body["system"] = draw(texts)
    return body


def _result_text(block: dict[str, Any]) -> str:
    content = block["content"]
    text = content if isinstance(content, str) else "\n".join(b["text"] for b in content)
    return ("Error: " if block.get("is_error") else "") + text


def _semantics(body: dict[str, Any]) -> list[Any]:
    """What must survive: per turn, the joined text, the tool calls and the tool results."""
    out: list[Any] = []
    system = body.get("system")
    if system:
        out.append(("system", system if isinstance(system, str) else "\n\n".join(b["text"] for b in system)))
    for msg in body["messages"]:
        blocks = msg["content"]
        joiner = "" if msg["role"] == "assistant" else "\n\n"
        said = joiner.join(b["text"] for b in blocks if b["type"] == "text")
        calls = [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]
        results = [(b["tool_use_id"], _result_text(b)) for b in blocks if b["type"] == "tool_result"]
        out.append((msg["role"], said, calls, results))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_anthropic_openai_anthropic_round_trip(body: dict[str, Any]) -> None:
    to_o = anthropic_request_to_openai(body, upstream_model="gpt", profile=OPENAI)
    o_body = json.loads(json.dumps(to_o.body))
    back = openai_request_to_anthropic(o_body, upstream_model="claude", profile=ANTHROPIC)
    restored = json.loads(json.dumps(back.body))
    for msg in restored["messages"]:
        for block in msg["content"]:
            if block["type"] == "tool_use":
                block["name"] = to_o.hints.restore_name(block["name"])
    assert _semantics(restored) == _semantics(body)


@st.composite
def chunked_calls(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n = draw(st.integers(1, 4))
    args = [draw(inputs) for _ in range(n)]
    pieces: list[list[str]] = []
    for a in args:
        text = json.dumps(a)
        cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
        bounds = [0, *cuts, len(text)]
        pieces.append([text[i:j] for i, j in itertools.pairwise(bounds) if j > i])
    events: list[tuple[int, str | None]] = [(i, None) for i in range(n)]
    queues = [list(p) for p in pieces]
    while any(queues):
        i = draw(st.sampled_from([k for k, q in enumerate(queues) if q]))
        events.append((i, queues[i].pop(0)))
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    for i, fragment in events:
        call: dict[str, Any] = {"index": i}
        if fragment is None:
            call.update(id=f"call_{i}", type="function", function={"name": f"tool_{i}", "arguments": ""})
        else:
            call["function"] = {"arguments": fragment}
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return chunks, args


@settings(max_examples=150, deadline=None)
@given(chunked_calls())
def test_edge_03_and_25_interleaved_fragments_reassemble_exactly(
    case: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    chunks, args = case
    out, _ = run_o2a([*chunks, "[DONE]"])
    check_a_stream(out)
    message = sdk_message(out)
    assert [(b.id, b.name, b.input) for b in message.content] == [
        (f"call_{i}", f"tool_{i}", a) for i, a in enumerate(args)
    ]
