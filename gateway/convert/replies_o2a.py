"""OpenAI chat.completion → Anthropic Message (conversion.md §4).

The response is replayed as one chunk through the stream reader and writer and folded back
into a Message, so tool ids, names, signatures and stop reasons follow exactly the stream rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from gateway.convert.a_accumulate import accumulate_message
from gateway.convert.streams_o2a import OpenAIStreamToAnthropic
from gateway.convert.types import ResponseHints
from gateway.errors import UpstreamUnavailable
from gateway.protocols.openai import ChatChunk, ChatCompletion, ChunkChoice, Delta, FunctionDelta, ToolCallDelta
from gateway.protocols.sse import SSEEvent

__all__ = ["as_chunk", "openai_reply_to_anthropic"]


def as_chunk(resp: ChatCompletion) -> ChatChunk:
    """A chat.completion as the one stream chunk that says the same."""
    if not resp.choices:
        raise UpstreamUnavailable("upstream returned no choices")
    choice = resp.choices[0]
    msg = choice.message
    calls = [
        ToolCallDelta(index=i, id=c.id, type="function", function=FunctionDelta(c.function.name, c.function.arguments))
        for i, c in enumerate(msg.tool_calls or [])
    ]
    if msg.function_call is not None and not calls:
        fc = msg.function_call
        calls = [ToolCallDelta(index=0, function=FunctionDelta(fc.name, fc.arguments))]
    content = msg.content if isinstance(msg.content, str) else None
    if isinstance(msg.content, list):
        content = "".join(str(p.get("text", "")) for p in msg.content if p.get("type") in ("text", "output_text"))
    delta = Delta(
        role="assistant",
        content=content,
        reasoning_content=msg.reasoning_content,
        reasoning=msg.reasoning,
        reasoning_details=msg.reasoning_details,
        tool_calls=calls or None,
        refusal=msg.refusal,
    )
    finish = "content_filter" if msg.refusal and choice.finish_reason == "stop" else choice.finish_reason
    chunk_choice = ChunkChoice(delta=delta, finish_reason=finish or "stop", stop_reason=choice.stop_reason)
    return ChatChunk(choices=[chunk_choice], usage=resp.usage)


def openai_reply_to_anthropic(
    body: dict[str, Any],
    *,
    model: str,
    new_id: Callable[[str], str],
    hints: ResponseHints | None = None,
) -> dict[str, Any]:
    try:
        resp = msgspec.convert(body, ChatCompletion)
    except msgspec.ValidationError as exc:
        raise UpstreamUnavailable(f"upstream returned an invalid response: {exc}") from None
    stream = OpenAIStreamToAnthropic(model=model, new_id=new_id, hints=hints)
    events = [*stream.feed_chunk(as_chunk(resp)), *stream.feed(SSEEvent(None, "[DONE]"))]
    return accumulate_message(events)
