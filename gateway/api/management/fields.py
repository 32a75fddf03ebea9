"""Field types of the management API's bodies (validated by msgspec, errors naming the field) and helpers."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta

Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"\S")]
ModelName = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^\S+$")]
Price = Annotated[float, Meta(ge=0)]
PositiveInt = Annotated[int, Meta(gt=0)]
Timeout = Annotated[float, Meta(gt=0, le=3600)]
HeaderName = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
HeaderValue = Annotated[str, Meta(max_length=4000, pattern=r"^[^\r\n\x00]*$")]
Secret = Annotated[str, Meta(min_length=1, max_length=4000)]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A request body: unknown fields are refused (a typo must not pass silently)."""


def changes_of(data: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body actually carries (``null`` included, omitted ones left out)."""
    return {f: v for f in data.__struct_fields__ if (v := getattr(data, f)) is not UNSET}
