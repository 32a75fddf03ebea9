"""``gateway.probe`` against a real fake upstream over loopback, both dialects.

The probe cannot send ``x-fake-reply``, so replies are queued in its request order: completion,
streaming (OpenAI: a retry without ``stream_options`` after a 400), tools, images.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import msgspec
import pytest

from gateway.convert import CapabilityProfile
from gateway.domain import Dialect, Upstream
from gateway.probe import ProbeResult, probe
from gateway.testing.fake_upstream import FakeUpstream, Reply, ToolCall
from gateway.upstreams.client import create_session

SECRET = "probe-secret-key"
WEATHER = ToolCall("get_weather", {"city": "Paris"})


@pytest.fixture(scope="module")
def fake_up() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def up(fake_up: FakeUpstream) -> FakeUpstream:
    fake_up.reset()
    return fake_up


def upstream(fake: FakeUpstream | None, dialect: Dialect, *, base_url: str | None = None) -> Upstream:
    if base_url is None:
        assert fake is not None
        base_url = fake.url + "/v1" if dialect is Dialect.OPENAI else fake.url
    return Upstream(id="u1", name="probe-test", tenant_id=None, dialect=dialect, base_url=base_url, api_key=SECRET)


async def run(up: Upstream, **kw: float) -> ProbeResult:
    async with create_session() as session:
        result = await probe(session, up, "model-x", **kw)
    assert SECRET not in msgspec.json.encode(result.to_dict()).decode()
    return result


def by_name(result: ProbeResult) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.ok, c.detail) for c in result.checks}


def healthy(reasoning: str | None = None) -> list[Reply]:
    return [
        Reply(text="pong", reasoning=reasoning),
        Reply(text="pong", reasoning=reasoning),
        Reply(tool_calls=[WEATHER]),
        Reply(text="red"),
    ]


async def test_healthy_openai_upstream(up: FakeUpstream) -> None:
    up.enqueue(*healthy())
    result = await run(upstream(up, Dialect.OPENAI))
    assert [c.name for c in result.checks] == [
        "completion",
        "streaming",
        "stream_usage",
        "tools",
        "images",
        "reasoning",
        "responses",
    ]
    assert result.ok
    assert all(c.ok for c in result.checks if c.name != "reasoning")
    assert by_name(result)["reasoning"] == (False, "no reasoning output seen")
    assert by_name(result)["completion"] == (True, "replied 'pong'")
    assert all(c.latency_ms is not None and c.latency_ms >= 0 for c in result.checks[:2])
    # The fake serves /responses too, so the probe learns the Responses door may pass through.
    assert result.profile == {"supports_stream_options": True, "supports_image_input": True, "supports_responses": True}
    assert result.capabilities == ["tools", "vision", "streaming"]
    CapabilityProfile.for_dialect(Dialect.OPENAI, result.profile)

    reqs = up.requests
    assert [r.path for r in reqs] == ["/v1/chat/completions"] * 4 + ["/v1/responses"]
    reqs = reqs[:4]
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in reqs)
    assert [r.json.get("stream", False) for r in reqs] == [False, True, False, False]
    assert reqs[1].json["stream_options"] == {"include_usage": True}
    assert reqs[2].json["tool_choice"]["function"]["name"] == "get_weather"
    assert reqs[3].json["messages"][0]["content"][1]["type"] == "image_url"
    assert all(r.json["model"] == "model-x" and r.json["max_tokens"] <= 64 for r in reqs)


async def test_healthy_anthropic_upstream(up: FakeUpstream) -> None:
    up.enqueue(*healthy())
    result = await run(upstream(up, Dialect.ANTHROPIC))
    assert result.ok and all(c.ok for c in result.checks if c.name != "responses")
    assert by_name(result)["responses"][0] is False
    assert by_name(result)["reasoning"] == (True, "native thinking")
    assert by_name(result)["stream_usage"] == (True, "usage in the stream")
    assert result.profile == {"supports_image_input": True}
    assert result.capabilities == ["tools", "vision", "reasoning", "streaming"]
    CapabilityProfile.for_dialect(Dialect.ANTHROPIC, result.profile)

    reqs = up.requests
    assert [r.path for r in reqs] == ["/v1/messages"] * 4
    assert all(r.headers["x-api-key"] == SECRET and r.headers["anthropic-version"] for r in reqs)
    assert "stream_options" not in reqs[1].json and reqs[1].json["stream"] is True
    assert reqs[2].json["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert reqs[3].json["messages"][0]["content"][1]["type"] == "image"


async def test_an_upstream_without_the_responses_api_is_learned(up: FakeUpstream) -> None:
    up.enqueue(*healthy(), Reply(status=404, text="no such route"))
    result = await run(upstream(up, Dialect.OPENAI))
    assert result.profile["supports_responses"] is False
    assert by_name(result)["responses"] == (False, "no Responses API: the Responses door converts to chat")


async def test_reasoning_content_means_deepseek_dialect(up: FakeUpstream) -> None:
    up.enqueue(*healthy(reasoning="The user wants pong."))
    result = await run(upstream(up, Dialect.OPENAI))
    assert all(c.ok for c in result.checks)
    assert result.profile["reasoning_dialect"] == "deepseek"
    assert "reasoning" in result.capabilities
    assert len(up.requests) == 5  # no extra reasoning request (the fifth is the Responses check)


async def test_reasoning_field_means_openrouter_dialect(up: FakeUpstream) -> None:
    doc = {"choices": [{"message": {"role": "assistant", "content": "pong", "reasoning": "Say pong."}}]}
    up.enqueue(Reply(body=msgspec.json.encode(doc)), *healthy()[1:])
    result = await run(upstream(up, Dialect.OPENAI))
    assert result.profile["reasoning_dialect"] == "openrouter"
    assert by_name(result)["reasoning"] == (True, "reasoning field (OpenRouter style)")


@pytest.mark.parametrize("dialect", [Dialect.OPENAI, Dialect.ANTHROPIC])
async def test_upstream_rejecting_images(up: FakeUpstream, dialect: Dialect) -> None:
    up.enqueue(*healthy()[:3], Reply(status=400, text="This model does not support image input."))
    result = await run(upstream(up, dialect))
    assert result.ok
    assert by_name(result)["images"] == (False, "HTTP 400: This model does not support image input.")
    assert result.profile["supports_image_input"] is False
    assert "vision" not in result.capabilities and "tools" in result.capabilities


async def test_stream_options_rejected_is_retried_without(up: FakeUpstream) -> None:
    rejected = Reply(status=400, text="Unrecognized request argument supplied: stream_options")
    up.enqueue(healthy()[0], rejected, *healthy()[1:])
    result = await run(upstream(up, Dialect.OPENAI))
    assert result.profile["supports_stream_options"] is False
    assert by_name(result)["streaming"][0] is True
    assert by_name(result)["stream_usage"] == (False, "no usage in the stream; stream_options rejected")
    reqs = up.requests
    assert len(reqs) == 6  # the last one is the Responses check
    assert "stream_options" in reqs[1].json and "stream_options" not in reqs[2].json
    assert reqs[2].json["stream"] is True


async def test_upstream_down_skips_the_rest() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await run(upstream(None, Dialect.OPENAI, base_url=f"http://127.0.0.1:{port}/v1"))
    assert not result.ok
    completion, *rest = result.checks
    assert not completion.ok and "cannot connect" in completion.detail
    assert [(c.ok, c.detail, c.latency_ms) for c in rest] == [(False, "skipped", None)] * 6
    assert result.profile == {} and result.capabilities == []


@pytest.mark.parametrize("dialect", [Dialect.OPENAI, Dialect.ANTHROPIC])
async def test_refused_key_stops_without_leaking_it(up: FakeUpstream, dialect: Dialect) -> None:
    up.enqueue(Reply(status=401, text=f"Incorrect API key provided: {SECRET}. Find yours at example.com"))
    result = await run(upstream(up, dialect))
    assert not result.ok
    assert by_name(result)["completion"] == (
        False,
        "HTTP 401: Incorrect API key provided: ***. Find yours at example.com",
    )
    assert all(c.detail == "skipped" for c in result.checks[1:])
    assert len(up.requests) == 1


async def test_timeout_stops(up: FakeUpstream) -> None:
    up.enqueue(Reply(text="pong", delay_s=2.0))
    result = await run(upstream(up, Dialect.OPENAI), timeout_s=0.3)
    assert by_name(result)["completion"] == (False, "timed out after 0.3s")
    assert all(c.detail == "skipped" for c in result.checks[1:])


async def test_html_error_page_is_summarised(up: FakeUpstream) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
    up.enqueue(Reply(status=502, body=page, content_type="text/html"), Reply(text="pong"), Reply(text="no tools here"))
    result = await run(upstream(up, Dialect.OPENAI))
    assert not result.ok
    assert by_name(result)["completion"] == (False, "HTTP 502 (HTML page)")
    assert "<" not in msgspec.json.encode(result.to_dict()).decode()
    # a 502 is not final: the other checks still ran
    assert by_name(result)["streaming"][0] is True
    assert by_name(result)["tools"] == (False, "no tool call")
    assert len(up.requests) == 5  # the last one is the Responses check


async def test_unparseable_tool_arguments(up: FakeUpstream) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Par'}}
    doc = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [call]}}]}
    up.enqueue(*healthy()[:2], Reply(body=msgspec.json.encode(doc)), Reply(text="red"))
    result = await run(upstream(up, Dialect.OPENAI))
    assert by_name(result)["tools"] == (False, "bad tool arguments")
    assert "tools" not in result.capabilities


async def test_max_completion_tokens_is_learned(up: FakeUpstream) -> None:
    refusal = (
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    )
    up.enqueue(Reply(status=400, text=refusal), *healthy())
    result = await run(upstream(up, Dialect.OPENAI))
    assert result.ok and result.profile["max_tokens_field"] == "max_completion_tokens"
    CapabilityProfile.for_dialect(Dialect.OPENAI, result.profile)
    reqs = up.requests
    assert len(reqs) == 6 and "max_tokens" in reqs[0].json
    assert all("max_tokens" not in r.json and r.json["max_completion_tokens"] <= 64 for r in reqs[1:5])
