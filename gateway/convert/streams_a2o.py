"""Anthropic SSE → OpenAI chunks (conversion.md §8): one state machine, validated output.

Role only in the first chunk; a tool call's id/type/name only in its first delta; tool indexes
are a separate 0-based counter (§11.53); one finish chunk, the usage chunk only when asked
for, then ``[DONE]``. Thinking goes out as ``reasoning_content`` and, complete with its
signature, in the ``thinking_blocks`` carrier field so a client that echoes it back lets the
next request restore it (§8.3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.convert.errors import openai_error_for_type
from gateway.convert.grammar import GrammarError, OpenAIGrammar
from gateway.convert.mapping import finish_reason_for
from gateway.convert.types import ResponseHints
from gateway.convert.usage import usage_from_anthropic, usage_to_openai
from gateway.domain import Usage
from gateway.protocols.sse import SSEEvent

__all__ = ["AnthropicStreamToOpenAI"]


@dataclass(slots=True)
class _Block:
    kind: str
    tool_index: int = -1
    args_sent: bool = False
    text: str = ""
    signature: str = ""
    data: str = ""


class AnthropicStreamToOpenAI:
    def __init__(
        self,
        *,
        model: str,
        new_id: Callable[[str], str],
        created: int,
        include_usage: bool,
        hints: ResponseHints | None = None,
    ) -> None:
        self.hints = hints or ResponseHints()
        self.include_usage = include_usage
        self._base = {"id": new_id("chatcmpl-"), "object": "chat.completion.chunk", "created": created, "model": model}
        self._grammar = OpenAIGrammar()
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._thinking_blocks = 0
        self._role_sent = False
        self._json_answer = False
        self._stop_reason: str | None = None
        self._usage: dict[str, Any] = {}
        self.finished = False

    @property
    def usage(self) -> Usage:
        return usage_from_anthropic(self._usage)

    # -- output --------------------------------------------------------------------------------

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> SSEEvent:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._emit({**self._base, "system_fingerprint": None, "choices": [choice]})

    def _emit(self, chunk: dict[str, Any]) -> SSEEvent:
        self._grammar.check(chunk)
        return SSEEvent(None, msgspec.json.encode(chunk).decode())

    def _role(self) -> list[SSEEvent]:
        if self._role_sent:
            return []
        self._role_sent = True
        return [self._chunk({"role": "assistant", "content": ""})]

    # -- input ---------------------------------------------------------------------------------

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        if self.finished or not event.data.strip():
            return []
        try:
            payload = msgspec.json.decode(event.data)
        except msgspec.DecodeError:
            return self.fail("upstream sent a malformed event")
        if not isinstance(payload, dict):
            return self.fail("upstream sent a malformed event")
        kind = str(payload.get("type") or event.event or "")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return []
        try:
            out: list[SSEEvent] = handler(payload)
        except (KeyError, TypeError, AttributeError, GrammarError) as exc:
            return self.fail(f"relay could not convert the stream: {exc}")
        return out

    def _on_message_start(self, payload: dict[str, Any]) -> list[SSEEvent]:
        self._merge_usage((payload.get("message") or {}).get("usage"))
        return self._role()

    def _on_content_block_start(self, payload: dict[str, Any]) -> list[SSEEvent]:
        block = payload["content_block"]
        kind = block.get("type")
        out = self._role()
        state = _Block(kind=str(kind))
        self._blocks[payload["index"]] = state
        if kind == "text" and block.get("text"):
            out.extend(self._content(block["text"]))
        elif kind == "thinking":
            state.text = block.get("thinking") or ""
            if state.text and not self.hints.omit_reasoning:
                out.append(self._chunk({"reasoning_content": state.text}))
        elif kind == "redacted_thinking":
            state.data = str(block.get("data") or "")
        elif kind == "tool_use":
            out.extend(self._tool_start(state, block))
        return out

    def _tool_start(self, state: _Block, block: dict[str, Any]) -> list[SSEEvent]:
        name = self.hints.restore_name(str(block.get("name", "")))
        if self.hints.json_tool is not None and name == self.hints.json_tool:
            state.kind = "json_answer"
            self._json_answer = True
            return []
        state.tool_index = self._tools
        self._tools += 1
        call = {"index": state.tool_index, "id": block["id"], "type": "function"}
        call["function"] = {"name": name, "arguments": ""}
        return [self._chunk({"tool_calls": [call]})]

    def _content(self, text: str) -> list[SSEEvent]:
        return [self._chunk({"content": text})] if text else []

    def _on_content_block_delta(self, payload: dict[str, Any]) -> list[SSEEvent]:
        state = self._blocks[payload["index"]]
        delta = payload["delta"]
        kind = delta.get("type")
        if kind == "text_delta" and state.kind == "text":
            return self._content(delta.get("text", ""))
        if kind == "thinking_delta" and state.kind == "thinking":
            text = delta.get("thinking", "")
            state.text += text
            return [self._chunk({"reasoning_content": text})] if text and not self.hints.omit_reasoning else []
        if kind == "signature_delta" and state.kind == "thinking":
            state.signature = str(delta.get("signature", ""))
            return []
        if kind == "input_json_delta":
            return self._args(state, str(delta.get("partial_json", "")))
        return []

    def _args(self, state: _Block, fragment: str) -> list[SSEEvent]:
        if not fragment:
            return []
        if state.kind == "json_answer":
            return self._content(fragment)
        if state.kind != "tool_use":
            return []
        state.args_sent = True
        return [self._chunk({"tool_calls": [{"index": state.tool_index, "function": {"arguments": fragment}}]})]

    def _on_content_block_stop(self, payload: dict[str, Any]) -> list[SSEEvent]:
        state = self._blocks.get(payload["index"])
        if state is None:
            return []
        if state.kind == "tool_use" and not state.args_sent:
            state.args_sent = True
            return [self._chunk({"tool_calls": [{"index": state.tool_index, "function": {"arguments": "{}"}}]})]
        if (state.kind == "thinking" and state.signature) or state.kind == "redacted_thinking":
            return [self._chunk({"thinking_blocks": [self._carrier(state)]})]
        return []

    def _carrier(self, state: _Block) -> dict[str, Any]:
        index = self._thinking_blocks
        self._thinking_blocks += 1
        if state.kind == "redacted_thinking":
            return {"index": index, "type": "redacted_thinking", "data": state.data}
        return {"index": index, "type": "thinking", "thinking": state.text, "signature": state.signature}

    def _on_message_delta(self, payload: dict[str, Any]) -> list[SSEEvent]:
        self._stop_reason = (payload.get("delta") or {}).get("stop_reason") or self._stop_reason
        self._merge_usage(payload.get("usage"))
        return []

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _on_message_stop(self, payload: dict[str, Any]) -> list[SSEEvent]:
        out = self._role()
        reason = (
            "stop" if self._json_answer and self._stop_reason == "tool_use" else finish_reason_for(self._stop_reason)
        )
        out.append(self._chunk({}, finish=reason))
        if self.include_usage:
            out.append(self._emit({**self._base, "choices": [], "usage": usage_to_openai(self.usage)}))
        self._grammar.check_done()
        out.append(SSEEvent(None, "[DONE]"))
        self.finished = True
        return out

    def _on_error(self, payload: dict[str, Any]) -> list[SSEEvent]:
        err = payload.get("error") or {}
        return self.fail(str(err.get("message") or "upstream error"), str(err.get("type") or "api_error"))

    # -- end -----------------------------------------------------------------------------------

    def finish(self) -> list[SSEEvent]:
        """Upstream EOF: a stream without ``message_stop`` did not complete (§8.2)."""
        if self.finished:
            return []
        return self.fail("upstream stream ended unexpectedly")

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        if self.finished:
            return []
        self.finished = True
        _, error = openai_error_for_type(error_type, message)
        return [self._emit({"error": error})]
