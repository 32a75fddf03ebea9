"""Typed decoding of client bodies with 400s that name the offending field."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from gateway.errors import InvalidRequest

__all__ = ["decode_as", "field_error"]

T = TypeVar("T")
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_INDEX = re.compile(r"\[(\d+)\]")


def _dotted(prefix: str, path: str) -> str:
    tail = _INDEX.sub(r".\1", path).replace("[...]", "").lstrip(".")
    return ".".join(p for p in (prefix, tail) if p)


def decode_as(obj: Any, typ: type[T] | Any, where: str = "") -> T:
    """``msgspec.convert`` raising :class:`InvalidRequest` "where.path: message" on bad input."""
    try:
        result: T = msgspec.convert(obj, typ)
    except msgspec.ValidationError as exc:
        m = _AT.match(str(exc))
        msg, path = (m.group("msg"), m.group("path") or "") if m else (str(exc), "")
        if msg.startswith("Object missing required field"):
            msg = "field required: " + msg.split("`")[1] if "`" in msg else msg
        raise InvalidRequest(f"{_dotted(where, path) or 'body'}: {msg}") from None
    return result


def field_error(where: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {message}", param=where)
