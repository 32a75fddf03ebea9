"""Plain-ASGI plumbing for the doors: read the body, send a JSON answer or a stream.

The doors are the hot path, so they skip the framework's request and response objects
(measured: a bare Litestar relay spends 0.28 ms of CPU per request, the same relay as plain
ASGI 0.19 ms). What the framework did for them is done here, once: the body-size limit,
header decoding, and cancelling a stream when its client goes away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from gateway.errors import GatewayError, RequestTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(Exception):
    """The client disconnected before its request body arrived: there is nobody to answer."""


BODY_TIMEOUT_S = 15.0
MIN_BODY_RATE = 64 * 1024
"""Bytes per second a client must keep up on average: a 32 MiB body may take 15 s + 8.5 min."""


class BodyTimeout(GatewayError):
    status_code = 408
    code = "request_timeout"
    should_retry = True


class BodyDeadline:
    """``receive`` with a deadline on the request body: ``BODY_TIMEOUT_S`` plus the declared size at ``MIN_BODY_RATE``.

    A client that declares 1,000 bytes and sends 1 is answered 408 after 15 s instead of holding a
    worker's connection for as long as it likes. Once the body is complete, ``receive`` is passed
    through untouched (a stream waits on it for the client's disconnect).
    """

    __slots__ = ("_deadline", "_done", "_receive")

    def __init__(self, receive: Receive, scope: Scope) -> None:
        size = 0
        for name, value in scope["headers"]:
            if name == b"content-length":
                size = int(value) if value.isdigit() else 0
                break
        self._receive = receive
        self._deadline = time.monotonic() + BODY_TIMEOUT_S + size / MIN_BODY_RATE
        self._done = False

    async def __call__(self) -> Message:
        if self._done:
            return await self._receive()
        try:
            async with asyncio.timeout(self._deadline - time.monotonic()):
                message = await self._receive()
        except TimeoutError:
            # The rest of the body may still come: the connection cannot carry another request.
            raise BodyTimeout("the request body did not arrive in time", headers={"connection": "close"}) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._done = True
        return message


def request_headers(scope: Scope) -> dict[str, str]:
    """Header names arrive lower-cased (ASGI); a repeated header keeps its first value."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return out


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"request body too large: the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"request body too large: the limit is {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _encoded(headers: dict[str, str], content_type: bytes) -> list[tuple[bytes, bytes]]:
    out = [(b"content-type", content_type)]
    out.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items() if k != "content-type")
    return out


async def send_json(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = _encoded(headers, b"application/json")
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_stream(receive: Receive, send: Send, headers: dict[str, str], chunks: AsyncIterator[bytes]) -> None:
    """Relay ``chunks`` as an event stream; a client that disconnects cancels it at once.

    The cancellation reaches the chunk source at its pending read, so it closes its upstream
    connection and meters the call (the relay's ``finally``).
    """
    task = asyncio.current_task()
    assert task is not None
    state = {"gone": False, "finished": False}

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not state["finished"]:
            state["gone"] = True
            task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _encoded(headers, b"text/event-stream")})
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        state["finished"] = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not state["gone"]:
            raise  # the server is stopping, not the client leaving
        task.uncancel()
    finally:
        state["finished"] = True
        watcher.cancel()
        await chunks.aclose()  # type: ignore[attr-defined]
