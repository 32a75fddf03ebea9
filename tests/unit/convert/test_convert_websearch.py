"""Anthropic's web_search server tool to an OpenAI upstream: offered as a function, replayed as call + result."""

from __future__ import annotations

from typing import Any

from gateway.convert import CapabilityProfile, anthropic_request_to_openai
from gateway.convert.a2o_websearch import decode_snippet, encode_snippet, results_text, web_search_spec

WEB = {"type": "web_search_20260209", "name": "web_search", "max_uses": 2, "allowed_domains": ["Python.org"]}


def convert(body: dict[str, Any], *, web_search: bool) -> Any:
    base = {"model": "claude-opus-4-8", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
    profile = CapabilityProfile.for_dialect("openai", {})
    return anthropic_request_to_openai({**base, **body}, upstream_model="up", profile=profile, web_search=web_search)


def searched_turn(encrypted: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "news?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "news"}},
                {
                    "type": "web_search_tool_result",
                    "tool_use_id": "srvtoolu_1",
                    "content": [
                        {
                            "type": "web_search_result",
                            "url": "https://a.example/1",
                            "title": "A",
                            "encrypted_content": encrypted,
                            "page_age": "2026-11-30",
                        },
                    ],
                },
                {"type": "text", "text": "Here is the news."},
            ],
        },
        {"role": "user", "content": "thanks"},
    ]


def test_with_a_backend_the_server_tool_becomes_a_function_and_its_spec_is_kept() -> None:
    out = convert({"tools": [WEB], "tool_choice": {"type": "tool", "name": "web_search"}}, web_search=True)
    assert [t["function"]["name"] for t in out.body["tools"]] == ["web_search"]
    assert out.body["tools"][0]["function"]["parameters"]["required"] == ["query"]
    assert out.body["tool_choice"] == {"type": "function", "function": {"name": "web_search"}}
    assert out.web_search is not None and out.web_search.max_uses == 2
    assert out.web_search.allowed_domains == ("python.org",)
    assert "server_tool_dropped" not in out.notes


def test_without_a_backend_it_is_dropped_with_a_note_and_no_function() -> None:
    out = convert({"tools": [WEB]}, web_search=False)
    assert "tools" not in out.body and out.web_search is None
    assert {"server_tool_dropped", "web_search_unavailable"} <= set(out.notes)


def test_the_client_s_own_web_search_tool_wins() -> None:
    own = {"name": "web_search", "description": "mine", "input_schema": {"type": "object"}}
    out = convert({"tools": [WEB, own]}, web_search=True)
    assert [t["function"]["description"] for t in out.body["tools"]] == ["mine"]
    assert out.web_search is None and "server_tool_dropped" in out.notes


def test_max_uses_defaults_to_five() -> None:
    assert web_search_spec({"type": "web_search_20250305"}).max_uses == 5
    assert web_search_spec({"type": "web_search_20250305", "max_uses": 0}).max_uses == 5


def test_history_with_the_function_replays_a_call_and_its_result() -> None:
    out = convert({"tools": [WEB], "messages": searched_turn(encode_snippet("Snip, ünïcode."))}, web_search=True)
    sent = out.body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[1]["content"] == "Let me look."
    assert sent[1]["tool_calls"] == [
        {"id": "srvtoolu_1", "type": "function", "function": {"name": "web_search", "arguments": '{"query":"news"}'}}
    ]
    assert sent[2]["tool_call_id"] == "srvtoolu_1"
    assert (
        sent[2]["content"]
        == 'Web results for "news":\n\n[1] A\nURL: https://a.example/1\nPublished: 2026-11-30\nSnip, ünïcode.'
    )
    assert sent[3] == {"role": "assistant", "content": "Here is the news."}
    assert "server_block_dropped" not in out.notes


def test_history_without_the_function_is_text_and_an_anthropic_result_shows_title_and_url() -> None:
    out = convert({"messages": searched_turn("EqgfCioIARgBIiQ3YTAw")}, web_search=False)
    sent = out.body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    text = sent[1]["content"]
    assert text.startswith("Let me look.") and text.endswith("Here is the news.")
    assert "[1] A\nURL: https://a.example/1" in text and "tool_calls" not in sent[1]


def test_snippet_codec_and_error_text() -> None:
    assert decode_snippet(encode_snippet("é")) == "é"
    assert decode_snippet("EqgfCioIARgB") is None and decode_snippet(None) is None
    error = {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}
    assert results_text("q", error).startswith("Web search error: max_uses_exceeded")
    assert results_text("q", []) == 'No web results for "q".'
