"""Two stream converters in a row: OpenAI chunks → Anthropic events → Responses events."""

from __future__ import annotations

from typing import Any

from gateway.convert.streams_a2r import AnthropicStreamToResponses
from gateway.convert.streams_o2a import OpenAIStreamToAnthropic
from gateway.convert.types import StreamTap
from gateway.domain import Usage
from gateway.protocols.openai import ChatChunk
from gateway.protocols.sse import SSEEvent

__all__ = ["Chained"]


class Chained:
    """Two stream converters in a row (OpenAI chunks → Anthropic events → Responses events).

    Usage is the first one's (closest to the upstream's own numbers).
    """

    def __init__(self, first: StreamTap, last: AnthropicStreamToResponses) -> None:
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
        first = self.first
        assert isinstance(first, OpenAIStreamToAnthropic)
        return [out for mid in first.feed_chunk(chunk) for out in self.last.feed(mid)]

    def finish(self) -> list[SSEEvent]:
        out = [o for mid in self.first.finish() for o in self.last.feed(mid)]
        return out + self.last.finish()

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        return self.last.fail(message, error_type)
