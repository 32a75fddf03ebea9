"""Anthropic Messages wire models: only the fields conversion reads.

Unknown fields are ignored (msgspec's default), so new request keys such as
``context_management`` or ``output_config`` never produce a 400. Content blocks are decoded one
by one against :data:`Block` (a tagged union on ``type``), so a block type we do not model can be
dropped or rejected with a message naming its position.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "STREAM_EVENT_TYPES",
    "Base64Source",
    "Block",
    "ContentBlockDelta",
    "ContentBlockStart",
    "ContentBlockStop",
    "ContentSource",
    "DocumentBlock",
    "DocumentSource",
    "ErrorEvent",
    "FileSource",
    "ImageBlock",
    "ImageSource",
    "Message",
    "MessageDelta",
    "MessageResponse",
    "MessageStart",
    "MessageStop",
    "MessagesRequest",
    "Metadata",
    "OutputConfig",
    "Ping",
    "RedactedThinkingBlock",
    "ResponseUsage",
    "SearchResultBlock",
    "StreamEvent",
    "TextBlock",
    "TextSource",
    "Thinking",
    "ThinkingBlock",
    "Tool",
    "ToolChoice",
    "ToolResultBlock",
    "ToolUseBlock",
    "UrlSource",
]


class Base64Source(msgspec.Struct, tag="base64", tag_field="type"):
    media_type: str
    data: str


class UrlSource(msgspec.Struct, tag="url", tag_field="type"):
    url: str


class TextSource(msgspec.Struct, tag="text", tag_field="type"):
    data: str
    media_type: str = "text/plain"


class FileSource(msgspec.Struct, tag="file", tag_field="type"):
    file_id: str


class ContentSource(msgspec.Struct, tag="content", tag_field="type"):
    content: str | list[dict[str, Any]]


ImageSource = Base64Source | UrlSource | FileSource
DocumentSource = Base64Source | UrlSource | TextSource | ContentSource | FileSource


class TextBlock(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class ImageBlock(msgspec.Struct, tag="image", tag_field="type"):
    source: ImageSource


class DocumentBlock(msgspec.Struct, tag="document", tag_field="type"):
    source: DocumentSource
    title: str | None = None


class SearchResultBlock(msgspec.Struct, tag="search_result", tag_field="type"):
    source: str
    title: str
    content: list[TextBlock]


class ToolUseBlock(msgspec.Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: Any = msgspec.field(default_factory=dict)


class ToolResultBlock(msgspec.Struct, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[dict[str, Any]] | None = None
    is_error: bool | None = None


class ThinkingBlock(msgspec.Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(msgspec.Struct, tag="redacted_thinking", tag_field="type"):
    data: str


Block = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | SearchResultBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
)


class Message(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]]
    output_config: OutputConfig | None = None
    """Claude Code 2.1.3xx sets ``effort`` on the latest ``role: system`` message when it changes mid-session."""


class Tool(msgspec.Struct):
    """A client tool, or a server tool when ``type`` is set to something other than ``custom``."""

    name: str
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoice(msgspec.Struct):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Thinking(msgspec.Struct):
    type: str
    budget_tokens: int | None = None
    display: str | None = None


class Metadata(msgspec.Struct):
    user_id: str | None = None


class OutputConfig(msgspec.Struct):
    effort: str | None = None
    format: dict[str, Any] | None = None


class MessagesRequest(msgspec.Struct):
    messages: list[Message]
    model: str = ""
    max_tokens: int | None = None
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    metadata: Metadata | None = None
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    output_format: dict[str, Any] | None = None


class ResponseUsage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class MessageResponse(msgspec.Struct):
    content: list[dict[str, Any]] = msgspec.field(default_factory=list)
    id: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: dict[str, Any] | None = None


# --- stream events --------------------------------------------------------------------------


class StartMessage(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None


class MessageStart(msgspec.Struct, tag="message_start", tag_field="type"):
    message: StartMessage = msgspec.field(default_factory=StartMessage)


class ContentBlockStart(msgspec.Struct, tag="content_block_start", tag_field="type"):
    index: int
    content_block: dict[str, Any]


class ContentBlockDelta(msgspec.Struct, tag="content_block_delta", tag_field="type"):
    index: int
    delta: dict[str, Any]


class ContentBlockStop(msgspec.Struct, tag="content_block_stop", tag_field="type"):
    index: int


class StopDelta(msgspec.Struct):
    stop_reason: str | None = None
    stop_sequence: str | None = None


class MessageDelta(msgspec.Struct, tag="message_delta", tag_field="type"):
    delta: StopDelta = msgspec.field(default_factory=StopDelta)
    usage: dict[str, Any] | None = None


class MessageStop(msgspec.Struct, tag="message_stop", tag_field="type"):
    pass


class Ping(msgspec.Struct, tag="ping", tag_field="type"):
    pass


class ErrorBody(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class ErrorEvent(msgspec.Struct, tag="error", tag_field="type"):
    error: ErrorBody = msgspec.field(default_factory=ErrorBody)


StreamEvent = (
    MessageStart
    | ContentBlockStart
    | ContentBlockDelta
    | ContentBlockStop
    | MessageDelta
    | MessageStop
    | Ping
    | ErrorEvent
)
STREAM_EVENT_TYPES = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)
