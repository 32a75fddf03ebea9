"""The hot path's TTL cache: one load per miss, stale-while-refreshing within the grace, forget."""

import asyncio
import logging

import pytest
from sqlalchemy.exc import OperationalError

from gateway.cache import TTLCache
from gateway.db.outage import DatabaseUnavailable, Outage


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A loader whose answers change between calls and which can be held open or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def __call__(self, key: str) -> str:
        self.calls += 1
        n = self.calls
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return f"{key}-{n}"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_misses_load_once_and_all_get_the_value():
    src, clock = Source(), Clock()
    cache = TTLCache(src, ttl_s=3, clock=clock)
    src.gate = asyncio.Event()
    waiters = [asyncio.create_task(cache.get("k")) for _ in range(50)]
    await settle()
    src.gate.set()
    assert set(await asyncio.gather(*waiters)) == {"k-1"}
    assert src.calls == 1
    assert await cache.get("k") == "k-1" and src.calls == 1


async def test_within_grace_the_stale_value_is_served_while_one_refresh_runs():
    src, clock = Source(), Clock()
    cache = TTLCache(src, ttl_s=3, grace_s=1, clock=clock)
    assert await cache.get("k") == "k-1"
    clock.now += 3.5
    assert [await cache.get("k") for _ in range(10)] == ["k-1"] * 10
    await settle()
    assert src.calls == 2
    assert await cache.get("k") == "k-2"


async def test_beyond_grace_the_caller_waits_for_a_fresh_value():
    src, clock = Source(), Clock()
    cache = TTLCache(src, ttl_s=3, grace_s=1, clock=clock)
    await cache.get("k")
    clock.now += 4.01
    assert await cache.get("k") == "k-2"


async def test_zero_ttl_loads_every_time():
    src = Source()
    cache = TTLCache(src, ttl_s=0)
    assert [await cache.get("k") for _ in range(3)] == ["k-1", "k-2", "k-3"]


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached():
    src, clock = Source(), Clock()
    cache = TTLCache(src, ttl_s=3, clock=clock)
    src.gate, src.fail = asyncio.Event(), RuntimeError("database away")
    waiters = [asyncio.create_task(cache.get("k")) for _ in range(3)]
    await settle()
    src.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and src.calls == 1
    src.fail = None
    assert await cache.get("k") == "k-2"


async def test_a_failed_background_refresh_keeps_the_stale_value_until_the_grace_ends(caplog):
    src, clock = Source(), Clock()
    cache = TTLCache(src, ttl_s=3, grace_s=1, clock=clock)
    await cache.get("k")
    src.fail = RuntimeError("database away")
    clock.now += 3.2
    assert await cache.get("k") == "k-1"
    await settle()
    assert "background cache refresh failed" in caplog.text
    clock.now += 1
    with pytest.raises(RuntimeError):
        await cache.get("k")


async def test_forget_drops_entries_and_the_loads_that_started_before_it():
    src, clock = Source(), Clock()
    cache = TTLCache(src, ttl_s=3, clock=clock)
    src.gate = asyncio.Event()
    before = asyncio.create_task(cache.get("k"))
    await settle()
    cache.forget()  # e.g. the key was revoked while its row was being read
    after = asyncio.create_task(cache.get("k"))
    await settle()
    src.gate.set()
    assert await before == "k-1"  # the old caller gets what it asked for
    assert await after == "k-2"  # a caller after forget never joins the old load
    assert await cache.get("k") == "k-2" and src.calls == 2  # and the old answer was not kept


async def test_a_caller_that_goes_away_does_not_cancel_the_others_load():
    src, clock = Source(), Clock()
    cache = TTLCache(src, ttl_s=3, clock=clock)
    src.gate = asyncio.Event()
    first, second = asyncio.create_task(cache.get("k")), asyncio.create_task(cache.get("k"))
    await settle()
    first.cancel()
    await settle()
    src.gate.set()
    assert await second == "k-1" and src.calls == 1


def outage_cache(source: Source, clock: Clock) -> tuple[TTLCache[str, str], Outage]:
    outage = Outage(clock)
    return TTLCache(source, ttl_s=3, grace_s=1, clock=clock, outage=outage, stale_if_error_s=300), outage


async def test_while_the_database_is_down_expired_entries_are_served_for_the_stale_window(caplog):
    source, clock = Source(), Clock()
    cache, outage = outage_cache(source, clock)
    assert await cache.get("k") == "k-1"
    source.fail = ConnectionRefusedError(111, "Connect call failed")
    clock.now += 60  # long past TTL and grace
    with caplog.at_level(logging.WARNING, logger="relay"):
        assert await cache.get("k") == "k-1"  # the first miss finds the outage out, and serves the stale entry
        assert outage.down
        for _ in range(20):
            assert await cache.get("k") == "k-1"  # no waiting on a load: one background probe at a time
            await settle()
    assert sum("database unreachable" in r.message for r in caplog.records) == 1  # one warning per outage
    clock.now += 300
    with pytest.raises(DatabaseUnavailable) as err:
        await cache.get("k")  # the stale window is bounded
    assert err.value.status_code == 503 and err.value.headers["retry-after"]
    source.fail = None
    with caplog.at_level(logging.WARNING, logger="relay"):
        assert await cache.get("k") == f"k-{source.calls}"
    assert not outage.down and "reachable again" in caplog.text


async def test_a_miss_during_an_outage_is_a_503_not_an_internal_error():
    source, clock = Source(), Clock()
    cache, _ = outage_cache(source, clock)
    source.fail = OperationalError("SELECT", {}, ConnectionError("the database system is shutting down"))
    with pytest.raises(DatabaseUnavailable):
        await cache.get("never-seen")


async def test_other_load_errors_are_not_mistaken_for_an_outage():
    source, clock = Source(), Clock()
    cache, outage = outage_cache(source, clock)
    source.fail = ValueError("a bug")
    with pytest.raises(ValueError):
        await cache.get("k")
    assert not outage.down
