"""Two stream converters in a row: OpenAI chunks → Anthropic events → Responses events."""

from __future__ import annotations

from typing import Any

from gateway.convert.streams_a2r import AnthropicStreamToResponses
from gateway.convert.streams_o2a import OpenAIStreamToAnthropic
from gateway.domain import Usage
from gateway.protocols.openai import ChatChunk
from gateway.protocols.sse import SSEEvent, leading_run

__all__ = ["Chained"]


class Chained:
    """Two stream converters in a row (OpenAI chunks → Anthropic events → Responses events).

    Usage is the first one's (closest to the upstream's own numbers).
    """

    def __init__(self, first: OpenAIStreamToAnthropic, last: AnthropicStreamToResponses) -> None:
        self.first = first
        self.last = last

    @property
    def usage(self) -> Usage:
        return self.first.usage

    @property
    def finished(self) -> bool:
        return self.last.finished

    @property
    def response(self) -> dict[str, Any] | None:
        return self.last.response

    @property
    def kept_response(self) -> dict[str, Any] | None:
        return self.last.kept_response

    def feed(self, ev: SSEEvent) -> list[SSEEvent]:
        return [out for mid in self.first.feed(ev) for out in self.last.feed(mid)]

    def feed_chunk(self, chunk: ChatChunk) -> list[SSEEvent]:
        """An already decoded chunk (a non-streamed reply replayed as one)."""
        return [out for mid in self.first.feed_chunk(chunk) for out in self.last.feed(mid)]

    def pass_raw(self, chunk: bytes) -> tuple[bytes, bytes]:
        """The fast lane: plain text chunks at the start of ``chunk`` converted straight to Responses bytes.

        Most of a stream is chunks that only add text to the open message. Each is decoded once and
        written as its ``response.output_text.delta``, with no Anthropic event in between and no dicts;
        the rest of ``chunk`` (and any chunk while no text is open) takes ``feed``. Both ways give the
        same bytes and leave the same state (tested). The caller offers a chunk only when it starts an event.
        """
        first, last = self.first, self.last
        if not last.text_ready(first.open_text_block) or b"\r" in chunk:
            return b"", chunk
        out: list[bytes] = []

        def plain(event: bytes) -> bool:
            if not event.startswith(b"data: {") or b"\n" in event:
                return False
            text = first.plain_text(event[6:])
            if text is None:
                return False
            out.append(last.text_event(text))
            return True

        end, _ = leading_run(chunk, plain)
        return b"".join(out), chunk[end:]

    def finish(self) -> list[SSEEvent]:
        out = [o for mid in self.first.finish() for o in self.last.feed(mid)]
        return out + self.last.finish()

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        return self.last.fail(message, error_type)
