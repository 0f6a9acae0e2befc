"""Login throttling: a growing delay per account and per source address, without sleeping in a handler.

After ``free`` failures each further failure makes the key wait ``base * 2**(n - free - 1)`` seconds (capped)
before the next attempt is even looked at; attempts inside the wait are answered ``429 throttled`` with
``retry_after`` and are not counted. Success resets the key. Entries are kept in a bounded LRU; an entry
whose delay has run out long ago is forgotten. See docs/design/0003-login-throttling.md.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable


def delay_after(failures: int, *, free: int, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures."""
    over = failures - free
    if over <= 0:
        return 0.0
    # 2**64 is plenty to reach any cap; clamping the exponent avoids overflow on silly counts
    return float(min(cap, base * 2.0 ** min(over - 1, 64)))


@dataclasses.dataclass(slots=True)
class _Entry:
    failures: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottleStatistics:
    keys: int
    max_keys: int
    blocked: int


class Throttle:
    def __init__(
        self,
        *,
        free: int,
        base: float,
        cap: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.max_keys = max_keys
        self._clock = clock
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.blocked_until - self._clock())

    def failure(self, key: str) -> float:
        """Count a failure; returns the delay it imposes."""
        now = self._clock()
        entry = self._entries.pop(key, None) or _Entry()
        # a key that stayed quiet for long (twice the cap) starts over
        if entry.failures and now - entry.last_failure > 2 * self.cap + 60:
            entry = _Entry()
        entry.failures += 1
        entry.last_failure = now
        delay = delay_after(entry.failures, free=self.free, base=self.base, cap=self.cap)
        entry.blocked_until = now + delay
        self._entries[key] = entry
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)
        return delay

    def success(self, key: str) -> None:
        self._entries.pop(key, None)

    def failures(self, key: str) -> int:
        entry = self._entries.get(key)
        return entry.failures if entry else 0

    def statistics(self) -> ThrottleStatistics:
        now = self._clock()
        blocked = sum(1 for e in self._entries.values() if e.blocked_until > now)
        return ThrottleStatistics(keys=len(self._entries), max_keys=self.max_keys, blocked=blocked)
