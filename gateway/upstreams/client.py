"""The process-wide aiohttp session and the one function that sends a request upstream."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

import aiohttp

from gateway.errors import UpstreamTimeout, UpstreamUnavailable


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


def create_session(limit: int = 1000) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    # The session never follows redirects and keeps no cookies: upstream responses are data, not instructions.
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
    )


async def send(session: aiohttp.ClientSession, req: UpstreamRequest, timeouts: Timeouts) -> aiohttp.ClientResponse:
    """POST and wait for the response headers; connection failures become gateway errors.

    The wait for headers is bounded by ``min(first_byte_s, idle_s)``: aiohttp's read timeout covers it,
    and a separate timer runs only when the first-byte limit is the shorter one.
    """
    timeout = timeouts.aiohttp_timeout()
    try:
        if timeouts.first_byte_s < timeouts.idle_s:
            async with asyncio.timeout(timeouts.first_byte_s):
                return await session.post(
                    req.url, data=req.body, headers=req.headers, timeout=timeout, allow_redirects=False
                )
        return await session.post(req.url, data=req.body, headers=req.headers, timeout=timeout, allow_redirects=False)
    except TimeoutError:
        raise UpstreamTimeout("upstream did not answer in time") from None
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnavailable(f"cannot connect to upstream ({type(exc).__name__})") from None
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable(f"upstream connection failed ({type(exc).__name__})") from None


async def read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, bounded: an upstream may be hostile (API10 of OWASP's API top ten)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise UpstreamUnavailable(f"upstream response larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
