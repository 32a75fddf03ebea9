"""The Responses stream grammar, as the openai SDK's ``responses.stream()`` helper and Codex enforce it.

``response.created`` first, then ``response.in_progress``; an item's ``output_item.added`` before
anything about it; a content part added before its deltas; ``sequence_number`` strictly
increasing from 0; one ``response.id`` on every lifecycle event; every item done before
``response.completed``/``response.incomplete``; ``response.failed`` may end the stream at any
point; nothing after the end. The writer checks each event before it is sent and fails closed.
"""

from __future__ import annotations

from typing import Any

from gateway.convert.grammar import GrammarError

__all__ = ["ResponsesGrammar"]

_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_ITEM_EVENTS = frozenset(
    {
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
    }
)
_PART_EVENTS = frozenset(
    {"response.output_text.delta", "response.output_text.done", "response.refusal.delta", "response.refusal.done"}
)


class ResponsesGrammar:
    def __init__(self) -> None:
        self.seq = -1
        self.state = "init"
        self.response_id: str | None = None
        self.items: dict[int, str] = {}
        """output_index → "open" or "done"."""
        self.parts: set[tuple[int, int]] = set()

    def check(self, payload: dict[str, Any]) -> None:
        kind = payload.get("type")
        if not isinstance(kind, str):
            raise GrammarError("event without a type")
        seq = payload.get("sequence_number")
        if not isinstance(seq, int) or seq != self.seq + 1:
            raise GrammarError(f"{kind}: sequence_number {seq} after {self.seq}")
        self.seq = seq
        if self.state == "ended":
            raise GrammarError(f"{kind} after the end of the stream")
        if self.state == "init" and kind != "response.created":
            raise GrammarError(f"{kind} before response.created")
        response = payload.get("response")
        if isinstance(response, dict) and kind.startswith("response."):
            self._lifecycle(kind, response)
        elif kind in _PART_EVENTS or kind == "response.content_part.done":  # the deltas: most events
            self._item(payload, kind)
            if (payload["output_index"], payload.get("content_index")) not in self.parts:
                raise GrammarError(f"{kind} before its content part was added")
        elif kind == "response.output_item.added":
            self._added(payload)
        elif kind == "response.output_item.done":
            self._item(payload, kind)
            self.items[payload["output_index"]] = "done"
        elif kind == "response.content_part.added":
            self._item(payload, kind)
            self.parts.add((payload["output_index"], payload["content_index"]))
        elif kind in _ITEM_EVENTS:
            self._item(payload, kind)
        elif kind != "error":
            raise GrammarError(f"unknown event {kind!r}")

    def _lifecycle(self, kind: str, response: dict[str, Any]) -> None:
        rid = response.get("id")
        if self.response_id is None:
            self.response_id = rid
        elif rid != self.response_id:
            raise GrammarError(f"{kind} names response {rid!r}, not {self.response_id!r}")
        if kind == "response.created":
            if self.state != "init":
                raise GrammarError("response.created twice")
            self.state = "started"
        elif kind in _TERMINAL:
            if kind != "response.failed" and any(state != "done" for state in self.items.values()):
                raise GrammarError(f"{kind} with unfinished output items")
            self.state = "ended"

    def _added(self, payload: dict[str, Any]) -> None:
        index = payload.get("output_index")
        if not isinstance(index, int) or index != len(self.items):
            raise GrammarError(f"output_item.added with output_index {index}, expected {len(self.items)}")
        if any(state != "done" for state in self.items.values()):
            raise GrammarError("output_item.added while another item is open")
        self.items[index] = "open"

    def _item(self, payload: dict[str, Any], kind: str) -> None:
        if self.items.get(payload.get("output_index", -1)) != "open":
            raise GrammarError(f"{kind} for an output item that is not open")
