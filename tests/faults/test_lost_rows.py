"""Zero usage rows lost, whatever dies (issue 12, items 2-3): real load through real workers, then a fault.

Each test drives clients (JSON and streams) through ``relay serve`` on private services, injects one fault,
and checks that every fully answered request has its ledger row once the dust settles, and that no row
exists without an upstream completion behind it.
"""

from __future__ import annotations

import time

import pytest
from services import Load, Relay
from sites import Site

pytestmark = [pytest.mark.faults]


def _warm(relay: Relay, load: Load) -> None:
    """Every worker has seen the key and the model: through an outage they are served from the cache."""
    load.start()
    time.sleep(1.5)


def test_sigkill_of_a_worker_under_load_loses_no_row(postgres_site: Site) -> None:
    site = postgres_site
    relay = site.relay(workers=2)
    load = site.load(relay)
    try:
        load.start()
        time.sleep(2)
        killed = relay.kill_worker()
        relay.wait_replaced(killed, timeout=15)
        time.sleep(2)  # the new worker serves under load, and adopts the dead one's spool
        load.stop()
    finally:
        load.stop()
        relay.kill()
    again = site.relay(workers=1)  # the test's own SIGKILL of everything leaves spools: the next start adopts them
    try:
        site.assert_no_row_lost(load.answered)
    finally:
        again.kill()


def test_sigkill_of_the_embedded_gateway_loses_no_row(sqlite_site: Site) -> None:
    site = sqlite_site
    load: Load | None = None
    for _ in range(3):  # killed three times under load; the clients carry on against each new start
        relay = site.relay(workers=1)
        if load is None:
            load = site.load(relay).start()
        try:
            time.sleep(1.5)
        finally:
            relay.kill()
    assert load is not None
    load.stop()
    again = site.relay(workers=1)  # the next start replays the spool
    try:
        site.assert_no_row_lost(load.answered)
    finally:
        again.kill()


def test_sigkill_while_postgres_is_down_loses_no_row(postgres_site: Site) -> None:
    site = postgres_site
    assert site.pg is not None
    relay = site.relay(workers=2)
    load = site.load(relay)
    try:
        _warm(relay, load)
        site.pg.stop("immediate")
        time.sleep(2)  # answered from the caches; rows wait in memory and in the spools
        relay.kill()  # master and both workers
        load.stop()
    finally:
        load.stop()
        relay.kill()
        site.pg.start()
    again = site.relay(workers=1)
    try:
        site.assert_no_row_lost(load.answered)
    finally:
        again.kill()


def test_sigterm_while_postgres_is_down_exits_in_time_and_loses_no_row(postgres_site: Site) -> None:
    site = postgres_site
    assert site.pg is not None
    relay = site.relay(workers=2)
    load = site.load(relay)
    try:
        _warm(relay, load)
        site.pg.stop("immediate")
        time.sleep(2)
        load.stop()
        took = relay.terminate(timeout=60)
        print(f"shutdown during the outage took {took:.1f} s")
        # drain grace (2 s) + the ledger's close deadline (5 s) + the other close steps; never a hang
        assert took < 20, f"shutdown took {took:.1f} s"
    finally:
        load.stop()
        relay.kill()
        site.pg.start()
    again = site.relay(workers=1)
    try:
        site.assert_no_row_lost(load.answered)
    finally:
        again.kill()


def test_a_redis_restart_loses_no_row(postgres_site: Site) -> None:
    site = postgres_site
    assert site.redis is not None
    relay = site.relay(workers=2)
    load = site.load(relay)
    rows_before, completions_before = site.rows(), site.completions()
    try:
        load.start()
        time.sleep(1.5)
        site.redis.kill()
        time.sleep(1.5)
        site.redis.start()
        time.sleep(1.5)
        load.stop()
        rows = site.assert_no_row_lost(load.answered)
        # Nothing died but Redis: exact counts. Answered 200 = upstream completions = new usage rows.
        assert load.failed == 0
        assert rows - rows_before == load.answered
        assert site.completions() - completions_before == len(load.answered)
    finally:
        load.stop()
        relay.kill()
