"""The Responses door's shortcuts from a Chat upstream: they must give what the plain way gives.

- Streams (``Chained.pass_raw``): plain text chunks are converted straight to
  ``response.output_text.delta`` bytes. The client must get exactly the bytes the event path gives,
  and the converter must end in the same state (final Response, kept Response, usage).
- Non-streamed replies (``replies_x2r._text_reply``): a plain text reply is built without replaying it
  as events, and must equal the replay.

Everything that needs a decision must be left to the plain way.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest
from convert_streamkit import id_factory
from responses_kit import check_r_stream, writer
from support import relay_chunks

from gateway.convert import Chained, OpenAIStreamToAnthropic, ResponseHints, ResponsesConverted
from gateway.convert.replies_o2a import as_chunk
from gateway.convert.replies_x2r import openai_reply_to_responses
from gateway.protocols.openai import ChatCompletion
from gateway.protocols.sse import SSEDecoder, SSEEvent

enc = msgspec.json.encode


def chunk(delta: dict[str, Any] | None = None, *, finish: str | None = None, **extra: Any) -> bytes:
    doc = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "up-model",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + enc(doc) + b"\n\n"


def text(t: str, **delta: Any) -> bytes:
    return chunk({"content": t, **delta})


USAGE = chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 14, "total_tokens": 23})
DONE = b"data: [DONE]\n\n"
WORDS = [text(f'word {i} \u00e9 "q" \\ </x>\n') for i in range(12)]


def relay(events: list[bytes], *, lane: bool, hints: ResponseHints | None = None) -> tuple[bytes, int, Chained]:
    """The relay's loop (``gateway.relay._relay_stream``, ``take_chunk``) over these chunks, with or without the lane.

    Returns the client's bytes, how many events the lane converted, and the converter.
    """
    hints = hints or ResponseHints()
    first = OpenAIStreamToAnthropic(model="relay-model", new_id=id_factory(), hints=hints, encode=False)
    conv = Chained(first, writer(json_tool=hints.json_tool))
    wire, hits = relay_chunks(conv, events, lane=lane)
    return wire, hits, conv


def same_both_ways(events: list[bytes], hints: ResponseHints | None = None) -> tuple[bytes, int, Chained]:
    plain, none, slow = relay(events, lane=False, hints=hints)
    assert none == 0
    fast, hits, conv = relay(events, lane=True, hints=hints)
    assert fast == plain
    assert conv.response == slow.response
    assert conv.kept_response == slow.kept_response
    assert conv.usage == slow.usage
    return fast, hits, conv


def wire_events(wire: bytes) -> list[SSEEvent]:
    return SSEDecoder().feed(wire)


def test_plain_text_takes_the_lane_and_gives_the_event_paths_bytes() -> None:
    stream = [text("", role="assistant"), text("Hi"), *WORDS, chunk({}, finish="stop"), USAGE, DONE]
    wire, hits, conv = same_both_ways(stream)
    assert hits == len(WORDS)  # every word after the message opened
    payloads = check_r_stream(wire_events(wire))
    assert conv.response is not None and conv.response["status"] == "completed"
    said = "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta")
    assert said == "Hi" + "".join(f'word {i} \u00e9 "q" \\ </x>\n' for i in range(12))
    assert conv.response["output"][0]["content"][0]["text"] == said
    assert conv.usage.output_tokens == 14


def test_many_events_in_one_network_chunk_and_events_split_across_chunks() -> None:
    opening = text("", role="assistant") + text("Hi")
    rest = b"".join([*WORDS, chunk({}, finish="stop"), USAGE, DONE])
    _, hits, _ = same_both_ways([opening, rest])
    assert hits == len(WORDS)  # the words at the start of a network chunk, once the message is open
    _, hits, _ = same_both_ways([opening + rest])
    assert hits == len(WORDS)  # offered at every event boundary, not only where the network chunk starts
    stream = opening + rest
    rng = random.Random(7)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(stream)), 15))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        same_both_ways(pieces)


@pytest.mark.parametrize(
    "odd",
    [
        text("x", reasoning_content="thinking"),  # reasoning: a new item
        text("", reasoning_content="more"),
        text("x", refusal="no"),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}]}),
        text("x", usage={"prompt_tokens": 1, "completion_tokens": 1}),  # usage on a content chunk
        chunk({"content": "end"}, finish="length"),
        chunk({"content": "x"}, finish="content_filter"),
        b'data: {"error":{"message":"boom","type":"server_error"}}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":5}}]}\n\n',  # a wrong type
        b"data: {not json\n\n",
        b"event: error\ndata: {}\n\n",
        b": keep-alive\n\n",
        text("x").replace(b"\n\n", b"\r\n\r\n"),
        text("x").replace(b"data: ", b"data:"),
    ],
)
def test_a_chunk_that_needs_a_decision_takes_the_event_path(odd: bytes) -> None:
    stream = [text("", role="assistant"), text("Hi"), *WORDS[:3], odd, *WORDS[3:6], chunk({}, finish="stop"), DONE]
    same_both_ways(stream)
    same_both_ways([b"".join(stream)])


def test_deepseek_chunks_with_null_fields_take_the_lane() -> None:
    def ds(t: str) -> bytes:
        return text(t, role=None, reasoning_content=None, tool_calls=None, function_call=None, refusal=None)

    stream = [
        text("", reasoning_content="Let me think."),
        *(ds(f"w{i} ") for i in range(6)),
        chunk({}, finish="stop"),
        USAGE,
        DONE,
    ]
    wire, hits, _ = same_both_ways(stream)
    assert hits == 5  # the first text closes the reasoning item and opens the message: the event path
    payloads = check_r_stream(wire_events(wire))
    assert [p["type"] for p in payloads].count("response.output_item.added") == 2


def test_text_after_a_tool_call_and_think_tags_stay_on_the_event_path() -> None:
    call = chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}]})
    _, hits, _ = same_both_ways([text("Hi"), *WORDS[:2], call, *WORDS[2:5], chunk({}, finish="tool_calls"), DONE])
    assert hits == 2  # before the call only
    tags = ResponseHints(think_tags=True)
    _, hits, _ = same_both_ways([text("<think>hm</think>Hi"), *WORDS[:4], chunk({}, finish="stop"), DONE], tags)
    assert hits == 0


def test_a_stream_cut_after_lane_text_fails_as_the_event_path_does() -> None:
    wire, hits, conv = same_both_ways([text("Hi"), *WORDS[:4]])
    assert hits == 4
    assert conv.response is not None and conv.response["status"] == "failed"
    check_r_stream(wire_events(wire))


# -- non-streamed replies ---------------------------------------------------------------------------

SHAPE = ResponsesConverted(body={}, echo={"instructions": "Be brief.", "metadata": {"k": "v"}, "store": False})


def completion(message: dict[str, Any], finish: str | None = "stop", stop: str | None = None) -> dict[str, Any]:
    """``stop``: the stop sequence that matched (vLLM's ``stop_reason``)."""
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, "stop_reason": stop}
    return {"id": "c1", "object": "chat.completion", "model": "up", "choices": [choice], "usage": usage}


def replayed(doc: dict[str, Any], hints: ResponseHints) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The plain way: the reply replayed as one chunk through both stream converters."""
    conv = writer(SHAPE, json_tool=hints.json_tool)
    first = OpenAIStreamToAnthropic(model="relay", new_id=id_factory(), hints=hints, encode=False)
    chain = Chained(first, conv)
    chain.feed_chunk(as_chunk(msgspec.convert(doc, ChatCompletion)))
    chain.feed(SSEEvent(None, "[DONE]"))
    return conv.response, conv.kept_response


def answered(doc: dict[str, Any], hints: ResponseHints) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
    """The door's way, and how many ids it minted for an Anthropic message in between (none: the shortcut)."""
    conv = writer(SHAPE, json_tool=hints.json_tool)
    minted: list[str] = []
    ids = id_factory()

    def new_id(prefix: str) -> str:
        minted.append(prefix)
        return ids(prefix)

    return openai_reply_to_responses(doc, conv, new_id=new_id, hints=hints), conv.kept_response, len(minted)


def without_item_ids(response: dict[str, Any] | None) -> dict[str, Any]:
    assert response is not None
    return {**response, "output": [{**item, "id": "-"} for item in response["output"]]}


PLAIN = [
    completion({"content": "Hello there."}),
    completion({"content": "  leading space, \u00e9, \"quotes\" and\nlines"}),
    completion({"content": "cut off"}, finish="length"),
    completion({"content": "filtered"}, finish="content_filter"),
    completion({"content": "no reason"}, finish=None),
    completion({"content": "tools asked, none called"}, finish="tool_calls"),
    completion({"content": "matched"}, stop="END"),
    completion({"content": "null fields", "reasoning_content": None, "tool_calls": None, "refusal": None}),
    {**completion({"content": "cached"}), "usage": {"prompt_tokens": 100, "completion_tokens": 5,
                                                   "prompt_tokens_details": {"cached_tokens": 80}}},
    {**completion({"content": "deepseek"}), "usage": {"prompt_tokens": 100, "completion_tokens": 5,
                                                     "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36}},
    {**completion({"content": "kimi"}), "usage": {"prompt_tokens": 100, "completion_tokens": 5, "cached_tokens": 50}},
]  # fmt: skip


@pytest.mark.parametrize("doc", PLAIN)
def test_a_plain_text_reply_is_built_directly_and_equals_the_replay(doc: dict[str, Any]) -> None:
    hints = ResponseHints(stop_sequences=("END",))
    response, kept, minted = answered(doc, hints)
    assert minted == 0  # the shortcut: no Anthropic message in between
    plain, plain_kept = replayed(doc, hints)
    assert without_item_ids(response) == without_item_ids(plain)
    assert without_item_ids(kept) == without_item_ids(plain_kept)
    assert response["status"] == (
        "completed" if doc["choices"][0]["finish_reason"] not in ("length", "content_filter") else "incomplete"
    )


UNPLAIN = [
    (completion({"content": "x", "reasoning_content": "hm"}), ResponseHints()),
    (completion({"content": "x", "refusal": "no"}), ResponseHints()),
    (completion({"content": None, "tool_calls": [{"id": "c", "type": "function",
                                                 "function": {"name": "f", "arguments": "{}"}}]}), ResponseHints()),
    (completion({"content": [{"type": "text", "text": "parts"}]}), ResponseHints()),
    (completion({"content": "   "}), ResponseHints()),
    (completion({"content": "<think>a</think>b"}), ResponseHints(think_tags=True)),
    ({**completion({"content": "no usage"}), "usage": None}, ResponseHints()),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "hints"), UNPLAIN)
def test_a_reply_that_needs_a_decision_is_replayed(doc: dict[str, Any], hints: ResponseHints) -> None:
    response, kept, minted = answered(doc, hints)
    assert minted > 0
    plain, plain_kept = replayed(doc, hints)
    assert response == plain and kept == plain_kept
