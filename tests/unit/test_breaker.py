"""The per-upstream circuit breaker's state machine, on a fake clock."""

from gateway.upstreams.breaker import Breakers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_consecutive_failures_and_probes_after_cooldown():
    clock = Clock()
    b = Breakers(threshold=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        b.failure("u")
    assert b.allow("u") and b.state("u") == "closed"
    b.failure("u")
    assert b.state("u") == "open" and not b.allow("u")
    clock.now += 10
    assert b.state("u") == "half_open"
    assert b.allow("u")  # the probe
    assert not b.allow("u")  # everyone else waits for it
    b.success("u")
    assert b.state("u") == "closed" and b.allow("u")


def test_failed_probe_reopens_and_success_resets_the_count():
    clock = Clock()
    b = Breakers(threshold=2, cooldown_s=5, clock=clock)
    b.failure("u")
    b.success("u")
    b.failure("u")
    assert b.state("u") == "closed"  # not consecutive
    b.failure("u")
    clock.now += 5
    assert b.allow("u")
    b.failure("u")
    assert b.state("u") == "open" and not b.allow("u")
    assert b.states() == {"u": "open"}
    assert b.allow("other")
