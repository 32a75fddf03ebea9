"""Names people give things (tenants, keys, upstreams, models, tokens): one printable line, no bidi tricks.

A name shows up in logs, CSV exports, the admin UI and the CLI: a CR/LF forges log lines, and a
bidirectional override (U+202E) makes a name read as something else. Both are refused.
"""

from __future__ import annotations

import unicodedata

from gateway.errors import InvalidRequest

__all__ = ["BIDI_CONTROLS", "clean_name"]

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_name(value: str, what: str, *, required: bool = True) -> str:
    """``value`` stripped; refused when empty (if ``required``) or holding control or bidi-control characters."""
    name = value.strip()
    if required and not name:
        raise InvalidRequest(f"{what} must not be empty")
    bad = next((c for c in name if c in BIDI_CONTROLS or unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise InvalidRequest(
            f"{what}: control and bidirectional-override characters are not allowed (U+{ord(bad):04X})"
        )
    return name
