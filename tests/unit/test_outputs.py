"""Budget reservations follow what a model really produces once it has ignored ``max_tokens``."""

from gateway.metering.limits import MemoryLimiter, _Budget
from gateway.metering.outputs import WINDOW, OutputStats

MODEL = ("up-1", "model-x")


def test_a_model_that_honours_max_tokens_is_reserved_at_max_tokens():
    stats = OutputStats()
    for produced in (10, 90, 100, 50):
        stats.observe(MODEL, 100, produced)
    assert stats.expected(MODEL, 100) == 100
    assert stats.expected(MODEL, 4000) == 4000  # never below what the request may use
    assert stats.expected(("up-2", "other"), 64) == 64  # nothing known: trust the request


def test_a_model_that_produced_more_than_asked_is_reserved_at_its_p99():
    stats = OutputStats()
    for _ in range(50):
        stats.observe(MODEL, 100, 1000)  # reports ten times what was asked
    assert stats.expected(MODEL, 100) == 1000
    assert stats.expected(MODEL, 5000) == 5000  # max_tokens stays the floor


def test_the_window_forgets_old_overruns():
    stats = OutputStats()
    stats.observe(MODEL, 100, 1000)
    for _ in range(WINDOW):
        stats.observe(MODEL, 100, 80)
    assert stats.expected(MODEL, 100) == 100


def test_a_fallback_worker_may_spend_only_its_share_of_what_was_left():
    budget = _Budget(spent=400, base=400)
    assert budget.allowed(1000, 1.0) == 1000
    assert budget.allowed(1000, 0.5) == 700  # half of the 600 left
    assert MemoryLimiter(share=0.25).share == 0.25
