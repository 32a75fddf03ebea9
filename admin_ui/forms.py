"""Reading HTML forms: typed values, and an error per field shown next to that field."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from litestar import Request

from gateway.errors import GatewayError

# Words in a service error message that name the form field it is about.
_FIELD_HINTS = (
    ("profile.", "profile"),
    ("base url", "base_url"),
    ("base_url", "base_url"),
    ("upstream_model", "upstream_model"),
    ("model name", "name"),
    ("name:", "name"),
    ("dialect", "dialect"),
    ("price", "input_price"),
    ("alias", "aliases"),
    ("claude code profile", "profile_opus"),
    ("email", "email"),
    ("password", "password"),
    ("tenant", "tenant_name"),
    ("budget", "budget_usd"),
    ("rpm", "rpm"),
    ("tpm", "tpm"),
    ("concurrency", "concurrency"),
    ("already exists", "name"),
)


class Form:
    def __init__(self, data: dict[str, list[str]]) -> None:
        self.data = data
        self.errors: dict[str, str] = {}
        self.general: str | None = None

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Form:
        form = await request.form()
        data: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                data.setdefault(key, []).append(value)
        return cls(data)

    @classmethod
    def empty(cls, **values: Any) -> Form:
        out: dict[str, list[str]] = {}
        for key, value in values.items():
            if value is None:
                continue
            if isinstance(value, list | tuple):
                out[key] = [str(v) for v in value]
            elif isinstance(value, bool):
                out[key] = ["on"] if value else []
            elif isinstance(value, float):
                out[key] = [f"{value:g}"]
            else:
                out[key] = [str(value)]
        return cls(out)

    # --- for templates ---

    def value(self, name: str) -> str:
        values = self.data.get(name)
        return values[0] if values else ""

    def values(self, name: str) -> list[str]:
        return list(self.data.get(name, []))

    def checked(self, name: str) -> bool:
        return self.value(name) in ("on", "1", "true", "yes")

    def error(self, name: str) -> str | None:
        return self.errors.get(name)

    @property
    def ok(self) -> bool:
        return not self.errors and self.general is None

    # --- typed reads (errors collected, never raised) ---

    def text(self, name: str, *, label: str, required: bool = False, max_len: int = 200) -> str:
        value = self.value(name).strip()
        if required and not value:
            self.errors[name] = f"{label} is required."
        elif len(value) > max_len:
            self.errors[name] = f"{label} must be at most {max_len} characters."
        return value

    def secret(self, name: str) -> str:
        """A write-only field: whitespace around a pasted key is dropped; empty means "keep"."""
        return self.value(name).strip()

    def integer(self, name: str, *, label: str, minimum: int = 1) -> int | None:
        raw = self.value(name).strip().replace(",", "").replace("_", "")
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            self.errors[name] = f"{label} must be a whole number."
            return None
        if value < minimum:
            self.errors[name] = f"{label} must be at least {minimum}."
            return None
        return value

    def number(self, name: str, *, label: str, default: float | None = None) -> float | None:
        raw = self.value(name).strip().lstrip("$").replace(",", "")
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.errors[name] = f"{label} must be a number."
            return default
        if value < 0 or value != value or value in (float("inf"), float("-inf")):
            self.errors[name] = f"{label} must be zero or more."
            return default
        return value

    def choice(self, name: str, options: tuple[str, ...], *, label: str, default: str | None = None) -> str:
        value = self.value(name) or (default or "")
        if value not in options:
            self.errors[name] = f"Choose a {label.lower()}."
        return value

    def expiry(self, name: str) -> datetime | None:
        """A date: the key works until the end of that day (UTC)."""
        raw = self.value(name).strip()
        if not raw:
            return None
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            self.errors[name] = "Give a date like 2027-01-31."
            return None
        return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)

    def pairs(self, name: str, *, label: str) -> list[tuple[str, str]]:
        """``pattern=model`` per line (or comma-separated)."""
        out: list[tuple[str, str]] = []
        for item in self.value(name).replace(",", "\n").splitlines():
            item = item.strip()
            if not item:
                continue
            pattern, sep, model = item.partition("=")
            if not sep or not pattern.strip() or not model.strip():
                self.errors[name] = f"{label}: write one PATTERN=MODEL per line ({item!r} is not)."
                return out
            out.append((pattern.strip(), model.strip()))
        return out

    def fail(self, exc: GatewayError) -> None:
        """A service refused the change: show its message next to the field it names, else on top."""
        lowered = exc.message.lower()
        for hint, field in _FIELD_HINTS:
            if hint in lowered and field in self.data:
                self.errors.setdefault(field, exc.message)
                return
        self.general = exc.message


def expiry_value(when: datetime | None) -> str:
    """The date an expiry is shown as in a form (the inverse of ``Form.expiry``)."""
    if when is None:
        return ""
    return (when.astimezone(UTC) - timedelta(seconds=1)).date().isoformat()
