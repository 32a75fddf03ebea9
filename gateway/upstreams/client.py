"""The process-wide aiohttp session and the one function that sends a request upstream."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass

import aiohttp

from gateway.errors import UpstreamBlocked, UpstreamTimeout, UpstreamUnavailable
from gateway.ssrf import BlockedAddress, allowlist_entry

log = logging.getLogger("relay")


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 10.0
    first_byte_s: float = 120.0
    idle_s: float = 120.0
    total_s: float = 600.0
    keepalive_s: float = 15.0
    """Silence after which a stream gets a ping (Anthropic) or an SSE comment (OpenAI)."""

    def aiohttp_timeout(self) -> aiohttp.ClientTimeout:
        """aiohttp's read timeout starts when the request is sent, so it also bounds the wait for headers."""
        return _client_timeout(self.connect_s, self.idle_s)


@functools.lru_cache(maxsize=256)
def _client_timeout(connect_s: float, idle_s: float) -> aiohttp.ClientTimeout:
    # Built once per distinct setting: constructing one per request showed up at 3 % of a profile.
    return aiohttp.ClientTimeout(total=None, connect=connect_s, sock_connect=connect_s, sock_read=idle_s)


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"


def create_session(limit: int = 1000) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    # The session never follows redirects and keeps no cookies: upstream responses are data, not instructions.
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
    )


async def send(
    session: aiohttp.ClientSession, req: UpstreamRequest, timeouts: Timeouts, deadline: float | None = None
) -> aiohttp.ClientResponse:
    """Send (a POST unless ``req.method`` says otherwise) and wait for the response headers; connection
    failures become gateway errors.

    The wait for headers is bounded by ``min(first_byte_s, idle_s)`` and by ``deadline`` (the call's
    total limit, a ``time.monotonic()`` instant): aiohttp's read timeout covers ``idle_s``, and a
    separate timer runs only when one of the others is shorter.
    """
    timeout = timeouts.aiohttp_timeout()
    limit = timeouts.first_byte_s
    if deadline is not None:
        limit = min(limit, max(0.0, deadline - time.monotonic()))
    try:
        if limit < timeouts.idle_s:
            async with asyncio.timeout(limit):
                return await session.request(
                    req.method, req.url, data=req.body, headers=req.headers, timeout=timeout, allow_redirects=False
                )
        return await session.request(
            req.method, req.url, data=req.body, headers=req.headers, timeout=timeout, allow_redirects=False
        )
    except TimeoutError:
        if deadline is not None and time.monotonic() >= deadline:
            raise UpstreamTimeout("upstream call exceeded the total time limit") from None
        raise UpstreamTimeout("upstream did not answer in time") from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, BlockedAddress):
            log.warning("upstream %s refused by the SSRF guard: %s", exc.host, exc.os_error)
            raise UpstreamBlocked(
                f"upstream address not allowed: {exc.os_error}. An operator can allow it by starting Relay "
                f"with RELAY_UPSTREAM_ALLOWLIST={allowlist_entry(req.url)}"
            ) from None
        raise UpstreamUnavailable(f"cannot connect to upstream ({type(exc).__name__})") from None
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable(f"upstream connection failed ({type(exc).__name__})") from None


async def read_body(resp: aiohttp.ClientResponse, limit: int, deadline: float | None = None) -> bytes:
    """The whole body, bounded in size (an upstream may be hostile: API10 of OWASP's top ten) and by ``deadline``."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(None if deadline is None else max(0.0, deadline - time.monotonic())):
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise UpstreamUnavailable(f"upstream response larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        if deadline is not None and time.monotonic() >= deadline:
            raise UpstreamTimeout("upstream call exceeded the total time limit") from None
        raise  # aiohttp's read timeout: the caller says what it was reading
    return b"".join(chunks)
