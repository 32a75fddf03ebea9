"""Output validators for both stream dialects (conversion.md §0.2, §5.1, §8.1).

The stream writers check every event before it is encoded and fail closed; tests run whole
streams through the same checkers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["AnthropicGrammar", "GrammarError", "OpenAIGrammar"]

_DELTA_FOR = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "signature_delta": "thinking",
    "input_json_delta": "tool_use",
    "citations_delta": "text",
}
_NON_EMPTY = {"text_delta": "text", "thinking_delta": "thinking"}
"""The field a delta of each kind must not leave empty."""


class GrammarError(ValueError):
    """An event would break the client's stream grammar."""


class AnthropicGrammar:
    """``message_start ping* block* message_delta message_stop`` or an ``error`` end (§5.1)."""

    def __init__(self) -> None:
        self.state = "init"
        self.next_index = 0
        self.open: tuple[int, str] | None = None

    def check(self, name: str, payload: dict[str, Any]) -> None:
        if payload.get("type") != name:
            raise GrammarError(f"event name {name!r} does not match payload type {payload.get('type')!r}")
        if self.state in ("stopped", "errored"):
            raise GrammarError(f"{name} after the end of the stream")
        handler = _ANTHROPIC_CHECKS.get(name)
        if handler is None:
            raise GrammarError(f"unknown event {name!r}")
        handler(self, payload)

    def _on_error(self, payload: dict[str, Any]) -> None:
        self.state = "errored"

    def _on_message_start(self, payload: dict[str, Any]) -> None:
        if self.state != "init":
            raise GrammarError("message_start twice")
        self.state = "started"

    def _require_started(self, name: str) -> None:
        if self.state != "started":
            raise GrammarError(f"{name} in state {self.state}")

    def _on_ping(self, payload: dict[str, Any]) -> None:
        if self.state not in ("started", "delta"):
            raise GrammarError("ping before message_start")

    def _on_content_block_start(self, payload: dict[str, Any]) -> None:
        self._require_started("content_block_start")
        if self.open is not None:
            raise GrammarError(f"block {self.open[0]} still open")
        if payload.get("index") != self.next_index:
            raise GrammarError(f"block index {payload.get('index')} != expected {self.next_index}")
        kind = (payload.get("content_block") or {}).get("type")
        if kind not in ("text", "thinking", "tool_use", "redacted_thinking"):
            raise GrammarError(f"unknown block type {kind!r}")
        self.open = (self.next_index, str(kind))
        self.next_index += 1

    def _on_content_block_delta(self, payload: dict[str, Any]) -> None:
        self._require_started("content_block_delta")
        if self.open is None or payload.get("index") != self.open[0]:
            raise GrammarError(f"delta for block {payload.get('index')} that is not open")
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if _DELTA_FOR.get(str(kind)) != self.open[1]:
            raise GrammarError(f"{kind} into a {self.open[1]} block")
        field = _NON_EMPTY.get(str(kind))
        if field is not None and not delta.get(field):
            raise GrammarError(f"empty {kind}")

    def _on_content_block_stop(self, payload: dict[str, Any]) -> None:
        self._require_started("content_block_stop")
        if self.open is None or payload.get("index") != self.open[0]:
            raise GrammarError(f"stop for block {payload.get('index')} that is not open")
        self.open = None

    def _on_message_delta(self, payload: dict[str, Any]) -> None:
        self._require_started("message_delta")
        if self.open is not None:
            raise GrammarError("message_delta with a block open")
        if not (payload.get("delta") or {}).get("stop_reason"):
            raise GrammarError("message_delta without stop_reason")
        self.state = "delta"

    def _on_message_stop(self, payload: dict[str, Any]) -> None:
        if self.state != "delta":
            raise GrammarError("message_stop without message_delta")
        self.state = "stopped"

    @property
    def complete(self) -> bool:
        return self.state in ("stopped", "errored")


_ANTHROPIC_CHECKS: dict[str, Callable[[AnthropicGrammar, dict[str, Any]], None]] = {
    "error": AnthropicGrammar._on_error,
    "message_start": AnthropicGrammar._on_message_start,
    "ping": AnthropicGrammar._on_ping,
    "content_block_start": AnthropicGrammar._on_content_block_start,
    "content_block_delta": AnthropicGrammar._on_content_block_delta,
    "content_block_stop": AnthropicGrammar._on_content_block_stop,
    "message_delta": AnthropicGrammar._on_message_delta,
    "message_stop": AnthropicGrammar._on_message_stop,
}
"""The check of each Anthropic event (a dict lookup: ``check`` runs on every event a writer sends)."""


class OpenAIGrammar:
    """The O chunk rules (§8.1): stable id, role once, contiguous tool indexes, one finish, [DONE]."""

    def __init__(self) -> None:
        self.ident: tuple[Any, Any, Any] | None = None
        self.chunks = 0
        self.tools = 0
        self.finished = False
        self.usage_sent = False
        self.state = "open"

    def check_done(self) -> None:
        if self.state != "open" or not self.finished:
            raise GrammarError("[DONE] without a finish chunk, or after an error")
        self.state = "done"

    def check(self, chunk: dict[str, Any]) -> None:
        if self.state != "open":
            raise GrammarError(f"chunk after {self.state}")
        if "error" in chunk:
            self.state = "errored"
            return
        ident = (chunk.get("id"), chunk.get("created"), chunk.get("model"))
        if self.ident is not None and ident != self.ident:
            raise GrammarError(f"chunk identity changed: {ident} != {self.ident}")
        self.ident = ident
        choices = chunk.get("choices")
        if not choices:
            self._usage_chunk(chunk)
            return
        if self.finished:
            raise GrammarError("choice chunk after the finish chunk")
        self._choice(choices[0])
        self.chunks += 1

    def _usage_chunk(self, chunk: dict[str, Any]) -> None:
        if not self.finished or self.usage_sent or not chunk.get("usage"):
            raise GrammarError("usage chunk must follow the finish chunk, once")
        self.usage_sent = True

    def _choice(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if "role" in delta and self.chunks:
            raise GrammarError("role repeated after the first chunk")
        if choice.get("finish_reason") is not None:
            if delta:
                raise GrammarError("finish chunk with a non-empty delta")
            self.finished = True
        for call in delta.get("tool_calls") or []:
            self._tool(call)

    def _tool(self, call: dict[str, Any]) -> None:
        index = call.get("index")
        if not isinstance(index, int) or index > self.tools or index < 0:
            raise GrammarError(f"tool_calls index {index!r} is not contiguous (have {self.tools})")
        first = index == self.tools
        if first:
            self.tools += 1
            if not call.get("id") or not (call.get("function") or {}).get("name"):
                raise GrammarError("a tool call's first delta must carry id and name")
        elif "id" in call or "type" in call or "name" in (call.get("function") or {}):
            raise GrammarError("id/type/name repeated in a later tool delta")
