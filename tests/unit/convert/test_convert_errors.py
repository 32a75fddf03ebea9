"""Upstream error bodies in the client's dialect (conversion.md §9.5, claude-code-wire.md §0.10)."""

from __future__ import annotations

import json

import pytest

from gateway.convert import anthropic_error_to_openai, error_should_retry, openai_error_to_anthropic


def o_body(message: str, code: str | None = None, kind: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


def a_body(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "out_status", "kind"),
    [
        (400, o_body("bad param"), 400, "invalid_request_error"),
        (422, o_body("bad param"), 400, "invalid_request_error"),
        (401, o_body("Incorrect API key", "invalid_api_key"), 502, "api_error"),
        (402, o_body("pay up"), 402, "billing_error"),
        (429, o_body("quota", "insufficient_quota", "insufficient_quota"), 402, "billing_error"),
        (403, o_body("no"), 403, "permission_error"),
        (404, o_body("no model", "model_not_found"), 404, "not_found_error"),
        (408, o_body("slow"), 504, "timeout_error"),
        (504, b"<html>gateway timeout</html>", 504, "timeout_error"),
        (413, o_body("big"), 413, "request_too_large"),
        (429, o_body("slow down", "rate_limit_exceeded", "requests"), 429, "rate_limit_error"),
        (500, o_body("oops", None, "server_error"), 500, "api_error"),
        (502, b"", 502, "api_error"),
        (503, o_body("overloaded"), 529, "overloaded_error"),
    ],
)
def test_openai_status_table(status: int, body: bytes, out_status: int, kind: str) -> None:
    got_status, env = openai_error_to_anthropic(status, body)
    assert (got_status, env["type"], env["error"]["type"]) == (out_status, "error", kind)
    assert env["error"]["message"]


def test_401_says_upstream_auth_failed_and_is_not_retryable() -> None:
    status, env = openai_error_to_anthropic(401, o_body("Incorrect API key provided: sk-abc***"))
    assert env["error"]["message"] == "upstream authentication failed"
    assert "sk-" not in json.dumps(env)
    assert error_should_retry(status, env) is False
    assert error_should_retry(*openai_error_to_anthropic(429, o_body("q", "insufficient_quota"))) is False
    assert error_should_retry(*openai_error_to_anthropic(500, o_body("x"))) is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens.",
            "prompt is too long: 130512 tokens > 128000 maximum",
        ),
        (
            "This model's maximum context length is 65536 tokens. However, you requested 70000 tokens "
            "(60000 in the messages, 10000 in the completion).",
            "input length and `max_tokens` exceed context limit: 60000 + 10000 > 65536, "
            "decrease input length or `max_tokens` and try again",
        ),
        (  # the input alone does not fit: compacting is the cure, not a smaller max_tokens
            "This model's maximum context length is 65536 tokens. However, you requested 74000 tokens "
            "(66000 in the messages, 8000 in the completion).",
            "prompt is too long: 74000 tokens > 65536 maximum",
        ),
        (  # vLLM 0.9+
            "'max_tokens' or 'max_completion_tokens' is too large: 128000. This model's maximum context length "
            "is 32768 tokens and your request has 1500 input tokens (128000 > 32768 - 1500).",
            "input length and `max_tokens` exceed context limit: 1500 + 128000 > 32768, "
            "decrease input length or `max_tokens` and try again",
        ),
        (  # already Anthropic's wording (an Anthropic-compatible provider behind an OpenAI facade)
            "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, "
            "decrease input length or `max_tokens` and try again",
            "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, "
            "decrease input length or `max_tokens` and try again",
        ),
    ],
)
def test_edge_11_context_overflow_uses_prompt_is_too_long_wording(message: str, expected: str) -> None:
    status, env = openai_error_to_anthropic(400, o_body(message, "context_length_exceeded"))
    assert status == 400 and env["error"] == {"type": "invalid_request_error", "message": expected}


def test_edge_11_context_overflow_without_numbers_still_starts_with_wording() -> None:
    _, env = openai_error_to_anthropic(400, o_body("Input is too long for requested model.", None))
    assert env["error"]["message"].startswith("prompt is too long")


def test_self_healing_rewordings() -> None:
    _, env = openai_error_to_anthropic(400, o_body("Unrecognized request argument supplied: reasoning_effort"))
    assert env["error"]["message"].startswith("thinking.type: adaptive is not supported")
    _, env = openai_error_to_anthropic(400, o_body("System message must be at the beginning."))
    assert env["error"]["message"].startswith('Unexpected role "system"')
    assert "input message role" in env["error"]["message"]


def test_unparseable_error_bodies_are_kept_short() -> None:
    status, env = openai_error_to_anthropic(500, b"x" * 5000)
    assert status == 500 and len(env["error"]["message"]) <= 500


@pytest.mark.parametrize(
    ("status", "kind", "message", "out_status", "o_type", "code"),
    [
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            400,
            "invalid_request_error",
            "context_length_exceeded",
        ),
        (400, "invalid_request_error", "bad", 400, "invalid_request_error", None),
        (401, "authentication_error", "invalid x-api-key", 502, "server_error", "upstream_authentication_failed"),
        (402, "billing_error", "credit", 429, "insufficient_quota", "insufficient_quota"),
        (403, "permission_error", "no", 403, "permission_error", None),
        (404, "not_found_error", "model: claude-x", 404, "invalid_request_error", "model_not_found"),
        (413, "request_too_large", "big", 413, "invalid_request_error", "request_too_large"),
        (429, "rate_limit_error", "slow", 429, "requests", "rate_limit_exceeded"),
        (500, "api_error", "oops", 500, "server_error", None),
        (504, "timeout_error", "slow", 504, "server_error", "timeout"),
        (529, "overloaded_error", "Overloaded", 503, "server_error", "overloaded"),
    ],
)
def test_anthropic_status_table(
    status: int, kind: str, message: str, out_status: int, o_type: str, code: str | None
) -> None:
    got, env = anthropic_error_to_openai(status, a_body(kind, message))
    assert got == out_status
    assert env["error"]["type"] == o_type and env["error"]["code"] == code and env["error"]["param"] is None


def test_anthropic_error_without_body_uses_status() -> None:
    got, env = anthropic_error_to_openai(529, b"")
    assert got == 503 and env["error"]["code"] == "overloaded"


def test_anthropics_max_tokens_wording_is_context_length_exceeded_for_openai_clients() -> None:
    message = "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, decrease input length"
    body = json.dumps({"type": "error", "error": {"type": "invalid_request_error", "message": message}}).encode()
    status, env = anthropic_error_to_openai(400, body)
    assert status == 400 and env["error"]["code"] == "context_length_exceeded"
    assert env["error"]["message"] == message
