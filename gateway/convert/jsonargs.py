"""Tool-call arguments: tolerant parsing into the object Anthropic's ``input`` requires."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["encode_arguments", "is_complete_object", "parse_arguments"]

_CLOSERS = {"{": "}", "[": "]"}


def _loads(text: str) -> tuple[bool, Any]:
    try:
        return True, msgspec.json.decode(text)
    except msgspec.DecodeError:
        return False, None


def _close(text: str) -> str:
    """Close an unterminated string and every open bracket of a truncated JSON text."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in _CLOSERS:
            stack.append(_CLOSERS[ch])
        elif ch in "]}" and stack:
            stack.pop()
    tail = text + ('"' if in_string else "")
    tail = tail.rstrip().rstrip(",").rstrip(":")
    return tail + "".join(reversed(stack))


def _repair(text: str) -> tuple[bool, Any]:
    ok, value = _loads(_close(text))
    if ok:
        return ok, value
    cut = text.rfind(",")
    return _loads(_close(text[:cut])) if cut > 0 else (False, None)


def parse_arguments(raw: Any) -> dict[str, Any]:
    """``""``/null → ``{}``; invalid JSON → a best-effort repair, else ``{}``; non-objects wrapped."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if not isinstance(raw, str):
        return {"value": raw}
    ok, value = _loads(raw)
    if not ok:
        ok, value = _repair(raw)
    if not ok:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def is_complete_object(text: str) -> bool:
    ok, value = _loads(text)
    return ok and isinstance(value, dict)


def encode_arguments(value: Any) -> str:
    return msgspec.json.encode(value if value is not None else {}).decode()
