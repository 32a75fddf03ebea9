"""The long-lived parts of a running gateway, built once at start-up and kept on ``app.state``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway import redis_client
from gateway.auth import Authenticator
from gateway.conversations import ConversationStore
from gateway.db.outage import Outage
from gateway.domain import Route, Upstream
from gateway.invalidation import Invalidation
from gateway.manage import learned, upstream_keys
from gateway.metering import Ledger, MemoryMeter, Meter, RedisMeter
from gateway.metering.handoff import RedisHandoff
from gateway.metering.limits import Limiter, MemoryLimiter
from gateway.metering.limits_redis import RedisLimiter
from gateway.metering.spool import Spool, database_fingerprint, spool_dir
from gateway.relay import Relay
from gateway.routing import Router
from gateway.security import SecretBox, derive_key
from gateway.settings import Settings
from gateway.ssrf import Allowlist, guarded_session
from gateway.upstreams.affinity import Affinity
from gateway.upstreams.breaker import Breakers
from gateway.upstreams.client import Timeouts, create_session
from gateway.upstreams.key_rates import MemoryKeyRates, RedisKeyRates
from gateway.upstreams.pool import KeyPool
from gateway.upstreams.retry import RetryPolicy
from gateway.webhooks.outbox import enqueue
from gateway.webhooks.service import Alerts
from gateway.websearch.backend import SearchBackend

log = logging.getLogger("relay")
CLOSE_STEP_S = 5.0


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    auth: Authenticator
    router: Router
    invalidation: Invalidation
    meter: Meter
    limiter: Limiter
    http: aiohttp.ClientSession
    guarded_http: aiohttp.ClientSession
    relay: Relay
    conversations: ConversationStore
    outage: Outage
    alerts: Alerts
    web_search: SearchBackend | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    ready_once: bool = False
    """``/readyz`` has seen the database and Redis up once: through a later outage the caches serve."""

    @classmethod
    async def start(
        cls, settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
    ) -> Services:
        box = SecretBox(derive_key(settings.secret_key, "upstream-secrets"))
        root = settings.spool_root
        spool = Spool(spool_dir(root, settings.database_url)) if root else None
        ledger = Ledger(sessions, engine.dialect.name, retention_days=settings.usage_retention_days, spool=spool)
        limiter: Limiter
        if settings.redis_url:
            client = redis_client.connect(settings.redis_url, settings.redis_mode, settings.redis_sentinel_master)
            redis_meter = RedisMeter(client, ledger)
            ledger.handoff = RedisHandoff(redis_meter.redis, database_fingerprint(settings.database_url))
            meter: Meter = redis_meter
            limiter = RedisLimiter(
                redis_meter.redis,
                ledger.spent,
                fail_closed=settings.metering_fail_closed,
                shares=settings.limit_shares or settings.workers,
            )
        else:
            meter = MemoryMeter(ledger)
            limiter = MemoryLimiter(ledger.spent)
        await meter.start()
        http = create_session()
        # Tenant upstreams go through the SSRF guard, re-checked after DNS on every connection.
        guarded = guarded_session(Allowlist.parse(settings.upstream_allowlist))
        timeouts = Timeouts(
            connect_s=settings.connect_timeout_s,
            first_byte_s=settings.first_byte_timeout_s,
            idle_s=settings.idle_timeout_s,
            total_s=settings.total_timeout_s,
            keepalive_s=settings.keepalive_s,
        )
        web_search = None
        if settings.web_search_url:
            web_search = SearchBackend(
                settings.web_search_url,
                settings.web_search_key,
                timeout_s=settings.web_search_timeout_s,
                price_usd_per_1000=settings.web_search_price,
            )
        outage = Outage()
        stale = settings.stale_if_error_s
        auth = Authenticator(
            sessions, settings.secret_key, ttl_s=settings.key_cache_ttl_s, outage=outage, stale_if_error_s=stale
        )
        router = Router(
            sessions,
            box,
            ttl_s=settings.route_cache_ttl_s,
            provider_env=settings.provider_env,
            outage=outage,
            stale_if_error_s=stale,
        )
        redis = meter.redis if isinstance(meter, RedisMeter) else None
        breakers = Breakers(settings.breaker_threshold, settings.breaker_cooldown_s)
        pool = KeyPool(
            breakers,
            Affinity(redis),
            RedisKeyRates(redis) if redis is not None else MemoryKeyRates(),
        )
        invalidation = Invalidation(redis, {"keys": auth.forget, "models": router.forget}, {"pool": pool.apply})
        pool.publish = lambda verdict: invalidation.publish("pool", verdict)
        invalidation.start()
        conversations = ConversationStore(
            sessions, settings.secret_key, ttl_s=settings.conversation_ttl_s, max_bytes=settings.conversation_max_bytes
        )
        conversations.start_purging()
        # Webhook alerts: deliveries and sweeps run off the request path, on the same pooled sessions.
        alerts = Alerts(
            sessions,
            box,
            http,
            guarded,
            poll_s=settings.webhook_poll_s,
            sweep_s=settings.webhook_sweep_s,
        )
        await alerts.start()
        services = cls(
            alerts=alerts,
            outage=outage,
            conversations=conversations,
            settings=settings,
            engine=engine,
            sessions=sessions,
            box=box,
            auth=auth,
            router=router,
            invalidation=invalidation,
            meter=meter,
            http=http,
            guarded_http=guarded,
            limiter=limiter,
            relay=Relay(
                http,
                guarded,
                meter,
                limiter,
                timeouts,
                settings.anthropic_beta_defaults,
                retry=RetryPolicy(retries=settings.upstream_retries),
                breakers=breakers,
                pool=pool,
                envelope_key=derive_key(settings.secret_key, "reasoning-envelope"),
                web_search=web_search,
            ),
            web_search=web_search,
        )
        services.relay.on_output_limit = services.remember_output_limit
        services.relay.steering.on_key_disabled = services.disable_key
        services.relay.on_circuit_open = services.circuit_opened
        return services

    def disable_key(self, upstream: Upstream, reason: str) -> None:
        """Keep a key the upstream refused disabled (every process then leaves it out) and raise its alert."""
        key_id = upstream.key_id

        async def disable() -> None:
            try:
                async with self.sessions.begin() as db:
                    row = await upstream_keys.disable_failed_key(db, key_id, reason)
                    if row is not None:
                        data = {"upstream_id": upstream.id, "upstream": upstream.name, "key_id": key_id,
                                "key_name": row.name, "reason": reason}  # fmt: skip
                        await enqueue(db, event="upstream_key.disabled", tenant_id=upstream.tenant_id, data=data,
                                      dedupe=f"upstream_key.disabled:{key_id}:{row.disabled_at}")  # fmt: skip
                if row is not None:
                    self.invalidation.invalidate("models")
            except Exception as exc:  # this process keeps it out for a while; the next refusal tries again
                log.warning("upstream %s: keeping key %s disabled failed: %s", upstream.name, key_id,
                            type(exc).__name__)  # fmt: skip

        self._spawn(disable(), "relay-disable-upstream-key")

    def circuit_opened(self, upstream: Upstream) -> None:
        """``upstream.circuit_open``, at most once a minute per key and process (a flapping upstream is one alert)."""
        minute = int(time.time() // 60)
        data = {"upstream_id": upstream.id, "upstream": upstream.name, "key_id": upstream.key_id or None}
        dedupe = f"upstream.circuit_open:{upstream.id}:{upstream.key_id}:{minute}"
        self.alerts.emit("upstream.circuit_open", upstream.tenant_id, data, dedupe)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def remember_output_limit(self, route: Route, limit: int) -> None:
        """Keep an output limit the relay learned in the model's profile, off the request path."""

        async def remember() -> None:
            try:
                if await learned.remember_output_limit(self.sessions, route.model_id, limit):
                    self.invalidation.invalidate("models")
            except Exception as exc:  # the process still clamps; the next refusal tries again
                log.warning("model %s: keeping its output limit failed: %s", route.public_name, type(exc).__name__)

        self._spawn(remember(), "relay-remember-output-limit")

    async def close(self) -> None:
        """Stop everything, each step within its own deadline: shutdown never hangs on a dead database or Redis."""
        await self.conversations.close()
        await self.invalidation.close()
        await self.relay.pool.affinity.close()
        await self.meter.close()  # the ledger waits at most CLOSE_TIMEOUT_S; the spool keeps the rest
        await self.alerts.close()  # before the HTTP sessions its deliveries use
        await self.http.close()
        await self.guarded_http.close()
        if self.web_search is not None:
            await self.web_search.close()
        try:
            async with asyncio.timeout(CLOSE_STEP_S):
                await self.engine.dispose()
        except TimeoutError:
            log.warning("shutdown: database connections did not close within %.0f s", CLOSE_STEP_S)
