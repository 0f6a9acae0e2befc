"""What the routine tests need from the operating system: one backend object per platform.

Methods not marked ``async`` block (files, psutil, subprocesses) and run in the diagnostics probe pool. They
raise ``Unavailable`` when there is nothing to test, ``PermissionDenied`` when the data exists but may not
be read, and ``ProbeFailed`` when reading it went wrong. The fake in ``fake.py`` follows the same contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class Volume:
    mountpoint: str
    device: str
    fstype: str
    total: int
    free: int  # bytes available to ordinary users
    inodes_total: int | None = None
    inodes_free: int | None = None


@dataclass(frozen=True, slots=True)
class Memory:
    total: int
    available: int

    @property
    def percent(self) -> float:
        return 100.0 * (self.total - self.available) / self.total if self.total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Swap:
    total: int
    used: int


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Cumulative processor seconds since boot, all cores together."""

    busy: float
    total: float
    cores: int


@dataclass(frozen=True, slots=True)
class Battery:
    name: str
    percent: float | None
    plugged: bool | None
    seconds_left: int | None = None
    energy_full: float | None = None
    energy_full_design: float | None = None
    cycles: int | None = None


@dataclass(frozen=True, slots=True)
class Temperature:
    kind: Literal["cpu", "disk", "other"]
    sensor: str
    celsius: float


@dataclass(frozen=True, slots=True)
class SmartDisk:
    device: str
    model: str
    passed: bool | None
    reallocated: int | None = None


@dataclass(frozen=True, slots=True)
class Printer:
    name: str
    enabled: bool
    jobs: int


@dataclass(frozen=True, slots=True)
class InputDevices:
    keyboards: int
    pointers: int
    usb: int
    desktop_session: bool


@dataclass(frozen=True, slots=True)
class RebootState:
    required: bool
    packages: int = 0
    kernel_missing: str | None = None  # the running kernel, when its modules are gone (updated, not rebooted)


@dataclass(frozen=True, slots=True)
class OsRelease:
    id: str
    version_id: str
    pretty: str
    id_like: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Updates:
    pending: int | None  # None: unknown (package lists never downloaded)
    security: int | None
    last_install: float | None  # wall time of the last package change


@dataclass(frozen=True, slots=True)
class ServiceState:
    name: str
    exists: bool
    active: str  # active, inactive, failed, activating...
    sub: str = ""


@dataclass(frozen=True, slots=True)
class LogErrors:
    count: int
    truncated: bool = False
    samples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Crashes:
    count: int
    latest: str | None = None


@dataclass(frozen=True, slots=True)
class ClockSync:
    synchronized: bool
    source: str


@dataclass(frozen=True, slots=True)
class FileHandles:
    used: int
    max: int


@dataclass(frozen=True, slots=True)
class StartupItem:
    name: str
    scope: Literal["user", "system"]


@dataclass(frozen=True, slots=True)
class ProcTimes:
    pid: int
    name: str
    create_time: float
    cpu_seconds: float
    rss: int


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    up: bool
    addresses: tuple[str, ...]  # usable unicast addresses (not loopback, not IPv6 link-local)
    mtu: int | None = None
    wireless: bool = False


@dataclass(frozen=True, slots=True)
class Gateway:
    address: str
    interface: str


@dataclass(frozen=True, slots=True)
class NicCounters:
    packets: int  # received + sent
    errors: int
    drops: int


@dataclass(frozen=True, slots=True)
class WifiLink:
    interface: str
    signal_dbm: float
    quality: float | None = None  # percent


@dataclass(frozen=True, slots=True)
class ProxySetting:
    url: str
    source: str  # "https_proxy", "gnome"...


@dataclass(frozen=True, slots=True)
class Firewall:
    tool: str | None  # ufw, firewalld, nftables, iptables; None: nothing found
    active: bool
    rules: int = 0


@dataclass(frozen=True, slots=True)
class Antivirus:
    product: str
    running: bool
    signature_age_days: float | None


@dataclass(frozen=True, slots=True)
class Encryption:
    volume: str
    encrypted: bool
    method: str = ""


@dataclass(frozen=True, slots=True)
class SecureBoot:
    uefi: bool
    enabled: bool | None  # None: UEFI but the variable is not readable


@dataclass(frozen=True, slots=True)
class Tpm:
    present: bool
    version: str = ""


@dataclass(frozen=True, slots=True)
class ScreenLock:
    desktop_session: bool
    enabled: bool | None
    idle_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Admins:
    admins: tuple[str, ...]
    uid0: tuple[str, ...] = ("root",)


@dataclass(frozen=True, slots=True)
class Listener:
    port: int
    address: str
    process: str = ""


@dataclass(frozen=True, slots=True)
class CertStore:
    path: str
    exists: bool
    count: int = 0
    expired: int = 0
    added: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HttpsInfo:
    status: int | None  # HTTP status of a HEAD request (None: no HTTP answer after the handshake)
    not_after: float  # certificate expiry, wall time
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The cheap figures the sampler records; one call, so a sample is consistent."""

    cpu: CpuTimes
    memory: Memory
    volumes: tuple[Volume, ...]
    nics: dict[str, NicCounters] = field(default_factory=dict)


class DiagnosticsBackend(Protocol):
    name: str  # platform name for "not available on ..." ("linux")

    # hardware
    def volumes(self) -> list[Volume]: ...
    def memory(self) -> Memory: ...
    def swap(self) -> Swap: ...
    def cpu_times(self) -> CpuTimes: ...
    def own_cpu_seconds(self) -> float: ...  # this process and its finished children (to leave out our load)
    def batteries(self) -> list[Battery]: ...
    def temperatures(self) -> list[Temperature]: ...
    def smart(self) -> list[SmartDisk]: ...
    def printers(self) -> list[Printer]: ...
    def input_devices(self) -> InputDevices: ...
    def snapshot(self) -> Snapshot: ...
    def processes(self) -> list[ProcTimes]: ...
    # operating system
    def reboot_state(self) -> RebootState: ...
    def boot_time(self) -> float: ...
    def os_release(self) -> OsRelease: ...
    def updates(self) -> Updates: ...
    def services(self, names: list[str]) -> list[ServiceState]: ...
    def failed_units(self) -> list[str]: ...
    def log_errors(self, hours: float) -> LogErrors: ...
    def crashes(self, days: float) -> Crashes: ...
    def clock_sync(self) -> ClockSync: ...
    def timezone(self) -> tuple[str, int]: ...  # (IANA name, UTC offset in seconds)
    def hostname(self) -> str: ...
    def resolve(self, name: str) -> tuple[list[str], float]: ...  # getaddrinfo: addresses, ms; OSError
    def file_handles(self) -> FileHandles: ...
    # software
    def packages(self, names: list[str]) -> dict[str, str | None]: ...
    def compare_versions(self, a: str, b: str) -> int: ...
    def startup_items(self) -> list[StartupItem]: ...
    def default_browser(self) -> str | None: ...  # Unavailable without a desktop session
    # network
    def interfaces(self) -> list[Interface]: ...
    def gateways(self) -> list[Gateway]: ...
    def ping(self, address: str, timeout: float) -> float | None: ...  # ms; None: ICMP not permitted here
    def neighbour_reachable(self, address: str) -> bool: ...
    def nic_counters(self) -> dict[str, NicCounters]: ...
    def wifi(self) -> list[WifiLink]: ...
    def proxies(self) -> list[ProxySetting]: ...
    def prepare_tls(self) -> object: ...  # load the CA store before ``https_probe`` (blocks, tens of ms)
    async def tcp_connect(self, address: str, port: int, within: float) -> float: ...  # ms
    async def https_probe(
        self, address: str, port: int, host: str, path: str, within: float
    ) -> HttpsInfo: ...
    # security
    def firewall(self) -> Firewall: ...
    def antivirus(self) -> Antivirus: ...
    def encryption(self) -> Encryption: ...
    def secure_boot(self) -> SecureBoot: ...
    def tpm(self) -> Tpm: ...
    def screen_lock(self) -> ScreenLock: ...
    def admins(self) -> Admins: ...
    def listeners(self) -> list[Listener]: ...
    def certificate_store(self) -> CertStore: ...
