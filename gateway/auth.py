"""Who is calling: ``sk-`` keys to Principals (cached), and admin passwords (argon2id, off the event loop)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from datetime import UTC, datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.cache import TTLCache
from gateway.db.outage import Outage
from gateway.db.tables import ApiKey, Tenant
from gateway.domain import Limits, Principal, claude_code_aliases
from gateway.errors import AuthenticationFailed
from gateway.security import derive_key, digest_api_key, looks_like_api_key

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile: above OWASP's floor


@functools.cache
def _dummy_hash() -> str:
    """Stands in for a missing account's hash; made on first use, not at import (0.3 s of CPU per command)."""
    return _hasher.hash("relay-dummy-password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists (a dummy hash stands in for a missing one)."""

    def check() -> bool:
        try:
            return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def extract_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``x-api-key``, ``Authorization: Bearer sk-…`` or a bare ``Authorization: sk-…``.

    When both headers are present (Claude Code sends both if both variables are set),
    ``x-api-key`` wins, consistently.
    """
    value = headers.get("x-api-key")
    if value:
        return value.strip()
    auth = headers.get("authorization")
    if not auth:
        return None
    scheme, _, rest = auth.strip().partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip()
    return auth.strip()


class Authenticator:
    """``sk-`` key to Principal through an in-process TTL cache; the database on a miss.

    TTL plus grace bounds how long a revoked key keeps working on any worker (3 s + 1 s by
    default, under the 5 s promise). Expiry is checked on every request against the cached expiry time.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret_key: str,
        ttl_s: float = 3.0,
        *,
        outage: Outage | None = None,
        stale_if_error_s: float = 0.0,
    ) -> None:
        self._sessions = sessions
        self._digest_key = derive_key(secret_key, "api-key-digest")
        self._cache: TTLCache[str, Principal | str] = TTLCache(
            self._load, ttl_s=ttl_s, grace_s=1.0, outage=outage, stale_if_error_s=stale_if_error_s
        )

    def digest(self, key: str) -> str:
        return digest_api_key(self._digest_key, key)

    async def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise AuthenticationFailed("missing API key: send it as 'x-api-key: sk-…' or 'Authorization: Bearer sk-…'")
        if not looks_like_api_key(key):
            raise AuthenticationFailed("malformed API key: Relay keys look like 'sk-' followed by 48 letters/digits")
        result = await self._cache.get(self.digest(key))
        if isinstance(result, str):
            raise AuthenticationFailed(result)
        if result.expires_at is not None and result.expires_at <= datetime.now(UTC):
            raise AuthenticationFailed(f"API key {result.prefix}… expired at {result.expires_at.isoformat()}")
        return result

    def forget(self) -> None:
        self._cache.forget()

    async def _load(self, digest: str) -> Principal | str:
        async with self._sessions() as session:
            found = (
                await session.execute(
                    sa.select(ApiKey, Tenant).join(Tenant, ApiKey.tenant_id == Tenant.id).where(ApiKey.digest == digest)
                )
            ).first()
        if found is None:
            return "invalid API key: no such key"
        row, tenant = found
        if row.revoked_at is not None:
            return f"API key {row.prefix}… was revoked at {row.revoked_at.isoformat()}"
        return Principal(
            key_id=row.id,
            tenant_id=row.tenant_id,
            name=row.name,
            prefix=row.prefix,
            allow_custom_models=row.allow_custom_models,
            allowed_models=tuple(row.allowed_models or ()),
            # Explicit aliases first (the key owner's precise intent), then the Claude Code profile.
            aliases=tuple((a[0], a[1]) for a in row.aliases or ()) + claude_code_aliases(row.claude_code_profile or {}),
            expires_at=row.expires_at,
            limits=Limits(
                rpm=row.rpm_limit,
                tpm=row.tpm_limit,
                concurrency=row.concurrency_limit,
                budget_micro_usd=row.budget_micro_usd,
                budget_period=row.budget_period or "total",
                tenant_budget_micro_usd=tenant.budget_micro_usd,
                tenant_budget_period=tenant.budget_period or "total",
            ),
        )
