"""Internal stream events between a dialect reader and a dialect writer (conversion.md §0.1)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain import Usage

__all__ = ["Event", "Finish", "Reasoning", "StreamFailure", "Text", "ToolArgs", "ToolStart"]


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    text: str


@dataclass(frozen=True, slots=True)
class ToolStart:
    key: int
    id: str | None
    name: str


@dataclass(frozen=True, slots=True)
class ToolArgs:
    key: int
    fragment: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of a message, in Anthropic terms (``stop_reason`` of §9.1)."""

    stop_reason: str
    stop_sequence: str | None
    usage: Usage | None


Event = Text | Reasoning | ToolStart | ToolArgs | Finish


class StreamFailure(Exception):
    """The upstream reported a failure inside the stream; ``error_type`` is Anthropic's."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
