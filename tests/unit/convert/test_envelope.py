"""The reasoning carry envelope (envelope.py): authenticated, opaque, and closed to forgery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.convert import envelope
from gateway.convert.envelope import PREFIX, seal, unseal

KEY = b"k" * 32
OTHER = b"o" * 32
CARRY = {"k": "thinking", "t": "I considered it.", "s": "EqQBCkgIARAB/+=="}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _forge(payload: bytes, key: bytes = KEY) -> str:
    """A correctly tagged token around any payload bytes (what only the key holder can make)."""
    body = _b64(payload)
    tag = _b64(hmac.new(key, (PREFIX + body).encode(), hashlib.sha256).digest()[:16])
    return f"{PREFIX}{body}.{tag}"


def test_seal_and_unseal_round_trip() -> None:
    token = seal(KEY, CARRY)
    assert token.startswith(PREFIX) and token.count(".") == 2
    assert unseal(KEY, token) == CARRY
    assert seal(KEY, CARRY) == token  # deterministic


def test_token_is_url_safe_and_opaque() -> None:
    token = seal(KEY, CARRY)
    assert all(c.isalnum() or c in "-_." for c in token)
    assert CARRY["t"] not in token and CARRY["s"] not in token


def test_other_key_cannot_open_it() -> None:
    assert unseal(OTHER, seal(KEY, CARRY)) is None


@pytest.mark.parametrize(
    "token",
    [
        None,
        42,
        {"k": "thinking"},
        "",
        "gAAAAABnative-openai-encrypted-content",
        PREFIX,
        PREFIX + ".",
        PREFIX + "abc",
        PREFIX + ".tagonly",
        "rlyr2." + seal(KEY, CARRY)[len(PREFIX) :],
    ],
)
def test_absent_foreign_and_malformed_tokens_are_none(token: Any) -> None:
    assert unseal(KEY, token) is None


def test_altered_payload_or_tag_is_rejected() -> None:
    token = seal(KEY, CARRY)
    body, tag = token[len(PREFIX) :].rsplit(".", 1)
    altered = dict(CARRY, s="forged-signature")
    assert unseal(KEY, f"{PREFIX}{_b64(json.dumps(altered).encode())}.{tag}") is None
    flipped = tag[:-1] + ("A" if tag[-1] != "A" else "B")
    assert unseal(KEY, f"{PREFIX}{body}.{flipped}") is None
    assert unseal(KEY, f"{PREFIX}{body}.") is None
    assert unseal(KEY, token + "x") is None


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b'"text"', b'{"k": 1}', b'{"k": "thinking", "t": null}', b'{"k": ["a"]}', b"\xff\xfe"],
)
def test_authentic_but_unusable_payloads_are_none(payload: bytes) -> None:
    assert unseal(KEY, _forge(payload)) is None


def test_authentic_payload_with_invalid_base64_is_none() -> None:
    tag = _b64(hmac.new(KEY, (PREFIX + "a").encode(), hashlib.sha256).digest()[:16])
    assert unseal(KEY, f"{PREFIX}a.{tag}") is None


def test_empty_carry_round_trips() -> None:
    assert unseal(KEY, seal(KEY, {})) == {}


def test_module_exports() -> None:
    assert envelope.__all__ == ["PREFIX", "seal", "unseal"]


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(max_size=4), st.text(max_size=200), max_size=4), st.binary(min_size=1, max_size=64))
def test_any_carry_round_trips_under_any_key(carry: dict[str, str], key: bytes) -> None:
    token = seal(key, carry)
    assert unseal(key, token) == carry
    assert unseal(key + b"!", token) is None
