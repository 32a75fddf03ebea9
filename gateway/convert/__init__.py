"""Pure converters between the Anthropic Messages, OpenAI Chat Completions and OpenAI Responses dialects.

No I/O, no clock, no logging: ids come from ``new_id(prefix)`` and times from the caller.
See ``reference/conversion.md`` for the rules each function implements.
"""

from __future__ import annotations

from gateway.convert.chain import Chained
from gateway.convert.errors import anthropic_error_to_openai, error_should_retry, openai_error_to_anthropic
from gateway.convert.grammar import AnthropicGrammar, GrammarError, OpenAIGrammar
from gateway.convert.profile import CapabilityProfile
from gateway.convert.replies_a2o import anthropic_reply_to_openai
from gateway.convert.replies_o2a import openai_reply_to_anthropic
from gateway.convert.replies_x2r import anthropic_reply_to_responses, openai_reply_to_responses
from gateway.convert.requests_a2o import anthropic_request_to_openai
from gateway.convert.requests_o2a import openai_request_to_anthropic
from gateway.convert.requests_r2a import ResponsesConverted, responses_request_to_anthropic
from gateway.convert.requests_r2x import for_anthropic as responses_for_anthropic
from gateway.convert.requests_r2x import for_openai as responses_for_openai
from gateway.convert.sanitize import sanitize_anthropic_body
from gateway.convert.streams_a2o import AnthropicStreamToOpenAI
from gateway.convert.streams_a2r import AnthropicStreamToResponses
from gateway.convert.streams_o2a import OpenAIStreamToAnthropic
from gateway.convert.thinking import enable_thinking
from gateway.convert.types import Converted, ResponseHints
from gateway.convert.usage import usage_from_anthropic, usage_from_openai

__all__ = [
    "AnthropicGrammar",
    "AnthropicStreamToOpenAI",
    "AnthropicStreamToResponses",
    "CapabilityProfile",
    "Chained",
    "Converted",
    "GrammarError",
    "OpenAIGrammar",
    "OpenAIStreamToAnthropic",
    "ResponseHints",
    "ResponsesConverted",
    "anthropic_error_to_openai",
    "anthropic_reply_to_openai",
    "anthropic_reply_to_responses",
    "anthropic_request_to_openai",
    "enable_thinking",
    "error_should_retry",
    "openai_error_to_anthropic",
    "openai_reply_to_anthropic",
    "openai_reply_to_responses",
    "openai_request_to_anthropic",
    "responses_for_anthropic",
    "responses_for_openai",
    "responses_request_to_anthropic",
    "sanitize_anthropic_body",
    "usage_from_anthropic",
    "usage_from_openai",
]
