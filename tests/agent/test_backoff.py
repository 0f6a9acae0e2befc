"""Reconnect backoff: full jitter within doubling bounds, capped, reset, saturated."""

from __future__ import annotations

import random
import statistics

import pytest
from steun_agent.backoff import Backoff


def test_bounds_double_until_the_cap() -> None:
    backoff = Backoff(1.0, 60.0, rng=random.Random(1))
    ceilings = []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        delay = backoff.next_delay()
        assert 0 <= delay <= ceilings[-1]
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_delays_are_jittered_over_the_whole_window() -> None:
    rng = random.Random(7)
    samples = []
    for _ in range(2000):
        backoff = Backoff(1.0, 8.0, rng=rng)
        backoff.attempt = 3  # window [0, 8]
        samples.append(backoff.next_delay())
    assert min(samples) < 0.2
    assert max(samples) > 7.8
    assert 3.6 < statistics.mean(samples) < 4.4  # uniform: mean is half the window
    assert len(set(samples)) == len(samples)


def test_reset_starts_over() -> None:
    backoff = Backoff(0.5, 10.0, rng=random.Random(2))
    for _ in range(8):
        backoff.next_delay()
    assert backoff.ceiling() == 10.0
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 0.5


def test_long_outage_does_not_overflow() -> None:
    backoff = Backoff(1.0, 300.0)
    backoff.attempt = 10_000
    assert backoff.ceiling() == 300.0
    assert 0 <= backoff.next_delay() <= 300.0


def test_saturate_spans_to_the_cap() -> None:
    backoff = Backoff(1.0, 120.0)
    backoff.saturate()
    assert backoff.ceiling() == 120.0


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_invalid_parameters(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base, cap)
