"""Unit tests for the login throttle's arithmetic (a fake clock, no waiting)."""

from __future__ import annotations

import pytest
from steun_server.auth.throttle import Throttle, delay_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delay_after_is_exponential_and_capped() -> None:
    delays = [delay_after(n, free=3, base=1.0, cap=60.0) for n in range(1, 12)]
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert delay_after(10**9, free=0, base=1.0, cap=300.0) == 300.0  # no overflow on silly counts


def test_free_failures_then_growing_waits() -> None:
    clock = Clock()
    throttle = Throttle(free=2, base=0.5, cap=10.0, clock=clock)
    assert throttle.failure("k") == 0
    assert throttle.failure("k") == 0
    assert throttle.retry_after("k") == 0
    assert throttle.failure("k") == 0.5
    assert throttle.retry_after("k") == pytest.approx(0.5)
    clock.now += 0.2
    assert throttle.retry_after("k") == pytest.approx(0.3)
    clock.now += 0.3
    assert throttle.retry_after("k") == 0
    assert throttle.failure("k") == 1.0
    clock.now += 1
    assert throttle.failure("k") == 2.0


def test_success_resets_and_keys_are_independent() -> None:
    clock = Clock()
    throttle = Throttle(free=0, base=1.0, cap=10.0, clock=clock)
    throttle.failure("a")
    throttle.failure("a")
    assert throttle.retry_after("a") == 2.0
    assert throttle.retry_after("b") == 0
    throttle.success("a")
    assert throttle.retry_after("a") == 0
    assert throttle.failures("a") == 0


def test_quiet_key_starts_over() -> None:
    clock = Clock()
    throttle = Throttle(free=0, base=1.0, cap=10.0, clock=clock)
    for _ in range(5):
        throttle.failure("a")
    clock.now += 2 * 10.0 + 61
    assert throttle.failure("a") == 1.0


def test_bounded_number_of_keys() -> None:
    throttle = Throttle(free=0, base=1.0, cap=10.0, max_keys=3, clock=Clock())
    for key in "abcde":
        throttle.failure(key)
    stats = throttle.statistics()
    assert stats.keys == 3
    assert stats.blocked == 3
    assert throttle.failures("a") == 0  # the oldest went first
    assert throttle.failures("e") == 1
