"""Usage in both dialects (conversion.md §9.2)."""

from __future__ import annotations

import pytest

from gateway.convert import usage_from_anthropic, usage_from_openai
from gateway.convert.usage import usage_to_anthropic, usage_to_openai
from gateway.domain import Usage


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, Usage()),
        ({}, Usage()),
        (
            {"prompt_tokens": 900, "completion_tokens": 40, "prompt_tokens_details": {"cached_tokens": 512}},
            Usage(388, 40, 512, 0),
        ),
        ({"prompt_tokens": 100, "completion_tokens": 1, "prompt_cache_hit_tokens": 60}, Usage(40, 1, 60, 0)),
        (
            {
                "prompt_tokens": 100,
                "completion_tokens": 1,
                "cache_read_input_tokens": 10,
                "cache_creation_input_tokens": 20,
            },
            Usage(70, 1, 10, 20),
        ),
        ({"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": None}}, Usage(100, 0, 0, 0)),
        ({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}, Usage(0, 0, 9, 0)),
    ],
)
def test_usage_from_openai(raw: dict | None, expected: Usage) -> None:
    assert usage_from_openai(raw) == expected


def test_usage_from_anthropic_and_back() -> None:
    raw = {"input_tokens": 20, "output_tokens": 55, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 3}
    usage = usage_from_anthropic(raw)
    assert usage == Usage(20, 55, 100, 3)
    assert usage_to_anthropic(usage) == raw
    assert usage_to_openai(usage) == {
        "prompt_tokens": 123,
        "completion_tokens": 55,
        "total_tokens": 178,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 3},
    }
    assert usage_from_openai(usage_to_openai(usage)) == usage
    assert usage_from_anthropic(None) == Usage()
