"""The conversation store: what clients ask Relay to keep between requests.

Kinds share one table (``conversation_turns``): ``response`` (OpenAI Responses ``previous_response_id``
chains, which may branch from any stored id), ``thread`` (Anthropic message threads, one successor per id),
and ``batch`` / ``batch_metered`` (an Anthropic message batch's route, and the claim that its results were
metered: ``gateway.message_batches``).
A row is keyed by the id Relay returned to the client and holds the FULL transcript up to and including that
turn (a JSON-able dict the caller shapes), so continuing costs one primary-key SELECT and no chain walk.

Write path: each stored turn is one row of the whole transcript, msgspec-JSON encoded, zlib-compressed and
sealed with AES-256-GCM (a key derived for ``conversations`` from the secret key; associated data
``kind:id:tenant_id:key_id``, so a row copied to another id, kind, tenant or key does not decrypt): O(size)
CPU, in a worker thread for large transcripts. ``put`` writes at once (threads, whose next turn claims the
row); ``keep`` (Responses) is written behind: readable at once from memory in this process, inserted with the
other turns of the same few milliseconds in one statement, off the response path. Measured on the benchmark,
a synchronous insert per reply cost about 1 ms of CPU on Postgres and lock waits on SQLite. Read path: one
SELECT by primary key, then decrypt and decompress (O(size)); a miss looks again for a moment, since another
worker may be writing the turn it just answered.

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

from gateway.conversation_upkeep import held_conversations, purge_expired
from gateway.db.tables import ConversationTurn
from gateway.security import derive_key

log = logging.getLogger("relay.conversations")

Kind = Literal["response", "thread", "batch", "batch_metered"]
IN_FLIGHT = "in_flight"
DONE = "done"
PURGE_BATCH = 1000
PURGE_EVERY_S = 3600.0
LINGER_S = 0.005
MISS_GRACE_S = 0.6
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


@dataclass(slots=True)
class _Pending:
    """A turn kept but not yet in the database (``keep``): readable here at once, written within the linger."""

    kind: str
    tenant_id: str
    key_id: str
    parent_id: str | None
    payload: dict[str, Any]
    plain: bytes
    created_at: datetime


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
        self._pending: dict[str, _Pending] = {}
        self._writing: set[str] = set()
        """Ids of the batch an INSERT is writing now."""
        self._written = asyncio.Event()
        """Set when the INSERT of ``_writing`` has ended (landed or failed)."""
        self._written.set()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.miss_grace_s = MISS_GRACE_S
        """How long ``get`` keeps looking for a turn another process may still be writing."""

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
        """The live turn ``id`` of this kind, tenant and key; None otherwise, never saying why.

        One primary-key SELECT. A turn this process kept but has not written yet is answered from memory;
        a miss is looked up again for ``miss_grace_s`` (another worker may have answered the turn a moment
        ago and be writing it), so only unknown ids pay that wait.
        """
        if len(id) > ID_MAX:
            return None
        waited = 0.0
        delay = 0.05
        while True:
            pending = self._pending.get(id)
            if pending is not None:
                mine = (pending.kind, pending.tenant_id, pending.key_id) == (kind, tenant_id, key_id)
                return self._from_pending(id, pending) if mine else None
            turn = await self._select(kind, id, tenant_id, key_id)
            if turn is not None or waited >= self.miss_grace_s:
                return turn
            await asyncio.sleep(delay)
            waited += delay
            delay *= 2

    async def _select(self, kind: str, id: str, tenant_id: str, key_id: str) -> StoredTurn | None:
        t = ConversationTurn
        query = sa.select(t.parent_id, t.payload, t.created_at, t.expires_at).where(
            *self._mine(kind, id, tenant_id, key_id, self._clock())
        )
        async with self._sessions() as session:
            row = (await session.execute(query)).one_or_none()
        return await self._stored(row, kind, id, tenant_id, key_id)

    def _from_pending(self, id: str, p: _Pending) -> StoredTurn:
        return StoredTurn(id, p.kind, p.parent_id, p.payload, p.created_at, p.created_at + self._ttl)

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
        plain = self._admissible(id, parent_id, payload)
        if plain is None:
            return False
        pending = _Pending(kind, tenant_id, key_id, parent_id, dict(payload), plain, self._clock())
        row = await self._row(id, pending)
        async with self._sessions.begin() as session:
            stmt = self._insert(session).returning(_TURNS.c.id)
            inserted = (await session.execute(stmt, row)).scalar_one_or_none()
        return inserted is not None

    def keep(
        self,
        kind: Kind,
        id: str,
        payload: Mapping[str, Any],
        *,
        tenant_id: str,
        key_id: str,
        parent_id: str | None = None,
    ) -> bool:
        """``put``, written behind: readable at once through ``get`` in this process, in the database within
        about ``LINGER_S`` (many turns in one INSERT, off the response path). A process killed in between
        loses the turn: its client's continuation then gets "not found" and must replay its history.
        """
        plain = self._admissible(id, parent_id, payload)
        if plain is None or id in self._pending:
            return False
        self._pending[id] = _Pending(kind, tenant_id, key_id, parent_id, dict(payload), plain, self._clock())
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_forever(), name="relay-conversation-writer")
        self._wake.set()
        return True

    def _admissible(self, id: str, parent_id: str | None, payload: Mapping[str, Any]) -> bytes | None:
        if len(id) > ID_MAX or (parent_id is not None and len(parent_id) > ID_MAX):
            return None
        plain = _encoder.encode(payload)
        return plain if len(plain) <= self._max_bytes else None

    async def _row(self, id: str, p: _Pending) -> dict[str, Any]:
        context = self._context(p.kind, id, p.tenant_id, p.key_id)
        if len(p.plain) > _OFFLOAD_BYTES:
            sealed = await asyncio.to_thread(self._seal, p.plain, context)
        else:
            sealed = self._seal(p.plain, context)
        return {
            "id": id,
            "tenant_id": p.tenant_id,
            "key_id": p.key_id,
            "kind": p.kind,
            "parent_id": p.parent_id,
            "payload": sealed,
            "size_bytes": len(p.plain),
            "successor": None,
            "created_at": p.created_at,
            "expires_at": p.created_at + self._ttl,
        }

    @staticmethod
    def _insert(session: AsyncSession) -> Any:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        return insert(_TURNS).on_conflict_do_nothing(index_elements=["id"])

    async def flush(self) -> None:
        """Write every kept turn now (one INSERT); on failure they stay pending for the next round."""
        batch = list(self._pending.items())
        if not batch:
            return
        self._writing = {id for id, _ in batch}
        self._written.clear()
        try:
            rows = [await self._row(id, p) for id, p in batch]
            async with self._sessions.begin() as session:
                await session.execute(self._insert(session), rows)
        finally:
            self._writing = set()
            self._written.set()
        for id, p in batch:
            if self._pending.get(id) is p:
                del self._pending[id]

    async def _write_forever(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(LINGER_S)  # let the turns answered meanwhile join this INSERT
            try:
                await self.flush()
                backoff = 0.1
            except Exception as exc:  # kept in memory; tried again
                log.warning("conversations: writing %d kept turns failed: %s", len(self._pending), type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._wake.set()

    async def delete(self, kind: Kind, id: str, *, tenant_id: str, key_id: str) -> bool:
        """Forget turn ``id`` (only this turn: its successors hold their own transcripts); False when not found."""
        if len(id) > ID_MAX:
            return False
        pending = self._pending.get(id)
        kept = pending is not None and (pending.kind, pending.tenant_id, pending.key_id) == (kind, tenant_id, key_id)
        if kept:
            del self._pending[id]
            if id in self._writing:
                # Its INSERT is in flight: a DELETE now could run first and find nothing, and the row would
                # then appear after "deleted" was answered. Delete once the INSERT has landed (or failed).
                await self._written.wait()
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
        return kept or (expires_at is not None and expires_at > now)

    async def ids(self, kind: Kind, *, tenant_id: str, key_id: str, limit: int, after: str | None = None) -> list[str]:
        """The live ids of this kind, tenant and key, newest first; ``after``: only those older than that id."""
        t = ConversationTurn
        query = sa.select(t.id, t.created_at).where(
            t.tenant_id == tenant_id, t.key_id == key_id, t.kind == kind, t.expires_at > self._clock()
        )
        if after is not None:
            pivot = sa.select(t.created_at).where(t.id == after, t.tenant_id == tenant_id, t.key_id == key_id)
            query = query.where(t.created_at < pivot.scalar_subquery())
        async with self._sessions() as session:
            rows = await session.execute(query.order_by(t.created_at.desc(), t.id.desc()).limit(limit))
            return [row.id for row in rows]

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
        return await purge_expired(self._sessions, self._clock, limit=limit, pause_s=pause_s)

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

    async def close(self, deadline_s: float = 5.0) -> None:
        """Stop the background tasks; write what is still kept, for at most ``deadline_s``."""
        for task in (self._purging, self._writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._purging = self._writer = None
        try:
            async with asyncio.timeout(deadline_s):
                await self.flush()
        except Exception as exc:
            log.warning("conversations: %d kept turns not written at shutdown: %s", len(self._pending), exc)
