"""The conversation store: what clients ask Relay to keep between requests.

Two kinds share one table (``conversation_turns``): ``response`` (OpenAI Responses ``previous_response_id``
chains, which may branch from any stored id) and ``thread`` (Anthropic message threads, one successor per id).
A row is keyed by the id Relay returned to the client and holds the FULL transcript up to and including that
turn (a JSON-able dict the caller shapes), so continuing costs one primary-key SELECT and no chain walk.

Write path: one INSERT per stored turn of the whole transcript, msgspec-JSON encoded, zlib-compressed and
sealed with AES-256-GCM (a key derived for ``conversations`` from the secret key; associated data
``kind:id:tenant_id:key_id``, so a row copied to another id, kind, tenant or key does not decrypt). That is
O(size) CPU per turn, done in a worker thread for large transcripts. Read path: one SELECT by primary key,
then decrypt and decompress (O(size)).

Every lookup is scoped to tenant, key and kind: another key's id, an expired id and an unknown id all answer
the same (None / ``ThreadNotFound``). A row expires ``ttl`` after it was written; continuing writes a new row
with a fresh expiry, which is the sliding refresh. Transcripts larger than ``max_bytes`` (plaintext JSON) are
not stored: the client replays its history instead, rather than Relay truncating it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import msgspec
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.tables import ConversationTurn
from gateway.security import derive_key

log = logging.getLogger("relay.conversations")

Kind = Literal["response", "thread"]
IN_FLIGHT = "in_flight"
DONE = "done"
PURGE_BATCH = 1000
PURGE_EVERY_S = 3600.0
ID_MAX = 64
_VERSION = b"\x01"
_NONCE = 12
_ZLIB_LEVEL = 3  # measured on agent transcripts: a third of level 6's CPU for ~20% more bytes
_OFFLOAD_BYTES = 256 * 1024  # seal/open larger transcripts in a worker thread, off the event loop
_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()
_TURNS = cast(sa.Table, ConversationTurn.__table__)
_Sealed = sa.Row[str | None, bytes, datetime, datetime]
"""(parent_id, payload, created_at, expires_at) of a turn as read."""


class ThreadNotFound(Exception):
    """No live thread turn with this id for this tenant and key (unknown, expired, another key's, unreadable)."""


class ThreadAlreadyContinued(Exception):
    """The thread turn already has its one successor."""


class ThreadContinueInFlight(Exception):
    """Another continuation of this thread turn is running."""


@dataclass(frozen=True, slots=True)
class StoredTurn:
    id: str
    kind: str
    parent_id: str | None
    payload: dict[str, Any]
    created_at: datetime
    expires_at: datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ConversationStore:
    """Stored turns scoped to (tenant, key, kind), sealed at rest, expiring ``ttl_s`` after they are written."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret_key: str,
        *,
        ttl_s: float,
        max_bytes: int,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._aead = AESGCM(derive_key(secret_key, "conversations"))
        self._ttl = timedelta(seconds=ttl_s)
        self._max_bytes = max_bytes
        self._clock = clock
        self._purging: asyncio.Task[None] | None = None

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    # -- sealing ---------------------------------------------------------------------------------------------

    @staticmethod
    def _context(kind: str, id: str, tenant_id: str, key_id: str) -> bytes:
        return f"{kind}:{id}:{tenant_id}:{key_id}".encode()

    def _seal(self, plain: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, zlib.compress(plain, _ZLIB_LEVEL), context)

    def _open(self, blob: bytes, context: bytes) -> dict[str, Any] | None:
        if blob[:1] != _VERSION or len(blob) < 1 + _NONCE:
            return None
        try:
            packed = self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], context)
            return _decoder.decode(zlib.decompress(packed))
        except (InvalidTag, zlib.error, msgspec.DecodeError):
            return None

    async def _open_async(self, blob: bytes, context: bytes) -> dict[str, Any] | None:
        if len(blob) > _OFFLOAD_BYTES // 4:  # compressed: the plaintext is several times larger
            return await asyncio.to_thread(self._open, blob, context)
        return self._open(blob, context)

    async def _stored(self, row: _Sealed | None, kind: str, id: str, tenant_id: str, key_id: str) -> StoredTurn | None:
        if row is None:
            return None
        payload = await self._open_async(row.payload, self._context(kind, id, tenant_id, key_id))
        if payload is None:
            log.warning("conversation turn %s does not decrypt (secret key changed, or the row was altered)", id)
            return None
        return StoredTurn(
            id=id,
            kind=kind,
            parent_id=row.parent_id,
            payload=payload,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    # -- queries ---------------------------------------------------------------------------------------------

    def _mine(self, kind: str, id: str, tenant_id: str, key_id: str, now: datetime) -> list[sa.ColumnElement[bool]]:
        t = ConversationTurn
        return [t.id == id, t.tenant_id == tenant_id, t.key_id == key_id, t.kind == kind, t.expires_at > now]

    async def get(self, kind: Kind, id: str, *, tenant_id: str, key_id: str) -> StoredTurn | None:
        """The live turn ``id`` of this kind, tenant and key; None otherwise, never saying why."""
        if len(id) > ID_MAX:
            return None
        t = ConversationTurn
        query = sa.select(t.parent_id, t.payload, t.created_at, t.expires_at).where(
            *self._mine(kind, id, tenant_id, key_id, self._clock())
        )
        async with self._sessions() as session:
            row = (await session.execute(query)).one_or_none()
        return await self._stored(row, kind, id, tenant_id, key_id)

    async def put(
        self,
        kind: Kind,
        id: str,
        payload: Mapping[str, Any],
        *,
        tenant_id: str,
        key_id: str,
        parent_id: str | None = None,
    ) -> bool:
        """Store the transcript up to and including turn ``id``; False when over ``max_bytes`` or ``id`` is taken."""
        if len(id) > ID_MAX or (parent_id is not None and len(parent_id) > ID_MAX):
            return False
        plain = _encoder.encode(payload)
        if len(plain) > self._max_bytes:
            return False
        context = self._context(kind, id, tenant_id, key_id)
        if len(plain) > _OFFLOAD_BYTES:
            sealed = await asyncio.to_thread(self._seal, plain, context)
        else:
            sealed = self._seal(plain, context)
        now = self._clock()
        row = {
            "id": id,
            "tenant_id": tenant_id,
            "key_id": key_id,
            "kind": kind,
            "parent_id": parent_id,
            "payload": sealed,
            "size_bytes": len(plain),
            "successor": None,
            "created_at": now,
            "expires_at": now + self._ttl,
        }
        async with self._sessions.begin() as session:
            insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            stmt = insert(_TURNS).on_conflict_do_nothing(index_elements=["id"]).returning(_TURNS.c.id)
            inserted = (await session.execute(stmt, row)).scalar_one_or_none()
        return inserted is not None

    async def delete(self, kind: Kind, id: str, *, tenant_id: str, key_id: str) -> bool:
        """Forget turn ``id`` (only this turn: its successors hold their own transcripts); False when not found."""
        if len(id) > ID_MAX:
            return False
        t = ConversationTurn
        now = self._clock()
        # An expired row of the caller's is deleted too, but answers False like any unknown id.
        query = (
            sa.delete(t)
            .where(t.id == id, t.tenant_id == tenant_id, t.key_id == key_id, t.kind == kind)
            .returning(t.expires_at)
        )
        async with self._sessions.begin() as session:
            expires_at = (await session.execute(query)).scalar_one_or_none()
        return expires_at is not None and expires_at > now

    # -- threads: one successor per turn ---------------------------------------------------------------------

    async def claim(self, id: str, *, tenant_id: str, key_id: str) -> StoredTurn:
        """Take thread turn ``id`` for continuation (compare-and-set NULL → ``in_flight``) and return it.

        Raises ``ThreadNotFound``, ``ThreadAlreadyContinued`` or ``ThreadContinueInFlight``. The caller must
        ``release`` it: ``continued=True`` once the successor turn is stored, False when the continuation failed.
        """
        if len(id) > ID_MAX:
            raise ThreadNotFound(id)
        t = ConversationTurn
        for _ in range(3):  # a release racing the second read sends us round again; three rounds are plenty
            now = self._clock()
            mine = self._mine("thread", id, tenant_id, key_id, now)
            cas = (
                sa.update(t)
                .where(*mine, t.successor.is_(None))
                .values(successor=IN_FLIGHT)
                .returning(t.parent_id, t.payload, t.created_at, t.expires_at)
                .execution_options(synchronize_session=False)
            )
            async with self._sessions.begin() as session:
                row = (await session.execute(cas)).one_or_none()
                if row is None:  # the error path alone pays a second read, to say which error
                    state = (await session.execute(sa.select(t.successor).where(*mine))).one_or_none()
            if row is not None:
                turn = await self._stored(row, "thread", id, tenant_id, key_id)
                if turn is None:  # unreadable: give the claim back, and answer as for an unknown id
                    await self.release(id, tenant_id=tenant_id, key_id=key_id, continued=False)
                    raise ThreadNotFound(id)
                return turn
            if state is None:
                raise ThreadNotFound(id)
            if state.successor == DONE:
                raise ThreadAlreadyContinued(id)
            if state.successor == IN_FLIGHT:
                raise ThreadContinueInFlight(id)
        raise ThreadContinueInFlight(id)

    async def release(self, id: str, *, tenant_id: str, key_id: str, continued: bool) -> bool:
        """End a claim: ``done`` when the successor was stored, open again otherwise. False when nothing was claimed."""
        t = ConversationTurn
        query = (
            sa.update(t)
            .where(
                t.id == id,
                t.tenant_id == tenant_id,
                t.key_id == key_id,
                t.kind == "thread",
                t.successor == IN_FLIGHT,
            )
            .values(successor=DONE if continued else None)
            .returning(t.id)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            return (await session.execute(query)).scalar_one_or_none() is not None

    # -- housekeeping ----------------------------------------------------------------------------------------

    async def purge_expired(self, limit: int = PURGE_BATCH, *, pause_s: float = 0.05) -> int:
        """Delete expired turns, ``limit`` rows a transaction (walking ``ix_conversation_turns_expires``)."""
        t = ConversationTurn
        deleted = 0
        while True:
            now = self._clock()
            old = sa.select(t.id).where(t.expires_at <= now).order_by(t.expires_at).limit(limit).scalar_subquery()
            async with self._sessions.begin() as session:
                result = await session.execute(
                    sa.delete(t).where(t.id.in_(old)).execution_options(synchronize_session=False)
                )
            count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < limit:
                return deleted
            await asyncio.sleep(pause_s)

    async def retention(self, tenant_id: str) -> tuple[int, int]:
        """A tenant's live stored turns and their total plaintext size in bytes."""
        async with self._sessions() as session:
            return await held_conversations(session, tenant_id, self._clock())

    def start_purging(self, every_s: float = PURGE_EVERY_S) -> None:
        """Delete expired turns now and then, off the request path (one task per process)."""
        if self._purging is None:
            self._purging = asyncio.create_task(self._purge_forever(every_s), name="relay-conversation-purge")

    async def _purge_forever(self, every_s: float) -> None:
        while True:
            try:
                deleted = await self.purge_expired()
                if deleted:
                    log.info("conversations: purged %d expired turns", deleted)
            except Exception as exc:  # the next round tries again
                log.warning("conversations: purging expired turns failed: %s", type(exc).__name__)
            await asyncio.sleep(every_s)

    async def close(self) -> None:
        if self._purging is not None:
            self._purging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purging
            self._purging = None


async def held_conversations(session: AsyncSession, tenant_id: str, now: datetime | None = None) -> tuple[int, int]:
    """A tenant's live stored turns and their total plaintext size in bytes (``relay usage``, the admin UI)."""
    t = ConversationTurn
    query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.size_bytes), 0)).where(
        t.tenant_id == tenant_id, t.expires_at > (now or _utcnow())
    )
    count, size = (await session.execute(query)).one()
    return int(count), int(size)
