"""The Linux backend: psutil, /etc/os-release, /proc/cpuinfo, /sys/class/dmi/id and the package database."""

from __future__ import annotations

import logging
import os
import platform
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import psutil
from steun_protocol.inventory import Inventory, LiveMetrics, Package
from steun_protocol.limits import MAX_PACKAGES

from . import common
from .common import optional_text, text

log = logging.getLogger(__name__)

OS_RELEASE = (Path("/etc/os-release"), Path("/usr/lib/os-release"))
DMI_DIR = Path("/sys/class/dmi/id")
DPKG_STATUS = Path("/var/lib/dpkg/status")
MAX_READ = 64 * 1024 * 1024  # the dpkg status file of a large desktop is a few MiB
RPM_TIMEOUT = 60.0
#: /proc/cpuinfo keys that name the processor (x86, arm, mips, ...).
_CPU_KEYS = ("model name", "Model", "Hardware", "cpu model", "Processor")

#: Values firmware vendors leave in DMI fields that mean "not set".
DMI_PLACEHOLDERS = frozenset(
    {
        "",
        "none",
        "n/a",
        "na",
        "default string",
        "to be filled by o.e.m.",
        "to be filled by oem",
        "not specified",
        "not applicable",
        "system serial number",
        "system product name",
        "system manufacturer",
        "0123456789",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "03000200-0400-0500-0006-000700080009",
        "oem",
        "o.e.m.",
    }
)


class LinuxBackend:
    name = "linux"

    def __init__(
        self,
        *,
        os_release: tuple[Path, ...] = OS_RELEASE,
        dmi_dir: Path = DMI_DIR,
        dpkg_status: Path = DPKG_STATUS,
        rpm: str | None = "rpm",
    ) -> None:
        self._os_release = os_release
        self._dmi_dir = dmi_dir
        self._dpkg_status = dpkg_status
        self._rpm = rpm
        psutil.cpu_percent(interval=None)  # prime: the first reading has no interval to measure over

    # ---------------------------------------------------------------- Backend

    def inventory(self) -> Inventory:
        release = read_os_release(self._os_release)
        manager, packages = self.packages()
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        return Inventory(
            hostname=text(socket.gethostname()),
            os_name=text(platform.system()),
            os_version=text(release.get("VERSION_ID") or release.get("VERSION") or ""),
            os_pretty=text(release.get("PRETTY_NAME") or release.get("NAME") or "Linux"),
            kernel=text(platform.release()),
            architecture=text(platform.machine()),
            cpu_model=text(cpu_model()),
            cpu_cores=psutil.cpu_count(logical=False),
            cpu_threads=psutil.cpu_count(logical=True),
            memory_total=memory.total,
            swap_total=swap.total,
            boot_time=psutil.boot_time(),
            disks=common.disks(),
            interfaces=common.interfaces(),
            users=common.users(),
            manufacturer=self.dmi("sys_vendor"),
            model=self.dmi("product_name"),
            serial=self.dmi("product_serial"),  # readable by root only
            machine_uuid=self.dmi("product_uuid"),  # readable by root only
            package_manager=manager,
            packages=packages,
        )

    def live_metrics(self) -> LiveMetrics:
        return common.live_metrics()

    # ---------------------------------------------------------------- pieces

    def dmi(self, field: str) -> str | None:
        """One firmware field, or None when it is absent, unreadable (not root) or a placeholder."""
        try:
            raw = (self._dmi_dir / field).read_bytes()[:1024]
        except OSError:
            return None
        value = raw.decode("utf-8", "replace").strip()
        if value.lower() in DMI_PLACEHOLDERS:
            return None
        return optional_text(value)

    def packages(self) -> tuple[str | None, list[Package]]:
        """Installed packages from dpkg's status file, else ``rpm -qa``; (None, []) when neither exists."""
        if self._dpkg_status.is_file():
            try:
                return "dpkg", parse_dpkg_status(_read_bounded(self._dpkg_status))
            except OSError as exc:
                log.warning("cannot read %s: %s", self._dpkg_status, exc)
        rpm = shutil.which(self._rpm) if self._rpm else None
        if rpm:
            try:
                out = subprocess.run(  # noqa: S603 - fixed argument list, no shell
                    [rpm, "-qa", "--queryformat", "%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n"],
                    capture_output=True,
                    timeout=RPM_TIMEOUT,
                    check=True,
                    env={"LC_ALL": "C", "PATH": os.defpath},
                ).stdout
                return "rpm", parse_rpm_output(out)
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("rpm -qa failed: %s", exc)
        return None, []


def read_os_release(paths: tuple[Path, ...] = OS_RELEASE) -> dict[str, str]:
    """Parse os-release(5): KEY=value lines with shell quoting; the first file that exists wins."""
    for path in paths:
        try:
            content = path.read_text(encoding="utf-8", errors="replace")[:65536]
        except OSError:
            continue
        values: dict[str, str] = {}
        for line in content.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, raw = line.partition("=")
            try:
                parts = shlex.split(raw)
            except ValueError:
                continue
            values[key.strip()] = parts[0] if parts else ""
        return values
    return {}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in _CPU_KEYS and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def parse_dpkg_status(data: bytes) -> list[Package]:
    """Installed packages from dpkg's status file (stanzas separated by blank lines), sorted and bounded."""
    found: dict[str, str] = {}
    for stanza in data.decode("utf-8", "replace").split("\n\n"):
        name = version = status = arch = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t"):
                continue  # continuation of a multi-line field (Description, Conffiles)
            key, _, value = line.partition(":")
            if key == "Package":
                name = value.strip()
            elif key == "Version":
                version = value.strip()
            elif key == "Status":
                status = value.strip()
            elif key == "Architecture":
                arch = value.strip()
        if not name or not status.endswith(" installed"):
            continue
        # Multi-arch packages can be installed once per architecture: keep both, distinguishable.
        key = name if name not in found else f"{name}:{arch}"
        found[key] = version
    return _bounded(found)


def parse_rpm_output(data: bytes) -> list[Package]:
    found: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        name, sep, version = line.partition("\t")
        if not sep or not name:
            continue
        version = version.removeprefix("(none):")
        key = name if name not in found else f"{name} ({version})"  # kernels: several versions installed
        found[key] = version
    return _bounded(found)


def _bounded(found: dict[str, str]) -> list[Package]:
    names = sorted(found)
    if len(names) > MAX_PACKAGES:
        log.warning("%d packages installed; reporting the first %d by name", len(names), MAX_PACKAGES)
    return [Package(name=text(n), version=text(found[n])) for n in names[:MAX_PACKAGES]]


def _read_bounded(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_READ)
