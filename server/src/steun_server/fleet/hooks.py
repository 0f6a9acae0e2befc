"""Quick support on the agent control plane: the ``SupportDesk`` interface and the ephemeral device registry.

The fleet owns ``/agent/ws``; the remote-session module (``steun_server.sessions``) owns support codes. For
``support/redeem`` the fleet checks the agent's proof, asks ``FleetService.support_desk`` whether the code is
good, and then keeps the agent online as an *ephemeral* device (:class:`QuickDevices`, group
``quick-support``) that is never written to the database and disappears with its connection.

Other agent requests are served through ``FleetService.agent_handlers`` and server → agent requests go through
``AgentSession.request`` (see ``service.py`` and ``agent_ws.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Protocol

from steun_protocol.inventory import Inventory

from . import store

#: The group shown for a quick-support device (it belongs to no real group and is not in the database).
QUICK_SUPPORT_GROUP = "quick-support"
#: Quick-support devices one node keeps at most (each is a live connection; this is a sanity bound).
MAX_QUICK_DEVICES = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class QuickSupportGrant:
    """What a redeemed code tells the agent, and who may use the device afterwards."""

    org_name: str
    technician_name: str
    #: Opaque to the fleet: whose device it is (only they may ask it for a session).
    owner: str
    #: Opaque to the fleet: how the desk finds the code again in ``redeemed``.
    code_key: str


class RedeemRefused(Exception):
    """The code (or the rate limit) refused a redemption. ``retry_after`` > 0 comes with ``throttled``."""

    def __init__(self, code: str, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after


class SupportDesk(Protocol):
    """Quick-support codes, as the agent websocket needs them (``steun_server.sessions`` provides one)."""

    def claim(self, code: str, *, address: str) -> QuickSupportGrant:
        """Use up ``code`` (rate-limited per address and globally); raises :class:`RedeemRefused`.

        Synchronous on purpose: nothing can run between the claim and the device going online.
        """
        ...

    async def redeemed(self, grant: QuickSupportGrant, device: store.DeviceRecord, *, address: str) -> None:
        """The device is online: tell the technician's console and audit it."""
        ...

    async def refused(self, refusal: RedeemRefused, *, address: str) -> None:
        """Audit a refused redemption (the desk throttles its own audit records)."""
        ...

    def released(self, device_id: str) -> None:
        """A quick-support device went away with its connection."""
        ...


@dataclasses.dataclass(slots=True)
class QuickDevice:
    record: store.DeviceRecord
    owner: str
    inventory: Inventory | None = None
    inventory_updated_at: float | None = None


class QuickDevices:
    """Ephemeral quick-support devices of this node: in memory only, removed when the connection closes."""

    def __init__(self, max_devices: int = MAX_QUICK_DEVICES) -> None:
        self.max_devices = max_devices
        self._devices: dict[str, QuickDevice] = {}

    def __len__(self) -> int:
        return len(self._devices)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._devices

    def full(self) -> bool:
        return len(self._devices) >= self.max_devices

    def add(self, record: store.DeviceRecord, owner: str) -> QuickDevice:
        device = QuickDevice(record=record, owner=owner)
        self._devices[record.id] = device
        return device

    def remove(self, device_id: str) -> bool:
        return self._devices.pop(device_id, None) is not None

    def get(self, device_id: str) -> QuickDevice | None:
        return self._devices.get(device_id)

    def records(self, device_ids: Iterable[str] | None = None) -> dict[str, store.DeviceRecord]:
        if device_ids is None:
            return {d: q.record for d, q in self._devices.items()}
        found: dict[str, store.DeviceRecord] = {}
        for device_id in device_ids:
            quick = self._devices.get(device_id)
            if quick is not None:
                found[device_id] = quick.record
        return found

    def search(self, query: str) -> list[store.DeviceRecord]:
        """The same matching as the device search in the database: every term in hostname, OS, group or id."""
        terms = [t.lower() for t in query.split()][: store.MAX_QUERY_TERMS]
        found = []
        for quick in self._devices.values():
            record = quick.record
            fields = (record.hostname.lower(), record.os.lower(), record.group.lower())
            if all(any(term in f for f in fields) or record.id == term for term in terms):
                found.append(record)
        return found
