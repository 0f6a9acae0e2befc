"""A faithful fake diagnostics backend: a healthy machine by default, every answer settable.

Set ``data[method]`` to the value a method returns (or a callable computing it), ``errors[method]`` to the
exception it raises (``PermissionDenied``, ``ToolMissing``...), ``delays[method]`` to seconds it blocks
(really blocks, in the probe pool's thread, like a slow command), or add the method to ``hang`` to block
until ``release()`` (like a hung NFS mount or resolver). Async methods wait with asyncio instead.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from .backend import (
    Admins,
    Antivirus,
    Battery,
    CertStore,
    ClockSync,
    CpuTimes,
    Crashes,
    Encryption,
    FileHandles,
    Firewall,
    Gateway,
    HttpsInfo,
    InputDevices,
    Interface,
    Listener,
    LogErrors,
    Memory,
    NicCounters,
    OsRelease,
    Printer,
    ProcTimes,
    ProxySetting,
    RebootState,
    ScreenLock,
    SecureBoot,
    ServiceState,
    SmartDisk,
    Snapshot,
    StartupItem,
    Swap,
    Temperature,
    Tpm,
    Updates,
    Volume,
    WifiLink,
)
from .versions import compare

GIB = 1024**3
NOW = 1_780_000_000.0  # a fixed "now" (2026-05-28) for tests that pass ``clock=lambda: NOW``


def healthy() -> dict[str, Any]:
    """What a healthy, well-managed Debian 12 laptop answers."""
    return {
        "volumes": [Volume("/", "/dev/nvme0n1p2", "ext4", 100 * GIB, 50 * GIB, 1_000_000, 900_000)],
        "memory": Memory(16 * GIB, 12 * GIB),
        "swap": Swap(4 * GIB, 0),
        "cpu_times": CpuTimes(busy=1000.0, total=10000.0, cores=4),
        "own_cpu_seconds": 0.0,
        "batteries": [Battery("BAT0", 80.0, True, None, 45.0, 50.0, 120)],
        "temperatures": [
            Temperature("cpu", "coretemp Package id 0", 45.0),
            Temperature("disk", "nvme Composite", 38.0),
        ],
        "smart": [SmartDisk("/dev/nvme0n1", "Samsung SSD 980", True, 0)],
        "printers": [Printer("Office", True, 0)],
        "input_devices": InputDevices(1, 1, 3, True),
        "processes": [ProcTimes(1, "systemd", 0.0, 1.0, 10_000_000)],
        "reboot_state": RebootState(False),
        "boot_time": NOW - 2 * 86400,
        "os_release": OsRelease("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
        "updates": Updates(0, 0, NOW - 3 * 86400),
        "services": lambda names: [ServiceState(n, True, "active", "running") for n in names],
        "failed_units": [],
        "log_errors": lambda hours: LogErrors(2),
        "crashes": lambda days: Crashes(0),
        "clock_sync": ClockSync(True, "timedatectl"),
        "timezone": ("Europe/Brussels", 7200),
        "hostname": "laptop-42",
        "resolve": lambda name: (["192.0.2.10"], 12.0),
        "file_handles": FileHandles(5000, 1_000_000),
        "packages": lambda names: dict.fromkeys(names, "1.0-1"),
        "startup_items": [StartupItem("nm-applet", "system"), StartupItem("alice: nextcloud", "user")],
        "default_browser": "firefox-esr",
        "interfaces": [
            Interface("eth0", True, ("192.0.2.10",), 1500, False),
            Interface("wlan0", True, ("192.0.2.11",), 1500, True),
        ],
        "gateways": [Gateway("192.0.2.1", "eth0")],
        "ping": lambda address, seconds: 1.5,
        "neighbour_reachable": lambda address: True,
        "nic_counters": {"eth0": NicCounters(100_000, 0, 10), "wlan0": NicCounters(50_000, 0, 100)},
        "wifi": [WifiLink("wlan0", -55.0, 80.0)],
        "proxies": [],
        "prepare_tls": None,
        "tcp_connect": lambda address, port, within: 8.0,
        "https_probe": lambda address, port, host, path, within: HttpsInfo(200, NOW + 90 * 86400, 40.0),
        "firewall": Firewall("ufw", True, 12),
        "antivirus": Antivirus("ClamAV", True, 0.5),
        "encryption": Encryption("/", True, "LUKS"),
        "secure_boot": SecureBoot(True, True),
        "tpm": Tpm(True, "2.0"),
        "screen_lock": ScreenLock(True, True, 300),
        "admins": Admins(("alice",), ("root",)),
        "listeners": [Listener(22, "192.0.2.10", "sshd")],
        "certificate_store": CertStore("/etc/ssl/certs/ca-certificates.crt", True, 140, 0, ()),
    }


class FakeDiagnostics:
    name = "linux"

    def __init__(self, **data: Any) -> None:
        self.data: dict[str, Any] = {**healthy(), **data}
        self.errors: dict[str, BaseException] = {}
        self.delays: dict[str, float] = {}
        self.hang: set[str] = set()
        self.calls: list[str] = []
        self._released = threading.Event()
        self._lock = threading.Lock()

    def release(self) -> None:
        """Let every hanging call return (so test threads end)."""
        self._released.set()

    def _answer(self, method: str, *args: Any) -> Any:
        with self._lock:
            self.calls.append(method)
        if method in self.hang:
            self._released.wait(60)
        if method in self.delays:
            time.sleep(self.delays[method])
        return self._value(method, *args)

    async def _answer_async(self, method: str, *args: Any) -> Any:
        with self._lock:
            self.calls.append(method)
        if method in self.hang:
            await asyncio.sleep(3600)
        if method in self.delays:
            await asyncio.sleep(self.delays[method])
        return self._value(method, *args)

    def _value(self, method: str, *args: Any) -> Any:
        if method in self.errors:
            raise self.errors[method]
        value = self.data[method]
        if isinstance(value, BaseException):
            raise value
        return value(*args) if isinstance(value, Callable) else value  # type: ignore[arg-type]

    # hardware
    def volumes(self) -> list[Volume]:
        return self._answer("volumes")  # type: ignore[no-any-return]

    def memory(self) -> Memory:
        return self._answer("memory")  # type: ignore[no-any-return]

    def swap(self) -> Swap:
        return self._answer("swap")  # type: ignore[no-any-return]

    def cpu_times(self) -> CpuTimes:
        return self._answer("cpu_times")  # type: ignore[no-any-return]

    def own_cpu_seconds(self) -> float:
        return self._answer("own_cpu_seconds")  # type: ignore[no-any-return]

    def batteries(self) -> list[Battery]:
        return self._answer("batteries")  # type: ignore[no-any-return]

    def temperatures(self) -> list[Temperature]:
        return self._answer("temperatures")  # type: ignore[no-any-return]

    def smart(self) -> list[SmartDisk]:
        return self._answer("smart")  # type: ignore[no-any-return]

    def printers(self) -> list[Printer]:
        return self._answer("printers")  # type: ignore[no-any-return]

    def input_devices(self) -> InputDevices:
        return self._answer("input_devices")  # type: ignore[no-any-return]

    def snapshot(self) -> Snapshot:
        return Snapshot(self.cpu_times(), self.memory(), tuple(self.volumes()), self.nic_counters())

    def processes(self) -> list[ProcTimes]:
        return self._answer("processes")  # type: ignore[no-any-return]

    # operating system
    def reboot_state(self) -> RebootState:
        return self._answer("reboot_state")  # type: ignore[no-any-return]

    def boot_time(self) -> float:
        return self._answer("boot_time")  # type: ignore[no-any-return]

    def os_release(self) -> OsRelease:
        return self._answer("os_release")  # type: ignore[no-any-return]

    def updates(self) -> Updates:
        return self._answer("updates")  # type: ignore[no-any-return]

    def services(self, names: list[str]) -> list[ServiceState]:
        return self._answer("services", names)  # type: ignore[no-any-return]

    def failed_units(self) -> list[str]:
        return self._answer("failed_units")  # type: ignore[no-any-return]

    def log_errors(self, hours: float) -> LogErrors:
        return self._answer("log_errors", hours)  # type: ignore[no-any-return]

    def crashes(self, days: float) -> Crashes:
        return self._answer("crashes", days)  # type: ignore[no-any-return]

    def clock_sync(self) -> ClockSync:
        return self._answer("clock_sync")  # type: ignore[no-any-return]

    def timezone(self) -> tuple[str, int]:
        return self._answer("timezone")  # type: ignore[no-any-return]

    def hostname(self) -> str:
        return self._answer("hostname")  # type: ignore[no-any-return]

    def resolve(self, name: str) -> tuple[list[str], float]:
        return self._answer("resolve", name)  # type: ignore[no-any-return]

    def file_handles(self) -> FileHandles:
        return self._answer("file_handles")  # type: ignore[no-any-return]

    # software
    def packages(self, names: list[str]) -> dict[str, str | None]:
        return self._answer("packages", names)  # type: ignore[no-any-return]

    def compare_versions(self, a: str, b: str) -> int:
        return compare(a, b)

    def startup_items(self) -> list[StartupItem]:
        return self._answer("startup_items")  # type: ignore[no-any-return]

    def default_browser(self) -> str | None:
        return self._answer("default_browser")  # type: ignore[no-any-return]

    # network
    def interfaces(self) -> list[Interface]:
        return self._answer("interfaces")  # type: ignore[no-any-return]

    def gateways(self) -> list[Gateway]:
        return self._answer("gateways")  # type: ignore[no-any-return]

    def ping(self, address: str, timeout: float) -> float | None:
        return self._answer("ping", address, timeout)  # type: ignore[no-any-return]

    def neighbour_reachable(self, address: str) -> bool:
        return self._answer("neighbour_reachable", address)  # type: ignore[no-any-return]

    def nic_counters(self) -> dict[str, NicCounters]:
        return self._answer("nic_counters")  # type: ignore[no-any-return]

    def wifi(self) -> list[WifiLink]:
        return self._answer("wifi")  # type: ignore[no-any-return]

    def proxies(self) -> list[ProxySetting]:
        return self._answer("proxies")  # type: ignore[no-any-return]

    def prepare_tls(self) -> object:
        return self._answer("prepare_tls")

    async def tcp_connect(self, address: str, port: int, within: float) -> float:
        async with asyncio.timeout(within):
            return await self._answer_async("tcp_connect", address, port, within)  # type: ignore[no-any-return]

    async def https_probe(self, address: str, port: int, host: str, path: str, within: float) -> HttpsInfo:
        async with asyncio.timeout(within):
            return await self._answer_async("https_probe", address, port, host, path, within)  # type: ignore[no-any-return]

    # security
    def firewall(self) -> Firewall:
        return self._answer("firewall")  # type: ignore[no-any-return]

    def antivirus(self) -> Antivirus:
        return self._answer("antivirus")  # type: ignore[no-any-return]

    def encryption(self) -> Encryption:
        return self._answer("encryption")  # type: ignore[no-any-return]

    def secure_boot(self) -> SecureBoot:
        return self._answer("secure_boot")  # type: ignore[no-any-return]

    def tpm(self) -> Tpm:
        return self._answer("tpm")  # type: ignore[no-any-return]

    def screen_lock(self) -> ScreenLock:
        return self._answer("screen_lock")  # type: ignore[no-any-return]

    def admins(self) -> Admins:
        return self._answer("admins")  # type: ignore[no-any-return]

    def listeners(self) -> list[Listener]:
        return self._answer("listeners")  # type: ignore[no-any-return]

    def certificate_store(self) -> CertStore:
        return self._answer("certificate_store")  # type: ignore[no-any-return]


def constant(value: Any) -> Callable[..., Any]:
    """A data entry that returns ``value`` whatever the arguments."""
    return lambda *args: value
