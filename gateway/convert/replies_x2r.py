"""Non-streamed replies → a Response object, through the stream state machine.

An Anthropic message is replayed as its event stream through :class:`AnthropicStreamToResponses`
and the final Response taken from its terminal event; an OpenAI chat.completion becomes an
Anthropic message first (``openai_reply_to_anthropic``). So ids, items, names, reasoning carries
and stop reasons follow exactly the stream rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from gateway.convert.a_accumulate import STATUS_FOR_ERROR_TYPE
from gateway.convert.chain import Chained
from gateway.convert.mapping import FAILED_FINISH_REASONS, stop_reason_for
from gateway.convert.replies_a2o import message_events
from gateway.convert.replies_o2a import as_chunk
from gateway.convert.streams_a2r import AnthropicStreamToResponses
from gateway.convert.streams_o2a import OpenAIStreamToAnthropic
from gateway.convert.types import ResponseHints
from gateway.convert.usage import usage_from_openai, usage_to_anthropic
from gateway.errors import UpstreamError, UpstreamUnavailable
from gateway.protocols.anthropic import MessageResponse
from gateway.protocols.openai import ChatCompletion
from gateway.protocols.sse import SSEEvent

__all__ = ["anthropic_reply_to_responses", "openai_reply_to_responses"]


def anthropic_reply_to_responses(body: dict[str, Any], stream: AnthropicStreamToResponses) -> dict[str, Any]:
    """``stream`` is a fresh converter set up for this call; its final Response is returned."""
    if body.get("type") == "error":
        err = body.get("error") or {}
        kind = str(err.get("type") or "api_error")
        raise UpstreamError(str(err.get("message")), status_code=STATUS_FOR_ERROR_TYPE.get(kind, 502), error_type=kind)
    try:
        msg = msgspec.convert(body, MessageResponse)
    except msgspec.ValidationError as exc:
        raise UpstreamUnavailable(f"upstream returned an invalid response: {exc}") from None
    for event in message_events(msg):
        stream.feed(event)
    return _final(stream)


def _final(stream: AnthropicStreamToResponses) -> dict[str, Any]:
    response = stream.response
    if response is None or response["status"] == "failed":
        message = (response or {}).get("error", {}).get("message") or "upstream reply could not be converted"
        if response is not None and response["error"].get("code") == "rate_limit_exceeded":
            raise UpstreamError(str(message), status_code=429, error_type="rate_limit_error")
        raise UpstreamUnavailable(str(message))
    return response


def openai_reply_to_responses(
    body: dict[str, Any], stream: AnthropicStreamToResponses, *, new_id: Callable[[str], str], hints: ResponseHints
) -> dict[str, Any]:
    """The chat.completion replayed as one chunk through ``OpenAIStreamToAnthropic`` into ``stream``."""
    try:
        completion = msgspec.convert(body, ChatCompletion)
    except msgspec.ValidationError as exc:
        raise UpstreamUnavailable(f"upstream returned an invalid response: {exc}") from None
    shortcut = _text_reply(completion, hints, stream)
    if shortcut is not None:
        return shortcut
    first = OpenAIStreamToAnthropic(model="relay", new_id=new_id, hints=hints, encode=False)
    chain = Chained(first, stream)
    chain.feed_chunk(as_chunk(completion))
    chain.feed(SSEEvent(None, "[DONE]"))
    return _final(stream)


def _text_reply(
    completion: ChatCompletion, hints: ResponseHints, stream: AnthropicStreamToResponses
) -> dict[str, Any] | None:
    """A reply that is one message of plain text with usage, built by ``stream.text_reply``; else None.

    No reasoning, refusal, tool call, think tags or forced JSON tool: nothing but the text, the stop
    reason and the usage to carry over. Any other reply is replayed as events.
    """
    if hints.think_tags or hints.json_tool is not None or not completion.usage or not completion.choices:
        return None
    choice = completion.choices[0]
    msg = choice.message
    if (
        not isinstance(msg.content, str)
        or not msg.content.strip()
        or msg.reasoning_content
        or msg.reasoning
        or msg.reasoning_details
        or msg.tool_calls
        or msg.function_call is not None
        or msg.refusal
        or choice.finish_reason in FAILED_FINISH_REASONS
    ):
        return None
    stop, _ = stop_reason_for(
        choice.finish_reason, had_tool_use=False, matched_stop=choice.stop_reason, stop_sequences=hints.stop_sequences
    )
    return stream.text_reply(msg.content, stop, usage_to_anthropic(usage_from_openai(completion.usage)))
