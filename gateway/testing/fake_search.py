"""A fake search backend speaking SearXNG's JSON API, on loopback (for ``gateway.websearch`` tests).

``GET /search?q=<query>&format=json`` answers ``{"query", "results": [{"url", "title", "content",
"publishedDate"}]}``: the results scripted for that query (``results[query]``), else ``default``.
``status`` / ``delay_s`` script failures; ``requests`` records what arrived (query and headers).

Sync tests: ``fake = FakeSearch().start()`` … ``fake.stop()`` (own thread and loop).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

__all__ = ["FakeSearch", "SearchRequest", "result"]


def result(n: int, query: str = "", *, domain: str = "example.com", date: str | None = "2026-11-30") -> dict[str, Any]:
    """A SearXNG result: ``https://<domain>/<n>``, a title and a snippet naming ``query``."""
    return {
        "url": f"https://{domain}/{n}",
        "title": f"Result {n} for {query}".strip(),
        "content": f"Snippet {n} about {query}.",
        "publishedDate": date,
        "engine": "fake",
    }


@dataclass(frozen=True)
class SearchRequest:
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeSearch:
    host: str = "127.0.0.1"
    port: int = 0
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    default: list[dict[str, Any]] | None = None
    """Results for a query not in ``results``; None: three ``result``s naming the query."""
    status: int = 200
    delay_s: float = 0.0
    _requests: list[SearchRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/search"

    @property
    def requests(self) -> list[SearchRequest]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self.results, self.default, self.status, self.delay_s = {}, None, 200, 0.0

    async def _handle(self, request: web.Request) -> web.Response:
        with self._lock:
            self._requests.append(
                SearchRequest(dict(request.query), {k.lower(): v for k, v in request.headers.items()})
            )
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="search backend error")
        query = request.query.get("q", "")
        found = self.results.get(query, self.default)
        hits = [result(n, query) for n in (1, 2, 3)] if found is None else found
        body = msgspec.json.encode({"query": query, "number_of_results": len(hits), "results": hits})
        return web.Response(body=body, content_type="application/json")

    async def astart(self) -> FakeSearch:
        app = web.Application()
        app.router.add_get("/search", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        return self

    async def astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> FakeSearch:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.astart())
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-search", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake search backend did not start")
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
