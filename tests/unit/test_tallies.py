"""The Redis meter's in-memory tallies: per-group sums expanded into the day and minute hashes."""

from datetime import UTC, datetime

from gateway.domain import Usage
from gateway.metering.base import UsageRecord
from gateway.metering.redis import DAY_TTL_S, MINUTE_TTL_S, Tallies, merge_into


def rec(key: str | None, model: str, at: datetime, status: int = 200, tokens=(10, 2, 0, 0), cost=7) -> UsageRecord:
    return UsageRecord(
        request_id="r",
        tenant_id="t1",
        key_id=key,
        model=model,
        upstream_id=None,
        door_dialect="openai",
        upstream_dialect="openai",
        stream=False,
        usage=Usage(*tokens),
        cost_micro_usd=cost,
        status=status,
        latency_ms=1,
        created_at=at,
    )


def test_records_add_up_per_scope_day_and_minute():
    t = Tallies()
    m1 = datetime(2026, 11, 29, 23, 59, 10, tzinfo=UTC)
    m2 = datetime(2026, 11, 30, 0, 0, 5, tzinfo=UTC)  # the next minute is also the next day
    t.add(rec("k1", "gpt", m1))
    t.add(rec("k1", "gpt", m1.replace(second=50), status=502, tokens=(0, 0, 0, 0), cost=0))
    t.add(rec("k2", "gpt", m2, tokens=(1, 1, 3, 4), cost=1))
    out = t.drain()
    assert out["relay:usage:key:k1:20261129"] == (
        DAY_TTL_S,
        {"requests": 2, "errors": 1, "input_tokens": 10, "output_tokens": 2, "cost_micro_usd": 7},
    )
    assert out["relay:usage:key:k1:m202611292359"][0] == MINUTE_TTL_S
    assert out["relay:usage:key:k2:20261130"][1] == {
        "requests": 1,
        "input_tokens": 1,
        "output_tokens": 1,
        "cache_read_tokens": 3,
        "cache_write_tokens": 4,
        "cost_micro_usd": 1,
    }
    assert out["relay:usage:tenant:t1:20261129"][1]["requests"] == 2
    assert out["relay:usage:tenant:t1:20261130"][1]["requests"] == 1
    assert out["relay:usage:model:gpt:m202611300000"][1]["requests"] == 1
    assert len(out) == 12  # k1 and k2: a day and a minute each; tenant and model: two days and two minutes
    assert t.drain() == {}


def test_a_record_without_a_key_counts_under_key_none_and_merge_adds_dicts():
    t = Tallies()
    t.add(rec(None, "m", datetime(2026, 1, 2, 3, 4, tzinfo=UTC)))
    out = t.drain()
    assert "relay:usage:key:None:20260102" in out
    merge_into(out, "relay:usage:key:None:20260102", DAY_TTL_S, {"requests": 2, "errors": 0})
    assert out["relay:usage:key:None:20260102"][1]["requests"] == 3
    assert "errors" not in out["relay:usage:key:None:20260102"][1]
