"""The upstream settings form: what it shows, and the changes for ``upstreams.update_upstream`` it reads.

Extra headers are write-only like the key (their values may be credentials): the page lists the names with
masked values, an empty box keeps them, text replaces them all, and "Remove all" clears them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from admin_ui.forms import Form
from gateway.db.tables import UpstreamRow

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")  # an RFC 9110 token
MAX_TIMEOUT_S = 3600


def settings_form(row: UpstreamRow) -> Form:
    return Form.empty(
        name=row.name,
        base_url=row.base_url,
        timeout_s=None if row.timeout_s is None else f"{row.timeout_s:g}",
        profile=json.dumps(row.profile or {}, indent=2, sort_keys=True) if row.profile else "",
    )


def _headers(form: Form) -> dict[str, str] | None:
    """``Name: value`` per line; None when the box is empty (keep the stored headers)."""
    text = form.value("extra_headers").strip()
    if not text:
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if not line.strip():
            continue
        if not sep or not HEADER_NAME.match(name.strip()) or not value.strip():
            form.errors["extra_headers"] = f"Write one “Name: value” per line ({line.strip()[:40]!r} is not)."
            return None
        out[name.strip()] = value.strip()
    return out


def _profile(form: Form) -> dict[str, Any] | None:
    text = form.value("profile").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        form.errors["profile"] = f"Not valid JSON (line {getattr(exc, 'lineno', '?')}): write an object like {{}}."
        return None
    if not isinstance(value, dict):
        form.errors["profile"] = 'The capability profile is a JSON object, like {"max_output_tokens": 8192}.'
        return None
    return value


def read_settings(form: Form) -> dict[str, Any]:
    """The changes the form asks for; problems go to ``form.errors`` (the domain checks the rest)."""
    changes: dict[str, Any] = {
        "name": form.text("name", label="Name", required=True),
        "base_url": form.text("base_url", label="Base URL", required=True, max_len=2000),
    }
    timeout = form.number("timeout_s", label="Timeout")
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT_S:
        form.errors["timeout_s"] = (
            f"Give a timeout in seconds (more than 0, at most {MAX_TIMEOUT_S}), or leave it empty for the default."
        )
    changes["timeout_s"] = timeout
    profile = _profile(form)
    if profile is not None:
        changes["profile"] = profile
    if form.checked("clear_headers"):
        changes["extra_headers"] = {}
    else:
        headers = _headers(form)
        if headers is not None:
            changes["extra_headers"] = headers
    return changes
