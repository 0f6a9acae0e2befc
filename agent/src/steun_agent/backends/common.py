"""Facts that psutil provides the same way on every platform, bounded to the protocol's limits."""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Literal

import psutil
from steun_protocol.inventory import Disk, LiveMetrics, NetAddress, NetInterface, UserSession
from steun_protocol.limits import MAX_LIST, SHORT_TEXT

log = logging.getLogger(__name__)

MAX_ADDRESSES = 64  # per interface, as in NetInterface

#: File systems that hold no user data, even when psutil lists them as physical (snap images, ISOs).
PSEUDO_FS = frozenset(
    {
        "squashfs",
        "iso9660",
        "udf",
        "tmpfs",
        "devtmpfs",
        "overlay",
        "aufs",
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "devpts",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "bpf",
        "autofs",
        "mqueue",
        "hugetlbfs",
        "fusectl",
        "configfs",
        "ramfs",
        "nsfs",
        "efivarfs",
        "binfmt_misc",
        "rpc_pipefs",
    }
)


def text(value: object, limit: int = SHORT_TEXT) -> str:
    """A string that always encodes (no lone surrogates) and fits the field's length limit."""
    s = value if isinstance(value, str) else str(value)
    return s.encode("utf-8", "replace").decode("utf-8")[:limit]


def optional_text(value: object | None, limit: int = SHORT_TEXT) -> str | None:
    if value is None:
        return None
    s = text(value, limit).strip()
    return s or None


def percent(value: float) -> float:
    return min(100.0, max(0.0, float(value)))


def round_down(value: int, step: int) -> int:
    return max(0, value - value % step) if step > 0 else max(0, value)


def disk_granularity(total: int) -> int:
    """Disk usage is reported in steps of 0.5% (at least 1 MiB), so that the inventory digest only changes
    when usage really moves; the live figure belongs in metrics, not in the inventory."""
    return max(1024 * 1024, total // 200)


def disks() -> list[Disk]:
    result: list[Disk] = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.fstype.lower() in PSEUDO_FS or part.device.startswith("/dev/loop") or part.mountpoint in seen:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError as exc:  # unreadable, vanished or not mounted any more
            log.debug("skipping %s: %s", part.mountpoint, exc)
            continue
        seen.add(part.mountpoint)
        step = disk_granularity(usage.total)
        result.append(
            Disk(
                device=text(part.device),
                mountpoint=text(part.mountpoint, 4096),
                fstype=text(part.fstype),
                total=max(0, usage.total),
                used=round_down(usage.used, step),
                free=round_down(usage.free, step),
            )
        )
        if len(result) >= MAX_LIST:
            break
    return result


def interfaces() -> list[NetInterface]:
    stats = psutil.net_if_stats()
    result: list[NetInterface] = []
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        st = stats.get(name)
        flags = getattr(st, "flags", "") if st is not None else ""
        if name == "lo" or "loopback" in flags.split(","):
            continue
        addresses: list[NetAddress] = []
        for addr in addrs:
            family = _family(addr.family)
            if family is None or not addr.address:
                continue
            netmask = optional_text(addr.netmask) if family != "mac" else None
            addresses.append(NetAddress(family=family, address=text(addr.address), netmask=netmask))
        result.append(
            NetInterface(
                name=text(name),
                is_up=bool(st.isup) if st is not None else False,
                speed_mbps=st.speed if st is not None and st.speed > 0 else None,
                mtu=st.mtu if st is not None and st.mtu > 0 else None,
                addresses=addresses[:MAX_ADDRESSES],
            )
        )
        if len(result) >= MAX_LIST:
            break
    return result


def _family(family: int) -> Literal["ipv4", "ipv6", "mac"] | None:
    if family == socket.AF_INET:
        return "ipv4"
    if family == socket.AF_INET6:
        return "ipv6"
    if family == psutil.AF_LINK:
        return "mac"
    return None


def users() -> list[UserSession]:
    result = [
        UserSession(
            name=text(u.name),
            terminal=optional_text(u.terminal),
            host=optional_text(u.host),
            started=float(u.started) if u.started else None,
        )
        for u in psutil.users()
    ]
    result.sort(key=lambda u: (u.name, u.terminal or "", u.started or 0.0))
    return result[:MAX_LIST]


def live_metrics() -> LiveMetrics:
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return LiveMetrics(
        uptime=max(0.0, time.time() - psutil.boot_time()),
        # Since the previous call (primed when the backend is made), never blocking for an interval.
        cpu_percent=percent(psutil.cpu_percent(interval=None)),
        memory_percent=percent(memory.percent),
        memory_used=max(0, int(memory.total - memory.available)),
        swap_percent=percent(swap.percent),
        load_average=load,
        process_count=len(psutil.pids()),
    )
