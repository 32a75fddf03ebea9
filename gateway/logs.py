"""Log lines: one JSON object per line (``RELAY_LOG_FORMAT=json``) or readable text, for Relay and uvicorn.

A JSON line has ``ts`` (UTC, ISO 8601, milliseconds), ``level``, ``logger`` and ``message``, then the
record's structured fields: the mapping a caller passes as ``extra={"fields": {...}}`` (the request
line, ``metering.base.request_log_line``) becomes top-level keys, and so do other ``extra`` values.
An exception is one ``exc`` string (its traceback, newlines escaped), never extra lines.

``dict_config`` is what ``relay serve`` installs before anything is printed and hands to uvicorn as its
``log_config`` (uvicorn applies it again in each worker); ``litestar_config`` is the application's own
(it reconfigures the ``relay`` and ``litestar`` loggers when the app is built, through Litestar's
non-blocking queue handler) with the same formatter.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import msgspec
from litestar.logging.config import LoggingConfig

from gateway.settings import Settings

FIELDS = "fields"
"""The ``extra`` key whose mapping a formatter spreads into the line."""

_STANDARD = frozenset(
    (*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime", "taskName", "color_message")
)
"""Attributes every record has (and uvicorn's coloured copy of its message): not structured fields."""
_ACCESS_ARGS = ("client", "method", "path", "http_version", "status")
"""What uvicorn's access logger passes as arguments, named."""
_encode = msgspec.json.Encoder(enc_hook=str).encode


def structured(record: logging.LogRecord) -> dict[str, Any]:
    """The record's structured fields: its ``fields`` mapping and any other ``extra`` value."""
    out: dict[str, Any] = {}
    for name, value in record.__dict__.items():
        if name == FIELDS and isinstance(value, Mapping):
            out.update(value)
        elif name not in _STANDARD and not name.startswith("_"):
            out[name] = value
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == len(_ACCESS_ARGS):
        out.update(zip(_ACCESS_ARGS, record.args, strict=True))
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = structured(record)
        doc: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": str(fields.get("event", "")) if _message_is_fields(record) else record.getMessage(),
        }
        for name, value in fields.items():
            doc.setdefault(name, value)  # a field never overwrites ts, level, logger or message
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return _encode(doc).decode()


class TextFormatter(logging.Formatter):
    """Readable lines for development: ``time LEVEL logger: message key=value …`` (then any traceback)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        given = record.__dict__.get(FIELDS)
        if isinstance(given, Mapping):
            pairs = " ".join(f"{k}={_text(v)}" for k, v in given.items() if k != "event" and v not in (None, "", []))
            head = str(given.get("event", "")) if _message_is_fields(record) else record.message
            record.message = f"{head} {pairs}".strip()
        return super().formatMessage(record)


def _message_is_fields(record: logging.LogRecord) -> bool:
    """The record's message is its fields as JSON (``metering.base.LogJson``): say the event name instead."""
    given = record.__dict__.get(FIELDS)
    args = record.args
    return (
        isinstance(given, Mapping)
        and isinstance(args, tuple)
        and len(args) == 1
        and getattr(args[0], "fields", None) is given
    )


def announce(settings: Settings, message: str, *, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """A line for the operator (the first admin's password, where Relay listens, why it cannot start).

    Text: ``message`` printed as is (standard output; standard error from ``ERROR`` up), flushed: under
    a process manager or a pipe, output is block-buffered and the password would wait. JSON: one log
    record of the ``relay`` logger, with ``event`` and ``fields``.
    """
    if use_json(settings):
        logging.getLogger("relay").log(level, "%s", message, extra={FIELDS: {"event": event, **fields}})
    else:
        print(message, file=sys.stderr if level >= logging.ERROR else sys.stdout, flush=True)


def use_json(settings: Settings) -> bool:
    return settings.log_format_resolved == "json"


def formatter_spec(settings: Settings) -> dict[str, Any]:
    return {"()": f"{__name__}.{'JsonFormatter' if use_json(settings) else 'TextFormatter'}"}


def dict_config(settings: Settings) -> dict[str, Any]:
    """``logging.config.dictConfig`` for the whole process: Relay, Litestar, uvicorn, and the root logger.

    Everything goes to standard error through one formatter (warnings and other libraries' records too,
    at WARNING and above), so in JSON mode no line of the process is anything but JSON.
    """
    level = settings.log_level.upper()
    one = {"handlers": ["relay"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"relay": formatter_spec(settings)},
        "handlers": {"relay": {"class": "logging.StreamHandler", "formatter": "relay", "stream": "ext://sys.stderr"}},
        "loggers": {
            "relay": one,
            "litestar": one,
            "uvicorn": one,
            "uvicorn.error": {"level": level},  # propagates to "uvicorn"
            "uvicorn.access": one,
        },
        "root": {"handlers": ["relay"], "level": "WARNING"},
    }


def configure(settings: Settings) -> dict[str, Any]:
    """Install ``dict_config`` in this process (and route warnings and uncaught exceptions through it)."""
    config = dict_config(settings)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    if use_json(settings):
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread_uncaught
    return config


def litestar_config(settings: Settings) -> LoggingConfig:
    """The application's logging: the ``relay`` and ``litestar`` loggers through Litestar's queue handler."""
    level = settings.log_level.upper()
    if use_json(settings):
        logging.captureWarnings(True)  # a spawned worker's warnings are log records too, not plain text
    return LoggingConfig(
        log_exceptions="always" if settings.development else "debug",
        configure_root_logger=False,
        formatters={"standard": formatter_spec(settings)},
        loggers={
            "relay": {"level": level, "handlers": ["queue_listener"], "propagate": False},
            "litestar": {"level": "INFO", "handlers": ["queue_listener"], "propagate": False},
        },
    )


def _iso(created: float) -> str:
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


def _text(value: object) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else repr(value)
    if isinstance(value, list | tuple | dict):
        return _encode(value).decode()
    return str(value)


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("relay").critical("uncaught %s", kind.__name__, exc_info=(kind, exc, tb))


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        logging.getLogger("relay").critical(
            "uncaught %s in thread %s",
            args.exc_type.__name__,
            getattr(args.thread, "name", "?"),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )
