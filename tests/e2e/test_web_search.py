"""Web search run by Relay (issue 14): Anthropic's ``web_search`` server tool on an OpenAI-dialect model.

The real gateway, the fake OpenAI-dialect upstream and a fake SearXNG-shaped backend, all on loopback,
driven through the anthropic SDK, JSON and stream, on both backends.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import anthropic
import httpx
import pytest
from support import GatewayServer, Seeder
from test_claude_code import CLAUDE_CODE_NEWEST, CLAUDE_CODE_VERSION, claude_binary, run_claude

from gateway.testing.fake_search import FakeSearch, result
from gateway.testing.fake_upstream import Reply, ToolCall

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
PRICE = 5.0  # USD per 1,000 searches: 5,000 micro-USD a search


@pytest.fixture(scope="module")
def _search() -> Any:
    backend = FakeSearch().start()
    yield backend
    backend.stop()


@pytest.fixture
def search(_search: FakeSearch) -> FakeSearch:
    _search.reset()
    return _search


@pytest.fixture(scope="module")
def searching(stack: Any, _search: FakeSearch) -> Any:
    settings = replace(
        stack.settings, web_search_url=_search.url, web_search_key="searx-token", web_search_price=PRICE,
        web_search_timeout_s=1.0,
    )  # fmt: skip
    server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
def tenant_key(searching: Any, fake: Any) -> tuple[Seeder, Any, str]:
    seed = Seeder(searching.settings)
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=fake.url + "/v1", dialect="openai", api_key="up-secret-openai")
    seed.model(tenant, up, "my-gpt", upstream_model="gpt-upstream-id", input_price=1.0, output_price=2.0)
    up_a = seed.upstream(tenant, base_url=fake.url, dialect="anthropic", api_key="up-secret-anthropic")
    seed.model(tenant, up_a, "my-claude", upstream_model="claude-upstream-id")
    return seed, tenant, seed.key(tenant).secret


def ask(url: str, key: str, stream: bool, **kw: Any) -> Any:
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    kw.setdefault("model", "my-gpt")
    kw.setdefault("max_tokens", 200)
    kw.setdefault("messages", [{"role": "user", "content": "What is new with Relay?"}])
    if not stream:
        return client.messages.create(**kw)
    with client.messages.stream(**kw) as s:  # the SDK's helper checks the event grammar as it folds
        return s.get_final_message()


def searched(query: str) -> Reply:
    return Reply(tool_calls=[ToolCall("web_search", {"query": query})], usage=(10, 5))


@STREAMS
def test_a_search_runs_in_relay_and_the_client_gets_anthropic_blocks(searching, search, fake, tenant_key, stream):
    seed, tenant, key = tenant_key
    fake.enqueue(searched("relay news"), Reply(text="Relay shipped web search.", usage=(30, 7)))
    msg = ask(searching.url, key, stream, tools=[SEARCH_TOOL])
    assert [b.type for b in msg.content] == ["server_tool_use", "web_search_tool_result", "text"]
    use, found, text = msg.content
    assert use.id.startswith("srvtoolu_") and use.name == "web_search" and use.input == {"query": "relay news"}
    assert found.tool_use_id == use.id
    assert [r.url for r in found.content] == ["https://example.com/1", "https://example.com/2", "https://example.com/3"]
    assert found.content[0].title == "Result 1 for relay news" and found.content[0].page_age == "2026-11-30"
    assert text.text == "Relay shipped web search." and msg.stop_reason == "end_turn"
    assert msg.usage.server_tool_use.web_search_requests == 1
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (40, 12)
    # The backend was asked SearXNG's way, with the operator's token.
    [asked] = search.requests
    assert asked.query == {"q": "relay news", "format": "json"}
    assert asked.headers["authorization"] == "Bearer searx-token"
    # The model was offered a plain function, then read the results as that function's result.
    first, second = (r.json for r in fake.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["web_search"]
    assert "stream" not in first and "stream" not in second  # the loop does not stream upstream
    call = second["messages"][-2]
    assert call["role"] == "assistant" and call["tool_calls"][0]["id"] == use.id
    assert json.loads(call["tool_calls"][0]["function"]["arguments"]) == {"query": "relay news"}
    tool = second["messages"][-1]
    assert tool["role"] == "tool" and tool["tool_call_id"] == use.id
    assert "Snippet 1 about relay news." in tool["content"] and "https://example.com/3" in tool["content"]
    # One request, one row: the two upstream calls summed, the search priced.
    [row] = seed.usage_rows(tenant, expect=1)
    assert (row.input_tokens, row.output_tokens, row.status) == (40, 12, 200)
    assert row.cost_micro_usd == 40 * 1 + 12 * 2 + 5000


def test_the_next_turn_replays_the_search_as_a_call_and_its_result(searching, search, fake, tenant_key):
    _, _, key = tenant_key
    fake.enqueue(searched("relay news"), Reply(text="Relay shipped web search."))
    first = ask(searching.url, key, False, tools=[SEARCH_TOOL])
    fake.reset()
    fake.enqueue(Reply(text="You are welcome."))
    history = [
        {"role": "user", "content": "What is new with Relay?"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": "Thanks!"},
    ]
    ask(searching.url, key, False, tools=[SEARCH_TOOL], messages=history)
    sent = fake.requests[0].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    use = first.content[0]
    assert sent[1]["tool_calls"][0]["id"] == use.id and sent[2]["tool_call_id"] == use.id
    assert "Snippet 2 about relay news." in sent[2]["content"]  # the snippet travelled in encrypted_content
    assert sent[3]["content"] == "Relay shipped web search."


def test_max_uses_exceeded_is_the_model_s_result_not_a_search(searching, search, fake, tenant_key):
    _, _, key = tenant_key
    calls = [ToolCall("web_search", {"query": "one"}), ToolCall("web_search", {"query": "two"})]
    fake.enqueue(Reply(tool_calls=calls), Reply(text="Done."))
    msg = ask(searching.url, key, True, tools=[{**SEARCH_TOOL, "max_uses": 1}])
    kinds = [b.type for b in msg.content]
    assert kinds == ["server_tool_use", "web_search_tool_result"] * 2 + ["text"]
    assert isinstance(msg.content[1].content, list)
    assert msg.content[3].content.error_code == "max_uses_exceeded"
    assert msg.usage.server_tool_use.web_search_requests == 1 and len(search.requests) == 1
    assert "max_uses_exceeded" in fake.requests[1].json["messages"][-1]["content"]


@pytest.mark.parametrize("failure", ["http_500", "timeout"])
def test_a_failing_backend_is_an_error_result_for_the_model(searching, search, fake, tenant_key, failure):
    seed, tenant, key = tenant_key
    if failure == "http_500":
        search.status = 500
    else:
        search.delay_s = 1.5  # the gateway waits 1 s
    fake.enqueue(searched("relay news"), Reply(text="I could not search."))
    msg = ask(searching.url, key, False, tools=[SEARCH_TOOL])
    assert msg.content[1].content.error_code == "unavailable"
    assert msg.content[2].text == "I could not search." and msg.usage.server_tool_use.web_search_requests == 0
    assert fake.requests[1].json["messages"][-1]["content"].startswith("Web search error: unavailable")
    [row] = seed.usage_rows(tenant, expect=1)
    assert row.status == 200 and row.cost_micro_usd == row.input_tokens + 2 * row.output_tokens  # no search billed


def test_results_honour_domains_and_caps(searching, search, fake, tenant_key):
    _, _, key = tenant_key
    search.default = [result(n, domain="docs.python.org" if n % 2 else "spam.example") for n in range(1, 13)]
    search.default[0]["content"] = "x" * 5000
    fake.enqueue(searched("asyncio"), Reply(text="ok"))
    tool = {**SEARCH_TOOL, "allowed_domains": ["python.org"]}
    msg = ask(searching.url, key, False, tools=[tool])
    urls = [r.url for r in msg.content[1].content]
    assert urls == [f"https://docs.python.org/{n}" for n in (1, 3, 5, 7, 9)]  # five at most, only allowed ones
    assert "x" * 2000 in fake.requests[1].json["messages"][-1]["content"]
    assert "x" * 2001 not in fake.requests[1].json["messages"][-1]["content"]


def test_a_call_to_the_client_s_tool_ends_the_loop(searching, search, fake, tenant_key):
    _, _, key = tenant_key
    calls = [ToolCall("web_search", {"query": "weather"}), ToolCall("get_time", {"zone": "UTC"})]
    fake.enqueue(Reply(tool_calls=calls))
    time_tool = {"name": "get_time", "description": "now", "input_schema": {"type": "object", "properties": {}}}
    msg = ask(searching.url, key, False, tools=[SEARCH_TOOL, time_tool])
    assert [b.type for b in msg.content] == ["server_tool_use", "web_search_tool_result", "tool_use"]
    assert msg.content[2].name == "get_time" and msg.stop_reason == "tool_use" and len(fake.requests) == 1


def test_the_forced_search_of_claude_code_is_forced_once(searching, search, fake, tenant_key):
    _, _, key = tenant_key
    fake.enqueue(searched("x"), Reply(text="answer"))
    ask(searching.url, key, False, tools=[SEARCH_TOOL], tool_choice={"type": "tool", "name": "web_search"})
    first, second = (r.json for r in fake.requests)
    assert first["tool_choice"] == {"type": "function", "function": {"name": "web_search"}}
    assert second["tool_choice"] == "auto"


def test_the_client_s_own_web_search_tool_wins(searching, search, fake, tenant_key):
    _, _, key = tenant_key
    own = {"name": "web_search", "description": "mine", "input_schema": {"type": "object", "properties": {}}}
    r = httpx.post(
        searching.url + "/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={"model": "my-gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
              "tools": [SEARCH_TOOL, own]},
        timeout=30,
    )  # fmt: skip
    assert r.status_code == 200 and "server_tool_dropped" in r.headers["relay-conversion-notes"]
    [fn] = fake.requests[0].json["tools"]
    assert fn["function"]["description"] == "mine" and not search.requests


def test_an_anthropic_upstream_runs_the_server_tool_itself(searching, search, fake, tenant_key):
    _, _, key = tenant_key
    ask(searching.url, key, False, model="my-claude", tools=[SEARCH_TOOL])
    assert fake.requests[0].json["tools"] == [SEARCH_TOOL] and not search.requests


def test_without_a_backend_the_tool_is_dropped_with_a_note(world):
    r = httpx.post(
        world.url + "/v1/messages",
        headers={"x-api-key": world.key, "anthropic-version": "2023-06-01"},
        json={"model": "my-gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
              "tools": [SEARCH_TOOL], "tool_choice": {"type": "tool", "name": "web_search"}},
        timeout=30,
    )  # fmt: skip
    assert r.status_code == 200
    assert "web_search_unavailable" in r.headers["relay-conversion-notes"].split(",")
    sent = world.fake.requests[0].json
    assert "tools" not in sent and "tool_choice" not in sent  # no function calling into the void


@pytest.mark.claude_code
@pytest.mark.parametrize("version", [CLAUDE_CODE_VERSION, CLAUDE_CODE_NEWEST])
def test_claude_code_s_websearch_runs_through_relay(searching, search, fake, tmp_path, version):
    """The real CLI: the model calls WebSearch, Claude Code's side call sends the server tool, Relay searches."""
    binary = claude_binary(version)
    seed = Seeder(searching.settings)
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=fake.url + "/v1", dialect="openai")
    seed.model(tenant, up, "cc-model", upstream_model="up-model")
    key = seed.key(tenant, aliases=[("claude-*", "cc-model")]).secret
    fake.enqueue(
        Reply(tool_calls=[ToolCall("WebSearch", {"query": "relay gateway news"})]),  # the main loop's model
        searched("relay gateway news"),  # Claude Code's WebSearch side call: the forced search
        Reply(text="Relay shipped web search (https://example.com/1)."),  # ... and its summary
    )
    fake.set_default(Reply(text="Done: Relay shipped web search."))
    (tmp_path / "work").mkdir()
    result = run_claude(binary, searching.url, key, "Search the web for relay gateway news.", tmp_path / "work",
                        tmp_path / "home", "claude-sonnet-5")  # fmt: skip
    assert result["is_error"] is False and result["result"] == "Done: Relay shipped web search.", result
    assert [r.query["q"] for r in search.requests] == ["relay gateway news"]
    side = [r.json for r in fake.requests if r.json.get("tool_choice")]
    assert side[0]["tool_choice"] == {"type": "function", "function": {"name": "web_search"}}
    # Claude Code turned the blocks into its WebSearch tool result: the links, then the side call's text.
    [tool] = [m for m in fake.requests[-1].json["messages"] if m["role"] == "tool"]
    assert "https://example.com/1" in tool["content"]
    assert "Relay shipped web search (https://example.com/1)." in tool["content"]


def test_a_stated_output_limit_is_clamped_and_the_loop_runs_once(searching, search, fake, tenant_key):
    seed, tenant, key = tenant_key
    fake.max_output_tokens = 100  # the upstream refuses max_tokens above 100, in DeepSeek's words
    fake.enqueue(searched("relay news"), Reply(text="Relay shipped web search."))
    msg = ask(searching.url, key, False, tools=[SEARCH_TOOL], max_tokens=200)
    assert [b.type for b in msg.content] == ["server_tool_use", "web_search_tool_result", "text"]
    assert [r.json["max_tokens"] for r in fake.requests] == [200, 100, 100] and len(search.requests) == 1
    [row] = seed.usage_rows(tenant, expect=1)
    assert (row.status, row.attempts) == (200, 2)


def test_an_upstream_failing_mid_loop_is_an_error_and_the_answered_calls_are_billed(
    searching, search, fake, tenant_key
):
    seed, tenant, key = tenant_key
    fake.enqueue(searched("relay news"), Reply(status=500, text="upstream broke"))
    client = anthropic.Anthropic(base_url=searching.url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as failed:
        client.messages.create(model="my-gpt", max_tokens=50, messages=[{"role": "user", "content": "q"}],
                               tools=[SEARCH_TOOL])  # fmt: skip
    assert failed.value.status_code >= 500 and "up-secret" not in str(failed.value.body)
    [row] = seed.usage_rows(tenant, expect=1)
    assert row.status == failed.value.status_code and (row.input_tokens, row.output_tokens) == (10, 5)
