"""Incremental Server-Sent Events decoding and encoding: bytes in, events out, no I/O.

The decoder follows the WHATWG event-stream rules that matter for LLM streams: LF, CRLF and
CR line endings, comment lines (``: keep-alive``), multi-line ``data:`` fields joined by
``\\n``, and UTF-8 sequences split across network chunks. It keeps at most
``max_event_bytes`` of pending data so a hostile upstream cannot grow our memory without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SSEDecoder", "SSEError", "SSEEvent", "encode_event", "leading_run"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its ``event:`` name (None when absent) and its joined ``data:``.

    ``payload`` is the decoded JSON when a converter made the event itself, so the next converter in a
    chain need not decode what the previous one just encoded (``data`` may then be empty).
    """

    event: str | None
    data: str
    payload: Any = field(default=None, compare=False, repr=False)


class SSEError(ValueError):
    """The byte stream cannot be an event stream (an event larger than the limit)."""


def encode_event(data: str | bytes, event: str | None = None) -> bytes:
    """Frame one event. ``data`` must not contain newlines (JSON from msgspec never does)."""
    payload = data if isinstance(data, bytes) else data.encode()
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


def is_utf8(raw: bytes) -> bool:
    """Whether ``raw`` is valid UTF-8. A fast lane passes only such events on as they came: the decoder
    replaces bad bytes, and the lanes must send what the event path sends."""
    if raw.isascii():
        return True
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def leading_run(chunk: bytes, plain: Callable[[bytes], bool]) -> tuple[int, int]:
    """End offset and count of the whole events at the start of ``chunk`` that ``plain`` accepts.

    The fast lanes' splitter: a tap relays (or converts) such events as bytes, without the decoder.
    The caller offers ``chunk`` only when the decoder holds nothing, so ``chunk`` starts an event.
    """
    end = n = 0
    while (stop := chunk.find(b"\n\n", end)) != -1 and plain(chunk[end:stop]):
        end, n = stop + 2, n + 1
    return end, n


class SSEDecoder:
    """Feed raw chunks, get complete events. Call :meth:`finish` at end of stream."""

    __slots__ = ("_buf", "_data", "_event", "_max", "_pending_cr", "_size")

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._data: list[str] = []
        self._event: str | None = None
        self._max = max_event_bytes
        self._size = 0
        self._pending_cr = False

    @property
    def idle(self) -> bool:
        """Between events: the next chunk starts a fresh one (nothing buffered or half-read)."""
        return not self._buf and not self._data and self._event is None and not self._pending_cr

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._pending_cr = False
        self._buf += chunk
        out: list[SSEEvent] = []
        buf = self._buf
        if b"\r" not in buf:
            return self._feed_lf(buf, out)
        start = 0
        n = len(buf)
        while start < n:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start)
            if lf == -1 and cr == -1:
                break
            if cr != -1 and (lf == -1 or cr < lf):
                end, nxt = cr, cr + 1
                if nxt < n and buf[nxt] == 0x0A:
                    nxt += 1
                elif nxt == n:
                    self._pending_cr = True
            else:
                end, nxt = lf, lf + 1
            self._line(bytes(buf[start:end]), out)
            start = nxt
        del buf[:start]
        if len(buf) + self._size > self._max:
            raise SSEError(f"event larger than {self._max} bytes")
        return out

    def _feed_lf(self, buf: bytearray, out: list[SSEEvent]) -> list[SSEEvent]:
        """The common case (LF line endings only): one C-level split instead of a search per line."""
        last = buf.rfind(b"\n")
        if last != -1:
            lines = bytes(buf[:last]).split(b"\n")
            del buf[: last + 1]
            for line in lines:
                self._line(line, out)
        if len(buf) + self._size > self._max:
            raise SSEError(f"event larger than {self._max} bytes")
        return out

    def finish(self) -> list[SSEEvent]:
        """Flush a final line without terminator and a final event without blank line."""
        out: list[SSEEvent] = []
        if self._buf:
            self._line(bytes(self._buf), out)
            self._buf.clear()
        self._line(b"", out)
        return out

    def _line(self, raw: bytes, out: list[SSEEvent]) -> None:
        if not raw:
            if self._data:
                out.append(SSEEvent(self._event, "\n".join(self._data)))
            self._data = []
            self._event = None
            self._size = 0
            return
        if raw[:1] == b":":
            return
        line = raw.decode("utf-8", errors="replace")
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._size += len(raw)
            if self._size > self._max:
                raise SSEError(f"event larger than {self._max} bytes")
        elif name == "event":
            self._event = value
