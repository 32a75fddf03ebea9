"""Relay's web search, the pure parts and the loop over scripted upstream and search functions."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from gateway.convert import CapabilityProfile, anthropic_request_to_openai
from gateway.convert.a2o_websearch import WebSearchSpec
from gateway.plans import SearchPlan, _search_plan
from gateway.websearch.backend import SearchBackend, SearchFailed, parse_results, search_origin
from gateway.websearch.blocks import Hit, message_events, pick, query_error
from gateway.websearch.loop import run


def hits(*urls: str) -> list[Hit]:
    return [Hit(u, f"title {u}", "snippet " + u) for u in urls]


def test_pick_filters_domains_and_caps() -> None:
    found = hits(
        "https://docs.python.org/a", "https://python.org.evil.com/", "https://www.python.org/b", "ftp://python.org/"
    )
    assert [h.url for h in pick(found, WebSearchSpec(allowed_domains=("python.org",)))] == [
        "https://docs.python.org/a",
        "https://www.python.org/b",
    ]
    assert [h.url for h in pick(found, WebSearchSpec(blocked_domains=("docs.python.org",)))] == [
        "https://python.org.evil.com/",
        "https://www.python.org/b",
    ]
    paths = hits("https://ex.com/blog/1", "https://ex.com/shop/2")
    assert [h.url for h in pick(paths, WebSearchSpec(allowed_domains=("ex.com/blog",)))] == ["https://ex.com/blog/1"]
    many = [Hit(f"https://e.com/{n}", "t" * 999, "s" * 9999) for n in range(9)]
    picked = pick(many, WebSearchSpec())
    assert len(picked) == 5 and len(picked[0].snippet) == 2000 and len(picked[0].title) == 300


def test_query_checks() -> None:
    assert query_error("ok") is None
    assert query_error("") == query_error(None) == query_error(3) == "invalid_tool_input"
    assert query_error("x" * 501) == "query_too_long"


def test_searxng_results_are_parsed_and_junk_skipped() -> None:
    doc = {
        "results": [
            {"url": "https://a/", "title": " A ", "content": "c", "publishedDate": None},
            {"title": "no url"},
            3,
        ]
    }
    assert parse_results(doc) == [Hit("https://a/", "A", "c", None)]
    with pytest.raises(SearchFailed):
        parse_results({"error": "x"})


def test_the_search_url_must_be_http_without_user_info() -> None:
    assert search_origin("http://127.0.0.1:8888/search").port == 8888
    for bad in ("file:///etc/passwd", "http://user:pw@searx/search", "searx/search"):
        with pytest.raises(ValueError):
            search_origin(bad)


def plan(tools: list[dict[str, Any]], **body: Any) -> SearchPlan:
    req = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "q?"}], "tools": tools, **body}
    profile = CapabilityProfile.for_dialect("openai", {})
    converted = anthropic_request_to_openai(req, upstream_model="up", profile=profile, web_search=True)
    return _search_plan(converted, "my-gpt", profile)


def completion(*queries: str, text: str | None = None, usage: tuple[int, int] = (10, 2)) -> dict[str, Any]:
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": "web_search", "arguments": f'{{"query":"{q}"}}'}}
        for i, q in enumerate(queries)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    finish = "tool_calls" if calls else "stop"
    prompt, out = usage
    return {"id": "c", "object": "chat.completion", "model": "up", "choices": [{"index": 0, "message": message,
            "finish_reason": finish}], "usage": {"prompt_tokens": prompt, "completion_tokens": out}}  # fmt: skip


class Script:
    def __init__(self, *replies: dict[str, Any]) -> None:
        self.replies = list(replies)
        self.sent: list[dict[str, Any]] = []
        self.queries: list[str] = []

    async def exchange(self, body: dict[str, Any]) -> dict[str, Any]:
        self.sent.append(body)
        return self.replies.pop(0)

    async def search(self, query: str) -> list[Hit]:
        self.queries.append(query)
        return hits(f"https://e.com/{query}")


def ids(prefix: str) -> str:
    return prefix + "1"


async def test_the_loop_sums_usage_and_counts_searches_against_max_uses() -> None:
    script = Script(completion("a", "b", "c"), completion("d"), completion(text="done", usage=(30, 4)))
    out = await run(plan([{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]), script.exchange,
                    script.search, ids)  # fmt: skip
    kinds = [b["type"] for b in out.message["content"]]
    assert script.queries == ["a", "b"]
    assert kinds == ["server_tool_use", "web_search_tool_result"] * 4 + ["text"]
    errors = [b["content"]["error_code"] for b in out.message["content"] if isinstance(b.get("content"), dict)]
    assert errors == ["max_uses_exceeded", "max_uses_exceeded"]
    assert out.searches == 2 and out.usage.input_tokens == 50 and out.usage.output_tokens == 8
    assert out.message["usage"]["server_tool_use"] == {"web_search_requests": 2, "web_fetch_requests": 0}
    assert all("stream" not in body for body in script.sent)


async def test_a_model_that_never_stops_searching_is_paused() -> None:
    script = Script(*(completion("again") for _ in range(3)))
    out = await run(plan([{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]), script.exchange,
                    script.search, ids)  # fmt: skip
    assert len(script.sent) == 3 and out.message["stop_reason"] == "pause_turn" and script.queries == ["again"]


def test_the_synthesized_stream_folds_back_into_the_message_with_the_sdk() -> None:
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "my-gpt", "stop_reason": "end_turn",
        "stop_sequence": None,
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                {"type": "web_search_result", "url": "https://e.com/", "title": "E", "encrypted_content": "rws1.",
                 "page_age": "2026-11-30"}]},
            {"type": "text", "text": "answer"},
        ],
        "usage": {"input_tokens": 5, "output_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}},
    }  # fmt: skip
    raw = message_events(message)
    client = anthropic.Anthropic(api_key="x", base_url="http://relay.invalid", http_client=_replay(raw))
    with client.messages.stream(model="my-gpt", max_tokens=10, messages=[{"role": "user", "content": "q"}]) as s:
        folded = s.get_final_message()
    assert folded.model_dump(exclude_none=True)["content"] == [
        {k: v for k, v in b.items() if v is not None} for b in message["content"]
    ]
    assert folded.usage.server_tool_use.web_search_requests == 1 and folded.usage.output_tokens == 3


def _replay(raw: bytes) -> Any:
    """The SDK's own HTTP client answering with ``raw`` (no network)."""
    import httpx2

    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, content=raw,
                                    headers={"content-type": "text/event-stream"}))  # fmt: skip
    return httpx2.Client(transport=transport)


async def test_the_backend_session_reaches_the_configured_origin_only() -> None:
    import aiohttp

    from gateway.ssrf import BlockedAddress

    backend = SearchBackend("http://127.0.0.1:9/search")  # nothing listens there: only the guard's verdict counts
    try:
        for url in ("http://127.0.0.1:8080/", "http://169.254.169.254/latest/meta-data/", "http://localhost:9/"):
            with pytest.raises(aiohttp.ClientConnectorError) as refused:
                await backend._session.get(url)
            assert isinstance(refused.value.os_error, BlockedAddress)
        with pytest.raises(SearchFailed) as failed:  # its own origin is admitted: the connection is refused instead
            await backend.search("q")
        assert failed.value.code == "unavailable"
    finally:
        await backend.close()


def test_settings_read_the_search_backend_and_refuse_a_bad_url() -> None:
    from gateway.settings import Settings, SettingsError

    env = {"RELAY_ENV": "dev", "RELAY_SECRET_KEY": "k" * 20, "RELAY_WEB_SEARCH_URL": "http://searx:8080/search",
           "RELAY_WEB_SEARCH_KEY": "tok", "RELAY_WEB_SEARCH_PRICE": "5", "RELAY_WEB_SEARCH_TIMEOUT": "3"}  # fmt: skip
    s = Settings.from_env(env)
    assert (s.web_search_url, s.web_search_key, s.web_search_price, s.web_search_timeout_s) == (
        "http://searx:8080/search", "tok", 5.0, 3.0
    )  # fmt: skip
    assert "tok" not in repr(s)
    assert Settings.from_env({**env, "RELAY_WEB_SEARCH_URL": ""}).web_search_url == ""
    with pytest.raises(SettingsError):
        Settings.from_env({**env, "RELAY_WEB_SEARCH_URL": "searx:8080"})


async def test_a_client_tool_in_the_last_allowed_turn_still_goes_to_the_client() -> None:
    last = completion("again")
    last["choices"][0]["message"]["tool_calls"].append(
        {"id": "call_t", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    )
    script = Script(completion("first"), completion("second"), last)
    tools = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1},
             {"name": "get_time", "input_schema": {"type": "object"}}]  # fmt: skip
    out = await run(plan(tools), script.exchange, script.search, ids)
    assert out.message["stop_reason"] == "tool_use" and out.message["content"][-1]["name"] == "get_time"
