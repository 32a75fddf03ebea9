"""The search backend: a SearXNG-shaped JSON endpoint (``RELAY_WEB_SEARCH_URL``), behind the SSRF guard.

SSRF: the URL is the operator's own setting, so it is trusted like a platform upstream: exactly its host
and port are admitted (a SearXNG on loopback or a private network is the common setup). Nothing else is
reachable: the session is ``gateway.ssrf.guarded_session`` with an allowlist of that one origin, so a
redirect (never followed anyway) or any other URL is refused, no environment proxy is used, and the
model's query only ever travels in the query string. Each search has its own timeout and a 1 MiB cap on
the answer; any failure is an Anthropic error code for the model (``SearchFailed``), never a 5xx.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from gateway.ssrf import Allowlist, guarded_session
from gateway.websearch.blocks import Hit

__all__ = ["SearchBackend", "SearchFailed", "parse_results", "search_origin"]

log = logging.getLogger("relay.websearch")
MAX_ANSWER_BYTES = 1024 * 1024
_decode = msgspec.json.Decoder().decode


class SearchFailed(Exception):
    """A search that gave no results; ``code`` is Anthropic's ``web_search_tool_result_error`` code."""

    def __init__(self, code: str, why: str) -> None:
        super().__init__(why)
        self.code = code


def search_origin(url: str) -> URL:
    """The configured URL, checked: http(s) with a host and no user info; raises ValueError."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise ValueError("RELAY_WEB_SEARCH_URL must be an http:// or https:// URL with a host")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise ValueError("RELAY_WEB_SEARCH_URL must not carry user information; use RELAY_WEB_SEARCH_KEY")
    return parsed


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse_results(doc: Any) -> list[Hit]:
    """SearXNG's ``{"results": [{"url", "title", "content", "publishedDate"}]}`` → hits (junk skipped)."""
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, list):
        raise SearchFailed("unavailable", "the search backend answered without a results list")
    hits: list[Hit] = []
    for item in results:
        if not isinstance(item, dict) or not _text(item.get("url")):
            continue
        published = _text(item.get("publishedDate"))[:64] or None
        hits.append(Hit(_text(item["url"]), _text(item.get("title")), _text(item.get("content")), published))
    return hits


class SearchBackend:
    """One search per call; make it inside a running event loop (the session needs one)."""

    def __init__(self, url: str, key: str = "", *, timeout_s: float = 10.0, price_usd_per_1000: float = 0.0) -> None:
        self.url = search_origin(url)
        host = self.url.raw_host or ""
        origin = f"[{host}]:{self.url.port}" if ":" in host else f"{host}:{self.url.port}"
        self._session = guarded_session(Allowlist.parse(origin), limit=100)
        self._headers = {"Accept": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.timeout_s = timeout_s
        self.micro_usd_per_search = round(price_usd_per_1000 * 1000)
        """USD per 1,000 searches is micro-USD per search x 1,000 / 1,000,000: x 1,000."""

    async def search(self, query: str) -> list[Hit]:
        url = self.url.update_query({"q": query, "format": "json"})
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._session.get(
                    url, headers=self._headers, timeout=self._timeout, allow_redirects=False
                ) as resp:
                    if resp.status == 429:
                        raise SearchFailed("too_many_requests", "the search backend is rate limited")
                    if resp.status != 200:
                        raise SearchFailed("unavailable", f"the search backend answered HTTP {resp.status}")
                    raw = await resp.content.read(MAX_ANSWER_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("web search failed: %s", type(exc).__name__)
            raise SearchFailed("unavailable", f"the search backend did not answer ({type(exc).__name__})") from None
        except SearchFailed as exc:
            log.warning("web search failed: %s", exc)
            raise
        if len(raw) > MAX_ANSWER_BYTES:
            raise SearchFailed("unavailable", "the search backend's answer is too large")
        try:
            return parse_results(_decode(raw))
        except (msgspec.DecodeError, RecursionError):
            raise SearchFailed("unavailable", "the search backend's answer is not JSON") from None

    async def close(self) -> None:
        await self._session.close()
