"""Running a parsed command: settings, a database session, one clear error line on any failure.

Whatever goes wrong, the user sees one line on stderr, ``relay: error: …``, and a non-zero status; never
a traceback (an unexpected error names its type, so a bug report still says what happened).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from gateway.errors import GatewayError
from gateway.settings import Settings, SettingsError

INTERRUPTED = 130
"""The shell's status for a command ended by Ctrl-C (128 + SIGINT)."""


def run(args: argparse.Namespace) -> int:
    handler: Callable[..., Any] = args.handler
    try:
        settings = Settings.from_env()
        result = handler(args, settings)
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
        return int(result or 0)
    except KeyboardInterrupt:
        return _fail("interrupted", INTERRUPTED)
    except (GatewayError, SettingsError, ValueError) as exc:
        return _fail(str(getattr(exc, "message", exc)))
    except IntegrityError:  # a concurrent command took the name between our check and our insert
        return _fail("conflicts with an existing object (a name already taken?)")
    except (OperationalError, DBAPIError, OSError) as exc:
        return _fail(f"database unavailable ({type(exc).__name__}: {_first_line(exc)})")
    except EOFError:
        return _fail("standard input ended before the command had read what it needs")
    except Exception as exc:  # the promise above: one line, whatever it is
        return _fail(f"unexpected {type(exc).__name__}: {_first_line(exc)}")


def _fail(message: str, status: int = 1) -> int:
    print(f"relay: error: {' '.join(message.split())}", file=sys.stderr)
    return status


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:200] if text else ""
