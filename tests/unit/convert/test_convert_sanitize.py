"""The history sanitizer on Anthropic-shaped bodies (conversion.md §2.4), passthrough included."""

from __future__ import annotations

from typing import Any

from gateway.convert import sanitize_anthropic_body
from gateway.convert.ids import mint_signature


def sanitize(messages: list[dict[str, Any]], **body: Any) -> tuple[dict[str, Any], list[str]]:
    return sanitize_anthropic_body({"model": "m", "max_tokens": 10, "messages": messages, **body})


def tu(tid: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": tid, "name": "f", "input": {}}


def tr(tid: str, content: Any = "ok") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tid, "content": content}


def test_edge_71_lossless_genuine_empty_thinking_kept_and_unknown_fields_survive() -> None:
    block = {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}, "citations": None, "future": 1}
    thinking = {"type": "thinking", "thinking": "", "signature": "EqQBgenuine"}
    body, notes = sanitize(
        [
            {"role": "user", "content": [block]},
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "a"}]},
        ],
        context_management={"edits": []},
    )
    assert body["messages"][0]["content"] == [block]
    assert body["messages"][1]["content"][0] == thinking  # edge 71: empty text, genuine signature kept
    assert body["context_management"] == {"edits": []}
    assert notes == []


def test_input_is_not_mutated() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "x"}]}]
    sanitize(messages)
    assert messages[0]["content"][0] == {"type": "text", "text": ""}


def test_edge_02_empty_text_dropped_cache_control_moved_to_previous_block() -> None:
    content = [{"type": "text", "text": "keep"}, {"type": "text", "text": "  ", "cache_control": {"type": "ephemeral"}}]
    body, notes = sanitize([{"role": "user", "content": content}])
    assert body["messages"][0]["content"] == [{"type": "text", "text": "keep", "cache_control": {"type": "ephemeral"}}]
    assert "empty_text_dropped" in notes


def test_edge_34_relay_minted_and_unsigned_thinking_dropped_for_anthropic() -> None:
    minted = {"type": "thinking", "thinking": "t", "signature": mint_signature("deepseek")}
    unsigned = {"type": "thinking", "thinking": "t", "signature": ""}
    body, notes = sanitize(
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [minted, unsigned, {"type": "text", "text": "a"}]},
            {"role": "user", "content": "q2"},
        ]
    )
    assert body["messages"][1]["content"] == [{"type": "text", "text": "a"}]
    assert "foreign_thinking_dropped" in notes


def test_edge_35_thinking_disabled_when_final_tool_turn_loses_its_thinking() -> None:
    minted = {"type": "thinking", "thinking": "t", "signature": mint_signature("kimi")}
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [minted, tu("t1")]},
        {"role": "user", "content": [tr("t1")]},
    ]
    body, notes = sanitize(messages, thinking={"type": "adaptive"})
    assert "thinking" not in body and "thinking_disabled_unsigned_history" in notes


def test_adaptive_thinking_kept_when_model_itself_did_not_think() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [tu("t1")]},
        {"role": "user", "content": [tr("t1")]},
    ]
    body, _ = sanitize(messages, thinking={"type": "adaptive"})
    assert body["thinking"] == {"type": "adaptive"}
    body, _ = sanitize(messages, thinking={"type": "enabled", "budget_tokens": 2000})
    assert "thinking" not in body


def test_edge_59_empty_turns_dropped_and_consecutive_merged() -> None:
    body, _ = sanitize(
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [{"type": "text", "text": ""}]},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": ""},
        ]
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": []},
    ]


def test_edge_58_results_split_across_user_turns_are_merged_first() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [tu("a"), tu("b")]},
        {"role": "user", "content": [{"type": "text", "text": "note"}, tr("a")]},
        {"role": "user", "content": [tr("b")]},
    ]
    body, _ = sanitize(messages)
    assert [b.get("tool_use_id", b["type"]) for b in body["messages"][2]["content"]] == ["a", "b", "text"]


def test_orphans_repaired_both_ways() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [tu("a")]},
        {"role": "assistant", "content": [{"type": "text", "text": "more"}]},
        {"role": "user", "content": [tr("zzz", [{"type": "text", "text": "x"}]), tr("zzz")]},
    ]
    body, notes = sanitize(messages)
    result = body["messages"][2]["content"][0]
    assert result == {
        "type": "tool_result",
        "tool_use_id": "a",
        "is_error": True,
        "content": "(no result: tool call was interrupted)",
    }
    assert len(body["messages"]) == 3
    assert body["messages"][-1]["content"][1]["text"].startswith("Result of tool zzz")
    assert {"orphan_tool_use", "orphan_tool_result"} <= set(notes)


def test_trailing_tool_use_gets_interrupted_result() -> None:
    body, _ = sanitize([{"role": "user", "content": "q"}, {"role": "assistant", "content": [tu("a")]}])
    assert body["messages"][-1]["role"] == "user"
    assert body["messages"][-1]["content"][0]["is_error"] is True


def test_edge_28_ids_sanitized_on_both_sides_for_anthropic() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [tu("functions.Read:1")]},
        {"role": "user", "content": [tr("functions.Read:1")]},
    ]
    body, _ = sanitize(messages)
    use = body["messages"][1]["content"][0]["id"]
    assert use == body["messages"][2]["content"][0]["tool_use_id"] and ":" not in use


def test_empty_tool_result_becomes_no_output() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [tu("a")]},
        {"role": "user", "content": [tr("a", [])]},
    ]
    assert sanitize(messages)[0]["messages"][2]["content"][0]["content"] == "(no output)"


def test_edge_66_cache_breakpoints_limited_and_never_on_thinking() -> None:
    cc = {"type": "ephemeral"}
    thinking = {"type": "thinking", "thinking": "t", "signature": "sig", "cache_control": cc}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": f"m{i}", "cache_control": cc}]}
        if i % 2 == 0
        else {"role": "assistant", "content": [thinking, {"type": "text", "text": "a"}]}
        for i in range(7)
    ]
    body, notes = sanitize(
        messages,
        system=[{"type": "text", "text": "s", "cache_control": cc}],
        tools=[{"name": "f", "cache_control": cc}],
    )
    blocks = [b for m in body["messages"] for b in m["content"]]
    assert not any("cache_control" in b for b in blocks if b["type"] == "thinking")
    count = sum("cache_control" in b for b in blocks) + 2
    assert count == 4 and "cache_control" in body["system"][0] and "cache_control" in body["tools"][0]
    assert "cache_control" in blocks[-1]  # the newest breakpoint survives
    assert "cache_breakpoint_dropped" in notes


def test_role_system_messages_pass_through_untouched() -> None:
    messages = [{"role": "user", "content": "q"}, {"role": "system", "content": "reminder"}]
    body, _ = sanitize(messages)
    assert body["messages"][1] == {"role": "system", "content": "reminder"}


def test_history_starting_with_assistant_gets_a_user_turn_first() -> None:
    body, _ = sanitize([{"role": "assistant", "content": "hi"}, {"role": "user", "content": "q"}])
    assert body["messages"][0]["role"] == "user"
