"""Pure converters between the Anthropic Messages and OpenAI Chat Completions dialects.

No I/O, no clock, no logging: ids come from ``new_id(prefix)`` and times from the caller.
See ``reference/conversion.md`` for the rules each function implements.
"""

from __future__ import annotations

from gateway.convert.errors import anthropic_error_to_openai, error_should_retry, openai_error_to_anthropic
from gateway.convert.grammar import AnthropicGrammar, GrammarError, OpenAIGrammar
from gateway.convert.profile import CapabilityProfile
from gateway.convert.requests_a2o import anthropic_request_to_openai
from gateway.convert.requests_o2a import openai_request_to_anthropic
from gateway.convert.responses_a2o import anthropic_response_to_openai
from gateway.convert.responses_o2a import openai_response_to_anthropic
from gateway.convert.sanitize import sanitize_anthropic_body
from gateway.convert.streams_a2o import AnthropicStreamToOpenAI
from gateway.convert.streams_o2a import OpenAIStreamToAnthropic
from gateway.convert.thinking import enable_thinking
from gateway.convert.types import Converted, ResponseHints
from gateway.convert.usage import usage_from_anthropic, usage_from_openai

__all__ = [
    "AnthropicGrammar",
    "AnthropicStreamToOpenAI",
    "CapabilityProfile",
    "Converted",
    "GrammarError",
    "OpenAIGrammar",
    "OpenAIStreamToAnthropic",
    "ResponseHints",
    "anthropic_error_to_openai",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "enable_thinking",
    "error_should_retry",
    "openai_error_to_anthropic",
    "openai_request_to_anthropic",
    "openai_response_to_anthropic",
    "sanitize_anthropic_body",
    "usage_from_anthropic",
    "usage_from_openai",
]
