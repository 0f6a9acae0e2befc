"""What consoles see of a device: ``DeviceSummary`` and ``DeviceDetail``, from the database and presence.

Quick-support devices (``hooks.QuickDevices``) are not in the database; they are merged in here, so every
list, lookup and subscription shows them (group ``quick-support``) for as long as their connection lives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import msgspec
from steun_protocol.console import MAX_DEVICES_LISTED, DeviceDetail, DeviceSummary
from steun_protocol.inventory import Inventory

from . import store
from .service import FleetService

log = logging.getLogger(__name__)


def summary(service: FleetService, device: store.DeviceRecord) -> DeviceSummary:
    presence = service.presence
    online = presence.online(device.id)
    last_seen = device.last_seen
    live = presence.last_seen(device.id)
    if live is not None and (last_seen is None or live > last_seen):
        last_seen = live  # the database copy is written at most once a minute
    return DeviceSummary(
        id=device.id,
        hostname=device.hostname,
        os=device.os,
        group=device.group,
        online=online,
        last_seen=last_seen,
        enrolled_at=device.enrolled_at,
    )


def decode_inventory(record: store.InventoryRecord | None, device_id: str) -> Inventory | None:
    if record is None:
        return None
    try:
        return msgspec.json.decode(record.json, type=Inventory)
    except (msgspec.ValidationError, msgspec.DecodeError):
        # stored by an older schema; the agent sends a fresh one when it reconnects
        log.warning("stored inventory of %s no longer decodes; showing none", device_id)
        return None


def detail_from(
    service: FleetService, device: store.DeviceRecord, inventory: store.InventoryRecord | None
) -> DeviceDetail:
    base = summary(service, device)
    return DeviceDetail(
        id=base.id,
        hostname=base.hostname,
        os=base.os,
        group=base.group,
        online=base.online,
        last_seen=base.last_seen,
        enrolled_at=base.enrolled_at,
        inventory=decode_inventory(inventory, device.id),
        inventory_updated_at=inventory.updated_at if inventory is not None else None,
        metrics=service.presence.metrics(device.id),
    )


async def detail(service: FleetService, device_id: str) -> DeviceDetail | None:
    """The full view of a device, or None when it does not exist (or was revoked)."""
    quick = service.quick.get(device_id)
    if quick is not None:
        base = detail_from(service, quick.record, None)
        return msgspec.structs.replace(
            base, inventory=quick.inventory, inventory_updated_at=quick.inventory_updated_at
        )
    device = await store.get_device(service.db, device_id)
    if device is None or device.revoked:
        return None
    inventory = await store.get_inventory(service.db, device_id)
    return detail_from(service, device, inventory)


def refresh_live(service: FleetService, current: DeviceDetail) -> DeviceDetail:
    """The same detail with presence's live fields (online, last_seen, metrics) brought up to date."""
    presence = service.presence
    last_seen = current.last_seen
    live = presence.last_seen(current.id)
    if live is not None and (last_seen is None or live > last_seen):
        last_seen = live
    return msgspec.structs.replace(
        current, online=presence.online(current.id), last_seen=last_seen, metrics=presence.metrics(current.id)
    )


async def summaries(
    service: FleetService, *, query: str = "", limit: int | None = None
) -> list[DeviceSummary]:
    limit = MAX_DEVICES_LISTED if limit is None else limit
    devices = await store.list_devices(service.db, query=query, limit=limit)
    quick = service.quick.search(query)
    if quick:
        devices = sorted([*devices, *quick], key=lambda d: (d.hostname.lower(), d.id))[:limit]
    return [summary(service, d) for d in devices]


async def records(service: FleetService, device_ids: Iterable[str]) -> dict[str, store.DeviceRecord]:
    """The devices among ``device_ids`` that exist (revoked ones included), quick-support ones too."""
    ids = list(device_ids)
    found = await store.get_devices(service.db, ids)
    found.update(service.quick.records(ids))
    return found


async def all_records(service: FleetService) -> dict[str, store.DeviceRecord]:
    """Every listed device by id (the same bound as ``devices/list``), quick-support ones too."""
    found = {d.id: d for d in await store.list_devices(service.db)}
    found.update(service.quick.records())
    return found
