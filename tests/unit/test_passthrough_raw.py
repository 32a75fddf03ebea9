"""Same-dialect taps relaying plain content events without decoding them (``pass_raw``).

The raw path must give the client exactly what the event path gives, only faster; anything that
needs a decision (usage, errors, the end, odd framing) must be left to the event path.
"""

import msgspec
import pytest
from support import relay_chunks

from gateway.passthrough import AnthropicPassthrough, OpenAIPassthrough, ResponsesPassthrough
from gateway.testing.fake_replies import Reply, ToolCall
from gateway.testing.fake_responses import responses_stream

enc = msgspec.json.encode


def openai_chunk(text: str, model: str = "up-model", **extra: object) -> bytes:
    doc = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        **extra,
    }
    return b"data: " + enc(doc) + b"\n\n"


def relay(tap, chunks: list[bytes], *, raw: bool) -> tuple[bytes, int]:
    """The relay's loop, with or without the raw path; returns output and raw events."""
    return relay_chunks(tap, chunks, lane=raw)


def openai_tap() -> OpenAIPassthrough:
    return OpenAIPassthrough(model="public-name", client_wants_usage=False, upstream_model="up-model")


def openai_stream() -> list[bytes]:
    first = openai_chunk("").replace(b'"content":""', b'"role":"assistant","content":""')[:-2]
    words = [openai_chunk(f'word {i} \u00e9\\n \\"q\\" ') for i in range(12)]
    usage = b"data: " + enc(
        {"id": "c", "model": "up-model", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 12}}
    )
    return [
        first + b"\n\n",
        openai_chunk("Hi"),
        words[0] + words[1] + words[2],
        *words[3:],
        usage + b"\n\n",
        b"data: [DONE]\n\n",
    ]


def test_openai_raw_path_gives_the_client_the_same_events_and_usage():
    slow_tap, fast_tap = openai_tap(), openai_tap()
    slow, _ = relay(slow_tap, openai_stream(), raw=False)
    fast, hits = relay(fast_tap, openai_stream(), raw=True)
    assert hits == 14  # every chunk but the usage-only one and [DONE]
    assert fast == slow
    assert b"up-model" not in fast and fast.count(b'"model":"public-name"') == 14  # the usage-only chunk is dropped
    assert fast_tap.usage == slow_tap.usage and fast_tap.finished and fast_tap.usage.output_tokens == 12
    # Raw chunks are counted in bytes: escapes, UTF-8 and the role chunk make that a little more.
    assert slow_tap.out_chars <= fast_tap.out_chars <= slow_tap.out_chars * 1.4


@pytest.mark.parametrize(
    "chunk",
    [
        openai_chunk("x", usage={"prompt_tokens": 1}),  # usage decides billing
        b'data: {"error":{"message":"boom"}}\n\n',
        b"data: [DONE]\n\n",
        openai_chunk("x").replace(b"\n\n", b"\r\n\r\n"),  # CR line ends
        b": keep-alive\n\n" + openai_chunk("x"),  # a comment line
        openai_chunk("x").replace(b'"model":"up-model"', b'"model": "up-model"'),  # spelt differently
        openai_chunk("x", model="other-model"),
        openai_chunk("x")[:-1],  # not a whole event
        b"event: delta\n" + openai_chunk("x"),  # an event name: not plain data
    ],
)
def test_openai_raw_path_leaves_what_needs_a_decision_to_the_event_path(chunk):
    tap = openai_tap()
    relay(tap, [openai_chunk("learn the envelope")], raw=False)
    assert tap.pass_raw(chunk) == (b"", chunk)
    plain = openai_chunk("plain")  # after a plain chunk, the split happens at the event boundary
    head, rest = tap.pass_raw(plain + chunk)
    if b"\r" in chunk:  # a chunk with CR line ends goes the event path whole
        assert (head, rest) == (b"", plain + chunk)
    else:
        assert head == plain.replace(b"up-model", b"public-name") and rest == chunk


def test_openai_raw_path_needs_the_upstream_model():
    chunk = openai_chunk("x")
    tap = OpenAIPassthrough(model="public-name", client_wants_usage=False)
    assert tap.pass_raw(chunk) == (b"", chunk)


def test_openai_whole_stream_in_one_read_goes_raw_up_to_the_usage_chunk():
    """A fast upstream can deliver everything in one read: the run covers it, the tail decides."""
    stream = b"".join(openai_stream())
    slow_tap, fast_tap = openai_tap(), openai_tap()
    slow, _ = relay(slow_tap, [stream], raw=False)
    fast, hits = relay(fast_tap, [stream], raw=True)
    assert hits == 14 and fast == slow and fast_tap.usage == slow_tap.usage


def test_openai_cut_stream_estimate_from_raw_chunks_is_close_to_the_decoded_count():
    words = [openai_chunk("abcde" * 4) for _ in range(30)]  # 20 characters each
    tap = openai_tap()
    relay(tap, [b"".join(words[:10]), *words[10:]], raw=True)  # cut: no usage, no [DONE]
    assert not tap.usage_final and tap.out_chars == 30 * 20


def test_openai_raw_path_is_a_noop_rename_when_names_match():
    tap = OpenAIPassthrough(model="same", client_wants_usage=False, upstream_model="same")
    relay(tap, [openai_chunk("learn", model="same")], raw=False)
    chunk = openai_chunk("x", model="same") + openai_chunk("y", model="same")
    assert tap.pass_raw(chunk) == (chunk, b"")


def test_openai_usage_null_on_every_chunk_is_plain():
    """With stream_options.include_usage, OpenAI puts "usage": null on every chunk until the last."""
    tap = openai_tap()
    relay(tap, [openai_chunk("learn", usage=None)], raw=False)
    chunk = openai_chunk("x", usage=None)
    final = openai_chunk("", usage={"prompt_tokens": 3, "completion_tokens": 1})
    head, rest = tap.pass_raw(chunk + final)
    assert head == chunk.replace(b"up-model", b"public-name") and rest == final


def anthropic_delta(text: str) -> bytes:
    data = enc({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})
    return b"event: content_block_delta\ndata: " + data + b"\n\n"


def anthropic_stream() -> list[bytes]:
    def ev(name: str, doc: dict) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + enc(doc) + b"\n\n"

    start = ev("message_start", {"type": "message_start", "message": {"model": "up", "usage": {"input_tokens": 9}}})
    block = ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
    deltas = [anthropic_delta(f"piece {i} error message_start") for i in range(6)]
    end = (
        ev("content_block_stop", {"type": "content_block_stop", "index": 0})
        + ev("message_delta", {"type": "message_delta", "usage": {"output_tokens": 6}})
        + ev("message_stop", {"type": "message_stop"})
    )
    return [start + block, deltas[0] + deltas[1], *deltas[2:], ev("ping", {"type": "ping"}), end]


def test_anthropic_raw_path_relays_content_deltas_untouched():
    slow_tap, fast_tap = AnthropicPassthrough(model="pub"), AnthropicPassthrough(model="pub")
    slow, _ = relay(slow_tap, anthropic_stream(), raw=False)
    fast, hits = relay(fast_tap, anthropic_stream(), raw=True)
    assert hits == 6 and fast == slow
    assert fast_tap.usage == slow_tap.usage and fast_tap.finished
    assert fast_tap.out_chars == slow_tap.out_chars


def test_anthropic_raw_path_refuses_other_events_and_a_stream_not_started():
    delta = anthropic_delta("x")
    assert AnthropicPassthrough(model="pub").pass_raw(delta) == (b"", delta)  # before message_start
    tap = AnthropicPassthrough(model="pub")
    relay(tap, anthropic_stream()[:1], raw=False)
    assert tap.pass_raw(delta) == (delta, b"")
    error = b'event: error\ndata: {"type":"error"}\n\n'
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    assert tap.pass_raw(error) == (b"", error)
    assert tap.pass_raw(delta + stop + delta) == (delta, stop + delta)  # the run ends at the first other event
    bare = b"data: " + delta.split(b"data: ", 1)[1]  # no event line
    assert tap.pass_raw(bare) == (b"", bare)
    assert tap.pass_raw(delta.replace(b"\n", b"\r\n"))[0] == b""
    assert tap.pass_raw(delta[:-1]) == (b"", delta[:-1])  # half an event waits for the decoder


def test_same_dialect_lanes_leave_bad_utf8_to_the_event_path_and_send_what_it_sends():
    """The decoder replaces bytes that are not UTF-8; a lane passing them on would send something else."""
    bad = "caf\u00e9 \u4f60\u597d".encode() + b" \xff\xfe "
    broken = openai_chunk("@@").replace(b"@@", bad)
    slow_tap, fast_tap = openai_tap(), openai_tap()
    chunks = [openai_chunk("learn the envelope"), openai_chunk("\u4f60\u597d"), broken, b"data: [DONE]\n\n"]
    slow, _ = relay(slow_tap, chunks, raw=False)
    fast, hits = relay(fast_tap, chunks, raw=True)
    assert fast == slow and hits == 2 and b"\xff" not in fast and "\ufffd".encode() in fast

    stream = anthropic_stream()
    stream.insert(2, anthropic_delta("@@").replace(b"@@", bad))
    slow_tap, fast_tap = AnthropicPassthrough(model="pub"), AnthropicPassthrough(model="pub")
    slow, _ = relay(slow_tap, stream, raw=False)
    fast, hits = relay(fast_tap, stream, raw=True)
    assert fast == slow and hits == 6 and b"\xff" not in fast


# -- a Responses upstream to the Responses door -----------------------------------------------------


def responses_tap() -> ResponsesPassthrough:
    return ResponsesPassthrough(model="public-name", response_id="resp_relay", previous_response_id=None)


def responses_events(**reply: object) -> list[bytes]:
    kwargs = {"text": "Hello there \u00e9 \\n", "reasoning": "think", "chunks": 6, "usage": (11, 7), **reply}
    body = {"model": "up-model", "input": "hi", "stream": True}
    return responses_stream(Reply(**kwargs), body)  # type: ignore[arg-type]


def responses_both_ways(chunks: list[bytes]) -> tuple[bytes, bytes, int, ResponsesPassthrough, ResponsesPassthrough]:
    slow_tap, fast_tap = responses_tap(), responses_tap()
    slow, _ = relay(slow_tap, chunks, raw=False)
    fast, hits = relay(fast_tap, chunks, raw=True)
    return slow, fast, hits, slow_tap, fast_tap


@pytest.mark.parametrize("together", [False, True], ids=["one event a chunk", "the whole reply in one chunk"])
def test_responses_raw_path_gives_the_client_the_same_bytes_response_and_usage(together):
    events = responses_events(tool_calls=[ToolCall("get_weather", {"city": "Paris"})])
    chunks = [b"".join(events)] if together else events
    slow, fast, hits, slow_tap, fast_tap = responses_both_ways(chunks)
    assert fast == slow
    lifecycle = 3  # created, in_progress, completed: renamed, so decoded
    assert hits == len(events) - lifecycle
    assert fast.count(b'"id":"resp_relay"') == lifecycle and b'"model":"public-name"' in fast
    assert fast_tap.response == slow_tap.response and fast_tap.response["status"] == "completed"
    assert fast_tap.usage == slow_tap.usage and fast_tap.usage.output_tokens == 7 and fast_tap.finished


def test_a_responses_stream_cut_after_raw_events_fails_with_the_next_sequence_number():
    events = responses_events(text="a b c d e f g h", chunks=8, reasoning=None)
    cut = events[:9]  # the opening, the message's start and its first deltas; no terminal event
    slow, fast, hits, _, _ = responses_both_ways(cut)
    assert fast == slow and hits > 0
    failed = fast.rsplit(b"event: response.failed\ndata: ", 1)[1]
    assert msgspec.json.decode(failed)["sequence_number"] == 9


@pytest.mark.parametrize(
    "event",
    [
        b'event: response.output_text.delta\ndata: {"type":"error","sequence_number":5,"message":"boom"}',
        b'event: error\ndata: {"sequence_number":5,"message":"no type"}',
        b'event: response.output_text.delta\ndata: {"type":"x","sequence_number":5,"response":{"id":"up"}}',
        b'event: response.output_text.delta\ndata: {"type":"x","sequence_number":"5"}',
        b'event: response.output_text.delta\ndata: {"type":"x","sequence_number":true}',
        b'event: response.output_text.delta\ndata: {"type":"x","type":"error","sequence_number":5}',
        b'event: response.output_text.delta\ndata: {"type":"x","sequence_number":5',
        b'event: response.output_text.delta\ndata: ["type","x"]',
        b"event: response.output_text.delta\ndata: " + b'{"type":"x","d":"\xff"}',
        b'event:response.output_text.delta\ndata: {"type":"x","sequence_number":5}',
        b'event: \ndata: {"type":"x","sequence_number":5}',
        b'event: response.output_text.delta\ndata:{"type":"x","sequence_number":5}',
        b'id: 7\nevent: response.output_text.delta\ndata: {"type":"x","sequence_number":5}',
        b'event: response.output_text.delta\ndata: {"type":"x",\ndata: "sequence_number":5}',
        b": keep-alive",
    ],
    ids=[
        "type error",
        "no type",
        "a response object",
        "a string sequence number",
        "a boolean sequence number",
        "a repeated type",
        "cut JSON",
        "not an object",
        "bad UTF-8",
        "event: without a space",
        "an empty event name",
        "data: without a space",
        "an id line",
        "two data lines",
        "a comment",
    ],
)
def test_a_responses_event_with_anything_to_decide_takes_the_event_path(event):
    events = responses_events(text="a b c d", chunks=4, reasoning=None)
    chunks = [*events[:5], event + b"\n\n", *events[5:]]  # after the first text delta
    slow, fast, hits, slow_tap, fast_tap = responses_both_ways(chunks)
    assert fast == slow
    assert fast_tap.response == slow_tap.response and fast_tap.finished == slow_tap.finished
    plain_upstream_events = len(events) - 3
    assert hits == plain_upstream_events or fast_tap.finished  # the odd event never went by the lane
