"""Reconnect delays: exponential backoff with full jitter, reset after a stable connection."""

from __future__ import annotations

import random


class Backoff:
    """Delay before reconnect attempt *n* is uniform in ``[0, min(cap, base * 2**n)]`` ("full jitter").

    Full jitter spreads a fleet that lost its server at the same moment over the whole window, so the
    restarted server is not hit by every agent at once; the cap bounds how long an agent stays away.
    """

    def __init__(self, base: float, cap: float, *, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.SystemRandom()

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # 2**attempt is bounded so that a long outage cannot overflow a float.
        return float(min(self.cap, self.base * 2.0 ** min(self.attempt, 62)))

    def next_delay(self) -> float:
        delay = self._rng.uniform(0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0

    def saturate(self) -> None:
        """Make the next delays span the whole window up to the cap (the server asked us to back off)."""
        self.attempt = max(self.attempt, 62)
