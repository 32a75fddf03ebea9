"""What the ``relay`` commands share: one unit of work, the owner flags, reading input, printing JSON.

Each ``cmd_*`` module imports this and only the services its noun needs, so a command pays for what it
uses (``relay tenants list`` loads no HTTP client, converter or catalog).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.session import create_engine, create_sessionmaker, migrate
from gateway.db.tables import Tenant
from gateway.errors import InvalidRequest
from gateway.manage import tenants
from gateway.security import SecretBox, derive_key
from gateway.settings import Settings


@asynccontextmanager
async def session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the command succeeds, rolled back otherwise."""
    if settings.embedded:
        path = settings.sqlite_path
        if path is not None and not path.exists():
            # Run in another directory than the gateway's, a command would work on a database of its own,
            # and the gateway would never see what it made: say so.
            print(
                f"relay: note: no database at {path.resolve()}, so a new empty one is made there; the gateway's "
                "is where `relay serve` runs (or set RELAY_DATABASE_URL)",
                file=sys.stderr,
            )
        await asyncio.to_thread(migrate, settings.database_url)  # embedded: no separate `relay migrate`
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine).begin() as db:
            yield db
    finally:
        await engine.dispose()


async def owner(db: AsyncSession, args: argparse.Namespace) -> Tenant | None:
    """The tenant of ``--tenant``, or ``None`` for ``--platform`` (the built-in objects)."""
    return None if args.platform else await tenants.get_tenant(db, args.tenant)


def box(settings: Settings) -> SecretBox:
    """The box upstream and provider keys are sealed in."""
    return SecretBox(derive_key(settings.secret_key, "upstream-secrets"))


def owner_label(tenant: Tenant | None) -> str:
    return "the platform" if tenant is None else f"tenant {tenant.name}"


def print_json(doc: Any) -> None:
    """A document (msgspec structs, lists, dicts) as indented JSON on stdout."""
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(doc), indent=2).decode() + "\n")


def json_object(text: str | None, flag: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{flag}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{flag}: must be a JSON object")
    return value


def stdin_line(what: str) -> str:
    """One line of standard input (a piped secret); an empty or closed input is refused, naming ``what``."""
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise InvalidRequest(f"{what}: standard input was empty")
    return line


def read_upstream_key(args: argparse.Namespace) -> str | None:
    """The upstream key of ``--api-key-stdin`` or ``--api-key-env``; None when neither was given."""
    if args.api_key_stdin:
        return stdin_line("--api-key-stdin").strip()
    if args.api_key_env:
        value = os.environ.get(args.api_key_env)
        if not value:
            raise InvalidRequest(f"--api-key-env: environment variable {args.api_key_env} is not set")
        return value
    return None


def headers(values: list[str]) -> dict[str, str]:
    """``--header NAME:VALUE`` flags as a dict; a lone ``--header ''`` is none at all."""
    out: dict[str, str] = {}
    for item in values:
        if not item.strip() and len(values) == 1:
            return {}
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise InvalidRequest(f"--header {item!r}: expected NAME:VALUE")
        out[name.strip()] = value.strip()
    return out


NEVER = "never"
"""``--expires never``: no expiry."""


def parse_expiry(value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time (UTC when it names no zone); ``never`` or empty is no expiry."""
    if not value or value == NEVER:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"--expires {value!r}: not an ISO 8601 date-time (or 'never')") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def pairs(text: str, flag: str) -> dict[str, str]:
    """``NAME=VALUE,NAME=VALUE`` as a dict (empty text: none)."""
    out: dict[str, str] = {}
    for item in filter(None, (i.strip() for i in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InvalidRequest(f"{flag} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def aliases(values: list[str]) -> list[tuple[str, str]]:
    """``--alias PATTERN=MODEL`` flags; a lone ``--alias ''`` is none at all."""
    if values == [""]:
        return []
    out = []
    for item in values:
        pattern, sep, model = item.partition("=")
        if not sep or not pattern.strip() or not model.strip():
            raise InvalidRequest(f"--alias {item!r}: expected PATTERN=MODEL")
        out.append((pattern.strip(), model.strip()))
    return out


def globs(text: str) -> list[str]:
    """``--models G,G``: comma-separated globs; empty text allows every model."""
    return [m.strip() for m in text.split(",") if m.strip()]


def table(rows: Sequence[Sequence[str]]) -> None:
    """Rows as left-aligned columns (the first row is the header)."""
    if len(rows) <= 1:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"
