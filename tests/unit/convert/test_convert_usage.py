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


def test_edge_10_and_12_input_token_estimate_is_conservative_and_ignores_base64_bulk() -> None:
    from gateway.convert import estimate_input_tokens

    english = {"messages": [{"role": "user", "content": "word " * 4000}]}  # ~4000 real tokens
    assert 4000 <= estimate_input_tokens(english) <= 7000
    cjk = {"messages": [{"role": "user", "content": "汉字" * 2000}]}  # ~4000 real tokens
    assert estimate_input_tokens(cjk) >= 3000
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 2_000_000}}
    with_image = {"messages": [{"role": "user", "content": [image]}]}
    assert 1600 <= estimate_input_tokens(with_image) < 2000
    o_image = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 99999}}],
            }
        ]
    }
    assert estimate_input_tokens(o_image) < 2000
    tools = {"messages": [], "tools": [{"name": "t", "input_schema": {"description": "x" * 3500}}]}
    assert estimate_input_tokens(tools) >= 1000
