"""The inventory capability: uploads the machine's inventory on connect, then again whenever it changed."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from steun_protocol import ProtocolError
from steun_protocol.codec import encode
from steun_protocol.control import InventoryReport
from steun_protocol.inventory import Inventory, inventory_digest
from steun_protocol.messages import Empty

from ..backends import Backend
from ..errors import ServerRefused
from . import Session, TaskCapability

log = logging.getLogger(__name__)


class InventoryCapability(TaskCapability):
    """Collects the inventory every ``interval`` seconds (off the event loop) and sends it when its digest
    differs from what this connection last delivered. The first check of every connection always sends."""

    name = "inventory"

    def __init__(self, backend: Backend, interval: float) -> None:
        super().__init__()
        self.backend = backend
        self.interval = interval
        #: Digest of the inventory the server acknowledged last (on any connection); for statistics.
        self.last_digest: str | None = None
        self.sent = 0
        self.checks = 0

    async def start(self, session: Session) -> None:
        self.spawn(self._loop(session), "upload")

    async def _loop(self, session: Session) -> None:
        delivered: str | None = None  # per connection: the server may have lost what we sent before
        while True:
            inventory = await self._collect()
            if inventory is not None:
                digest = inventory_digest(inventory)
                if digest != delivered and await self._send(session, inventory):
                    delivered = self.last_digest = digest
            await asyncio.sleep(self.interval)

    async def _collect(self) -> Inventory | None:
        self.checks += 1
        try:
            inventory = await asyncio.to_thread(self.backend.inventory)
            # Building a Struct does not check its constraints; a round trip does, so a value outside the
            # protocol's limits is caught here rather than refused by the server.
            return await asyncio.to_thread(_validated, inventory)
        except Exception:
            log.exception("collecting the inventory failed")
            return None

    async def _send(self, session: Session, inventory: Inventory) -> bool:
        try:
            await session.request(InventoryReport(inventory=inventory), Empty)
        except ServerRefused as exc:
            log.error("the server refused the inventory: %s", exc)
            return False
        except ProtocolError as exc:  # e.g. larger than the message limit
            log.error("the inventory cannot be sent: %s", exc)
            return False
        self.sent += 1
        log.info("inventory sent (%d packages)", len(inventory.packages))
        return True


def _validated(inventory: Inventory) -> Inventory:
    return msgspec.json.decode(encode(inventory), type=Inventory, strict=True)
