"""The shortcuts the converters take for speed give what the plain way gives."""

from __future__ import annotations

import copy
import json
from typing import Any, get_args

import msgspec
import pytest

from gateway.convert import CapabilityProfile, anthropic_request_to_openai
from gateway.convert.a2o_messages import _BLOCK_TYPES, KNOWN_BLOCKS
from gateway.convert.ids import mint_signature
from gateway.convert.schema import strictify, strip_keywords
from gateway.errors import InvalidRequest
from gateway.protocols.anthropic import Block


def test_block_table_is_the_block_union() -> None:
    assert set(_BLOCK_TYPES.values()) == set(get_args(Block))
    assert set(_BLOCK_TYPES) == KNOWN_BLOCKS
    for tag, struct in _BLOCK_TYPES.items():
        assert struct.__struct_config__.tag == tag


@pytest.mark.parametrize(
    "block",
    [
        {"type": "text"},
        {"type": "text", "text": 5},
        {"type": "image", "source": {"type": "nope"}},
        {"type": "image", "source": {"type": "base64"}},
        {"type": "document", "source": {"type": "content", "content": 5}},
        {"type": "tool_use", "id": 3, "name": "x", "input": {}},
        {"type": "tool_result"},
        {"type": "thinking", "signature": 1},
    ],
)
def test_a_bad_block_is_refused_as_the_union_would(block: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError) as union:
        msgspec.convert(block, Block)
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [block]}]}
    with pytest.raises(InvalidRequest) as refused:
        anthropic_request_to_openai(body, upstream_model="m", profile=CapabilityProfile())
    message = str(union.value).split(" - at `$")[0]
    if message.startswith("Object missing required field"):
        message = "field required: " + message.split("`")[1]
    assert refused.value.message.startswith("messages.0.content.0")
    assert refused.value.message.endswith(message)


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "format": {"type": "string", "format": "date"},
        "items": {"type": "array", "items": {"type": "string", "format": "uri"}, "description": "d"},
        "choice": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]},
        "nested": {"type": "object", "properties": {"x": {"type": "integer"}}, "$defs": {"d": {"format": "f"}}},
    },
    "required": ["format"],
}


def test_strip_keywords_keeps_property_names_and_key_order() -> None:
    before = copy.deepcopy(SCHEMA)
    out = strip_keywords(SCHEMA, ("$schema", "format"))
    assert before == SCHEMA  # the input is not touched
    assert json.dumps(out) == json.dumps(
        {
            "type": "object",
            "properties": {
                "format": {"type": "string"},
                "items": {"type": "array", "items": {"type": "string"}, "description": "d"},
                "choice": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "nested": {"type": "object", "properties": {"x": {"type": "integer"}}, "$defs": {"d": {}}},
            },
            "required": ["format"],
        }
    )


def test_strictify_reaches_nested_objects() -> None:
    out = strictify(SCHEMA)
    assert out["additionalProperties"] is False
    assert out["required"] == ["format", "items", "choice", "nested"]
    assert out["properties"]["nested"]["required"] == ["x"]
    assert "additionalProperties" not in SCHEMA


def test_mint_signature_is_the_same_cached_or_not() -> None:
    assert mint_signature("deepseek-chat") == mint_signature.__wrapped__("deepseek-chat")
