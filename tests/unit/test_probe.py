"""The probe's pure parts (``gateway.probe``): request bodies, reply and stream parsing, error details."""

from __future__ import annotations

import base64
import struct
import zlib

import msgspec
import pytest

from gateway.convert import CapabilityProfile
from gateway.domain import Dialect
from gateway.probe import (
    RED_PIXEL_PNG,
    Answer,
    CheckResult,
    ProbeResult,
    error_detail,
    parse_reply,
    parse_stream,
    reasoning_profile,
    request_body,
    scrub,
)
from gateway.testing.fake_replies import (
    Reply,
    ToolCall,
    anthropic_message,
    anthropic_stream,
    openai_completion,
    openai_stream,
)

OAI, A = Dialect.OPENAI, Dialect.ANTHROPIC


def test_red_pixel_is_a_valid_1x1_png():
    png = base64.b64decode(RED_PIXEL_PNG)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1, 1)
    pos = 8
    while pos < len(png):  # every chunk's CRC holds
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind_data = png[pos + 4 : pos + 8 + length]
        assert struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind_data)
        pos += 12 + length
    assert pos == len(png)


@pytest.mark.parametrize("dialect", [OAI, A])
def test_completion_body_is_tiny_and_deterministic(dialect):
    body = request_body(dialect, "completion", "m")
    assert body == {
        "model": "m",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "Reply with the single word: pong"}],
    }
    assert request_body(dialect, "completion", "m") == body


def test_streaming_bodies():
    assert request_body(OAI, "streaming", "m")["stream_options"] == {"include_usage": True}
    assert "stream_options" not in request_body(OAI, "streaming", "m", stream_options=False)
    anthropic = request_body(A, "streaming", "m")
    assert anthropic["stream"] is True and "stream_options" not in anthropic


def test_tool_bodies_force_get_weather():
    o = request_body(OAI, "tools", "m")
    assert o["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert o["tools"][0]["function"]["parameters"]["properties"] == {"city": {"type": "string"}}
    a = request_body(A, "tools", "m")
    assert a["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert a["tools"][0]["input_schema"]["required"] == ["city"]
    assert 16 <= o["max_tokens"] <= 64 and 16 <= a["max_tokens"] <= 64


def test_image_bodies_carry_the_png():
    o_parts = request_body(OAI, "images", "m")["messages"][0]["content"]
    assert o_parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + RED_PIXEL_PNG}}
    a_parts = request_body(A, "images", "m")["messages"][0]["content"]
    assert a_parts[1]["source"] == {"type": "base64", "media_type": "image/png", "data": RED_PIXEL_PNG}
    assert a_parts[0]["type"] == o_parts[0]["type"] == "text"


def test_parse_openai_reply_text_reasoning_and_tools():
    ans = parse_reply(OAI, openai_completion(Reply(text="pong", reasoning="hmm"), {}))
    assert (ans.text, ans.reasoning_field, ans.usage, ans.error) == ("pong", "reasoning_content", True, None)
    ans = parse_reply(OAI, openai_completion(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]), {}))
    assert ans.tool_calls == [("get_weather", '{"city":"Paris"}')]
    assert parse_reply(OAI, {"choices": []}).error == "reply has no message"
    assert parse_reply(OAI, ["not", "an", "object"]).error is not None


def test_parse_openai_reply_openrouter_and_reasoning_tokens():
    doc = {"choices": [{"message": {"content": "pong", "reasoning": "thought"}}]}
    assert parse_reply(OAI, doc).reasoning_field == "reasoning"
    doc = {"choices": [{"message": {"content": "pong", "reasoning": None}}], "usage": {}}
    assert parse_reply(OAI, doc).reasoning_field is None
    doc = {
        "choices": [{"message": {"content": "pong"}}],
        "usage": {"completion_tokens_details": {"reasoning_tokens": 7}},
    }
    assert parse_reply(OAI, doc).reasoning_tokens == 7


def test_parse_anthropic_reply():
    ans = parse_reply(A, anthropic_message(Reply(text="pong", reasoning="hmm"), {}))
    assert (ans.text, ans.reasoning_field, ans.usage) == ("pong", "thinking", True)
    ans = parse_reply(A, anthropic_message(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]), {}))
    assert ans.tool_calls == [("get_weather", '{"city":"Paris"}')]


@pytest.mark.parametrize("include_usage", [True, False])
def test_parse_openai_stream(include_usage):
    body = {"stream": True, "stream_options": {"include_usage": include_usage}}
    raw = b"".join(openai_stream(Reply(text="pong", reasoning="r"), body))
    ans = parse_stream(OAI, raw)
    assert (ans.text, ans.reasoning_field, ans.usage, ans.error) == ("pong", "reasoning_content", include_usage, None)


def test_parse_anthropic_stream_usage_comes_from_message_delta():
    raw = b"".join(anthropic_stream(Reply(text="pong"), {"stream": True}))
    ans = parse_stream(A, raw)
    assert (ans.text, ans.usage, ans.error) == ("pong", True, None)
    without_delta = b"".join(e for e in anthropic_stream(Reply(text="pong"), {}) if b"message_delta" not in e)
    assert parse_stream(A, without_delta).usage is False


@pytest.mark.parametrize("dialect,build", [(OAI, openai_stream), (A, anthropic_stream)])
def test_parse_stream_error_event(dialect, build):
    raw = b"".join(build(Reply(text="po", stream_error="overloaded now"), {}))
    assert parse_stream(dialect, raw).error == "overloaded now"


def test_reasoning_profile_per_style():
    assert reasoning_profile([Answer(reasoning_field="reasoning_content")])[0] == {"reasoning_dialect": "deepseek"}
    assert reasoning_profile([Answer(), Answer(reasoning_field="reasoning")])[0] == {"reasoning_dialect": "openrouter"}
    assert reasoning_profile([Answer(text="<think>x</think>pong")])[0] == {"think_tags": True}
    assert reasoning_profile([Answer(reasoning_tokens=12)])[0] == {"reasoning_dialect": "openai"}
    assert reasoning_profile([Answer(text="pong")]) == ({}, "no reasoning output seen")
    for answers in ([Answer(reasoning_field="reasoning_content")], [Answer(text="<think>")]):
        CapabilityProfile.for_dialect(OAI, reasoning_profile(answers)[0])  # valid keys and values


def test_error_detail_json_message_both_dialects():
    openai = msgspec.json.encode({"error": {"message": "Incorrect API key", "type": "invalid_request_error"}})
    assert error_detail(401, openai, "application/json") == "HTTP 401: Incorrect API key"
    anthropic = msgspec.json.encode({"type": "error", "error": {"type": "x", "message": "bad\n  image"}})
    assert error_detail(400, anthropic, "application/json") == "HTTP 400: bad image"
    assert error_detail(422, b'{"detail": "model missing"}', "application/json") == "HTTP 422: model missing"
    assert error_detail(500, b"", "") == "HTTP 500"


def test_error_detail_is_trimmed():
    body = msgspec.json.encode({"error": {"message": "x" * 5000}})
    assert len(error_detail(400, body, "application/json")) <= len("HTTP 400: ") + 200


@pytest.mark.parametrize(
    "body,ctype",
    [
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
        (b"<html><body>nginx</body></html>", ""),
        (b"  <!DOCTYPE html><p>oops</p>", "text/plain"),
        (b'{"error": "<html><body>proxy</body></html>"}', "application/json"),
    ],
)
def test_error_detail_never_quotes_html(body, ctype):
    assert error_detail(502, body, ctype) == "HTTP 502 (HTML page)"


def test_error_detail_plain_text_is_kept_short():
    assert error_detail(503, b"upstream busy\n", "text/plain") == "HTTP 503: upstream busy"


def test_scrub():
    assert scrub("key probe-secret-key refused", "probe-secret-key") == "key *** refused"
    assert scrub("abc", "") == "abc"
    assert scrub("a b c", "b") == "a b c"  # too short to scrub meaningfully


def test_result_to_dict_is_plain_json():
    result = ProbeResult((CheckResult("completion", True, 12, "replied 'pong'"),), {"x": True}, ["streaming"], True)
    doc = result.to_dict()
    assert doc == {
        "ok": True,
        "checks": [{"name": "completion", "ok": True, "latency_ms": 12, "detail": "replied 'pong'"}],
        "profile": {"x": True},
        "capabilities": ["streaming"],
    }
    msgspec.json.encode(doc)


def test_max_tokens_field_is_configurable():
    body = request_body(OAI, "tools", "m", max_tokens_field="max_completion_tokens")
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
