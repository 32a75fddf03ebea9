"""The incremental SSE decoder and encoder (``gateway.protocols.sse``): pure, so tested exhaustively."""

from __future__ import annotations

import pytest

from gateway.protocols.sse import SSEDecoder, SSEError, SSEEvent, encode_event


def decode(*chunks: bytes, finish: bool = True, **kw: int) -> list[SSEEvent]:
    dec = SSEDecoder(**kw)
    out = [ev for chunk in chunks for ev in dec.feed(chunk)]
    return out + dec.finish() if finish else out


def test_lf_framing_with_event_names():
    raw = b'event: message_start\ndata: {"a":1}\n\nevent: ping\ndata: {}\n\n'
    assert decode(raw) == [SSEEvent("message_start", '{"a":1}'), SSEEvent("ping", "{}")]


def test_data_only_events_have_no_name():
    assert decode(b"data: one\n\ndata: [DONE]\n\n") == [SSEEvent(None, "one"), SSEEvent(None, "[DONE]")]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol):
    raw = eol.join([b"event: e1", b"data: x", b"", b"data: y", b"", b""])
    assert decode(raw, finish=False) == [SSEEvent("e1", "x"), SSEEvent(None, "y")]


def test_mixed_line_endings_in_one_stream():
    raw = b"data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n"
    assert [e.data for e in decode(raw, finish=False)] == ["a", "b", "c", "d"]


def test_crlf_split_between_chunks_is_one_line_end():
    """A CR at the end of one chunk and the LF at the start of the next are a single line ending."""
    assert decode(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n", finish=False) == [
        SSEEvent(None, "a"),
        SSEEvent(None, "b"),
    ]


def test_comments_are_ignored():
    raw = b": OPENROUTER PROCESSING\n\n:keep-alive\ndata: x\n: mid-event comment\ndata: y\n\n"
    assert decode(raw) == [SSEEvent(None, "x\ny")]


def test_multi_line_data_joined_with_newlines():
    assert decode(b"data: line one\ndata: line two\ndata:\ndata: four\n\n") == [
        SSEEvent(None, "line one\nline two\n\nfour")
    ]


def test_only_one_space_after_the_colon_is_stripped():
    assert decode(b"data:no-space\n\ndata:  two-spaces\n\n") == [
        SSEEvent(None, "no-space"),
        SSEEvent(None, " two-spaces"),
    ]


def test_event_name_resets_after_dispatch():
    events = decode(b"event: first\ndata: 1\n\ndata: 2\n\n")
    assert events == [SSEEvent("first", "1"), SSEEvent(None, "2")]


def test_blank_lines_and_events_without_data_dispatch_nothing():
    assert decode(b"\n\n\nevent: lonely\n\n\n") == []


def test_unknown_fields_and_id_retry_are_ignored():
    assert decode(b"id: 7\nretry: 1000\nfoo: bar\ndata: x\n\n") == [SSEEvent(None, "x")]


STREAM = (
    'event: message_start\r\ndata: {"type":"message_start","text":"héllo — 你好 🎉"}\r\n\r\n'
    ": ping\n"
    'data: {"delta":"multi"}\ndata: {"delta":"line ✓"}\n\n'
    "event: content_block_delta\rdata: 😀😀\r\r"
    "data: [DONE]\n\n"
).encode()
EXPECTED = [
    SSEEvent("message_start", '{"type":"message_start","text":"héllo — 你好 🎉"}'),
    SSEEvent(None, '{"delta":"multi"}\n{"delta":"line ✓"}'),
    SSEEvent("content_block_delta", "😀😀"),
    SSEEvent(None, "[DONE]"),
]


@pytest.mark.parametrize("at", range(1, len(STREAM)))
def test_split_at_every_byte_offset(at):
    """Two chunks split anywhere, mid-CRLF and mid-UTF-8 sequence included, decode to the same events."""
    assert decode(STREAM[:at], STREAM[at:]) == EXPECTED


def test_one_byte_at_a_time():
    assert decode(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == EXPECTED


def test_split_inside_a_four_byte_code_point():
    raw = "data: 🎉\n\n".encode()
    cut = raw.index("🎉".encode()) + 2
    dec = SSEDecoder()
    assert dec.feed(raw[:cut]) == []
    assert dec.feed(raw[cut:]) == [SSEEvent(None, "🎉")]


def test_finish_flushes_an_unterminated_final_event():
    dec = SSEDecoder()
    assert dec.feed(b"event: last\ndata: tail") == []
    assert dec.finish() == [SSEEvent("last", "tail")]


def test_finish_flushes_an_event_missing_only_the_blank_line():
    dec = SSEDecoder()
    assert dec.feed(b"data: x\n") == []
    assert dec.finish() == [SSEEvent(None, "x")]


def test_finish_after_a_clean_end_emits_nothing():
    dec = SSEDecoder()
    assert dec.feed(b"data: x\n\n") == [SSEEvent(None, "x")]
    assert dec.finish() == []


def test_empty_chunks_are_harmless():
    dec = SSEDecoder()
    assert dec.feed(b"") == []
    assert dec.feed(b"data: a\n") == []
    assert dec.feed(b"") == []
    assert dec.feed(b"\n") == [SSEEvent(None, "a")]


def test_an_event_over_the_limit_raises():
    with pytest.raises(SSEError, match="larger than 64 bytes"):
        decode(b"data: " + b"x" * 100 + b"\n\n", max_event_bytes=64)


def test_an_event_over_the_limit_across_many_data_lines_raises():
    dec = SSEDecoder(max_event_bytes=64)
    with pytest.raises(SSEError):
        for _ in range(20):
            dec.feed(b"data: 0123456789\n")


def test_an_endless_line_without_terminator_raises_before_growing_unbounded():
    dec = SSEDecoder(max_event_bytes=1024)
    with pytest.raises(SSEError):
        for _ in range(100):
            dec.feed(b"x" * 100)  # no newline ever: the pending buffer must stay bounded


def test_events_under_the_limit_are_fine_however_many():
    dec = SSEDecoder(max_event_bytes=64)
    events = [ev for _ in range(1000) for ev in dec.feed(b"data: " + b"y" * 50 + b"\n\n")]
    assert len(events) == 1000


def test_invalid_utf8_is_replaced_not_raised():
    assert decode(b"data: a\xffb\n\n") == [SSEEvent(None, "a\ufffdb")]


def test_encode_event_with_and_without_name():
    assert encode_event('{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_event(b"[DONE]") == b"data: [DONE]\n\n"
    assert encode_event("{}", "message_stop") == b"event: message_stop\ndata: {}\n\n"
    assert encode_event("héllo", "ping") == "event: ping\ndata: héllo\n\n".encode()


@pytest.mark.parametrize("event", [None, "content_block_delta"])
def test_encode_then_decode_round_trips(event):
    data = '{"text":"héllo 🎉","n":[1,2]}'
    assert decode(encode_event(data, event)) == [SSEEvent(event, data)]
