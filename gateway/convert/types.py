"""Results of request conversion and the facts response conversion needs from the request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.convert.a2o_websearch import WebSearchSpec
from gateway.domain import Usage
from gateway.protocols.sse import SSEEvent

__all__ = ["Converted", "ResponseHints", "StreamTap"]


@dataclass(frozen=True, slots=True)
class ResponseHints:
    """What the response side must know about the converted request (converters are stateless).

    ``tool_names`` maps shortened tool names back to the client's originals; ``stop_sequences``
    lets a vLLM-style ``stop_reason`` become ``stop_sequence``; ``json_tool`` names the synthetic
    tool standing in for ``response_format`` (its input becomes the text answer);
    ``omit_reasoning`` hides reasoning text (adaptive thinking with ``display: "omitted"``); the
    rest are upstream stream quirks copied from the profile.
    """

    tool_names: Mapping[str, str] = field(default_factory=dict)
    stop_sequences: tuple[str, ...] = ()
    json_tool: str | None = None
    omit_reasoning: bool = False
    think_tags: bool = False
    cumulative_tool_args: bool = False
    stream_all_tools_live: bool = False
    provider: str = "openai"

    def restore_name(self, name: str) -> str:
        return self.tool_names.get(name, name)


@dataclass(frozen=True, slots=True)
class Converted:
    """A converted request body plus short codes of what was dropped or changed."""

    body: dict[str, Any]
    notes: tuple[str, ...] = ()
    hints: ResponseHints = field(default_factory=ResponseHints)
    web_search: WebSearchSpec | None = None
    """A ``web_search`` server tool Relay runs itself (offered to the model as a function)."""

    @property
    def tool_name_map(self) -> Mapping[str, str]:
        return self.hints.tool_names


class StreamTap(Protocol):
    """What the relay's one streaming loop drives: every converter and same-dialect tap."""

    @property
    def usage(self) -> Usage: ...
    @property
    def finished(self) -> bool: ...
    def feed(self, ev: SSEEvent) -> list[SSEEvent]: ...
    def finish(self) -> list[SSEEvent]: ...
    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]: ...
