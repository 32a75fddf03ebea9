"""Internal events → Anthropic SSE (conversion.md §5.1, §5.3-§5.6): the block state machine.

One block open at a time, indexes 0, 1, 2 …, blocks opened lazily on the first non-empty
delta. The first tool call streams live; later calls are buffered and flushed one after another
when the tool phase ends (§5.4), as is any text that arrives after the tool phase began.
Every event passes :class:`AnthropicGrammar` before it is encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway.convert.events import Event, Finish, Reasoning, Text, ToolArgs, ToolStart
from gateway.convert.grammar import AnthropicGrammar
from gateway.convert.ids import mint_signature
from gateway.convert.o_fields import tool_id_for_anthropic
from gateway.convert.types import ResponseHints
from gateway.convert.usage import estimate_tokens, usage_to_anthropic
from gateway.domain import Usage
from gateway.protocols.sse import SSEEvent

__all__ = ["AnthropicWriter", "LateToolDelta"]


@dataclass(slots=True)
class _Pending:
    id: str
    name: str
    args: list[str] = field(default_factory=list)


_TEXTS = (Text, Reasoning)


class AnthropicWriter:
    def __init__(
        self,
        *,
        model: str,
        new_id: Callable[[str], str],
        input_tokens_hint: int | Callable[[], int],
        hints: ResponseHints,
        encode: bool = True,
    ):
        """``input_tokens_hint``: the request's counted input tokens, or a function counting them when first
        needed (then ``message_start`` says 0: a consumer that only reads the final usage never pays for it)."""
        self.model = model
        self.new_id = new_id
        self.hints = hints
        self.message_id = new_id("msg_")
        self._hint = input_tokens_hint
        self.grammar = AnthropicGrammar()
        self.open_kind: str | None = None
        self.index = -1
        self.live_key: int | None = None
        self.closed_keys: set[int] = set()
        self.pending: dict[int, _Pending] = {}
        self.trailing: list[Event] = []
        self.tool_phase = False
        self.ids: set[str] = set()
        self.out_chars = 0
        self.blank = ""
        self.usage: Usage | None = None
        self.finished = False
        self.encode = encode
        """False inside a converter chain: events carry their ``payload`` and no encoded ``data``."""

    # -- framing -------------------------------------------------------------------------------

    def _emit(self, name: str, payload: dict[str, Any]) -> SSEEvent:
        self.grammar.check(name, payload)
        return SSEEvent(name, msgspec.json.encode(payload).decode() if self.encode else "", payload)

    @property
    def input_hint(self) -> int:
        if callable(self._hint):
            self._hint = self._hint()
        return self._hint

    def start(self) -> list[SSEEvent]:
        if self.grammar.state != "init":
            return []
        usage = usage_to_anthropic(Usage(input_tokens=0 if callable(self._hint) else self._hint))
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [self._emit("message_start", {"type": "message_start", "message": message})]

    def ping(self) -> list[SSEEvent]:
        if self.finished or self.grammar.state != "started":
            return []
        return [self._emit("ping", {"type": "ping"})]

    # -- blocks --------------------------------------------------------------------------------

    def _open(self, block: dict[str, Any]) -> list[SSEEvent]:
        out = self._close()
        self.blank = ""
        self.index += 1
        self.open_kind = block["type"]
        payload = {"type": "content_block_start", "index": self.index, "content_block": block}
        out.append(self._emit("content_block_start", payload))
        return out

    def _close(self) -> list[SSEEvent]:
        if self.open_kind is None:
            return []
        out: list[SSEEvent] = []
        if self.open_kind == "thinking":
            out.append(self._delta({"type": "signature_delta", "signature": mint_signature(self.hints.provider)}))
        out.append(self._emit("content_block_stop", {"type": "content_block_stop", "index": self.index}))
        self.open_kind = None
        return out

    def _delta(self, delta: dict[str, Any]) -> SSEEvent:
        payload = {"type": "content_block_delta", "index": self.index, "delta": delta}
        return self._emit("content_block_delta", payload)

    def _text(self, text: str) -> list[SSEEvent]:
        """Whitespace-only text is held back until real text follows, so no blank block exists (§2.3)."""
        self.out_chars += len(text)
        if self.open_kind == "text":
            return [self._delta({"type": "text_delta", "text": text})]
        if not text.strip():
            self.blank += text
            return []
        text, self.blank = self.blank + text, ""
        return [*self._open({"type": "text", "text": ""}), self._delta({"type": "text_delta", "text": text})]

    def _reasoning(self, text: str) -> list[SSEEvent]:
        self.out_chars += len(text)
        if self.hints.omit_reasoning:
            return []
        out = [] if self.open_kind == "thinking" else self._open({"type": "thinking", "thinking": "", "signature": ""})
        return [*out, self._delta({"type": "thinking_delta", "thinking": text})]

    def _tool_block(self, tool_id: str, name: str) -> list[SSEEvent]:
        return self._open({"type": "tool_use", "id": tool_id, "name": name, "input": {}})

    # -- events --------------------------------------------------------------------------------

    def apply(self, event: Event) -> list[SSEEvent]:
        if isinstance(event, _TEXTS):
            if not event.text:
                return []
            if self.tool_phase:
                self.trailing.append(event)
                return []
            return self._text(event.text) if isinstance(event, Text) else self._reasoning(event.text)
        if isinstance(event, ToolStart):
            return self._tool_start(event)
        if isinstance(event, ToolArgs):
            return self._tool_args(event)
        return self._finish(event)

    def _tool_start(self, event: ToolStart) -> list[SSEEvent]:
        tool_id = tool_id_for_anthropic(event.id, self.new_id, self.ids)
        name = self.hints.restore_name(event.name)
        live_open = self.live_key is not None and self.live_key not in self.closed_keys
        if live_open and not self.hints.stream_all_tools_live:
            self.pending[event.key] = _Pending(tool_id, name)
            return []
        if self.live_key is not None:
            self.closed_keys.add(self.live_key)
        self.tool_phase = True
        self.live_key = event.key
        return self._tool_block(tool_id, name)

    def _tool_args(self, event: ToolArgs) -> list[SSEEvent]:
        self.out_chars += len(event.fragment)
        if event.key in self.pending:
            self.pending[event.key].args.append(event.fragment)
            return []
        if event.key != self.live_key or event.key in self.closed_keys:
            raise LateToolDelta(event.key)
        return [self._delta({"type": "input_json_delta", "partial_json": event.fragment})] if event.fragment else []

    def _finish(self, event: Finish) -> list[SSEEvent]:
        out = self._close()
        for pending in self.pending.values():
            out.extend(self._tool_block(pending.id, pending.name))
            if pending.args:
                out.append(self._delta({"type": "input_json_delta", "partial_json": "".join(pending.args)}))
        self.pending.clear()
        self.tool_phase = False
        for late in self.trailing:
            out.extend(self.apply(late))
        out.extend(self._close())
        self.usage = event.usage or self.estimated_usage()
        delta = {"stop_reason": event.stop_reason, "stop_sequence": event.stop_sequence}
        usage = usage_to_anthropic(self.usage)
        out.append(self._emit("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(self._emit("message_stop", {"type": "message_stop"}))
        self.finished = True
        return out

    def estimated_usage(self) -> Usage:
        return Usage(input_tokens=self.input_hint, output_tokens=estimate_tokens(self.out_chars), estimated=True)

    def error(self, error_type: str, message: str) -> list[SSEEvent]:
        """The terminal ``error`` event; nothing is closed after it (§5.7)."""
        if self.finished:
            return []
        self.finished = True
        payload = {"type": "error", "error": {"type": error_type, "message": message}}
        return [self._emit("error", payload)]


class LateToolDelta(Exception):
    def __init__(self, key: int) -> None:
        super().__init__(f"tool call {key} sent arguments after its block was closed")
