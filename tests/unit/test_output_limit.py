"""The output limits upstreams state in their 400s, in each provider's words."""

from __future__ import annotations

import pytest

from gateway.upstreams.output_limit import StatedLimit, stated_output_limit


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Invalid max_tokens value, the valid range of max_tokens is [1, 8192]", StatedLimit(8192, True)),
        ("Range of max_tokens should be [1, 8192]", StatedLimit(8192, True)),
        (
            "max_tokens is too large: 128000. This model supports at most 16384 completion tokens, "
            "whereas you provided 128000.",
            StatedLimit(16384, True),
        ),
        ("Invalid request: max_tokens must be less than or equal to 32768", StatedLimit(32768, True)),
        ("max_tokens: should be <= 98304", StatedLimit(98304, True)),
        ("The value of max_output_tokens should not exceed 65536.", StatedLimit(65536, True)),
        (
            "'max_tokens' or 'max_completion_tokens' is too large: 128000. This model's maximum context length "
            "is 32768 tokens and your request has 1500 input tokens (128000 > 32768 - 1500).",
            StatedLimit(31268, False),
        ),
    ],
)
def test_each_providers_wording(message: str, expected: StatedLimit) -> None:
    assert stated_output_limit(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        "Rate limit exceeded, please try again in 20 seconds",
        "This model's maximum context length is 65536 tokens. However, you requested 70000 tokens.",
        "max_tokens must be less than or equal to 4",  # not a real output limit
        "Invalid value for temperature: must be at most 2",
        "",
    ],
)
def test_other_errors_state_no_output_limit(message: str) -> None:
    assert stated_output_limit(message) is None
