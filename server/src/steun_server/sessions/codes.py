"""Quick-support codes: nine random digits, valid ten minutes, single use, bound to the technician.

Codes are kept in memory under an HMAC of the code (the key is derived from the org key, so every node that
holds the org key computes the same one; see docs/design/0080-support-codes.md for the multi-node path).
Redemptions are rate-limited per source address and for the whole server with growing waits; a refused
attempt is answered at once (``throttled`` with a retry hint), never by holding the connection.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable

from steun_protocol.sessionplane import SUPPORT_CODE_DIGITS, SupportCodeEvent

from ..fleet.hooks import RedeemRefused

CODE_SPACE = 10**SUPPORT_CODE_DIGITS
#: Codes alive at once on this node, and per technician.
MAX_LIVE_CODES = 10_000
MAX_CODES_PER_TECHNICIAN = 10
#: Spent codes remembered (by their HMAC), to answer ``code_used`` / ``code_expired``, not ``code_invalid``.
REMEMBER_SPENT = 20_000
#: Failures are counted over the last hour; after the free ones each further failure imposes a doubling wait.
FAILURE_WINDOW = 3600.0
ADDRESS_BASE_DELAY = 2.0
ADDRESS_MAX_DELAY = 300.0
GLOBAL_BASE_DELAY = 1.0
GLOBAL_MAX_DELAY = 60.0
GLOBAL_KEY = "*"

CODE_INVALID = "code_invalid"
CODE_EXPIRED = "code_expired"
CODE_USED = "code_used"
THROTTLED = "throttled"


def delay_after(failures: int, *, free: int, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` failures inside the window."""
    over = failures - free
    if over <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** min(over - 1, 64)))


class RedeemLimiter:
    """Failures per key over a sliding window; after ``free`` of them, a doubling wait (capped) per failure.

    Attempts made while a key waits are refused and not counted. Memory is bounded: at most ``max_keys`` keys
    (least recently failed dropped first) and at most ``free + 64`` failure times per key (more would not
    change the wait, which is at its cap by then).
    """

    def __init__(
        self,
        *,
        free: int,
        base: float,
        cap: float,
        window: float = FAILURE_WINDOW,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def _recent(self, key: str, now: float) -> collections.deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        now = self._clock()
        times = self._recent(key, now)
        if times is None:
            return 0.0
        wait = delay_after(len(times), free=self.free, base=self.base, cap=self.cap)
        return max(0.0, times[-1] + wait - now)

    def failure(self, key: str) -> None:
        now = self._clock()
        times = self._recent(key, now)
        if times is None:
            times = collections.deque(maxlen=self.free + 64)
        self._failures[key] = times
        self._failures.move_to_end(key)
        times.append(now)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def failures(self, key: str) -> int:
        times = self._recent(key, self._clock())
        return len(times) if times is not None else 0

    def statistics(self) -> dict[str, int]:
        return {"keys": len(self._failures)}


@dataclasses.dataclass(frozen=True, slots=True)
class Technician:
    user_id: int
    username: str
    #: what the end user sees (display name, else the username)
    name: str


@dataclasses.dataclass(slots=True)
class SupportCode:
    key: str  # HMAC of the code, hex: the only form kept
    technician: Technician
    created_at: float
    expires_at: float
    #: sends a ``SupportCodeEvent`` to the technician's console (never blocks)
    notify: Callable[[SupportCodeEvent], None]
    timer: asyncio.TimerHandle | None = None


class SupportCodes:
    """The live codes of this node and the redemption limits."""

    def __init__(
        self,
        secret: bytes,
        *,
        ttl: float,
        address_free: int,
        global_free: int,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret = secret
        self.ttl = ttl
        self._clock = clock
        self._live: dict[str, SupportCode] = {}
        self._claimed: collections.OrderedDict[str, SupportCode] = collections.OrderedDict()
        self._spent: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.by_address = RedeemLimiter(
            free=address_free, base=ADDRESS_BASE_DELAY, cap=ADDRESS_MAX_DELAY, clock=monotonic
        )
        self.globally = RedeemLimiter(
            free=global_free, base=GLOBAL_BASE_DELAY, cap=GLOBAL_MAX_DELAY, max_keys=1, clock=monotonic
        )
        self.created = 0
        self.redeemed = 0
        self.failed = 0
        self.throttled = 0

    def _key(self, code: str) -> str:
        return hmac.new(self._secret, code.encode("ascii"), hashlib.sha256).hexdigest()

    # -- technicians ----------------------------------------------------------------------------------------

    def create(
        self, technician: Technician, notify: Callable[[SupportCodeEvent], None]
    ) -> tuple[str, SupportCode]:
        """A new code; ``notify`` gets ``redeemed`` or ``expired``. Raises ``OverflowError`` when full."""
        self.check_room(technician)
        while True:
            # uniform over all 10^9 codes (leading zeros included); never the same as a live or spent one
            code = f"{secrets.randbelow(CODE_SPACE):0{SUPPORT_CODE_DIGITS}d}"
            key = self._key(code)
            if key not in self._live and key not in self._spent and key not in self._claimed:
                break
        now = self._clock()
        entry = SupportCode(key, technician, now, now + self.ttl, notify)
        entry.timer = asyncio.get_running_loop().call_later(self.ttl, self._expire, key)
        self._live[key] = entry
        self.created += 1
        return code, entry

    def check_room(self, technician: Technician) -> None:
        """Raise ``OverflowError`` when no more codes may be made (for anyone, or for ``technician``)."""
        if len(self._live) >= MAX_LIVE_CODES:
            raise OverflowError("too many support codes are open on this server")
        mine = sum(1 for c in self._live.values() if c.technician.user_id == technician.user_id)
        if mine >= MAX_CODES_PER_TECHNICIAN:
            raise OverflowError("you have too many open support codes; cancel one first")

    def withdraw(self, key: str) -> bool:
        """The technician no longer waits (cancelled, or the console went away): the code dies unused."""
        entry = self._live.pop(key, None)
        if entry is None:
            return False
        if entry.timer is not None:
            entry.timer.cancel()
        self._spend(key, "withdrawn")
        return True

    def _expire(self, key: str) -> None:
        entry = self._live.pop(key, None)
        if entry is None:
            return
        self._spend(key, "expired")
        entry.notify(SupportCodeEvent(kind="expired"))

    # -- agents -------------------------------------------------------------------------------------------

    def claim(self, code: str, *, address: str) -> SupportCode:
        """Use up ``code`` for a redemption from ``address``; raises :class:`RedeemRefused`."""
        wait_here = self.by_address.retry_after(address)
        wait_all = self.globally.retry_after(GLOBAL_KEY)
        if wait_here > 0 or wait_all > 0:
            self.throttled += 1
            wait = math.ceil(max(wait_here, wait_all))
            where = "from your address" if wait_here >= wait_all else "on this server"
            raise RedeemRefused(
                THROTTLED,
                f"too many wrong support codes {where}; try again in {wait} s (retry_after={wait})",
                retry_after=float(wait),
            )
        key = self._key(code)
        entry = self._live.get(key)
        if entry is not None and self._clock() >= entry.expires_at:
            self._expire(key)  # its timer has not run yet
            entry = None
        if entry is None:
            self.failed += 1
            self.by_address.failure(address)
            self.globally.failure(GLOBAL_KEY)
            spent = self._spent.get(key)
            if spent == "redeemed":
                raise RedeemRefused(CODE_USED, "this support code was used already; ask for a new one")
            if spent in ("expired", "withdrawn"):
                raise RedeemRefused(CODE_EXPIRED, "this support code is no longer valid; ask for a new one")
            raise RedeemRefused(CODE_INVALID, "this support code is not valid; check the digits")
        del self._live[key]
        if entry.timer is not None:
            entry.timer.cancel()
        self._spend(key, "redeemed")
        self._claimed[key] = entry
        while len(self._claimed) > 1024:
            self._claimed.popitem(last=False)
        self.redeemed += 1
        return entry

    def take_claimed(self, key: str) -> SupportCode | None:
        """The code a redemption used, once (to tell its technician)."""
        return self._claimed.pop(key, None)

    # -- housekeeping -------------------------------------------------------------------------------------

    def _spend(self, key: str, reason: str) -> None:
        self._spent[key] = reason
        self._spent.move_to_end(key)
        while len(self._spent) > REMEMBER_SPENT:
            self._spent.popitem(last=False)

    def close(self) -> None:
        for entry in self._live.values():
            if entry.timer is not None:
                entry.timer.cancel()
        self._live.clear()

    def statistics(self) -> dict[str, int]:
        return {
            "live": len(self._live),
            "created": self.created,
            "redeemed": self.redeemed,
            "failed": self.failed,
            "throttled": self.throttled,
            "limited_addresses": self.by_address.statistics()["keys"],
        }
