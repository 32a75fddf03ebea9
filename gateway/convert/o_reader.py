"""OpenAI chunk stream → internal events (conversion.md §5.2-§5.4).

Owns the tool-call identity rules (§5.4: id, index, Gemini's index-0 parallel calls, missing
indexes, LocalAI repeats, cumulative resends) and name assembly. Block sequencing is the
writer's job (:mod:`gateway.convert.a_writer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.convert.events import Event, Finish, Reasoning, StreamFailure, Text, ToolArgs, ToolStart
from gateway.convert.jsonargs import is_complete_object
from gateway.convert.mapping import FAILED_FINISH_REASONS, stop_reason_for
from gateway.convert.o_fields import content_text, failure_from, reasoning_text
from gateway.convert.think_tags import ThinkTagSplitter
from gateway.convert.types import ResponseHints
from gateway.convert.usage import usage_from_openai
from gateway.protocols.openai import ChatChunk, ChunkChoice, ToolCallDelta

__all__ = ["OChunkReader"]


@dataclass(slots=True)
class _Call:
    key: int
    id: str | None = None
    name: str = ""
    args: str = ""
    started: bool = False
    cumulative: bool = False
    answer: bool = False
    """The forced ``json_output`` call standing in for structured output: its arguments are the text answer."""


class OChunkReader:
    def __init__(self, hints: ResponseHints) -> None:
        self.hints = hints
        self.calls: list[_Call] = []
        self.by_id: dict[str, _Call] = {}
        self.by_index: dict[int, _Call] = {}
        self.finish_reason: str | None = None
        self.matched_stop: str | int | None = None
        self.usage: dict[str, Any] | None = None
        self.splitter = ThinkTagSplitter() if hints.think_tags else None

    @property
    def saw_finish(self) -> bool:
        return self.finish_reason is not None

    def read(self, chunk: ChatChunk) -> list[Event]:
        """Events of one chunk, in the order reasoning → content → tools → finish → usage (§5.2)."""
        if chunk.error is not None:
            raise failure_from(chunk.error)
        if chunk.object == "error":
            raise failure_from(chunk.message or "upstream error")
        out: list[Event] = []
        choice = chunk.choices[0] if chunk.choices else None
        if choice is not None:
            out.extend(self._choice(choice))
        usage = chunk.usage or (choice.usage if choice is not None else None)
        if usage:
            self.usage = usage
        return out

    def _choice(self, choice: ChunkChoice) -> list[Event]:
        if choice.error is not None:
            raise failure_from(choice.error)
        reason = choice.finish_reason
        if reason in FAILED_FINISH_REASONS:
            raise StreamFailure(FAILED_FINISH_REASONS[reason], f"upstream stopped with finish_reason '{reason}'")
        delta = choice.delta
        out: list[Event] = []
        thought = reasoning_text(delta.reasoning_content, delta.reasoning, delta.reasoning_details)
        if thought:
            out.append(Reasoning(thought))
        text = content_text(delta.content) + (delta.refusal or "")
        if text:
            out.extend(self._content(text))
        for tool in delta.tool_calls or []:
            out.extend(self._tool(tool))
        if delta.function_call is not None:
            out.extend(self._tool(ToolCallDelta(index=0, id=None, function=delta.function_call)))
        if reason:
            self.finish_reason = reason
            self.matched_stop = choice.stop_reason
        return out

    def _content(self, text: str) -> list[Event]:
        if self.splitter is None:
            return [Text(text)]
        return [Reasoning(t) if kind == "reasoning" else Text(t) for kind, t in self.splitter.feed(text)]

    # -- tool calls ---------------------------------------------------------------------------

    def _identify(self, d: ToolCallDelta, name: str, args: str) -> tuple[_Call, bool]:
        """The call a delta belongs to, and whether it is new (§5.4 identity rules 1-5)."""
        last = self.calls[-1] if self.calls else None
        if d.id and d.id in self.by_id:
            return self.by_id[d.id], False
        known = self.by_index.get(d.index) if d.index is not None else None
        if known is not None:
            if d.id and known.id and d.id != known.id:
                return self._new(d), True
            return known, False
        if d.index is None and not d.id and last is not None:
            return last, False
        if d.index is not None and not d.id and not name and args and last is not None:
            self.by_index[d.index] = last
            return last, False
        return self._new(d), True

    def _new(self, d: ToolCallDelta) -> _Call:
        call = _Call(key=len(self.calls))
        self.calls.append(call)
        if d.index is not None:
            self.by_index[d.index] = call
        return call

    def _tool(self, d: ToolCallDelta) -> list[Event]:
        fn = d.function
        name = (fn.name or "") if fn is not None else ""
        raw = fn.arguments if fn is not None else None
        args = raw if isinstance(raw, str) else ("" if raw is None else msgspec.json.encode(raw).decode())
        call, is_new = self._identify(d, name, args)
        out: list[Event] = self._start_pending(exclude=call) if is_new else []
        if d.id and not call.id:
            call.id = d.id
            self.by_id[d.id] = call
        if name and not call.started and name != call.name:
            call.name += name
        fragment = self._fragment(call, args)
        if fragment:
            call.args += fragment
            if call.started:
                out.append(Text(fragment) if call.answer else ToolArgs(call.key, fragment))
            elif call.name:
                out.extend(self._start(call))
        return out

    def _fragment(self, call: _Call, args: str) -> str:
        """The new part of ``args``: cumulative resends and duplicate full copies contribute nothing."""
        if not args:
            return ""
        grows = bool(call.args) and args.startswith(call.args) and len(args) > len(call.args)
        if call.cumulative or (self.hints.cumulative_tool_args and grows):
            call.cumulative = True
            return args[len(call.args) :] if args.startswith(call.args) else args
        if args == call.args and is_complete_object(call.args):
            return ""
        return args

    def _start(self, call: _Call) -> list[Event]:
        call.started = True
        if self.hints.json_tool is not None and call.name == self.hints.json_tool:
            call.answer = True
            return [Text(call.args)] if call.args else []
        events: list[Event] = [ToolStart(call.key, call.id, call.name or "unknown_tool")]
        return [*events, ToolArgs(call.key, call.args)] if call.args else events

    def _start_pending(self, exclude: _Call | None = None) -> list[Event]:
        out: list[Event] = []
        for call in self.calls:
            if not call.started and call is not exclude and (call.name or call.args):
                out.extend(self._start(call))
        return out

    # -- end ------------------------------------------------------------------------------------

    def end(self) -> list[Event]:
        """Flush pending calls and split text, then the single :class:`Finish` (§5.3 step 7)."""
        out: list[Event] = []
        if self.splitter is not None:
            out.extend(Reasoning(t) if k == "reasoning" else Text(t) for k, t in self.splitter.flush())
        out.extend(self._start_pending())
        had_tools = any(c.started and not c.answer for c in self.calls)
        stop, sequence = stop_reason_for(
            self.finish_reason,
            had_tool_use=had_tools,
            matched_stop=self.matched_stop,
            stop_sequences=self.hints.stop_sequences,
        )
        usage = usage_from_openai(self.usage) if self.usage else None
        if self.finish_reason == "content_filter":
            stop = "refusal"
        out.append(Finish(stop, sequence, usage))
        return out
