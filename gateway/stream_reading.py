"""Reading an upstream's event stream for the relay: chunks or silence, what already arrived, terminal errors.

I/O helpers of ``relay.py``'s stream loop, kept apart so the orchestration stays readable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp

from gateway.convert.types import StreamTap
from gateway.domain import Dialect
from gateway.protocols.sse import SSEDecoder, SSEEvent, encode_event

PING = {
    Dialect.ANTHROPIC: encode_event(b'{"type":"ping"}', "ping"),
    Dialect.OPENAI: b": keep-alive\n\n",  # an SSE comment: every OpenAI client skips it
    Dialect.RESPONSES: b": keep-alive\n\n",
}


async def chunks_or_silence(
    resp: aiohttp.ClientResponse, every_s: float, deadline: Callable[[], float]
) -> AsyncIterator[bytes | None]:
    """The upstream's chunks as they arrive, and ``None`` after each ``every_s`` seconds of silence.

    A silence never outlasts ``deadline()`` (the total time limit, or the drain's): they fire on a
    timer, not on the next byte.
    """
    while True:
        silence = asyncio.timeout(max(0.0, min(every_s, deadline() - time.monotonic())))
        try:
            async with silence:
                chunk = await resp.content.readany()
        except TimeoutError:
            if not silence.expired():
                raise  # aiohttp's own read timeout, not our keep-alive tick
            yield None
            continue
        if not chunk:
            return
        yield chunk


def read_what_arrived(resp: aiohttp.ClientResponse, decoder: SSEDecoder, tap: StreamTap) -> None:
    """Feed the tap what the upstream already sent but nobody read, without waiting for more.

    When a client leaves, a fast upstream's last events (with its usage: OpenAI-dialect upstreams
    report the prompt's tokens only there) are often already buffered; its own count beats ours.
    """
    try:
        leftover = resp.content.read_nowait()
        for event in decoder.feed(leftover):
            tap.feed(event)
    except Exception:  # whatever the buffer holds, the estimate stands
        return


def take_chunk(
    chunk: bytes, decoder: SSEDecoder, tap: StreamTap, lane: Callable[[bytes], tuple[bytes, bytes]] | None
) -> tuple[bytes, list[SSEEvent]]:
    """One network chunk through ``tap``: the client's bytes, in order, and the events the event path made.

    ``lane`` is the tap's fast lane (``pass_raw``), if it has one. It is offered the chunk at every
    event boundary where the decoder holds nothing, not only at the chunk's start: a fast upstream
    often sends a whole reply in one chunk, whose first events (the message's start) need the event
    path and whose rest is plain content the lane takes.
    """
    if lane is None or b"\r" in chunk:  # CR line ends: events are not split at "\n\n"; the decoder takes it all
        out = [e for ev in decoder.feed(chunk) for e in tap.feed(ev)]
        return encode_all(out), out
    wire: list[bytes] = []
    events: list[SSEEvent] = []
    while chunk and not tap.finished:
        if decoder.idle:
            raw, chunk = lane(chunk)
            if raw:
                wire.append(raw)
            if not chunk:
                break
        cut = chunk.find(b"\n\n") + 2  # the next event's end; 1 when there is none in this chunk
        head, chunk = (chunk[:cut], chunk[cut:]) if cut > 1 else (chunk, b"")
        if out := [e for ev in decoder.feed(head) for e in tap.feed(ev)]:
            events.extend(out)
            wire.append(encode_all(out))
    return (wire[0] if len(wire) == 1 else b"".join(wire)), events


def has_error_event(events: list[SSEEvent]) -> bool:
    """A terminal error: Anthropic's ``event: error``, OpenAI's ``data: {"error": …}``, ``response.failed``."""
    return any(e.event in ("error", "response.failed") or e.data.startswith('{"error"') for e in events)


def encode_all(events: list[SSEEvent]) -> bytes:
    return b"".join(encode_event(e.data, e.event) for e in events)
