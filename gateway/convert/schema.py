"""JSON-schema helpers for tool parameters and structured outputs."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = ["object_schema", "strictify", "strip_keywords"]

_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_NESTING = {**dict.fromkeys(_MAPS, "map"), **dict.fromkeys(_SUBSCHEMAS, "schema"), **dict.fromkeys(_LISTS, "list")}
"""Keyword → what its value holds: a map of schemas, one schema, or a list of schemas."""


def _walk(schema: Any, fn: Any) -> Any:
    """Apply ``fn`` to every schema object; property *names* are never treated as keywords."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = fn(dict(schema))
    # Only the keywords the object has (most have none): each is replaced in place, so key order stays.
    for key in [k for k in out if k in _NESTING]:
        value, nesting = out[key], _NESTING[key]
        if nesting == "map" and isinstance(value, dict):
            out[key] = {name: _walk(sub, fn) for name, sub in value.items()}
        elif nesting == "schema" and isinstance(value, dict):
            out[key] = _walk(value, fn)
        elif nesting == "list" and isinstance(value, list):
            out[key] = [_walk(sub, fn) for sub in value]
    return out


def strip_keywords(schema: dict[str, Any], keywords: Collection[str]) -> dict[str, Any]:
    """Remove unsupported keywords (``$schema``, ``format``, …) from every schema object (§11.65)."""
    if not keywords:
        return schema

    def strip(node: dict[str, Any]) -> dict[str, Any]:  # ``node`` is already _walk's copy
        for keyword in keywords:
            node.pop(keyword, None)
        return node

    result: dict[str, Any] = _walk(schema, strip)
    return result


def object_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """Tool parameters must be an object schema with ``properties``."""
    out = dict(schema or {})
    out["type"] = "object"
    out.setdefault("properties", {})
    return out


def _strict_node(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("properties"), dict):
        schema["additionalProperties"] = False
        schema["required"] = list(schema["properties"])
    return schema


def strictify(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI strict mode: ``additionalProperties: false`` and every property required, recursively."""
    result: dict[str, Any] = _walk(schema, _strict_node)
    return result
