"""Relay: a multi-tenant LLM relay gateway speaking the Anthropic and OpenAI dialects."""

__version__ = "0.1.0"
