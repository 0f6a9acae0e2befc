"""Which agents are online on this node, their live metrics, and a bounded change feed for consoles.

The interface is kept narrow on purpose (``online``, ``set_online``, ``set_offline``, ``update_metrics``,
``publish``, ``subscribe``) so that a Redis-backed implementation can take its place when several server
nodes share one fleet (see ``docs/design/0010-presence-and-heartbeats.md``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
from collections.abc import Iterable
from typing import Protocol

from steun_protocol.inventory import LiveMetrics

#: Devices with undelivered changes one subscriber may hold before it is told to resynchronise.
DEFAULT_MAX_PENDING = 1024


class Change(enum.StrEnum):
    """What happened to a device; consoles re-read what they show when one arrives."""

    ENROLLED = "enrolled"
    ONLINE = "online"
    OFFLINE = "offline"
    INVENTORY = "inventory"
    METRICS = "metrics"
    DETAILS = "details"  # hostname, group, revocation


#: Changes that alter a ``DeviceSummary`` (metrics do not).
SUMMARY_CHANGES = frozenset(
    {Change.ENROLLED, Change.ONLINE, Change.OFFLINE, Change.INVENTORY, Change.DETAILS}
)


class AgentLink(Protocol):
    """The live connection of one agent, as presence needs to see it."""

    @property
    def device_id(self) -> str: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclasses.dataclass(slots=True)
class PresenceEntry:
    link: AgentLink
    connected_at: float
    #: Wall-clock time of the last message from the agent (what ``last_seen`` shows).
    last_seen: float
    metrics: LiveMetrics | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """Changes collected for a subscriber since it last looked, one entry per device.

    ``resync`` means the subscriber fell so far behind that changes were dropped: re-read everything.
    """

    changes: dict[str, frozenset[Change]]
    resync: bool = False


class Subscription:
    """A bounded feed of device changes: repeated changes to one device coalesce into one entry.

    Memory is bounded by ``max_pending`` devices; a subscriber that falls further behind loses the details
    and receives one ``Batch(resync=True)`` instead, so a slow console never makes the server grow.
    """

    def __init__(
        self,
        owner: Presence,
        *,
        device_id: str | None,
        kinds: frozenset[Change] | None,
        max_pending: int,
    ) -> None:
        self._owner = owner
        self.device_id = device_id
        self.kinds = kinds
        self.max_pending = max_pending
        self._pending: dict[str, set[Change]] = {}
        self._resync = False
        self._closed = False
        self._wakeup = asyncio.Event()
        self.delivered = 0
        self.coalesced = 0
        self.overflows = 0

    def wants(self, device_id: str, kind: Change) -> bool:
        if self.device_id is not None and device_id != self.device_id:
            return False
        return self.kinds is None or kind in self.kinds

    def _push(self, device_id: str, kind: Change) -> None:
        if self._closed:
            return
        kinds = self._pending.get(device_id)
        if kinds is not None:
            kinds.add(kind)
            self.coalesced += 1
        elif self._resync:
            pass  # everything will be re-read anyway
        elif len(self._pending) >= self.max_pending:
            self._pending.clear()
            self._resync = True
            self.overflows += 1
        else:
            self._pending[device_id] = {kind}
        self._wakeup.set()

    def pending(self) -> int:
        return len(self._pending)

    def take(self) -> Batch | None:
        """The changes collected so far, without waiting (None when there are none)."""
        if not self._pending and not self._resync:
            return None
        batch = Batch({d: frozenset(k) for d, k in self._pending.items()}, resync=self._resync)
        self._pending = {}
        self._resync = False
        self._wakeup.clear()
        self.delivered += 1
        return batch

    async def wait_batch(self) -> Batch:
        """Wait until something changed; raises ``StopAsyncIteration`` once closed."""
        while True:
            if self._closed:
                raise StopAsyncIteration
            batch = self.take()
            if batch is not None:
                return batch
            await self._wakeup.wait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Batch:
        return await self.wait_batch()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pending.clear()
            self._wakeup.set()
            self._owner._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Presence:
    """In-process presence: the agents connected to this node and everyone who watches them."""

    def __init__(self, *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._entries: dict[str, PresenceEntry] = {}
        self._subscriptions: set[Subscription] = set()
        self.max_pending = max_pending
        self._published = 0
        self._replaced = 0

    # -- questions ------------------------------------------------------------------------------------------

    def online(self, device_id: str) -> bool:
        return device_id in self._entries

    def entry(self, device_id: str) -> PresenceEntry | None:
        return self._entries.get(device_id)

    def metrics(self, device_id: str) -> LiveMetrics | None:
        entry = self._entries.get(device_id)
        return entry.metrics if entry is not None else None

    def last_seen(self, device_id: str) -> float | None:
        entry = self._entries.get(device_id)
        return entry.last_seen if entry is not None else None

    def online_devices(self) -> Iterable[str]:
        return tuple(self._entries)

    def statistics(self) -> dict[str, int]:
        return {
            "online": len(self._entries),
            "subscribers": len(self._subscriptions),
            "pending": sum(s.pending() for s in self._subscriptions),
            "published": self._published,
            "replaced": self._replaced,
            "overflows": sum(s.overflows for s in self._subscriptions),
        }

    # -- changes --------------------------------------------------------------------------------------------

    def set_online(self, link: AgentLink, *, now: float | None = None) -> AgentLink | None:
        """Record ``link`` as the device's connection; returns the connection it replaces (close that one)."""
        now = time.time() if now is None else now
        previous = self._entries.get(link.device_id)
        self._entries[link.device_id] = PresenceEntry(link=link, connected_at=now, last_seen=now)
        self.publish(link.device_id, Change.ONLINE)
        if previous is not None and previous.link is not link:
            self._replaced += 1
            return previous.link
        return None

    def set_offline(self, link: AgentLink) -> bool:
        """Forget ``link`` if it is still the device's connection (a replaced link changes nothing)."""
        entry = self._entries.get(link.device_id)
        if entry is None or entry.link is not link:
            return False
        del self._entries[link.device_id]
        self.publish(link.device_id, Change.OFFLINE)
        return True

    def touch(self, link: AgentLink, *, now: float | None = None) -> None:
        entry = self._entries.get(link.device_id)
        if entry is not None and entry.link is link:
            entry.last_seen = time.time() if now is None else now

    def update_metrics(self, link: AgentLink, metrics: LiveMetrics, *, now: float | None = None) -> None:
        entry = self._entries.get(link.device_id)
        if entry is None or entry.link is not link:
            return
        entry.metrics = metrics
        entry.last_seen = time.time() if now is None else now
        self.publish(link.device_id, Change.METRICS)

    def publish(self, device_id: str, kind: Change) -> None:
        """Tell every interested subscriber that ``device_id`` changed (never blocks, never grows)."""
        self._published += 1
        for subscription in self._subscriptions:
            if subscription.wants(device_id, kind):
                subscription._push(device_id, kind)

    def subscribe(
        self,
        *,
        device_id: str | None = None,
        kinds: Iterable[Change] | None = None,
        max_pending: int | None = None,
    ) -> Subscription:
        """A feed of changes to one device (``device_id``) or to all, optionally of some ``kinds`` only."""
        subscription = Subscription(
            self,
            device_id=device_id,
            kinds=None if kinds is None else frozenset(kinds),
            max_pending=max_pending or self.max_pending,
        )
        self._subscriptions.add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every agent connection (server shutdown) and end every subscription."""
        links = [entry.link for entry in self._entries.values()]
        for link in links:
            await link.close(code, reason)
        for subscription in list(self._subscriptions):
            subscription.close()
