"""JSON-schema helpers for tool parameters and structured outputs."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = ["object_schema", "strictify", "strip_keywords"]

_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def _walk(schema: Any, fn: Any) -> Any:
    """Apply ``fn`` to every schema object; property *names* are never treated as keywords."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = fn(dict(schema))
    for key in _MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _walk(sub, fn) for name, sub in out[key].items()}
    for key in _SUBSCHEMAS:
        if isinstance(out.get(key), dict):
            out[key] = _walk(out[key], fn)
    for key in _LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_walk(sub, fn) for sub in out[key]]
    return out


def strip_keywords(schema: dict[str, Any], keywords: Collection[str]) -> dict[str, Any]:
    """Remove unsupported keywords (``$schema``, ``format``, …) from every schema object (§11.65)."""
    if not keywords:
        return schema
    result: dict[str, Any] = _walk(schema, lambda s: {k: v for k, v in s.items() if k not in keywords})
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
