"""``relay serve``: migrate (embedded) or check the schema (Postgres), create the first admin when there is
none, run uvicorn."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile

import sqlalchemy as sa
import uvicorn

from gateway import logs
from gateway.cli.uvicorn_guard import DrainingMultiprocess, GuardedHttpToolsProtocol, proxy_options
from gateway.db.migrate_lock import sqlite_schema_lock, transaction_schema_lock
from gateway.db.session import create_engine, create_sessionmaker, migrate, schema_behind
from gateway.db.tables import Tenant, User
from gateway.manage import accounts, tenants
from gateway.settings import Settings

FIRST_TENANT = "default"
FIRST_ADMIN = "admin@localhost"
STARTUP_FAILURE = 3
"""uvicorn's exit status when the app failed to start."""
WORKER_HEALTHCHECK_TIMEOUT_S = 30
"""How long the multi-worker supervisor waits for a worker's health-check answer before killing it.

uvicorn's default is 5 s, and its first ping comes half a second after a worker is spawned. A spawned
worker answers only once it has unpickled its target, which imports uvicorn and our protocol class, and
then it imports the whole app (about 2 s of CPU here, measured with ``bench/cli.py``). On a host busy
with other work (a CI run, a deploy starting every replica at once) that takes longer than 5 s, so the
supervisor killed workers that were still importing and started new ones that met the same fate: a crash
loop. 30 s covers a loaded two-core host; the price is that a truly hung worker is replaced after 30 s
instead of 5 s (a worker that dies is still replaced at once).
"""


async def _bootstrap(settings: Settings) -> str | None:
    """Create the first tenant and platform admin on an empty database; return the password, once.

    Replicas starting together on a fresh database serialise here on the schema lock (Postgres: an
    advisory lock for this transaction; SQLite: the caller holds the file lock), so exactly one creates
    the admin and prints its password; the others find it and return ``None``.
    """
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine).begin() as session:
            await transaction_schema_lock(session)
            if await session.scalar(sa.select(sa.func.count()).select_from(User)):
                return None
            tenant = await session.scalar(sa.select(Tenant).where(Tenant.name == FIRST_TENANT))
            if tenant is None:  # an operator may have created it with `relay tenants add` before the first serve
                tenant = await tenants.create_tenant(session, FIRST_TENANT, actor="relay serve")
            password = accounts.one_time_password()
            user = await tenants.create_user(
                session,
                tenant=tenant,
                email=FIRST_ADMIN,
                password=password,
                role="owner",
                platform_admin=True,
                actor="relay serve",
            )
            user.must_change_password = True
            return password
    finally:
        await engine.dispose()


def serve(settings: Settings, *, host: str | None, port: int | None, workers: int | None) -> int:
    """Run the gateway; logging (``RELAY_LOG_FORMAT``) is set up first, so every line it writes is in that format."""
    log_config = logs.configure(settings)
    if not logs.use_json(settings):
        return _serve(settings, log_config, host=host, port=port, workers=workers)
    try:  # JSON: a failure to start is one JSON line too, not the CLI's plain error line
        return _serve(settings, log_config, host=host, port=port, workers=workers)
    except Exception:
        logging.getLogger("relay").critical("relay serve could not start", exc_info=True)
        return STARTUP_FAILURE


def _serve(
    settings: Settings, log_config: dict[str, object], *, host: str | None, port: int | None, workers: int | None
) -> int:
    if settings.embedded:
        migrate(settings.database_url)  # embedded: migrates by itself
    elif behind := schema_behind(settings.database_url):
        # Postgres is migrated by `relay migrate` only (once per release: compose's migrate service, a
        # Kubernetes init container); serving on an old schema would fail request by request instead.
        logs.announce(settings, f"relay serve: {behind}", event="schema_behind", level=logging.ERROR)
        return STARTUP_FAILURE
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    os.environ["RELAY_WORKERS"] = str(workers)  # each worker's settings know how many share the limits
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here; /metrics on any worker sums them all.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="relay-metrics-")
    config = uvicorn.Config(
        "gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        log_config=log_config,  # uvicorn applies it again in each worker it spawns
        access_log=False,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT_S,
        limit_concurrency=settings.max_connections or None,
        **proxy_options(settings),
    )
    # The port first: a taken port must not be announced as listening, nor cost a first run's
    # one-time password (printed once, below).
    uvicorn_log = logging.getLogger("uvicorn.error")
    level = uvicorn_log.level
    uvicorn_log.setLevel(max(level, logging.WARNING))  # its "running on" line would come before the password
    try:
        sock = config.bind_socket()
    except SystemExit as exc:  # uvicorn logged the OSError and exits: the OSError is its context
        why = getattr(exc.__context__, "strerror", None) or "cannot bind"
        message = f"relay serve: cannot listen on {host}:{port}: {why.lower()}"
        logs.announce(settings, message, event="bind_failed", level=logging.ERROR)
        return STARTUP_FAILURE
    finally:
        uvicorn_log.setLevel(level)
    with sqlite_schema_lock(settings.database_url):
        password = asyncio.run(_bootstrap(settings))
    base = f"http://{host}:{port}{settings.root_path}"
    if password:
        first = f"First run: tenant '{FIRST_TENANT}' and platform admin {FIRST_ADMIN} created."
        sign_in = f"{base}/admin"
        if logs.use_json(settings):  # one line, the password a field of its own (WARNING: never filtered out)
            logs.announce(settings, f"{first} Sign in at {sign_in} with the one-time password to choose your own.",
                          event="first_run", level=logging.WARNING, user=FIRST_ADMIN, password=password,
                          sign_in=sign_in)  # fmt: skip
        else:
            print(f"{first}\n  password (shown once): {password}\n  Sign in at {sign_in} to choose your own.")
    doors = f"Anthropic door {base}/v1/messages, OpenAI doors {base}/v1/chat/completions and {base}/v1/responses"
    logs.announce(settings, f"Relay listening on {base}  ({doors})", event="listening", url=base)
    if workers > 1:
        DrainingMultiprocess(config, sockets=[sock]).run()
        return 0
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE
