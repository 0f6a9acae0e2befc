"""Every check's pass / warn / fail boundaries with the fake backend: exact threshold values, missing data,
permission denied, missing tools. A value exactly at a ``*_below`` threshold passes it; a value exactly at
a ``*_at`` threshold triggers it (docs/diagnostics.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from steun_agent.diagnostics.backend import (
    Admins,
    Antivirus,
    Battery,
    CertStore,
    ClockSync,
    Crashes,
    Encryption,
    FileHandles,
    Firewall,
    HttpsInfo,
    InputDevices,
    Interface,
    Listener,
    LogErrors,
    Memory,
    NicCounters,
    OsRelease,
    Printer,
    ProxySetting,
    RebootState,
    ScreenLock,
    SecureBoot,
    ServiceState,
    SmartDisk,
    StartupItem,
    Swap,
    Temperature,
    Tpm,
    Updates,
    Volume,
    WifiLink,
)
from steun_agent.diagnostics.errors import PermissionDenied, ProbeFailed, ToolMissing, Unavailable
from steun_agent.diagnostics.fake import NOW, FakeDiagnostics, constant
from steun_agent.diagnostics.sampler import ProcUse
from steun_protocol.diagnostics import Policy, SoftwareRequirement

from .helpers import CATALOGUE, GIB, history, only, run

DAY = 86400.0


def vol(free_percent: float) -> list[Volume]:
    return [Volume("/", "/dev/sda1", "ext4", 1000 * GIB, int(1000 * GIB * free_percent / 100), 100, 100)]


def bat(percent: float | None, plugged: bool | None = False, full: float | None = 50.0) -> list[Battery]:
    return [Battery("BAT0", percent, plugged, 600, full, 100.0, 300)]


Case = tuple[str, dict[str, Any], Policy | None, list[tuple[str, str]]]
P = Policy


CASES: list[Case] = [
    # hardware
    ("disk.free", {"volumes": vol(25)}, None, [("pass", "level")]),
    ("disk.free", {"volumes": vol(24.99)}, None, [("warn", "level")]),
    ("disk.free", {"volumes": vol(10)}, None, [("warn", "level")]),
    ("disk.free", {"volumes": vol(9.99)}, None, [("fail", "level")]),
    ("disk.free", {"volumes": vol(30)}, P(thresholds={"disk.free": {"warn_below": 40}}), [("warn", "level")]),
    ("disk.free", {"volumes": []}, None, [("not_applicable", "none")]),
    ("memory.usage", {"memory": Memory(100, 30)}, None, [("warn", "level")]),  # exactly 70 %
    ("memory.usage", {"memory": Memory(1000, 301)}, None, [("pass", "level")]),  # 69.9 %
    ("memory.usage", {"memory": Memory(100, 15)}, None, [("fail", "level")]),  # exactly 85 %
    ("memory.swap", {"swap": Swap(100, 90)}, None, [("warn", "level")]),
    ("memory.swap", {"swap": Swap(1000, 899)}, None, [("pass", "level")]),
    ("memory.swap", {"swap": Swap(100, 98)}, None, [("fail", "level")]),
    ("memory.swap", {"swap": Swap(0, 0)}, None, [("not_applicable", "none")]),
    ("battery.charge", {"batteries": bat(10)}, None, [("pass", "discharging")]),
    ("battery.charge", {"batteries": bat(9.9)}, None, [("warn", "discharging")]),
    ("battery.charge", {"batteries": bat(4.9)}, None, [("fail", "discharging")]),
    ("battery.charge", {"batteries": bat(3, plugged=True)}, None, [("pass", "plugged")]),
    ("battery.charge", {"batteries": bat(None)}, None, [("error", "common.unreadable")]),
    ("battery.charge", {"batteries": []}, None, [("not_applicable", "none")]),
    ("battery.health", {"batteries": bat(50, full=80)}, None, [("pass", "level")]),
    ("battery.health", {"batteries": bat(50, full=79.9)}, None, [("warn", "level")]),
    ("battery.health", {"batteries": bat(50, full=49)}, None, [("fail", "level")]),
    ("battery.health", {"batteries": bat(50, full=None)}, None, [("not_applicable", "unknown")]),
    (
        "temperature.cpu",
        {"temperatures": [Temperature("cpu", "a", 69.9), Temperature("cpu", "b", 70)]},
        None,
        [("warn", "level")],
    ),
    ("temperature.cpu", {"temperatures": [Temperature("cpu", "a", 80)]}, None, [("fail", "level")]),
    (
        "temperature.cpu",
        {"temperatures": [Temperature("disk", "nvme", 90)]},
        None,
        [("not_applicable", "none")],
    ),
    (
        "temperature.disk",
        {
            "temperatures": [
                Temperature("disk", "sda", 51.9),
                Temperature("disk", "sdb", 52),
                Temperature("disk", "sdc", 60),
            ]
        },
        None,
        [("pass", "level"), ("warn", "level"), ("fail", "level")],
    ),
    (
        "storage.smart",
        {
            "smart": [
                SmartDisk("/dev/sda", "X", True, 0),
                SmartDisk("/dev/sdb", "Y", True, 1),
                SmartDisk("/dev/sdc", "Z", False, 0),
                SmartDisk("/dev/sdd", "W", None),
            ]
        },
        None,
        [("pass", "passed"), ("warn", "sectors"), ("fail", "failed"), ("error", "common.unreadable")],
    ),
    ("storage.smart", {"smart": ToolMissing("smartctl")}, None, [("not_applicable", "common.missing_tool")]),
    (
        "storage.smart",
        {"smart": PermissionDenied("/dev/sda (SMART)")},
        None,
        [("error", "common.permission")],
    ),
    (
        "printer.queue",
        {"printers": [Printer("a", True, 4), Printer("b", True, 5), Printer("c", False, 0)]},
        None,
        [("pass", "ready"), ("warn", "ready"), ("fail", "stopped")],
    ),
    ("printer.queue", {"printers": []}, None, [("not_applicable", "none")]),
    (
        "printer.queue",
        {"printers": ProbeFailed("the print service (CUPS) is not running")},
        None,
        [("error", "common.failed")],
    ),
    ("device.input", {"input_devices": InputDevices(0, 1, 2, True)}, None, [("warn", "no_keyboard")]),
    ("device.input", {"input_devices": InputDevices(1, 0, 2, True)}, None, [("warn", "no_pointer")]),
    (
        "device.input",
        {"input_devices": InputDevices(0, 0, 0, False)},
        None,
        [("not_applicable", "common.no_desktop")],
    ),
    # operating system
    ("os.reboot_pending", {"reboot_state": RebootState(True, 3)}, None, [("warn", "pending")]),
    ("os.reboot_pending", {"reboot_state": RebootState(False, 0, "6.1.0-9")}, None, [("warn", "kernel")]),
    ("os.reboot_pending", {"reboot_state": RebootState(False)}, None, [("pass", "none")]),
    ("os.uptime", {"boot_time": NOW - 14 * DAY}, None, [("warn", "level")]),
    ("os.uptime", {"boot_time": NOW - 14 * DAY + 60}, None, [("pass", "level")]),
    ("os.supported", {"os_release": OsRelease("debian", "12", "Debian 12")}, None, [("pass", "supported")]),
    ("os.supported", {"os_release": OsRelease("debian", "11", "Debian 11")}, None, [("pass", "supported")]),
    (
        "os.supported",
        {"os_release": OsRelease("ubuntu", "22.04", "Ubuntu")},
        P(thresholds={"os.supported": {"warn_below": 400}}),
        [("warn", "ending")],
    ),
    ("os.supported", {"os_release": OsRelease("debian", "10", "Debian 10")}, None, [("fail", "ended")]),
    ("os.supported", {"os_release": OsRelease("rhel", "9.3", "RHEL 9.3")}, None, [("pass", "supported")]),
    (
        "os.supported",
        {"os_release": OsRelease("debian", "99", "Debian 99")},
        None,
        [("not_applicable", "unknown")],
    ),
    (
        "os.supported",
        {"os_release": OsRelease("linuxmint", "21", "Mint", ("ubuntu",))},
        None,
        [("not_applicable", "unknown")],
    ),
    ("os.updates", {"updates": Updates(0, 0, NOW - 30 * DAY)}, None, [("warn", "state")]),
    ("os.updates", {"updates": Updates(0, 0, NOW - 29.9 * DAY)}, None, [("pass", "state")]),
    ("os.updates", {"updates": Updates(0, 0, NOW - 90 * DAY)}, None, [("fail", "state")]),
    ("os.updates", {"updates": Updates(5, 1, NOW - DAY)}, None, [("warn", "state")]),
    ("os.updates", {"updates": Updates(5, 0, NOW - DAY)}, None, [("pass", "state")]),
    ("os.updates", {"updates": Updates(None, None, NOW - DAY)}, None, [("pass", "unknown_pending")]),
    ("os.updates", {"updates": Updates(None, None, None)}, None, [("error", "common.unreadable")]),
    (
        "os.updates",
        {"updates": ToolMissing("apt-get / dnf")},
        None,
        [("not_applicable", "common.missing_tool")],
    ),
    ("os.services", {}, None, [("not_applicable", "none")]),
    (
        "os.services",
        {
            "services": constant(
                [
                    ServiceState("cups", True, "active"),
                    ServiceState("vpn", True, "failed"),
                    ServiceState("gone", False, "inactive"),
                ]
            )
        },
        P(required_services=["cups", "vpn", "gone"]),
        [("pass", "running"), ("fail", "stopped"), ("fail", "missing")],
    ),
    (
        "os.services",
        {"services": Unavailable("common.no_systemd")},
        P(required_services=["cups"]),
        [("not_applicable", "common.no_systemd")],
    ),
    ("os.failed_units", {"failed_units": []}, None, [("pass", "none")]),
    ("os.failed_units", {"failed_units": ["cups.service"]}, None, [("warn", "failed")]),
    ("os.log_errors", {"log_errors": constant(LogErrors(49))}, None, [("pass", "count")]),
    ("os.log_errors", {"log_errors": constant(LogErrors(50))}, None, [("warn", "count")]),
    ("os.log_errors", {"log_errors": constant(LogErrors(500, True, ("x",)))}, None, [("fail", "count")]),
    (
        "os.log_errors",
        {"log_errors": PermissionDenied("the system journal")},
        None,
        [("error", "common.permission")],
    ),
    ("os.crashes", {"crashes": constant(Crashes(0))}, None, [("pass", "count")]),
    ("os.crashes", {"crashes": constant(Crashes(1, "firefox"))}, None, [("warn", "count")]),
    ("os.crashes", {"crashes": constant(Crashes(5, "firefox"))}, None, [("fail", "count")]),
    ("time.sync", {"clock_sync": ClockSync(False, "kernel")}, None, [("warn", "unsynced")]),
    ("time.sync", {"clock_sync": ClockSync(True, "chrony")}, None, [("pass", "synced")]),
    (
        "time.zone",
        {"timezone": ("Europe/Paris", 3600)},
        P(expected_timezone="Europe/Brussels"),
        [("warn", "unexpected")],
    ),
    (
        "time.zone",
        {"timezone": ("Europe/Brussels", 3600)},
        P(expected_timezone="Europe/Brussels"),
        [("pass", "zone")],
    ),
    ("time.zone", {"timezone": ("America/St_Johns", -12600)}, None, [("pass", "zone")]),
    ("os.hostname", {"resolve": constant((["127.0.1.1"], 499.9))}, None, [("pass", "resolves")]),
    ("os.hostname", {"resolve": constant((["127.0.1.1"], 500.0))}, None, [("warn", "resolves")]),
    ("os.hostname", {"resolve": OSError(-2, "Name or service not known")}, None, [("fail", "unresolved")]),
    ("os.inodes", {"volumes": [Volume("/", "d", "ext4", 1, 1, 100, 20)]}, None, [("warn", "level")]),
    ("os.inodes", {"volumes": [Volume("/", "d", "ext4", 1, 1, 1000, 201)]}, None, [("pass", "level")]),
    ("os.inodes", {"volumes": [Volume("/", "d", "ext4", 1, 1, 100, 10)]}, None, [("fail", "level")]),
    (
        "os.inodes",
        {"volumes": [Volume("/", "d", "btrfs", 1, 1, None, None)]},
        None,
        [("not_applicable", "none")],
    ),
    ("os.file_handles", {"file_handles": FileHandles(80, 100)}, None, [("warn", "level")]),
    ("os.file_handles", {"file_handles": FileHandles(90, 100)}, None, [("fail", "level")]),
    ("os.file_handles", {"file_handles": FileHandles(79, 100)}, None, [("pass", "level")]),
    # software
    ("software.required", {}, None, [("not_applicable", "none")]),
    (
        "software.required",
        {"packages": constant({"a": "2.0-1", "b": "1.9", "c": None, "d": "1:0.1"})},
        P(
            required_software=[
                SoftwareRequirement(name="a", min_version="2.0"),
                SoftwareRequirement(name="b", min_version="1.10"),
                SoftwareRequirement(name="c"),
                SoftwareRequirement(name="d", min_version="9.9"),
            ]
        ),
        [("pass", "present"), ("warn", "too_old"), ("fail", "missing"), ("pass", "present")],
    ),
    (
        "software.required",
        {"packages": ToolMissing("dpkg-query / rpm")},
        P(required_software=[SoftwareRequirement(name="a")]),
        [("not_applicable", "common.missing_tool")],
    ),
    (
        "software.startup",
        {"startup_items": [StartupItem(str(i), "user") for i in range(25)]},
        None,
        [("warn", "count")],
    ),
    (
        "software.startup",
        {"startup_items": [StartupItem(str(i), "system") for i in range(24)]},
        None,
        [("pass", "count")],
    ),
    ("software.browser", {"default_browser": None}, None, [("warn", "none")]),
    (
        "software.browser",
        {"default_browser": Unavailable("common.no_desktop")},
        None,
        [("not_applicable", "common.no_desktop")],
    ),
    ("software.runaway", {}, None, [("not_applicable", "common.no_history")]),
    # network
    (
        "net.interfaces",
        {"interfaces": [Interface("eth0", True, ()), Interface("wlan0", False, ("10.0.0.2",))]},
        None,
        [("fail", "down")],
    ),
    ("net.gateway", {"gateways": []}, None, [("fail", "none")]),
    ("net.gateway", {"ping": constant(99.9)}, None, [("pass", "reachable")]),
    ("net.gateway", {"ping": constant(100.0)}, None, [("warn", "reachable")]),
    (
        "net.gateway",
        {"ping": constant(None), "tcp_connect": ConnectionRefusedError(111, "refused")},
        None,
        [("pass", "reachable")],
    ),
    (
        "net.gateway",
        {"ping": TimeoutError(), "tcp_connect": TimeoutError(), "neighbour_reachable": constant(True)},
        None,
        [("pass", "reachable")],
    ),
    (
        "net.gateway",
        {
            "ping": TimeoutError(),
            "tcp_connect": OSError(113, "No route to host"),
            "neighbour_reachable": constant(False),
        },
        None,
        [("fail", "unreachable")],
    ),
    (
        "net.dns",
        {"resolve": constant((["192.0.2.1"], 299.0))},
        P(dns_names=["a.example", "b.example"]),
        [("pass", "resolved"), ("pass", "resolved")],
    ),
    ("net.dns", {"resolve": constant((["192.0.2.1"], 300.0))}, None, [("warn", "resolved")]),
    ("net.dns", {"resolve": OSError(-2, "Name or service not known")}, None, [("fail", "failed")]),
    ("net.server", {}, None, [("not_applicable", "none")]),
    ("net.server", {"tcp_connect": constant(199.0)}, P(server_host="steun.example"), [("pass", "reachable")]),
    ("net.server", {"tcp_connect": constant(200.0)}, P(server_host="steun.example"), [("warn", "reachable")]),
    (
        "net.server",
        {"tcp_connect": ConnectionRefusedError(111, "Connection refused")},
        P(server_host="192.0.2.9"),
        [("fail", "unreachable")],
    ),
    ("net.https", {}, None, [("not_applicable", "none")]),
    (
        "net.https",
        {"https_probe": constant(HttpsInfo(200, NOW + 30 * DAY, 5.0))},
        P(https_urls=["https://a.example"]),
        [("pass", "valid")],
    ),
    (
        "net.https",
        {"https_probe": constant(HttpsInfo(200, NOW + 29.9 * DAY, 5.0))},
        P(https_urls=["https://a.example"]),
        [("warn", "valid")],
    ),
    (
        "net.https",
        {"https_probe": constant(HttpsInfo(None, NOW + 6.9 * DAY, 5.0))},
        P(https_urls=["https://a.example:8443/x?y=1"]),
        [("fail", "valid")],
    ),
    (
        "net.https",
        {"https_probe": __import__("ssl").SSLCertVerificationError(1, "certificate has expired")},
        P(https_urls=["https://a.example"]),
        [("fail", "invalid")],
    ),
    (
        "net.https",
        {"https_probe": ConnectionResetError(104, "Connection reset by peer")},
        P(https_urls=["https://a.example"]),
        [("fail", "unreachable")],
    ),
    (
        "net.errors",
        {
            "nic_counters": {"eth0": NicCounters(98_000, 1000, 1000)},
            "interfaces": [Interface("eth0", True, ("10.0.0.2",))],
        },
        None,
        [("warn", "boot")],
    ),
    (
        "net.errors",
        {
            "nic_counters": {"eth0": NicCounters(98_100, 1000, 900)},
            "interfaces": [Interface("eth0", True, ("10.0.0.2",))],
        },
        None,
        [("pass", "boot")],
    ),
    (
        "net.errors",
        {
            "nic_counters": {"wlan0": NicCounters(95_000, 5000, 0)},
            "interfaces": [Interface("wlan0", True, ("10.0.0.2",), wireless=True)],
        },
        None,
        [("pass", "boot")],
    ),
    (
        "net.errors",
        {
            "nic_counters": {"wlan0": NicCounters(90_000, 10_000, 0)},
            "interfaces": [Interface("wlan0", True, ("10.0.0.2",), wireless=True)],
        },
        None,
        [("warn", "boot")],
    ),
    (
        "net.errors",
        {
            "nic_counters": {"eth0": NicCounters(999, 999, 0)},
            "interfaces": [Interface("eth0", True, ("10.0.0.2",))],
        },
        None,
        [("pass", "quiet")],
    ),
    ("net.errors", {"interfaces": []}, None, [("not_applicable", "none")]),
    (
        "net.wifi",
        {"wifi": [WifiLink("w0", -70), WifiLink("w1", -70.5), WifiLink("w2", -81)]},
        None,
        [("pass", "level"), ("warn", "level"), ("fail", "level")],
    ),
    ("net.wifi", {"wifi": []}, None, [("not_applicable", "none")]),
    ("net.proxy", {"proxies": []}, None, [("pass", "none")]),
    (
        "net.proxy",
        {"proxies": [ProxySetting("http://user:secret@proxy.example:3128", "https_proxy")]},
        None,
        [("pass", "reachable")],
    ),
    (
        "net.proxy",
        {"proxies": [ProxySetting("http://proxy.example:3128", "apt")], "tcp_connect": TimeoutError()},
        None,
        [("fail", "unreachable")],
    ),
    ("net.mtu", {"interfaces": [Interface("eth0", True, ("10.0.0.2",), 1279)]}, None, [("warn", "level")]),
    ("net.mtu", {"interfaces": [Interface("eth0", True, ("10.0.0.2",), 1280)]}, None, [("pass", "level")]),
    ("net.mtu", {"gateways": []}, None, [("not_applicable", "none")]),
    # security
    ("security.firewall", {"firewall": Firewall(None, False)}, None, [("fail", "none")]),
    ("security.firewall", {"firewall": Firewall("nftables", False)}, None, [("fail", "inactive")]),
    (
        "security.firewall",
        {"firewall": PermissionDenied("nft list ruleset")},
        None,
        [("error", "common.permission")],
    ),
    ("security.antivirus", {"antivirus": Antivirus("ClamAV", True, 2.9)}, None, [("pass", "current")]),
    ("security.antivirus", {"antivirus": Antivirus("ClamAV", True, 3)}, None, [("warn", "current")]),
    ("security.antivirus", {"antivirus": Antivirus("ClamAV", True, 7)}, None, [("fail", "current")]),
    ("security.antivirus", {"antivirus": Antivirus("ClamAV", False, 1)}, None, [("warn", "not_running")]),
    ("security.antivirus", {"antivirus": Unavailable("none")}, None, [("not_applicable", "none")]),
    ("security.encryption", {"encryption": Encryption("/", False)}, None, [("warn", "plain")]),
    (
        "security.encryption",
        {"encryption": Encryption("/", False)},
        P(thresholds={"security.encryption": {"required": 1}}),
        [("fail", "plain")],
    ),
    ("security.secure_boot", {"secure_boot": SecureBoot(False, None)}, None, [("not_applicable", "legacy")]),
    ("security.secure_boot", {"secure_boot": SecureBoot(True, False)}, None, [("warn", "off")]),
    ("security.secure_boot", {"secure_boot": SecureBoot(True, None)}, None, [("error", "common.unreadable")]),
    ("security.tpm", {"tpm": Tpm(False)}, None, [("warn", "absent")]),
    ("security.screen_lock", {"screen_lock": ScreenLock(True, True, 900)}, None, [("pass", "on")]),
    ("security.screen_lock", {"screen_lock": ScreenLock(True, True, 901)}, None, [("warn", "on")]),
    ("security.screen_lock", {"screen_lock": ScreenLock(True, False, 300)}, None, [("warn", "off")]),
    (
        "security.screen_lock",
        {"screen_lock": ScreenLock(False, None)},
        None,
        [("not_applicable", "common.no_desktop")],
    ),
    # root counts: warn_at 3 is root and two more administrators
    ("security.admins", {"admins": Admins(("a",), ("root",))}, None, [("pass", "count")]),
    ("security.admins", {"admins": Admins(("a", "b"), ("root", "toor"))}, None, [("fail", "uid0")]),
    ("security.admins", {"admins": Admins(("a", "b"), ("root",))}, None, [("warn", "count")]),
    ("security.ports", {"listeners": []}, None, [("pass", "none")]),
    (
        "security.ports",
        {"listeners": [Listener(22, "::", "sshd"), Listener(8080, "0.0.0.0", "python3")]},
        None,
        [("warn", "unexpected")],
    ),
    (
        "security.ports",
        {"listeners": [Listener(22, "::", "sshd"), Listener(8080, "0.0.0.0", "")]},
        P(expected_ports=[22, 8080]),
        [("pass", "expected")],
    ),
    ("security.certificates", {"certificate_store": CertStore("/x", False)}, None, [("fail", "missing")]),
    (
        "security.certificates",
        {"certificate_store": CertStore("/x", True, 140, 2)},
        None,
        [("warn", "expired")],
    ),
    (
        "security.certificates",
        {"certificate_store": CertStore("/x", True, 141, 0, ("corp-proxy.crt",))},
        None,
        [("warn", "added")],
    ),
]


@pytest.mark.parametrize(
    ("check_id", "data", "policy", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
async def test_boundaries(
    check_id: str, data: dict[str, Any], policy: Policy | None, expected: list[tuple[str, str]]
) -> None:
    fake = FakeDiagnostics()
    for method, value in data.items():
        if isinstance(value, BaseException):
            fake.errors[method] = value
        else:
            fake.data[method] = value
    results = await run(fake, check_id, policy=policy)
    got = [(r.status, r.summary_key.removeprefix(check_id + ".")) for r in results]
    assert got == expected
    spec = CATALOGUE.check(check_id)
    for r in results:
        assert r.status in spec.statuses, f"{check_id} returned undocumented status {r.status}"
        assert CATALOGUE.template(r.summary_key) is not None, r.summary_key
        for lang in ("en", "nl", "fr"):
            text = CATALOGUE.summary(r.summary_key, r.summary_params, lang)
            assert text and "{" not in text, (r, lang)
        assert (r.kb_key is not None) == (r.status in ("warn", "fail"))


def test_every_check_has_boundary_cases() -> None:
    covered = {case[0] for case in CASES}
    trend = {"disk.fill_time", "cpu.load"}  # tested with synthetic history below
    assert {c.id for c in CATALOGUE.checks} - covered - trend == set()


async def test_a_healthy_machine_passes_everything_that_applies() -> None:
    results = await run(
        FakeDiagnostics(), policy=Policy(server_host="steun.example", https_urls=["https://steun.example/"])
    )
    bad = [
        (r.check_id, r.status, r.summary_key) for r in results if r.status not in ("pass", "not_applicable")
    ]
    assert bad == []
    assert {r.check_id for r in results} == {c.id for c in CATALOGUE.checks}


# ---------------------------------------------------------------- trends and averages (sampler history)


async def test_fill_time_boundaries_from_history() -> None:
    fake = FakeDiagnostics()
    for free_now, hours_expected, status in (
        (8 * GIB, 8.0, "pass"),
        (7.9 * GIB, 7.9, "warn"),
        (1.9 * GIB, 1.9, "fail"),
    ):
        # losing 1 GiB per hour over 40 samples 30 s apart
        sampler = history(fake, 40, free=lambda i, f=free_now: f + (39 - i) * 30 * GIB / 3600)
        (r,) = only(await run(fake, "disk.fill_time", sampler=sampler), "disk.fill_time")
        assert (r.status, r.summary_key) == (status, "disk.fill_time.filling")
        assert r.value == pytest.approx(hours_expected, abs=0.01)


async def test_fill_time_is_steady_when_free_space_grows_and_honest_without_history() -> None:
    fake = FakeDiagnostics()
    sampler = history(fake, 40, free=lambda i: 10 * GIB + i * GIB)
    (r,) = await run(fake, "disk.fill_time", sampler=sampler)
    assert (r.status, r.summary_key) == ("pass", "disk.fill_time.steady")
    short = history(fake, 10)  # 4.5 minutes: less than the 10 needed
    (r,) = await run(fake, "disk.fill_time", sampler=short)
    assert (r.status, r.summary_key, r.summary_params["minutes"]) == (
        "not_applicable",
        "common.no_history",
        10,
    )


@pytest.mark.parametrize(
    ("percent", "status"), [(69.9, "pass"), (70.0, "warn"), (89.9, "warn"), (90.0, "fail")]
)
async def test_cpu_average_from_history(percent: float, status: str) -> None:
    fake = FakeDiagnostics()
    (r,) = await run(fake, "cpu.load", sampler=history(fake, 11, cpu_percent=percent))
    assert r.status == status and r.value == pytest.approx(percent, abs=0.01)


async def test_cpu_quick_sample_leaves_out_the_agents_own_work() -> None:
    fake = FakeDiagnostics()
    times = iter([(1000.0, 10000.0, 0.0), (1002.0, 10004.0, 1.5)])  # 50 % busy, 1.5 of 2 s were ours

    def cpu() -> Any:
        from steun_agent.diagnostics.backend import CpuTimes

        busy, total, own = next(times)
        fake.data["own_cpu_seconds"] = own
        return CpuTimes(busy, total, 4)

    fake.data["cpu_times"] = cpu
    (r,) = await run(fake, "cpu.load")
    assert r.value == pytest.approx(12.5)


async def test_memory_average_from_history() -> None:
    fake = FakeDiagnostics()
    (r,) = await run(fake, "memory.usage", sampler=history(fake, 11, memory_percent=85))
    assert r.status == "fail" and r.measured["samples"] == 11


def _top(cpu: float, mem: float) -> Callable[[int], tuple[ProcUse, ...]]:
    return lambda i: (ProcUse(42, "chrome", cpu, mem), ProcUse(i + 100, f"short-{i}", 99.0, 1.0))


@pytest.mark.parametrize(
    ("cpu", "mem", "expected"),
    [
        (89.9, 10.0, [("pass", "software.runaway.none")]),
        (90.0, 10.0, [("warn", "software.runaway.cpu")]),
        (10.0, 50.0, [("warn", "software.runaway.memory")]),
        (95.0, 80.0, [("fail", "software.runaway.memory")]),
    ],
)
async def test_runaway_needs_a_sustained_share(
    cpu: float, mem: float, expected: list[tuple[str, str]]
) -> None:
    fake = FakeDiagnostics()
    results = await run(fake, "software.runaway", sampler=history(fake, 11, top=_top(cpu, mem)))
    assert [(r.status, r.summary_key) for r in results] == expected  # short-lived pids are never runaway


async def test_packet_loss_over_the_sampled_window() -> None:
    fake = FakeDiagnostics(interfaces=[Interface("eth0", True, ("10.0.0.2",))])
    sampler = history(fake, 21, nics=lambda i: {"eth0": NicCounters(i * 1000, 0, i * 20)})
    (r,) = await run(fake, "net.errors", sampler=sampler)
    assert (r.status, r.summary_key, r.summary_params["minutes"]) == ("pass", "net.errors.window", 10)
    sampler = history(fake, 21, nics=lambda i: {"eth0": NicCounters(i * 1000, 0, i * 21)})
    (r,) = await run(fake, "net.errors", sampler=sampler)
    assert r.status == "warn"


async def test_proxy_credentials_never_leave_the_machine() -> None:
    fake = FakeDiagnostics(proxies=[ProxySetting("http://user:secret@proxy.example:3128", "https_proxy")])
    (r,) = await run(fake, "net.proxy")
    assert "secret" not in str(r) and r.subject == "http://proxy.example:3128"


async def test_disabled_checks_say_so() -> None:
    (r,) = await run(FakeDiagnostics(), "disk.free", policy=Policy(disabled=["disk.free"]))
    assert (r.status, r.summary_key) == ("not_applicable", "common.disabled")


async def test_unsupported_platform_is_not_applicable_never_pass() -> None:
    fake = FakeDiagnostics()
    fake.name = "windows"
    results = await run(fake)
    assert {r.status for r in results} == {"not_applicable"}
    assert {r.summary_key for r in results} == {"common.platform"}
    assert fake.calls == []
