"""``gateway.auth.extract_key``: the key from every header style clients use, and nothing else."""

from __future__ import annotations

import pytest
from litestar.datastructures import Headers

from gateway.auth import extract_key

KEY = "sk-" + "A1b2C3d4" * 6
OTHER = "sk-" + "Z9y8X7w6" * 6


def headers(*pairs: tuple[str, str]) -> Headers:
    """Real request headers: case-insensitive lookup, as the doors see them."""
    return Headers([(k.lower().encode(), v.encode()) for k, v in pairs])


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("x-api-key", KEY)], KEY),
        ([("X-Api-Key", KEY)], KEY),
        ([("x-api-key", f"  {KEY}  ")], KEY),
        ([("authorization", f"Bearer {KEY}")], KEY),
        ([("Authorization", f"bearer {KEY}")], KEY),
        ([("authorization", f"BEARER {KEY}")], KEY),
        ([("authorization", f"Bearer   {KEY}  ")], KEY),
        ([("authorization", KEY)], KEY),  # bare key, no scheme
        ([("authorization", f"  {KEY} ")], KEY),
    ],
)
def test_key_found_in_each_style(pairs, expected):
    assert extract_key(headers(*pairs)) == expected


def test_x_api_key_wins_when_both_are_present():
    """Claude Code sends both when both variables are set; the answer must not depend on header order."""
    assert extract_key(headers(("x-api-key", KEY), ("authorization", f"Bearer {OTHER}"))) == KEY
    assert extract_key(headers(("authorization", f"Bearer {OTHER}"), ("x-api-key", KEY))) == KEY


def test_empty_x_api_key_falls_back_to_authorization():
    assert extract_key(headers(("x-api-key", ""), ("authorization", f"Bearer {KEY}"))) == KEY


@pytest.mark.parametrize(
    "pairs",
    [[], [("x-api-key", "")], [("authorization", "")], [("x-api-key", ""), ("authorization", "")], [("cookie", KEY)]],
)
def test_missing_key_is_none(pairs):
    assert extract_key(headers(*pairs)) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer", "Bearer"),  # a scheme with nothing after it is not a key: auth then calls it malformed
        ("Basic dXNlcjpwYXNz", "Basic dXNlcjpwYXNz"),  # not a Bearer: handed on whole, never half-parsed
        (f"Token {KEY}", f"Token {KEY}"),
    ],
)
def test_other_schemes_are_not_treated_as_bearer(value, expected):
    assert extract_key(headers(("authorization", value))) == expected


def test_works_on_a_plain_mapping():
    assert extract_key({"authorization": f"Bearer {KEY}"}) == KEY
    assert extract_key({}) is None
