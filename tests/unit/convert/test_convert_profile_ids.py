"""Capability profile, deterministic ids and names, enable_thinking."""

from __future__ import annotations

import pytest

from gateway.convert import CapabilityProfile, enable_thinking
from gateway.convert.ids import hash_user, is_minted_signature, mint_signature, sanitize_tool_id, shorten_tool_name
from gateway.domain import Dialect
from gateway.errors import InvalidRequest

SPEC_KEYS = {
    "max_output_tokens",
    "max_tokens_field",
    "default_max_tokens",
    "supports_stream_options",
    "supports_top_k",
    "supports_parallel_tool_calls_param",
    "supports_image_input",
    "supports_pdf_input",
    "max_stop_sequences",
    "reasoning_dialect",
    "requires_reasoning_replay",
    "strip_cache_control",
    "supports_sampling_params",
    "supports_assistant_prefill",
    "supports_structured_outputs",
    "think_tags",
    "stream_all_tools_live",
    "json_schema_sanitizer",
    "tool_args_may_be_cumulative",
    "thinking_mode",
    "temperature_top_p_exclusive",
}


def test_profile_has_every_spec_key_and_dialect_defaults() -> None:
    o = CapabilityProfile.for_dialect(Dialect.OPENAI)
    a = CapabilityProfile.for_dialect("anthropic")
    assert set(o.to_dict()) >= SPEC_KEYS
    assert o.strip_cache_control and not a.strip_cache_control
    assert o.max_stop_sequences == 4 and a.max_stop_sequences is None
    assert o.reasoning_dialect == "none" and a.supports_pdf_input


def test_profile_overrides_and_round_trip() -> None:
    p = CapabilityProfile.for_dialect(
        "openai", {"max_output_tokens": 8192, "reasoning_dialect": "deepseek", "json_schema_sanitizer": ["$schema"]}
    )
    assert p.max_output_tokens == 8192 and p.json_schema_sanitizer == ("$schema",)
    assert CapabilityProfile.for_dialect("openai", p.to_dict()) == p


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("no_such_key", True),
        ("max_output_tokens", "big"),
        ("max_output_tokens", True),
        ("supports_top_k", 1),
        ("reasoning_dialect", "magic"),
        ("json_schema_sanitizer", "format"),
        ("default_max_tokens", None),
        ("max_stop_sequences", -1),
    ],
)
def test_profile_validation_names_the_key(key: str, value: object) -> None:
    with pytest.raises(InvalidRequest, match=key):
        CapabilityProfile.for_dialect("openai", {key: value})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("toolu_01ABC", "toolu_01ABC"), ("call_abc-123", "call_abc-123"), ("a" * 64, "a" * 64)],
)
def test_valid_tool_ids_unchanged(raw: str, expected: str) -> None:
    assert sanitize_tool_id(raw) == expected


def test_edge_28_invalid_ids_are_rewritten_deterministically_without_collisions() -> None:
    a, b = sanitize_tool_id("functions.Bash:0"), sanitize_tool_id("functions_Bash:0")
    assert a == sanitize_tool_id("functions.Bash:0") and a != b
    assert all(c.isalnum() or c in "_-" for c in a)
    assert len(sanitize_tool_id("x" * 100)) <= 64 and len(sanitize_tool_id("a|" * 50)) <= 64


def test_edge_30_tool_names_shortened_deterministically() -> None:
    long = "mcp__server__" + "very_long_tool_name_" * 4
    short = shorten_tool_name(long)
    assert short == shorten_tool_name(long) and len(short) <= 64 and short.startswith("mcp__server__")
    assert shorten_tool_name("Bash") == "Bash"
    assert shorten_tool_name("a.b") != "a.b"


def test_minted_signatures_recognized() -> None:
    sig = mint_signature("deepseek-chat")
    assert is_minted_signature(sig) and not is_minted_signature("EqQBCkYIBxgCKkA") and not is_minted_signature(None)


def test_hash_user() -> None:
    assert hash_user("bob") == hash_user("bob") != hash_user("alice") and len(hash_user("x")) == 64


def test_enable_thinking_both_dialects() -> None:
    a = enable_thinking(
        {"model": "m", "max_tokens": 4000, "temperature": 0.2, "messages": []}, dialect=Dialect.ANTHROPIC, budget=8000
    )
    # The client's max_tokens is kept; the budget fits under it.
    assert a["thinking"] == {"type": "enabled", "budget_tokens": 3999}
    assert a["max_tokens"] == 4000 and "temperature" not in a
    too_small = enable_thinking({"max_tokens": 500, "messages": []}, dialect=Dialect.ANTHROPIC, budget=8000)
    assert "thinking" not in too_small and too_small["max_tokens"] == 500
    unset = enable_thinking({"messages": []}, dialect=Dialect.ANTHROPIC, budget=8000)
    assert unset["thinking"]["budget_tokens"] == 8000 and unset["max_tokens"] > 8000
    o = enable_thinking({"model": "m", "messages": []}, dialect="openai", budget=8000)
    assert o["reasoning_effort"] == "medium"
    assert enable_thinking({"max_tokens": 64000}, dialect="anthropic", budget=10)["thinking"]["budget_tokens"] == 1024
