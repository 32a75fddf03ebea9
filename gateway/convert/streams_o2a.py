"""OpenAI chunk stream → Anthropic SSE (conversion.md §5): reader + writer, failing closed."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from gateway.convert.a_writer import AnthropicWriter, LateToolDelta
from gateway.convert.events import Event, StreamFailure
from gateway.convert.grammar import GrammarError
from gateway.convert.o_fields import failure_from
from gateway.convert.o_reader import OChunkReader
from gateway.convert.types import ResponseHints
from gateway.convert.usage import usage_from_openai
from gateway.domain import Usage
from gateway.protocols.openai import ChatChunk
from gateway.protocols.sse import SSEEvent

__all__ = ["OpenAIStreamToAnthropic"]

_decoder = msgspec.json.Decoder(ChatChunk)


class OpenAIStreamToAnthropic:
    """Feed decoded upstream SSE events; send what comes back to the Anthropic client.

    ``finish()`` at upstream EOF; ``fail()`` when the upstream connection broke; ``ping()`` on
    upstream silence (§5.8). ``usage`` is the upstream's (or an estimate, flagged) at any time.
    """

    def __init__(
        self,
        *,
        model: str,
        new_id: Callable[[str], str],
        input_tokens_hint: int | Callable[[], int] = 0,
        hints: ResponseHints | None = None,
        encode: bool = True,
    ) -> None:
        """``encode=False`` when another converter consumes the events (their ``payload``, not their text)."""
        hints = hints or ResponseHints()
        self._reader = OChunkReader(hints)
        self._writer = AnthropicWriter(
            model=model, new_id=new_id, input_tokens_hint=input_tokens_hint, hints=hints, encode=encode
        )
        self._done = False

    @property
    def finished(self) -> bool:
        return self._writer.finished

    @property
    def usage(self) -> Usage:
        if self._writer.usage is not None:
            return self._writer.usage
        if self._reader.usage:
            return usage_from_openai(self._reader.usage)
        return self._writer.estimated_usage()

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        if self.finished:
            return []
        data = event.data.strip()
        if not data:
            return []
        if data == "[DONE]":
            self._done = True
            return self._run(self._reader.end)
        if event.event == "error":
            return self._fail_with(self._error_payload(data))
        try:
            chunk = _decoder.decode(data)
        except msgspec.ValidationError as exc:
            return self.fail(f"upstream sent an invalid chunk: {exc}")
        except msgspec.DecodeError:
            if data.startswith(("{", "[")):
                return self.fail("upstream sent a malformed chunk")
            return []
        return self._run(self._reader.read, chunk)

    def feed_chunk(self, chunk: ChatChunk) -> list[SSEEvent]:
        """Feed an already decoded chunk."""
        if self.finished:
            return []
        return self._run(self._reader.read, chunk)

    @property
    def open_text_block(self) -> int | None:
        """The index of the Anthropic text block open now, if one is."""
        writer = self._writer
        return writer.index if writer.open_kind == "text" and not writer.tool_phase and not writer.finished else None

    def plain_text(self, data: bytes) -> str | None:
        """The text of a chunk that only continues the open text block, counted as ``feed`` counts it.

        None for any other chunk (usage, a finish, reasoning, tools, an error, a refusal, malformed
        JSON), or when no text block is open or text passes the think-tag splitter: ``feed`` takes
        those. Such a chunk would become exactly one ``text_delta`` on the open block and change no
        other state, so the fast lane of a chain (``Chained.pass_raw``) converts it without events.
        """
        if self.open_text_block is None or self._reader.splitter is not None:
            return None
        try:
            chunk = _decoder.decode(data)
        except msgspec.MsgspecError:
            return None
        choice = chunk.choices[0] if chunk.choices else None
        if choice is None or chunk.usage or chunk.error is not None or chunk.object == "error":
            return None
        delta = choice.delta
        if (
            choice.finish_reason
            or choice.usage
            or choice.error is not None
            or delta.content is None
            or delta.reasoning_content
            or delta.reasoning
            or delta.reasoning_details
            or delta.tool_calls
            or delta.function_call is not None
            or delta.refusal
        ):
            return None
        self._writer.out_chars += len(delta.content)
        return delta.content

    def finish(self) -> list[SSEEvent]:
        """Upstream EOF: close normally after ``[DONE]`` or a finish_reason, else an error (§5.3)."""
        if self.finished:
            return []
        if self._done or self._reader.saw_finish:
            return self._run(self._reader.end)
        return self.fail("upstream stream ended unexpectedly")

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        return self._fail_with(StreamFailure(error_type, message))

    def ping(self) -> list[SSEEvent]:
        return self._writer.ping()

    def _run(self, produce: Callable[..., list[Event]], *args: ChatChunk) -> list[SSEEvent]:
        """The writer's events for what ``produce(*args)`` reads (the reader's ``read`` or ``end``)."""
        writer = self._writer
        out = writer.start()
        try:
            for ev in produce(*args):
                out.extend(writer.apply(ev))
        except StreamFailure as failure:
            out.extend(self._fail_with(failure))
        except (LateToolDelta, GrammarError) as exc:
            out.extend(self._fail_with(StreamFailure("api_error", f"relay could not convert the stream: {exc}")))
        return out

    def _fail_with(self, failure: StreamFailure) -> list[SSEEvent]:
        return self._writer.error(failure.error_type, failure.message)

    @staticmethod
    def _error_payload(data: str) -> StreamFailure:
        try:
            payload = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return StreamFailure("api_error", data[:500])
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        return failure_from(error)
