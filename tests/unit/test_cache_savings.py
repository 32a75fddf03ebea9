"""The cache hit rate and savings arithmetic (``gateway.manage.cache_savings``), without a database."""

from __future__ import annotations

from datetime import date

from gateway.domain import Price
from gateway.manage.cache_savings import CacheRow, hit_rate, price_of, saved_micro_usd, tally
from gateway.manage.usage import Totals, UsageRow

GPT = Price(input=2.0, output=8.0, cache_read=0.2)
CLAUDE = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)
PRICES = {"gpt": GPT, "claude": CLAUDE}
DAY = date(2026, 11, 2)


def test_hit_rate_is_the_cached_share_of_all_prompt_tokens() -> None:
    assert hit_rate(Totals(input_tokens=200, cache_read_tokens=800)) == 0.8
    assert hit_rate(Totals(input_tokens=100, cache_read_tokens=600, cache_write_tokens=300)) == 0.6
    assert hit_rate(Totals(output_tokens=5)) is None  # no prompt tokens: nothing to rate


def test_saved_is_reads_at_the_discount_less_writes_at_the_premium() -> None:
    assert saved_micro_usd(GPT, 800, 0) == 1440  # 800 x (2.00 - 0.20)
    assert saved_micro_usd(CLAUDE, 1000, 0) == 2700
    # A write costs 0.75/MTok more than input: 1000 written and never read is a loss.
    assert saved_micro_usd(CLAUDE, 0, 1000) == -750
    assert saved_micro_usd(CLAUDE, 1000, 1000) == 1950


def test_tally_splits_by_model_key_and_day_and_names_the_unpriced() -> None:
    rows = [
        CacheRow("gpt", "k1", DAY, 800, 0),
        CacheRow("claude", "k1", DAY, 0, 1000),
        CacheRow("claude", None, date(2026, 11, 3), 1000, 0),
        CacheRow("gone", "k1", DAY, 5000, 0),
        CacheRow("gpt", "k2", DAY, 0, 0),
    ]
    s = tally(rows, PRICES)
    assert s.total_micro_usd == 1440 - 750 + 2700
    assert s.by_model == {"gpt": 1440, "claude": 1950}
    assert s.by_key == {"k1": 1440 - 750, None: 2700}
    assert s.by_day == {DAY: 690, date(2026, 11, 3): 2700}
    assert s.unpriced == {"gone"}
    assert s.of_row(UsageRow(Totals(), key_id=None)) == 2700
    assert s.of_row(UsageRow(Totals(), model="claude")) == 1950
    assert s.of_row(UsageRow(Totals(), day=DAY)) == 690


def test_rounding_happens_once_per_sum() -> None:
    """Three rows of 0.4 micro-USD each save 1 micro-USD together, not 0."""
    tiny = Price(input=0.0004, cache_read=0.0)
    s = tally([CacheRow("m", f"k{i}", DAY, 1000, 0) for i in range(3)], {"m": tiny})
    assert s.total_micro_usd == 1 and s.by_model == {"m": 1}


def test_a_thinking_name_is_priced_as_its_base_model() -> None:
    assert price_of(PRICES, "claude-thinking") == CLAUDE
    assert price_of(PRICES, "other-thinking") is None
