"""The ledger's spool: a record is on disk before its response ends, and whatever process dies or stops
with records unwritten, the next process on the same spool directory writes them, exactly once."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from support import REDIS_URL
from test_rollup import Flaky, events, rec, tenant_id

from gateway.metering import Ledger
from gateway.metering import spool as spool_module
from gateway.metering.handoff import RedisHandoff
from gateway.metering.spool import Spool, spool_dir
from gateway.settings import Settings


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_records_a_ledger_could_not_write_before_closing_are_written_by_the_next_process(sessions, tmp_path):
    t = tenant_id()
    first = Flaky(sessions, failures=10**9)  # the database is down for the whole life of the first process
    first._spool = Spool(tmp_path)
    first.start()
    for _ in range(300):
        first.put(rec(t))
    started = time.monotonic()
    await first.close(timeout=0.3)
    assert time.monotonic() - started < 3  # shutdown does not hang on a dead database
    assert any(name.endswith(".spool") for name in files(tmp_path))
    assert await events(sessions, t) == 0

    second = Ledger(sessions, spool=Spool(tmp_path))
    second.start()
    for _ in range(200):
        await asyncio.sleep(0.02)
        if second.waiting == 0 and await events(sessions, t) == 300:
            break
    assert await events(sessions, t) == 300
    await second.close()
    assert files(tmp_path) == []  # every record written: nothing left behind


async def test_a_replayed_spool_counts_nothing_twice(sessions, tmp_path):
    t = tenant_id()
    ledger = Ledger(sessions, spool=Spool(tmp_path))
    ledger.start()
    records = [rec(t) for _ in range(50)]
    for r in records:
        ledger.put(r)
    assert await ledger.flush(timeout=10)
    # A process killed after writing but before releasing its spool leaves written records behind.
    orphan = Spool(tmp_path)
    orphan.open()
    for r in records:
        orphan.append(r)
    orphan._lock_fd, fd = -1, orphan._lock_fd
    os.close(fd)  # the orphan's owner "dies": its lock goes
    again = Ledger(sessions, spool=Spool(tmp_path))
    again.start()
    await asyncio.sleep(0.3)
    assert await again.flush(timeout=10)
    assert await events(sessions, t) == 50
    await again.close()
    await ledger.close()


async def test_a_live_owners_spool_is_never_adopted(tmp_path):
    alive = Spool(tmp_path)
    alive.open()
    alive.append(rec(tenant_id()))
    other = Spool(tmp_path)
    other.open()
    found = other.claim_orphans()
    assert found.records == [] and found.files == []
    alive.close(all_written=True)
    other.close(all_written=True)


async def test_the_spool_holds_only_what_is_in_flight(sessions, tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 2_000)  # a segment every few records
    t = tenant_id()
    spool = Spool(tmp_path)
    ledger = Ledger(sessions, spool=spool)
    ledger.start()
    for _ in range(400):
        ledger.put(rec(t))
    assert len([n for n in files(tmp_path) if n.endswith(".spool")]) > 10
    assert await ledger.flush(timeout=10)
    left = [tmp_path / n for n in files(tmp_path) if n.endswith(".spool")]
    assert len(left) == 1 and left[0].stat().st_size == 0  # rotated segments deleted, the live one truncated
    await ledger.close()


def test_a_torn_last_line_is_skipped(tmp_path):
    spool = Spool(tmp_path)
    spool.open()
    spool.append(rec(tenant_id()))
    spool.append(rec(tenant_id()))
    segment = next(tmp_path.glob("*.spool"))
    with segment.open("ab") as fh:
        fh.write(b'{"request_id": "torn')  # a machine crash mid-write
    spool.close(all_written=False)
    found = Spool(tmp_path).claim_orphans()
    assert len(found.records) == 2
    found.release()
    assert files(tmp_path) == []


def test_each_database_has_its_own_spool_directory(tmp_path):
    a = spool_dir(tmp_path, "postgresql+asyncpg://db-a/relay")
    b = spool_dir(tmp_path, "postgresql+asyncpg://db-b/relay")
    assert a != b and a.parent == b.parent == tmp_path


def test_spool_setting(tmp_path):
    assert Settings.from_env({"RELAY_SPOOL_DIR": "off", "RELAY_SECRET_KEY": "x" * 20}).spool_root is None
    assert Settings.from_env({"RELAY_SPOOL_DIR": str(tmp_path), "RELAY_SECRET_KEY": "x" * 20}).spool_root == tmp_path
    embedded = Settings.from_env({"RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/r.db", "RELAY_SECRET_KEY": "x" * 20})
    assert embedded.spool_root == tmp_path / "relay-spool"


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    sys.path.insert(0, sys.argv[3])
    from test_rollup import rec
    from gateway.metering import Ledger
    from gateway.metering.spool import Spool

    async def main():
        # A database nobody listens on: every write fails, as during an outage.
        engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:9/none")
        ledger = Ledger(async_sessionmaker(engine), spool=Spool(Path(sys.argv[1])))
        ledger.start()
        for _ in range(int(sys.argv[2])):
            ledger.put(rec(sys.argv[4]))
        print("ready", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_records_of_a_process_killed_while_the_database_is_down_are_written_by_the_next(sessions, tmp_path):
    t = tenant_id()
    tests_dir = str(Path(__file__).parent)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), "700", tests_dir, t],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert (await asyncio.to_thread(child.stdout.readline)).strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    ledger = Ledger(sessions, spool=Spool(tmp_path))
    ledger.start()
    for _ in range(200):
        await asyncio.sleep(0.02)
        if await events(sessions, t) == 700:
            break
    assert await events(sessions, t) == 700
    await ledger.close()


async def test_a_closing_process_whose_disk_goes_with_it_hands_its_records_to_redis(sessions, tmp_path, backend):
    """A pod's emptyDir leaves with the pod: records it could not write go to Redis, and another worker writes them."""
    if backend[0] != "postgres":
        pytest.skip("the handoff is the Redis deployment's")
    redis = aioredis.from_url(REDIS_URL)
    handoff_name = f"test-{secrets.token_hex(4)}"
    t = tenant_id()
    try:
        leaving = Flaky(sessions, failures=10**9)
        leaving._spool = Spool(tmp_path / "pod-a")
        leaving.handoff = RedisHandoff(redis, handoff_name)
        leaving.start()
        for _ in range(120):
            leaving.put(rec(t))
        await leaving.close(timeout=0.3)
        assert files(tmp_path / "pod-a") == []  # handed over: nothing needs this disk any more
        assert await redis.llen(leaving.handoff.key) == 120

        staying = Ledger(sessions, spool=Spool(tmp_path / "pod-b"))
        staying.handoff = RedisHandoff(redis, handoff_name)
        staying.start()
        for _ in range(200):
            await asyncio.sleep(0.02)
            if await events(sessions, t) == 120:
                break
        assert await events(sessions, t) == 120
        assert await redis.llen(staying.handoff.key) == 0
        await staying.close()
    finally:
        await redis.delete(f"relay:ledger:handoff:{handoff_name}")
        await redis.aclose()


async def test_an_unwritable_spool_directory_degrades_to_no_spool(sessions, tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool directory should be")
    t = tenant_id()
    ledger = Ledger(sessions, spool=Spool(blocker / "spool"))
    ledger.start()  # the gateway still starts
    ledger.put(rec(t))
    assert await ledger.flush(timeout=10)
    assert await events(sessions, t) == 1
    assert "cannot use" in caplog.text
    await ledger.close()
