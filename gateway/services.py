"""The long-lived parts of a running gateway, built once at start-up and kept on ``app.state``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.auth import Authenticator
from gateway.conversations import ConversationStore
from gateway.db.outage import Outage
from gateway.domain import Route
from gateway.invalidation import Invalidation
from gateway.manage import learned
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
from gateway.upstreams.breaker import Breakers
from gateway.upstreams.client import Timeouts, create_session
from gateway.upstreams.retry import RetryPolicy
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
            redis_meter = RedisMeter(settings.redis_url, ledger)
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
        invalidation = Invalidation(redis, {"keys": auth.forget, "models": router.forget})
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
            ledger.spent,
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
                breakers=Breakers(settings.breaker_threshold, settings.breaker_cooldown_s),
                envelope_key=derive_key(settings.secret_key, "reasoning-envelope"),
                web_search=web_search,
            ),
            web_search=web_search,
        )
        services.relay.on_output_limit = services.remember_output_limit
        return services

    def remember_output_limit(self, route: Route, limit: int) -> None:
        """Keep an output limit the relay learned in the model's profile, off the request path."""

        async def remember() -> None:
            try:
                if await learned.remember_output_limit(self.sessions, route.model_id, limit):
                    self.invalidation.invalidate("models")
            except Exception as exc:  # the process still clamps; the next refusal tries again
                log.warning("model %s: keeping its output limit failed: %s", route.public_name, type(exc).__name__)

        task = asyncio.create_task(remember(), name="relay-remember-output-limit")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Stop everything, each step within its own deadline: shutdown never hangs on a dead database or Redis."""
        await self.conversations.close()
        await self.invalidation.close()
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
