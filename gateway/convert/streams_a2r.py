"""Anthropic SSE → Responses SSE: one state machine for every converted Responses reply.

An OpenAI-compatible upstream's chunks reach it through ``OpenAIStreamToAnthropic`` first
(:class:`gateway.convert.chain.Chained`), so tool-call identity, reasoning quirks and stop reasons follow the rules
that already serve Claude Code; non-streamed replies are replayed through it as events
(:mod:`gateway.convert.replies_x2r`). One output item is open at a time; consecutive text blocks
share one message item; a thinking block becomes a ``reasoning`` item whose
``encrypted_content`` carries the block (sealed, :mod:`gateway.convert.envelope`); tool uses
become ``function_call`` (or ``custom_tool_call``) items under the client's own names. Every
event passes :class:`ResponsesGrammar` before it is encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway.convert.errors import is_context_message
from gateway.convert.grammar import GrammarError
from gateway.convert.grammar_responses import ResponsesGrammar
from gateway.convert.ids import is_minted_signature
from gateway.convert.jsonargs import parse_arguments
from gateway.convert.r_objects import response_skeleton, responses_usage
from gateway.convert.requests_r2a import ResponsesConverted, ToolIdentity
from gateway.convert.usage import usage_from_anthropic
from gateway.domain import Usage
from gateway.protocols.sse import SSEEvent

__all__ = ["AnthropicStreamToResponses"]

_encode = msgspec.json.Encoder().encode
_INCOMPLETE = {"max_tokens": "max_output_tokens", "model_context_window_exceeded": "max_output_tokens"}
_FAILED_CODES = {"rate_limit_error": "rate_limit_exceeded", "overloaded_error": "server_error"}


@dataclass(slots=True)
class _Item:
    index: int
    doc: dict[str, Any]
    parts: list[str] = field(default_factory=list)
    signature: str = ""
    tool: ToolIdentity | None = None
    redacted: bool = False


class AnthropicStreamToResponses:
    """Feed decoded Anthropic SSE events; send what comes back to the Responses client.

    ``response`` is the final Response object once the stream ended (completed, incomplete or
    failed); ``usage`` is the upstream's, in Anthropic accounting, for the ledger.
    """

    def __init__(
        self,
        *,
        model: str,
        response_id: str,
        new_id: Callable[[str], str],
        created: int,
        shape: ResponsesConverted,
        seal: Callable[[dict[str, str]], str],
        json_tool: str | None = None,
        encode: bool = True,
    ) -> None:
        """``encode=False`` for a non-streamed reply: only the final ``response`` is wanted."""
        self._encode = encode
        self._new_id = new_id
        self._shape = shape
        self._seal = seal
        self._json_tool = json_tool
        self._grammar = ResponsesGrammar()
        self._seq = 0
        self._blocks: dict[int, _Item] = {}
        self._open: _Item | None = None
        self._output: list[dict[str, Any]] = []
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._base = response_skeleton(response_id, model, created, shape.echo)
        self.response: dict[str, Any] | None = None
        self.finished = False
        self._carries: dict[str, str] = {}
        """Reasoning item id → its sealed carry, kept even when the client did not ask for it."""

    @property
    def usage(self) -> Usage:
        return usage_from_anthropic(self._usage)

    @property
    def kept_response(self) -> dict[str, Any] | None:
        """The final Response with every reasoning carry in it: what a server-held conversation keeps."""
        if self.response is None:
            return None
        output = [
            {**item, "encrypted_content": self._carries[item["id"]]} if item.get("id") in self._carries else item
            for item in self.response["output"]
        ]
        return {**self.response, "output": output}

    # -- output ----------------------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> SSEEvent:
        return self._send({"type": kind, "sequence_number": self._seq, **fields})

    def _item_event(self, kind: str, item: _Item, **fields: Any) -> SSEEvent:
        """An event about ``item``: its ``item_id`` and ``output_index``, then ``fields``."""
        return self._send(
            {
                "type": kind,
                "sequence_number": self._seq,
                "item_id": item.doc["id"],
                "output_index": item.index,
                **fields,
            }
        )

    def _send(self, payload: dict[str, Any]) -> SSEEvent:
        """``payload`` (``type`` and ``sequence_number`` first), checked, numbered and encoded."""
        self._grammar.check(payload)
        self._seq += 1
        kind: str = payload["type"]
        return SSEEvent(kind, _encode(payload).decode() if self._encode else "", payload)

    def _lifecycle(self, kind: str, status: str, **extra: Any) -> SSEEvent:
        response = {**self._base, "status": status, "output": list(self._output), **extra}
        if kind != "response.created" and kind != "response.in_progress":
            self.response = response
        return self._emit(kind, response=response)

    def _start(self) -> list[SSEEvent]:
        if self._grammar.state != "init":
            return []
        return [
            self._lifecycle("response.created", "in_progress"),
            self._lifecycle("response.in_progress", "in_progress"),
        ]

    # -- input -----------------------------------------------------------------------------------

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        if self.finished:
            return []
        payload = event.payload
        if payload is None:
            if not event.data.strip():
                return []
            try:
                payload = msgspec.json.decode(event.data)
            except msgspec.DecodeError:
                return self.fail("upstream sent a malformed event")
        if not isinstance(payload, dict):
            return self.fail("upstream sent a malformed event")
        kind = payload.get("type") or event.event
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return []
        try:
            out = self._start()
            out.extend(handler(self, payload))
        except (KeyError, TypeError, AttributeError, GrammarError) as exc:
            return self.fail(f"relay could not convert the stream: {exc}")
        return out

    def _on_message_start(self, payload: dict[str, Any]) -> list[SSEEvent]:
        self._merge_usage((payload.get("message") or {}).get("usage"))
        return []

    def _on_content_block_start(self, payload: dict[str, Any]) -> list[SSEEvent]:
        block = payload["content_block"]
        kind = block.get("type")
        index = payload["index"]
        if kind == "text" or (kind == "tool_use" and block.get("name") == self._json_tool):
            out = self._message()
            self._blocks[index] = self._open  # type: ignore[assignment]
            return [*out, *self._text(str(block.get("text") or ""))]
        if kind == "thinking":
            item = self._item({"type": "reasoning", "id": self._new_id("rs_"), "summary": []})
            item.parts.append(str(block.get("thinking") or ""))
            self._blocks[index] = item
            return self._opened(item)
        if kind == "redacted_thinking":
            item = self._item({"type": "reasoning", "id": self._new_id("rs_"), "summary": []})
            item.signature, item.redacted = str(block.get("data") or ""), True
            return [*self._opened(item), *self._close()]
        if kind == "tool_use":
            return self._tool_start(index, block)
        return []

    def _on_content_block_delta(self, payload: dict[str, Any]) -> list[SSEEvent]:
        item = self._blocks.get(payload["index"])
        if item is None:
            return []
        delta = payload["delta"]
        kind = delta.get("type")
        if item.doc["type"] == "message":
            text = delta.get("text") if kind == "text_delta" else delta.get("partial_json")
            return self._text(str(text or "")) if kind in ("text_delta", "input_json_delta") else []
        if kind == "thinking_delta":
            return self._reasoning_delta(item, str(delta.get("thinking") or ""))
        if kind == "signature_delta":
            item.signature = str(delta.get("signature") or "")
        elif kind == "input_json_delta":
            fragment = str(delta.get("partial_json") or "")
            item.parts.append(fragment)
            if fragment and item.doc["type"] == "function_call":
                return [self._item_event("response.function_call_arguments.delta", item, delta=fragment)]
        return []

    def _on_content_block_stop(self, payload: dict[str, Any]) -> list[SSEEvent]:
        item = self._blocks.get(payload["index"])
        if item is None or item is not self._open or item.doc["type"] == "message":
            return []  # text stays open: the next text block joins the same message item
        return self._close()

    def _on_message_delta(self, payload: dict[str, Any]) -> list[SSEEvent]:
        self._stop_reason = (payload.get("delta") or {}).get("stop_reason") or self._stop_reason
        self._merge_usage(payload.get("usage"))
        return []

    def _on_message_stop(self, payload: dict[str, Any]) -> list[SSEEvent]:
        reason = _incomplete_reason(self._stop_reason)
        out = self._close(incomplete=reason is not None)
        usage = responses_usage(self.usage)
        self.finished = True
        if reason is None:
            out.append(self._lifecycle("response.completed", "completed", usage=usage))
        else:
            details = {"reason": reason}
            out.append(self._lifecycle("response.incomplete", "incomplete", usage=usage, incomplete_details=details))
        return out

    def text_reply(self, text: str, stop_reason: str, usage: dict[str, Any]) -> dict[str, Any]:
        """The final Response of a reply that is one message of text, built without events.

        What replaying the reply as the events ``message_start``, one text block and ``message_stop``
        gives (tested), for a fraction of the work: a non-streamed reply's shortcut (``replies_x2r``).
        ``text`` is not blank (a blank text block is never opened); ``usage`` is in Anthropic's form.
        """
        reason = _incomplete_reason(stop_reason)
        part = {"type": "output_text", "text": text, "annotations": []}
        status = "completed" if reason is None else "incomplete"
        doc = {"type": "message", "id": self._new_id("msg_"), "role": "assistant", "content": [part], "status": status}
        self._output.append(doc)
        self._merge_usage(usage)
        extra: dict[str, Any] = {"usage": responses_usage(self.usage)}
        if reason is not None:
            extra["incomplete_details"] = {"reason": reason}
        self.finished = True
        self.response = {**self._base, "status": status, "output": list(self._output), **extra}
        return self.response

    def _on_error(self, payload: dict[str, Any]) -> list[SSEEvent]:
        err = payload.get("error") or {}
        return self.fail(str(err.get("message") or "upstream error"), str(err.get("type") or "api_error"))

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    # -- items -----------------------------------------------------------------------------------

    def _item(self, doc: dict[str, Any]) -> _Item:
        return _Item(index=len(self._output) + (1 if self._open is not None else 0), doc=doc)

    def _opened(self, item: _Item) -> list[SSEEvent]:
        out = self._close()
        item.index = len(self._output)
        self._open = item
        added = {**item.doc}
        if item.doc["type"] in ("message", "function_call"):
            added["status"] = "in_progress"
        out.append(self._emit("response.output_item.added", output_index=item.index, item=added))
        if item.doc["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": []}
            out.append(self._item_event("response.content_part.added", item, content_index=0, part=part))
        elif item.doc["type"] == "reasoning" and item.parts:
            first, item.parts = item.parts[0], []
            out.extend(self._reasoning_delta(item, first))
        return out

    def _message(self) -> list[SSEEvent]:
        if self._open is not None and self._open.doc["type"] == "message":
            return []
        doc = {"type": "message", "id": self._new_id("msg_"), "role": "assistant", "content": []}
        return self._opened(_Item(index=0, doc=doc))

    def _text(self, text: str) -> list[SSEEvent]:
        item = self._open
        if not text or item is None:
            return []
        item.parts.append(text)
        # The most frequent event, so built in one go (the fields in ``_item_event`` order).
        payload = {
            "type": "response.output_text.delta",
            "sequence_number": self._seq,
            "item_id": item.doc["id"],
            "output_index": item.index,
            "content_index": 0,
            "delta": text,
            "logprobs": [],
        }
        return [self._send(payload)]

    def text_ready(self, block: int | None) -> bool:
        """Whether text of Anthropic block ``block`` continues the open message item (see ``text_event``)."""
        item = self._open
        return (
            block is not None
            and item is not None
            and self._encode
            and not self.finished
            and self._blocks.get(block) is item
            and item.doc["type"] == "message"
            and self._grammar.state == "started"
        )

    def text_event(self, text: str) -> bytes:
        """``text`` as the encoded ``response.output_text.delta`` that ``_text`` would send, without the dict.

        Only after ``text_ready``: the item is open with its text part, which a delta leaves as it is,
        so the grammar has only the sequence number to learn. A chain's fast lane (``Chained.pass_raw``).
        """
        if not text:
            return b""
        item = self._open
        assert item is not None
        item.parts.append(text)
        seq = self._grammar.seq = self._seq
        self._seq += 1
        return b"".join(
            (
                b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":',
                str(seq).encode(),
                b',"item_id":',
                _encode(item.doc["id"]),
                b',"output_index":',
                str(item.index).encode(),
                b',"content_index":0,"delta":',
                _encode(text),
                b',"logprobs":[]}\n\n',
            )
        )

    def _reasoning_delta(self, item: _Item, text: str) -> list[SSEEvent]:
        if not text:
            return []
        out: list[SSEEvent] = []
        if not item.parts:
            part = {"type": "summary_text", "text": ""}
            out.append(self._item_event("response.reasoning_summary_part.added", item, summary_index=0, part=part))
        item.parts.append(text)
        out.append(self._item_event("response.reasoning_summary_text.delta", item, summary_index=0, delta=text))
        return out

    def _tool_start(self, index: int, block: dict[str, Any]) -> list[SSEEvent]:
        name = str(block.get("name") or "")
        tool = self._shape.tools.get(name) or ToolIdentity("function", name)
        doc: dict[str, Any]
        if tool.kind == "custom":
            doc = {"type": "custom_tool_call", "id": self._new_id("ctc_"), "call_id": block["id"], "name": tool.name}
            doc["input"] = ""
        else:
            doc = {"type": "function_call", "id": self._new_id("fc_"), "call_id": block["id"], "name": tool.name}
            doc["arguments"] = ""
        if tool.namespace:
            doc["namespace"] = tool.namespace
        item = _Item(index=0, doc=doc, tool=tool)
        self._blocks[index] = item
        return self._opened(item)

    def _close(self, *, incomplete: bool = False) -> list[SSEEvent]:
        item, self._open = self._open, None
        if item is None:
            return []
        out = _CLOSERS[item.doc["type"]](self, item, incomplete)
        self._output.append(item.doc)
        out.append(self._emit("response.output_item.done", output_index=item.index, item=item.doc))
        return out

    def _close_message(self, item: _Item, incomplete: bool) -> list[SSEEvent]:
        text = "".join(item.parts)
        part = {"type": "output_text", "text": text, "annotations": []}
        item.doc.update(status="incomplete" if incomplete else "completed", content=[part])
        return [
            self._item_event("response.output_text.done", item, content_index=0, text=text, logprobs=[]),
            self._item_event("response.content_part.done", item, content_index=0, part=part),
        ]

    def _close_reasoning(self, item: _Item, incomplete: bool) -> list[SSEEvent]:
        text = "".join(item.parts)
        out: list[SSEEvent] = []
        if text:
            part = {"type": "summary_text", "text": text}
            out.append(self._item_event("response.reasoning_summary_text.done", item, summary_index=0, text=text))
            out.append(self._item_event("response.reasoning_summary_part.done", item, summary_index=0, part=part))
            item.doc["summary"] = [part]
        carry = _carry(item, text)
        if carry is not None:
            token = self._carries[item.doc["id"]] = self._seal(carry)
            if self._shape.include_reasoning:
                item.doc["encrypted_content"] = token
        return out

    def _close_function_call(self, item: _Item, incomplete: bool) -> list[SSEEvent]:
        args = "".join(item.parts) or "{}"
        item.doc.update(arguments=args, status="incomplete" if incomplete else "completed")
        return [self._item_event("response.function_call_arguments.done", item, arguments=args)]

    def _close_custom_tool_call(self, item: _Item, incomplete: bool) -> list[SSEEvent]:
        raw = "".join(item.parts)
        value = parse_arguments(raw).get("input")
        text = value if isinstance(value, str) else raw
        item.doc["input"] = text
        out = [self._item_event("response.custom_tool_call_input.delta", item, delta=text)] if text else []
        out.append(self._item_event("response.custom_tool_call_input.done", item, input=text))
        return out

    # -- end -------------------------------------------------------------------------------------

    def finish(self) -> list[SSEEvent]:
        """Upstream EOF: a stream without ``message_stop`` did not complete."""
        return [] if self.finished else self.fail("upstream stream ended unexpectedly")

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        if self.finished:
            return []
        self.finished = True
        code = _FAILED_CODES.get(error_type, "server_error")
        if error_type == "invalid_request_error" and is_context_message(message):
            code = "context_length_exceeded"
        error = {"code": code, "message": message}
        return [*self._start(), self._lifecycle("response.failed", "failed", error=error)]


_HANDLERS: dict[str, Callable[[AnthropicStreamToResponses, dict[str, Any]], list[SSEEvent]]] = {
    "message_start": AnthropicStreamToResponses._on_message_start,
    "content_block_start": AnthropicStreamToResponses._on_content_block_start,
    "content_block_delta": AnthropicStreamToResponses._on_content_block_delta,
    "content_block_stop": AnthropicStreamToResponses._on_content_block_stop,
    "message_delta": AnthropicStreamToResponses._on_message_delta,
    "message_stop": AnthropicStreamToResponses._on_message_stop,
    "error": AnthropicStreamToResponses._on_error,
}
"""The handler of each Anthropic event type (others, ``ping`` included, are skipped)."""
_CLOSERS: dict[str, Callable[[AnthropicStreamToResponses, _Item, bool], list[SSEEvent]]] = {
    "message": AnthropicStreamToResponses._close_message,
    "reasoning": AnthropicStreamToResponses._close_reasoning,
    "function_call": AnthropicStreamToResponses._close_function_call,
    "custom_tool_call": AnthropicStreamToResponses._close_custom_tool_call,
}
"""What closing an output item of each type sends before its ``output_item.done``."""


def _incomplete_reason(stop_reason: str | None) -> str | None:
    """Why a reply with this Anthropic ``stop_reason`` is ``incomplete``; None when it completed."""
    if stop_reason == "refusal":
        return "content_filter"
    return _INCOMPLETE.get(stop_reason or "")


def _carry(item: _Item, text: str) -> dict[str, str] | None:
    """What the upstream needs back from a reasoning item: a signed block, redacted data, or the text."""
    sig = item.signature
    if item.redacted:
        return {"k": "redacted", "d": sig} if sig else None
    if sig and not is_minted_signature(sig):
        return {"k": "thinking", "t": text, "s": sig}
    return {"k": "reasoning", "t": text} if text else None
