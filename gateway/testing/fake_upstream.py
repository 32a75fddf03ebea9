"""A scriptable fake LLM upstream: a real aiohttp server on loopback speaking both dialects.

Routes on the path suffix, so any base URL prefix works: ``…/chat/completions`` and ``…/responses``
(OpenAI; the latter built by :mod:`gateway.testing.fake_responses`), ``…/messages`` and
``…/messages/count_tokens`` (Anthropic), ``…/models`` (either; Anthropic shape when the request
carries ``anthropic-version``). Completion requests consume one queued
:class:`Reply` each (FIFO), else the default reply (echo). A request header
``x-fake-reply: <Reply.header_value()>`` scripts that one request without touching the queue.

Sync tests: ``fake = FakeUpstream().start()`` (own thread and loop) … ``fake.stop()``; async
tests: ``await fake.astart()`` … ``await fake.astop()``. Benchmarks:
``python -m gateway.testing.fake_upstream --port 9100``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aiohttp import web

from gateway.testing import fake_legacy
from gateway.testing.fake_batches import FakeBatches
from gateway.testing.fake_replies import (
    Reply,
    ToolCall,
    anthropic_error_body,
    anthropic_message,
    anthropic_stream,
    estimate_input_tokens,
    openai_completion,
    openai_error_body,
    openai_stream,
    reply_from_json,
)
from gateway.testing.fake_responses import responses_object, responses_stream

__all__ = ["FakeUpstream", "RecordedRequest", "Reply", "ToolCall"]

Dialect = Literal["openai", "anthropic"]
JSON = dict[str, Any]
_CREATED = 1_700_000_000
# Completion route kind -> (JSON body builder, SSE frames builder); each consumes one queued Reply.
_BUILDERS: dict[str, tuple[Callable[[Reply, JSON], JSON], Callable[[Reply, JSON], list[bytes]]]] = {
    "openai": (openai_completion, openai_stream),
    "anthropic": (anthropic_message, anthropic_stream),
    "responses": (responses_object, responses_stream),
    "embeddings": (fake_legacy.embeddings, fake_legacy.no_stream),
    "completions": (fake_legacy.text_completion, fake_legacy.text_completion_stream),
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it; ``headers`` keys are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any

    @property
    def credential(self) -> str:
        """The key the request carried: OpenAI's bearer token or Anthropic's ``x-api-key``."""
        bearer = self.headers.get("authorization", "")
        return bearer.removeprefix("Bearer ").strip() if bearer else self.headers.get("x-api-key", "")


def _json_response(obj: JSON, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=msgspec.json.encode(obj), headers=hdrs)


class FakeUpstream:
    """The server. Thread-safe scripting: ``enqueue``/``set_default``/``requests``/``reset``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.models: list[str] = ["fake-model"]
        self.batches = FakeBatches()
        self.max_output_tokens: int | None = None
        """When set, a Chat Completions request asking for more answers 400 in DeepSeek's words."""
        self._lock = threading.Lock()
        self._queue: collections.deque[Reply] = collections.deque()
        self._by_key: dict[str, Reply] = {}
        self._default = Reply()
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._cancelled = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ scripting

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def set_default(self, reply: Reply) -> None:
        with self._lock:
            self._default = reply

    def script_key(self, credential: str, reply: Reply | None) -> None:
        """Every completion carrying ``credential`` gets ``reply`` (before the queue); None: no longer."""
        with self._lock:
            if reply is None:
                self._by_key.pop(credential, None)
            else:
                self._by_key[credential] = reply

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def cancelled(self) -> int:
        return self._cancelled

    def reset(self) -> None:
        """Clear the queue, the default, recorded requests and the ``cancelled`` counter."""
        with self._lock:
            self._queue.clear()
            self._by_key.clear()
            self._default = Reply()
            self._requests.clear()
            self._cancelled = 0
            self.max_output_tokens = None

    def _next_reply(self, record: RecordedRequest) -> Reply:
        with self._lock:
            keyed = self._by_key.get(record.credential)
            if keyed is not None:
                return keyed
            return self._queue.popleft() if self._queue else self._default

    # ------------------------------------------------------------ lifecycle

    async def astart(self) -> FakeUpstream:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        return self

    async def astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> FakeUpstream:
        """Serve from a background thread with its own event loop; returns once listening."""
        loop = asyncio.new_event_loop()
        started: list[BaseException | None] = []
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.astart())
                started.append(None)
            except BaseException as exc:
                started.append(exc)
                return
            finally:
                ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        ready.wait()
        if started[0] is not None:
            loop.close()
            raise started[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.astop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeUpstream:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # ------------------------------------------------------------ serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        parsed: Any = None
        with contextlib.suppress(msgspec.DecodeError):
            parsed = msgspec.json.decode(raw) if raw else None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=raw,
            json=parsed,
        )
        with self._lock:
            self._requests.append(record)

        path = request.path.rstrip("/")
        if "/messages/batches" in path:
            return self.batches.handle(request, parsed, self.url)
        kind, dialect = self._classify(path, request)
        override = request.headers.get("x-fake-reply")
        try:
            scripted = reply_from_json(override) if override else None
        except (ValueError, TypeError, KeyError, IndexError, msgspec.DecodeError) as exc:
            return self._error(dialect, 400, f"bad x-fake-reply header: {exc}", None, {})
        limit = self.max_output_tokens
        if limit is not None and kind == "openai" and isinstance(parsed, dict):
            asked = parsed.get("max_completion_tokens") or parsed.get("max_tokens")
            if isinstance(asked, int) and asked > limit:  # refused before the queue is touched
                message = f"Invalid max_tokens value, the valid range of max_tokens is [1, {limit}]"
                return self._error(dialect, 400, message, "invalid_request_error", {})
        # Only completions consume the queue; other paths honour the header (status, delay, …).
        reply = scripted or (self._next_reply(record) if kind in _BUILDERS else Reply())
        if reply.delay_s > 0:
            await asyncio.sleep(reply.delay_s)
        rid = "request-id" if dialect == "anthropic" else "x-request-id"
        headers = {rid: f"req_{secrets.token_hex(12)}", **reply.headers}
        if reply.body is not None:
            ctype = reply.content_type or "application/json"
            return web.Response(status=reply.status, body=reply.body, headers={"Content-Type": ctype, **headers})
        if reply.status != 200:
            message = reply.text or f"fake upstream error (status {reply.status})"
            return self._error(dialect, reply.status, message, reply.error_type, headers)
        if kind == "unknown":
            return self._error(dialect, 404, f"no route for {request.method} {request.path}", None, headers)
        if kind == "models":
            return self._models(dialect, path, headers)
        if request.method != "POST" or not isinstance(parsed, dict):
            return self._error(dialect, 400, "expected a POST with a JSON object body", None, headers)
        if kind == "count":
            return _json_response({"input_tokens": estimate_input_tokens(parsed)}, headers=headers)
        build_json, build_stream = _BUILDERS[kind]
        if parsed.get("stream"):
            return await self._stream(request, reply, build_stream(reply, parsed), headers)
        return _json_response(build_json(reply, parsed), headers=headers)

    @staticmethod
    def _classify(path: str, request: web.Request) -> tuple[str, Dialect]:
        header_dialect: Dialect = "anthropic" if "anthropic-version" in request.headers else "openai"
        if path.endswith("/messages/count_tokens"):
            return "count", "anthropic"
        if path.endswith("/messages"):
            return "anthropic", "anthropic"
        if path.endswith("/chat/completions"):
            return "openai", "openai"
        if path.endswith("/responses"):
            return "responses", "openai"
        if path.endswith("/embeddings"):
            return "embeddings", "openai"
        if path.endswith("/completions"):
            return "completions", "openai"
        if request.method == "GET" and (path.endswith("/models") or "/models/" in path):
            return "models", header_dialect
        return "unknown", header_dialect

    def _models(self, dialect: Dialect, path: str, headers: dict[str, str]) -> web.Response:
        wanted = path.rpartition("/models/")[2] if "/models/" in path else None
        ids = [m for m in self.models if wanted is None or m == wanted]
        if wanted is not None and not ids:
            return self._error(dialect, 404, f"The model '{wanted}' does not exist", None, headers)
        if dialect == "anthropic":
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in ids]
            first, last = (ids[0], ids[-1]) if ids else (None, None)
            listing = {"data": data, "has_more": False, "first_id": first, "last_id": last}
            return _json_response(data[0] if wanted is not None else listing, headers=headers)
        objs = [{"id": m, "object": "model", "created": _CREATED, "owned_by": "fake"} for m in ids]
        return _json_response(objs[0] if wanted is not None else {"object": "list", "data": objs}, headers=headers)

    @staticmethod
    def _error(dialect: Dialect, status: int, message: str, etype: str | None, headers: dict[str, str]) -> web.Response:
        if dialect == "anthropic":
            return _json_response(anthropic_error_body(status, message, etype), status, headers)
        return _json_response(openai_error_body(status, message, etype), status, headers)

    async def _stream(
        self, request: web.Request, reply: Reply, events: list[bytes], headers: dict[str, str]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
        )
        with self._lock:
            self._in_flight += 1
        try:
            await resp.prepare(request)
            for i, event in enumerate(events):
                if reply.cut_after is not None and i >= reply.cut_after:
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                if i and reply.chunk_delay_s > 0:
                    await asyncio.sleep(reply.chunk_delay_s)
                await resp.write(event)
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            with self._lock:
                self._cancelled += 1
            raise
        finally:
            with self._lock:
                self._in_flight -= 1
        return resp


def main(argv: list[str] | None = None) -> None:
    """Serve forever with the default echo reply (for benchmarks)."""
    parser = argparse.ArgumentParser(prog="python -m gateway.testing.fake_upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--model", action="append", dest="models", help="model id to list (repeatable)")
    parser.add_argument("--chunks", type=int, default=4, help="stream chunks per answer")
    parser.add_argument("--text", default=None, help="answer text (default: echo the prompt)")
    parser.add_argument("--usage", default="20,16", help="INPUT,OUTPUT tokens reported")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between stream events")
    args = parser.parse_args(argv)
    usage_in, _, usage_out = args.usage.partition(",")

    async def serve() -> None:
        fake = FakeUpstream(args.host, args.port)
        if args.models:
            fake.models = list(args.models)
        fake.set_default(
            Reply(
                text=args.text,
                chunks=args.chunks,
                usage=(int(usage_in), int(usage_out)),
                chunk_delay_s=args.chunk_delay,
            )
        )
        await fake.astart()
        sys.stderr.write(f"fake upstream listening on {fake.url}\n")
        try:
            await asyncio.Event().wait()
        finally:
            await fake.astop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
