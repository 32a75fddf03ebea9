"""The baseline: a bare Litestar + aiohttp relay with no auth, routing or metering.

``python bench/bare_relay.py --port P --upstream URL [--server uvicorn|granian]`` forwards both
doors to the fake upstream. The benchmark measures it in the same run as Relay, so the ratio is
honest on a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import uvicorn
from litestar import Litestar, Request, Response, post
from litestar.response import Stream

UPSTREAM = os.environ.get("BARE_RELAY_UPSTREAM", "").rstrip("/")
_session: aiohttp.ClientSession | None = None


async def _forward(request: Request[Any, Any, Any], path: str) -> Response[bytes] | Stream:
    assert _session is not None
    body = await request.body()
    resp = await _session.post(UPSTREAM + path, data=body, headers={"content-type": "application/json"})
    if b'"stream":true' not in body.replace(b" ", b""):
        data = await resp.read()
        resp.release()
        return Response(data, status_code=resp.status, media_type="application/json")

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.content.iter_any():
                yield chunk
        finally:
            resp.release()

    return Stream(chunks(), media_type="text/event-stream")


@post("/v1/messages", status_code=200)
async def messages(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    return await _forward(request, "/v1/messages")


@post("/v1/chat/completions", status_code=200)
async def chat(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    return await _forward(request, "/v1/chat/completions")


async def _start() -> None:
    global _session
    _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))


async def _stop() -> None:
    if _session is not None:
        await _session.close()


def create_app() -> Litestar:
    return Litestar([messages, chat], on_startup=[_start], on_shutdown=[_stop], openapi_config=None)


def main() -> None:
    global UPSTREAM
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    args = parser.parse_args()
    UPSTREAM = args.upstream.rstrip("/")
    if args.server == "granian":
        env = {**os.environ, "BARE_RELAY_UPSTREAM": UPSTREAM, "PYTHONPATH": os.path.dirname(__file__)}
        cmd = [sys.executable, "-m", "granian", *GRANIAN_ARGS, "--port", str(args.port), "bare_relay:create_app"]
        raise SystemExit(subprocess.call(cmd, env=env))
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


GRANIAN_ARGS = [
    "--interface", "asgi", "--loop", "uvloop", "--workers", "1", "--runtime-mode", "st",
    "--host", "127.0.0.1", "--log-level", "warning", "--no-access-log", "--factory",
]  # fmt: skip
"""Granian as uvicorn is run: one worker, uvloop, no access log (its st and mt runtimes measured alike here)."""


if __name__ == "__main__":
    main()
