"""uvicorn, hardened for clients that misbehave and for draining (issue 12, item 7).

- **Header deadline.** A connection must complete each request's headers within
  ``HEADER_TIMEOUT_S`` of connecting or of the request's first byte, or it is closed (uvicorn has
  none: a client sending half a request line held its connection for good). Bodies have their own
  deadline in ``api/asgi.BodyDeadline``; idle keep-alive connections close after
  ``RELAY_KEEPALIVE_TIMEOUT`` (uvicorn's ``timeout_keep_alive``).
- **A cap on connections.** At ``RELAY_MAX_CONNECTIONS`` open connections per worker (uvicorn's
  ``limit_concurrency``, which also answers 503 past that many requests in flight), a new
  connection is closed at once, whether the others are busy or idle.
- **Proxies.** ``X-Forwarded-For``/``-Proto`` are read only from ``RELAY_FORWARDED_ALLOW_IPS`` (alias:
  ``RELAY_TRUSTED_PROXIES``; ``proxy_options``).
- **Drain.** The first ``shutdown`` uvicorn calls on a connection starts the app's ``Drain`` (open
  streams end with an error event before the grace runs out), and the multi-worker supervisor
  closes its copy of the listening socket and stops its workers inside the SIGTERM handler
  (``DrainingMultiprocess``): new connections are refused at once.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from types import FrameType
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

from gateway.drain import DRAIN_STATE, Drain
from gateway.settings import Settings

HEADER_TIMEOUT_S = 15.0


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy settings: forwarded headers only from ``RELAY_FORWARDED_ALLOW_IPS``, none by default.

    From a listed proxy, ``X-Forwarded-For`` sets the client address (the sign-in throttle, the request
    log's ``client_ip``) and ``X-Forwarded-Proto`` the scheme (``Secure`` session cookies behind TLS).
    (uvicorn's own default trusts 127.0.0.1, so anyone on the host, or a sidecar, could claim any
    client IP past the per-IP sign-in throttle.)
    """
    trusted = settings.trusted_proxies
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or None}


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self.config.limit_concurrency
        if cap is not None and len(self.connections) >= cap:
            transport.close()
            return
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        drain = self.app_state.get(DRAIN_STATE)
        if isinstance(drain, Drain):
            drain.begin(float(self.config.timeout_graceful_shutdown or 0))
        super().shutdown()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class DrainingMultiprocess(Multiprocess):
    """uvicorn's worker supervisor, acting on SIGTERM (or SIGINT) inside the signal handler.

    uvicorn's own handler only queues the signal, and its loop reads the queue every half second,
    after pinging every worker and waiting for each answer. Under load the supervisor's copy of the
    listening socket stayed open, and the workers learned of the stop, a second or more into the
    drain, so the kernel still accepted new connections for processes that would never serve them.
    Here the handler closes that socket at once and, on SIGTERM, forwards it to every worker (each
    closes its own copy on its next 0.1 s tick): new connections are refused at once. A terminal's
    Ctrl-C reaches the workers by itself, and a second SIGINT would make them quit without draining,
    so SIGINT is not forwarded early.
    """

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self._stopping = False
        self._signalled: set[int] = set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_signal)

    def _stop_signal(self, sig: int, frame: FrameType | None) -> None:
        self._stopping = True
        for sock in self.sockets:
            sock.close()
        if sig == signal.SIGTERM:
            self._terminate_unsignalled()
        self.signal_queue.append(sig)  # uvicorn's loop then sets should_exit and joins the workers

    def terminate_all(self) -> None:
        self._terminate_unsignalled()

    def keep_subprocess_alive(self) -> None:
        if self._stopping:
            return  # a worker that ends now is draining or done, not to be replaced
        super().keep_subprocess_alive()

    def _terminate_unsignalled(self) -> None:
        """SIGTERM each worker once: a second signal would not shorten a worker's graceful drain, so none is sent."""
        for process in self.processes:
            if process.pid is not None and process.pid not in self._signalled:
                self._signalled.add(process.pid)
                process.terminate()
