"""The Linux backend on this very machine (real values, sane, within the protocol limits) and its parsers."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import sys
import time
from pathlib import Path

import msgspec
import pytest
from steun_agent.backends.common import disk_granularity, text
from steun_agent.backends.linux import LinuxBackend, parse_dpkg_status, parse_rpm_output, read_os_release
from steun_protocol.codec import encode
from steun_protocol.control import Heartbeat, InventoryReport
from steun_protocol.inventory import Inventory, LiveMetrics
from steun_protocol.limits import MAX_PACKAGES

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux backend")


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return LinuxBackend().inventory()


def test_inventory_fits_the_protocol(inventory: Inventory) -> None:
    data = encode(InventoryReport(id=1, inventory=inventory))
    assert len(data) <= InventoryReport.max_size
    # a round trip checks every length and range constraint that building the Struct did not
    assert msgspec.json.decode(encode(inventory), type=Inventory, strict=True) == inventory


def test_inventory_describes_this_machine(inventory: Inventory) -> None:
    assert inventory.hostname == socket.gethostname()
    assert inventory.os_name == "Linux"
    assert inventory.kernel == platform.release()
    assert inventory.architecture == platform.machine()
    assert inventory.cpu_model and inventory.cpu_model != "unknown"
    assert inventory.cpu_threads == os.cpu_count()
    assert inventory.cpu_cores is None or 1 <= inventory.cpu_cores <= inventory.cpu_threads
    assert inventory.memory_total > 64 * 1024 * 1024
    assert inventory.swap_total >= 0
    assert 0 < inventory.boot_time < time.time()
    release = read_os_release()
    assert inventory.os_pretty == release.get("PRETTY_NAME", inventory.os_pretty)
    assert inventory.os_version == release.get("VERSION_ID", inventory.os_version)


def test_disks_are_real_file_systems(inventory: Inventory) -> None:
    for disk in inventory.disks:
        assert disk.fstype not in ("proc", "sysfs", "tmpfs", "squashfs", "overlay")
        assert disk.total > 0
        assert disk.used + disk.free <= disk.total + disk_granularity(disk.total)
        assert disk.used % disk_granularity(disk.total) == 0  # rounded, so the digest stays stable
    mounts = [d.mountpoint for d in inventory.disks]
    assert len(mounts) == len(set(mounts))


def test_interfaces_have_addresses(inventory: Inventory) -> None:
    assert all(i.name != "lo" for i in inventory.interfaces)
    for interface in inventory.interfaces:
        assert interface.mtu is None or interface.mtu > 0
        assert interface.speed_mbps is None or interface.speed_mbps > 0
        for address in interface.addresses:
            if address.family == "ipv4":
                socket.inet_pton(socket.AF_INET, address.address)
            elif address.family == "ipv6":
                socket.inet_pton(socket.AF_INET6, address.address.split("%")[0])
            else:
                assert len(address.address.split(":")) == 6


def test_packages_come_from_the_package_database(inventory: Inventory) -> None:
    if Path("/var/lib/dpkg/status").is_file():
        assert inventory.package_manager == "dpkg"
        names = {p.name for p in inventory.packages}
        assert {"dpkg", "libc6"} <= names
        assert [p.name for p in inventory.packages] == sorted(p.name for p in inventory.packages)
    else:
        assert inventory.package_manager in (None, "rpm")


def test_dmi_fields_never_crash(inventory: Inventory, tmp_path: Path) -> None:
    # Unreadable (not root), absent (containers) or a placeholder: None, never an exception.
    dmi = tmp_path / "dmi"
    dmi.mkdir()
    (dmi / "sys_vendor").write_text("LENOVO\n")
    (dmi / "product_name").write_text("To Be Filled By O.E.M.\n")
    (dmi / "product_serial").mkdir()  # reading it fails like a root-only file does for a user
    backend = LinuxBackend(dmi_dir=dmi)
    assert backend.dmi("sys_vendor") == "LENOVO"
    assert backend.dmi("product_name") is None
    assert backend.dmi("product_serial") is None
    assert backend.dmi("product_uuid") is None
    if not Path("/sys/class/dmi/id").exists():
        assert (inventory.manufacturer, inventory.serial, inventory.machine_uuid) == (None, None, None)


def test_live_metrics_are_sane() -> None:
    backend = LinuxBackend()
    metrics = backend.live_metrics()
    assert msgspec.json.decode(encode(metrics), type=LiveMetrics, strict=True) == metrics
    assert len(encode(Heartbeat(id=1, metrics=metrics))) <= Heartbeat.max_size
    assert metrics.uptime > 0
    assert 0 <= metrics.cpu_percent <= 100
    assert 0 < metrics.memory_percent <= 100
    assert metrics.memory_used > 0
    assert metrics.process_count > 1
    assert metrics.load_average is not None and len(metrics.load_average) == 3


async def test_collection_runs_off_the_event_loop() -> None:
    # The guard (tests/conftest.py) fails this test if the backend were called on the loop itself.
    backend = await asyncio.to_thread(LinuxBackend)
    inventory = await asyncio.to_thread(backend.inventory)
    assert inventory.hostname


# ------------------------------------------------------------------------------------------ parsers

DPKG = b"""Package: bash
Status: install ok installed
Priority: required
Architecture: amd64
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.
 .
 Package: not-a-package

Package: removed-thing
Status: deinstall ok config-files
Version: 1.0

Package: libfoo
Status: install ok installed
Architecture: amd64
Version: 1:2.0

Package: libfoo
Status: install ok installed
Architecture: i386
Version: 1:2.0

Package: half
Status: install ok half-configured
Version: 0.1
"""


def test_parse_dpkg_status() -> None:
    packages = parse_dpkg_status(DPKG)
    assert [(p.name, p.version) for p in packages] == [
        ("bash", "5.2.15-2+b2"),
        ("libfoo", "1:2.0"),
        ("libfoo:i386", "1:2.0"),
    ]


def test_dpkg_status_is_bounded() -> None:
    many = b"\n\n".join(
        b"Package: p%06d\nStatus: install ok installed\nVersion: 1" % i for i in range(MAX_PACKAGES + 5)
    )
    packages = parse_dpkg_status(many)
    assert len(packages) == MAX_PACKAGES
    inventory = Inventory(
        hostname="h", os_name="Linux", os_version="", os_pretty="", kernel="", architecture="",
        cpu_model="", cpu_cores=None, cpu_threads=None, memory_total=0, swap_total=0, boot_time=0.0,
        packages=packages,
    )  # fmt: skip
    assert len(encode(InventoryReport(id=1, inventory=inventory))) <= InventoryReport.max_size


def test_parse_rpm_output() -> None:
    out = b"bash\t(none):5.2.26-3.fc40\nkernel\t(none):6.8.5-301.fc40\nkernel\t(none):6.8.9-300.fc40\n\ngarbage\n"
    packages = parse_rpm_output(out)
    assert [(p.name, p.version) for p in packages] == [
        ("bash", "5.2.26-3.fc40"),
        ("kernel", "6.8.5-301.fc40"),
        ("kernel (6.8.9-300.fc40)", "6.8.9-300.fc40"),
    ]


def test_os_release_parsing(tmp_path: Path) -> None:
    path = tmp_path / "os-release"
    path.write_text(
        "# comment\nNAME=\"Fedora Linux\"\nVERSION_ID=40\nPRETTY_NAME='Fedora Linux 40 (Workstation)'\nBAD\n"
    )
    values = read_os_release((tmp_path / "missing", path))
    assert values == {
        "NAME": "Fedora Linux",
        "VERSION_ID": "40",
        "PRETTY_NAME": "Fedora Linux 40 (Workstation)",
    }
    assert read_os_release((tmp_path / "missing",)) == {}


def test_text_is_bounded_and_encodable() -> None:
    assert len(text("x" * 1000)) == 256
    assert text("bad\udcffbyte").encode("utf-8")
