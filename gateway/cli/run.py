"""Running a parsed command: settings, a database session, one clear error line on failure."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from gateway.errors import GatewayError
from gateway.settings import Settings, SettingsError


def run(args: argparse.Namespace) -> int:
    handler: Callable[..., Any] = args.handler
    try:
        settings = Settings.from_env()
        result = handler(args, settings)
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
        return int(result or 0)
    except (GatewayError, SettingsError, ValueError) as exc:
        print(f"relay: error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    except (OperationalError, DBAPIError, OSError) as exc:
        print(f"relay: error: database unavailable ({type(exc).__name__}: {_first_line(exc)})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:200] if text else ""
