"""The conversation store on each backend: sealed full transcripts scoped to tenant, key and kind; expiry,
size cap, ciphertext bound to its row, delete, the thread single-successor claim, purge and retention."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.conversations import (
    ConversationStore,
    Kind,
    StoredTurn,
    ThreadAlreadyContinued,
    ThreadContinueInFlight,
    ThreadNotFound,
)
from gateway.db.tables import ConversationTurn
from gateway.settings import MIB, Settings

TTL = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(sessions: async_sessionmaker[AsyncSession], backend: tuple[str, Settings], clock: Clock) -> ConversationStore:
    store = ConversationStore(sessions, backend[1].secret_key, ttl_s=TTL, max_bytes=64 * 1024, clock=clock)
    store.miss_grace_s = 0.0  # unknown ids answer at once here; test_a_miss_is_looked_up_again covers the grace
    return store


def hexid(prefix: str = "") -> str:
    return prefix + secrets.token_hex(12)


def transcript(n: int = 2) -> dict[str, Any]:
    return {
        "system": "You are terse.",
        "tools": [{"name": "ls", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user" if i % 2 == 0 else "assistant", "content": [{"type": "text", "text": f"turn {i} ✓"}]}
            for i in range(n)
        ],
    }


async def test_put_get_round_trip(store: ConversationStore, clock: Clock):
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    assert await store.put("response", rid, transcript(), tenant_id=tenant, key_id=key, parent_id="resp_parent")
    turn = await store.get("response", rid, tenant_id=tenant, key_id=key)
    assert turn == StoredTurn(
        id=rid,
        kind="response",
        parent_id="resp_parent",
        payload=transcript(),
        created_at=clock.now,
        expires_at=clock.now + timedelta(seconds=TTL),
    )
    assert await store.get("response", hexid("resp_"), tenant_id=tenant, key_id=key) is None
    assert await store.get("response", "resp_" + "x" * 80, tenant_id=tenant, key_id=key) is None


async def test_stored_sealed_and_compressed(store: ConversationStore, sessions):
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    payload = {"messages": [{"role": "user", "content": "secret-marker " * 500}]}
    assert await store.put("response", rid, payload, tenant_id=tenant, key_id=key)
    async with sessions() as s:
        row = (await s.execute(sa.select(ConversationTurn).where(ConversationTurn.id == rid))).scalar_one()
    assert b"secret-marker" not in row.payload
    assert row.size_bytes > 7000 > len(row.payload)
    assert row.successor is None


async def test_scoped_by_tenant_key_and_kind(store: ConversationStore):
    tenant, key, rid = hexid(), hexid(), hexid("msg_")
    assert await store.put("thread", rid, transcript(), tenant_id=tenant, key_id=key)
    assert await store.get("thread", rid, tenant_id=tenant, key_id=key) is not None
    assert await store.get("thread", rid, tenant_id=tenant, key_id=hexid()) is None
    assert await store.get("thread", rid, tenant_id=hexid(), key_id=key) is None
    assert await store.get("response", rid, tenant_id=tenant, key_id=key) is None
    assert not await store.delete("thread", rid, tenant_id=tenant, key_id=hexid())
    assert not await store.delete("response", rid, tenant_id=tenant, key_id=key)
    assert await store.get("thread", rid, tenant_id=tenant, key_id=key) is not None


async def test_an_id_is_stored_once(store: ConversationStore):
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    assert await store.put("response", rid, transcript(2), tenant_id=tenant, key_id=key)
    assert not await store.put("response", rid, transcript(4), tenant_id=tenant, key_id=key)
    assert not await store.put("response", rid, transcript(4), tenant_id=hexid(), key_id=hexid())
    turn = await store.get("response", rid, tenant_id=tenant, key_id=key)
    assert turn is not None and turn.payload == transcript(2)


async def test_expiry_and_sliding_refresh(store: ConversationStore, clock: Clock):
    tenant, key, first = hexid(), hexid(), hexid("resp_")
    assert await store.put("response", first, transcript(2), tenant_id=tenant, key_id=key)
    clock.advance(TTL - 1)
    assert await store.get("response", first, tenant_id=tenant, key_id=key) is not None
    second = hexid("resp_")  # continuing writes a new row with a fresh expiry
    assert await store.put("response", second, transcript(4), tenant_id=tenant, key_id=key, parent_id=first)
    clock.advance(1)
    assert await store.get("response", first, tenant_id=tenant, key_id=key) is None
    turn = await store.get("response", second, tenant_id=tenant, key_id=key)
    assert turn is not None and turn.parent_id == first and turn.payload == transcript(4)
    assert not await store.delete("response", first, tenant_id=tenant, key_id=key)  # expired: as if unknown
    clock.advance(TTL)
    assert await store.get("response", second, tenant_id=tenant, key_id=key) is None


async def test_size_cap_refuses_without_raising(store: ConversationStore):
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    big = {"messages": [{"role": "user", "content": "x" * (64 * 1024)}]}
    assert await store.put("response", rid, big, tenant_id=tenant, key_id=key) is False
    assert await store.get("response", rid, tenant_id=tenant, key_id=key) is None
    assert await store.retention(tenant) == (0, 0)


async def test_large_transcript_round_trip(sessions, backend, clock):
    """Above the offload threshold sealing and opening run in a worker thread."""
    store = ConversationStore(sessions, backend[1].secret_key, ttl_s=TTL, max_bytes=8 * MIB, clock=clock)
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    payload = {"messages": [{"role": "user", "content": secrets.token_hex(4) * 200_000}]}
    assert await store.put("response", rid, payload, tenant_id=tenant, key_id=key)
    turn = await store.get("response", rid, tenant_id=tenant, key_id=key)
    assert turn is not None and turn.payload == payload


async def test_ciphertext_is_bound_to_its_row(store: ConversationStore, sessions):
    tenant, key, a, b = hexid(), hexid(), hexid("msg_"), hexid("msg_")
    assert await store.put("thread", a, transcript(2), tenant_id=tenant, key_id=key)
    assert await store.put("thread", b, transcript(4), tenant_id=tenant, key_id=key)
    t = ConversationTurn
    async with sessions.begin() as s:  # a's ciphertext pasted into b's row
        blob = await s.scalar(sa.select(t.payload).where(t.id == a))
        await s.execute(sa.update(t).where(t.id == b).values(payload=blob))
    assert await store.get("thread", b, tenant_id=tenant, key_id=key) is None
    with pytest.raises(ThreadNotFound):
        await store.claim(b, tenant_id=tenant, key_id=key)
    other_key = hexid()
    async with sessions.begin() as s:  # a's row handed to another key of the tenant
        await s.execute(sa.update(t).where(t.id == a).values(key_id=other_key))
    assert await store.get("thread", a, tenant_id=tenant, key_id=other_key) is None
    async with sessions.begin() as s:  # ... and turned into another kind
        await s.execute(sa.update(t).where(t.id == a).values(key_id=key, kind="response"))
    assert await store.get("response", a, tenant_id=tenant, key_id=key) is None
    async with sessions.begin() as s:
        await s.execute(sa.update(t).where(t.id == a).values(kind="thread"))
    assert await store.get("thread", a, tenant_id=tenant, key_id=key) is not None


async def test_another_secret_key_reads_nothing(store: ConversationStore, sessions, clock):
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    assert await store.put("response", rid, transcript(), tenant_id=tenant, key_id=key)
    rotated = ConversationStore(sessions, "another-secret-key-0123456789", ttl_s=TTL, max_bytes=1024, clock=clock)
    assert await rotated.get("response", rid, tenant_id=tenant, key_id=key) is None


async def test_delete(store: ConversationStore):
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    assert await store.put("response", rid, transcript(), tenant_id=tenant, key_id=key)
    assert await store.delete("response", rid, tenant_id=tenant, key_id=key)
    assert await store.get("response", rid, tenant_id=tenant, key_id=key) is None
    assert not await store.delete("response", rid, tenant_id=tenant, key_id=key)


async def test_thread_claim_release_state_machine(store: ConversationStore, clock: Clock):
    tenant, key, first = hexid(), hexid(), hexid("msg_")
    with pytest.raises(ThreadNotFound):
        await store.claim(first, tenant_id=tenant, key_id=key)
    assert await store.put("thread", first, transcript(2), tenant_id=tenant, key_id=key)

    turn = await store.claim(first, tenant_id=tenant, key_id=key)
    assert turn.id == first and turn.kind == "thread" and turn.payload == transcript(2)
    with pytest.raises(ThreadContinueInFlight):
        await store.claim(first, tenant_id=tenant, key_id=key)
    with pytest.raises(ThreadNotFound):  # another key sees nothing, not even the claim
        await store.claim(first, tenant_id=tenant, key_id=hexid())
    assert await store.get("thread", first, tenant_id=tenant, key_id=key) is not None  # reads are not blocked

    # the continuation failed: open again
    assert await store.release(first, tenant_id=tenant, key_id=key, continued=False)
    assert not await store.release(first, tenant_id=tenant, key_id=key, continued=False)
    await store.claim(first, tenant_id=tenant, key_id=key)
    second = hexid("msg_")
    assert await store.put("thread", second, transcript(4), tenant_id=tenant, key_id=key, parent_id=first)
    assert await store.release(first, tenant_id=tenant, key_id=key, continued=True)
    with pytest.raises(ThreadAlreadyContinued):
        await store.claim(first, tenant_id=tenant, key_id=key)
    assert not await store.release(first, tenant_id=tenant, key_id=key, continued=False)  # done stays done

    nxt = await store.claim(second, tenant_id=tenant, key_id=key)
    assert nxt.parent_id == first and nxt.payload == transcript(4)
    await store.release(second, tenant_id=tenant, key_id=key, continued=False)

    clock.advance(TTL)
    with pytest.raises(ThreadNotFound):
        await store.claim(second, tenant_id=tenant, key_id=key)


async def test_claim_is_thread_only(store: ConversationStore):
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    assert await store.put("response", rid, transcript(), tenant_id=tenant, key_id=key)
    with pytest.raises(ThreadNotFound):
        await store.claim(rid, tenant_id=tenant, key_id=key)


async def test_concurrent_claims_have_one_winner(store: ConversationStore):
    tenant, key, rid = hexid(), hexid(), hexid("msg_")
    assert await store.put("thread", rid, transcript(), tenant_id=tenant, key_id=key)
    results = await asyncio.gather(
        *(store.claim(rid, tenant_id=tenant, key_id=key) for _ in range(4)), return_exceptions=True
    )
    assert sum(isinstance(r, StoredTurn) for r in results) == 1
    assert sum(isinstance(r, ThreadContinueInFlight) for r in results) == 3


async def test_purge_expired_in_batches(store: ConversationStore, clock: Clock, sessions):
    tenant, key = hexid(), hexid()
    old = [hexid("resp_") for _ in range(5)]
    for rid in old:
        assert await store.put("response", rid, transcript(), tenant_id=tenant, key_id=key)
    clock.advance(TTL / 2)
    live = hexid("resp_")
    assert await store.put("response", live, transcript(), tenant_id=tenant, key_id=key)
    clock.advance(TTL / 2)
    assert await store.purge_expired(limit=2, pause_s=0) >= 5
    t = ConversationTurn
    async with sessions() as s:
        left = set(await s.scalars(sa.select(t.id).where(t.tenant_id == tenant)))
    assert left == {live}
    assert await store.get("response", live, tenant_id=tenant, key_id=key) is not None
    assert await store.purge_expired() == 0


async def test_retention_counts_live_rows_and_bytes(store: ConversationStore, clock: Clock):
    tenant, other = hexid(), hexid()
    assert await store.retention(tenant) == (0, 0)
    sizes = 0
    kinds: tuple[tuple[int, Kind], ...] = ((2, "response"), (4, "thread"))
    for n, kind in kinds:
        payload = transcript(n)
        assert await store.put(kind, hexid(), payload, tenant_id=tenant, key_id=hexid())
        sizes += len(msgspec.json.encode(payload))
    assert await store.put("response", hexid(), transcript(), tenant_id=other, key_id=hexid())
    assert await store.retention(tenant) == (2, sizes)
    clock.advance(TTL)
    assert await store.retention(tenant) == (0, 0)


async def test_kept_turns_are_readable_at_once_and_written_behind(store: ConversationStore, sessions):
    tenant, key = hexid(), hexid()
    ids = [hexid("resp_") for _ in range(5)]
    for rid in ids:
        assert store.keep("response", rid, transcript(), tenant_id=tenant, key_id=key)
    assert not store.keep("response", ids[0], transcript(), tenant_id=tenant, key_id=key)  # taken
    turn = await store.get("response", ids[0], tenant_id=tenant, key_id=key)  # from memory
    assert turn is not None and turn.payload == transcript()
    assert await store.get("response", ids[0], tenant_id=tenant, key_id=hexid()) is None  # another key
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        async with sessions() as s:
            count = (
                await s.execute(sa.select(sa.func.count()).where(ConversationTurn.tenant_id == tenant))
            ).scalar_one()
        if count == 5 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    assert count == 5  # one flush wrote them all
    assert (await store.get("response", ids[4], tenant_id=tenant, key_id=key)) is not None
    assert await store.delete("response", ids[4], tenant_id=tenant, key_id=key)
    await store.close()


async def test_close_writes_what_is_still_kept(store: ConversationStore, sessions, backend, clock):
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    store.keep("response", rid, transcript(), tenant_id=tenant, key_id=key)
    await store.close()
    fresh = ConversationStore(sessions, backend[1].secret_key, ttl_s=TTL, max_bytes=64 * 1024, clock=clock)
    assert (await fresh.get("response", rid, tenant_id=tenant, key_id=key)) is not None


async def test_a_miss_is_looked_up_again(sessions, backend, clock):
    """Another process may be writing the turn right now: a miss looks again for ``miss_grace_s``."""
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    reader = ConversationStore(sessions, backend[1].secret_key, ttl_s=TTL, max_bytes=64 * 1024, clock=clock)
    writer = ConversationStore(sessions, backend[1].secret_key, ttl_s=TTL, max_bytes=64 * 1024, clock=clock)

    async def write_late() -> None:
        await asyncio.sleep(0.2)
        await writer.put("response", rid, transcript(), tenant_id=tenant, key_id=key)

    late = asyncio.create_task(write_late())
    assert (await reader.get("response", rid, tenant_id=tenant, key_id=key)) is not None
    await late


def test_settings_from_env():
    env = {"RELAY_SECRET_KEY": "x" * 32, "RELAY_DATABASE_URL": "sqlite:///:memory:"}
    s = Settings.from_env(env)
    assert (s.conversation_ttl_s, s.conversation_max_bytes) == (30 * 86400, 8 * MIB)
    s = Settings.from_env({**env, "RELAY_CONVERSATION_TTL": "300", "RELAY_CONVERSATION_MAX_BYTES": "1048576"})
    assert (s.conversation_ttl_s, s.conversation_max_bytes) == (300, MIB)


async def test_a_turn_deleted_while_its_write_is_in_flight_stays_deleted(store: ConversationStore, sessions):
    """A DELETE that ran before the write-behind INSERT committed found nothing, and the INSERT then
    resurrected the turn (seen in CI: a deleted response was still retrievable). Deleting it again once
    the INSERT landed was not enough either (seen in CI again): in between, a retrieve found it. So
    ``delete`` answers only after the INSERT has ended, and the turn is gone from that moment on."""
    tenant, key, rid = hexid(), hexid(), hexid("resp_")
    assert store.keep("response", rid, transcript(), tenant_id=tenant, key_id=key)
    writing = asyncio.create_task(store.flush())
    while not store._writing:  # the INSERT is under way
        await asyncio.sleep(0)
    assert await store.delete("response", rid, tenant_id=tenant, key_id=key)
    assert writing.done()
    assert await store.get("response", rid, tenant_id=tenant, key_id=key) is None
    await writing
    async with sessions() as s:
        left = (await s.execute(sa.select(sa.func.count()).where(ConversationTurn.id == rid))).scalar_one()
    assert left == 0
    await store.close()
