"""What an agent reports about its machine: inventory (changes rarely) and live metrics (every heartbeat)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .limits import MAX_LIST, MAX_PACKAGES
from .messages import LongText, Payload, ShortText

Count = Annotated[int, msgspec.Meta(ge=0)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


class Disk(Payload, frozen=True):
    device: ShortText
    mountpoint: LongText
    fstype: ShortText
    total: Count
    used: Count
    free: Count


class NetAddress(Payload, frozen=True):
    family: Literal["ipv4", "ipv6", "mac"]
    address: ShortText
    netmask: ShortText | None = None


class NetInterface(Payload, frozen=True):
    name: ShortText
    is_up: bool
    speed_mbps: Count | None = None
    mtu: Count | None = None
    addresses: Annotated[list[NetAddress], msgspec.Meta(max_length=64)] = []


class UserSession(Payload, frozen=True):
    name: ShortText
    terminal: ShortText | None = None
    host: ShortText | None = None
    started: float | None = None


class Package(Payload, frozen=True):
    name: ShortText
    version: ShortText


class Inventory(Payload, frozen=True):
    """Facts about the machine that change rarely; re-sent whole when its digest changes."""

    hostname: ShortText
    os_name: ShortText  # platform.system(): Linux, Windows, Darwin
    os_version: ShortText
    os_pretty: ShortText  # e.g. "Debian GNU/Linux 12 (bookworm)"
    kernel: ShortText
    architecture: ShortText
    cpu_model: ShortText
    cpu_cores: Count | None
    cpu_threads: Count | None
    memory_total: Count
    swap_total: Count
    boot_time: float
    disks: Annotated[list[Disk], msgspec.Meta(max_length=MAX_LIST)] = []
    interfaces: Annotated[list[NetInterface], msgspec.Meta(max_length=MAX_LIST)] = []
    users: Annotated[list[UserSession], msgspec.Meta(max_length=MAX_LIST)] = []
    manufacturer: ShortText | None = None
    model: ShortText | None = None
    serial: ShortText | None = None
    machine_uuid: ShortText | None = None
    package_manager: ShortText | None = None
    packages: Annotated[list[Package], msgspec.Meta(max_length=MAX_PACKAGES)] = []


class LiveMetrics(Payload, frozen=True):
    """Small, fast-changing figures sent with every heartbeat."""

    uptime: Annotated[float, msgspec.Meta(ge=0)]
    cpu_percent: Percent
    memory_percent: Percent
    memory_used: Count
    swap_percent: Percent = 0.0
    load_average: Annotated[list[float], msgspec.Meta(max_length=3)] | None = None
    process_count: Count = 0


def inventory_digest(inventory: Inventory) -> str:
    """A stable digest of an inventory, so agents re-send it only when something changed."""
    import hashlib

    return hashlib.sha256(msgspec.json.encode(inventory)).hexdigest()
