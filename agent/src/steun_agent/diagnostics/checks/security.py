"""Security tests: firewall, antivirus, disk encryption, Secure Boot, TPM, screen lock, administrators,
open ports, trusted certificates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steun_protocol.diagnostics import Scalar, Status

from ..backend import (
    Admins,
    Antivirus,
    CertStore,
    Encryption,
    Firewall,
    Listener,
    ScreenLock,
    SecureBoot,
    Tpm,
)
from ..errors import Unavailable
from ..model import Check, Context, Finding, clip, grade_at, joined, rnd


class FirewallCheck(Check[Firewall]):
    id = "security.firewall"

    async def probe(self, ctx: Context) -> Firewall:
        return await ctx.call(ctx.backend.firewall)

    def evaluate(self, data: Firewall, t: Mapping[str, float]) -> list[Finding]:
        if data.tool is None:
            return [Finding("fail", "none", value=False)]
        params: dict[str, Scalar] = {"tool": clip(data.tool), "rules": data.rules}
        if not data.active:
            return [Finding("fail", "inactive", params, value=False, measured=params)]
        return [Finding("pass", "active", params, value=True, measured=params)]


class AntivirusCheck(Check[Antivirus]):
    id = "security.antivirus"

    async def probe(self, ctx: Context) -> Antivirus:
        return await ctx.call(ctx.backend.antivirus)

    def evaluate(self, data: Antivirus, t: Mapping[str, float]) -> list[Finding]:
        product = clip(data.product)
        if not data.running:
            return [Finding("warn", "not_running", {"product": product}, subject=product)]
        if data.signature_age_days is None:
            return [Finding("error", "common.unreadable", {"what": f"{product} signatures"}, subject=product)]
        days = data.signature_age_days
        return [
            Finding(
                grade_at(days, t),
                "current",
                {"product": product, "days": rnd(days)},
                subject=product,
                value=rnd(days),
            )
        ]


class EncryptionCheck(Check[Encryption]):
    id = "security.encryption"

    async def probe(self, ctx: Context) -> Encryption:
        return await ctx.call(ctx.backend.encryption)

    def evaluate(self, data: Encryption, t: Mapping[str, float]) -> list[Finding]:
        if data.encrypted:
            return [
                Finding(
                    "pass", "encrypted", {"method": clip(data.method)}, subject=clip(data.volume), value=True
                )
            ]
        status: Status = "fail" if t.get("required", 0) >= 1 else "warn"
        return [
            Finding(status, "plain", {"volume": clip(data.volume)}, subject=clip(data.volume), value=False)
        ]


class SecureBootCheck(Check[SecureBoot]):
    id = "security.secure_boot"

    async def probe(self, ctx: Context) -> SecureBoot:
        return await ctx.call(ctx.backend.secure_boot)

    def evaluate(self, data: SecureBoot, t: Mapping[str, float]) -> list[Finding]:
        if not data.uefi:
            return [Finding("not_applicable", "legacy", measured={"uefi": False})]
        if data.enabled is None:
            return [Finding("error", "common.unreadable", {"what": "SecureBoot EFI variable"})]
        if data.enabled:
            return [Finding("pass", "on", value=True)]
        return [Finding("warn", "off", value=False)]


class TpmCheck(Check[Tpm]):
    id = "security.tpm"

    async def probe(self, ctx: Context) -> Tpm:
        return await ctx.call(ctx.backend.tpm)

    def evaluate(self, data: Tpm, t: Mapping[str, float]) -> list[Finding]:
        if data.present:
            return [
                Finding(
                    "pass", "present", {"version": clip(data.version or "?")}, value=clip(data.version or "?")
                )
            ]
        return [Finding("warn", "absent", value=False)]


class ScreenLockCheck(Check[ScreenLock]):
    id = "security.screen_lock"

    async def probe(self, ctx: Context) -> ScreenLock:
        return await ctx.call(ctx.backend.screen_lock)

    def evaluate(self, data: ScreenLock, t: Mapping[str, float]) -> list[Finding]:
        if not data.desktop_session:
            return [Finding("not_applicable", "common.no_desktop")]
        if data.enabled is None:
            return [Finding("error", "common.unreadable", {"what": "screen lock settings"})]
        if not data.enabled or not data.idle_seconds:
            return [Finding("warn", "off", value=None)]
        minutes = round(data.idle_seconds / 60)
        late = "warn_above" in t and data.idle_seconds > t["warn_above"]
        return [Finding("warn" if late else "pass", "on", {"minutes": minutes}, value=data.idle_seconds)]


class AdminsCheck(Check[Admins]):
    id = "security.admins"

    async def probe(self, ctx: Context) -> Admins:
        return await ctx.call(ctx.backend.admins)

    def evaluate(self, data: Admins, t: Mapping[str, float]) -> list[Finding]:
        extra_root = sorted(set(data.uid0) - {"root"})
        admins = sorted(set(data.admins) | set(data.uid0))
        measured = {"admins": joined(admins, 12)}
        if extra_root:
            return [
                Finding("fail", "uid0", {"names": joined(extra_root)}, value=len(admins), measured=measured)
            ]
        return [
            Finding(
                grade_at(len(admins), t),
                "count",
                {"count": len(admins), "names": joined(admins)},
                value=len(admins),
                measured=measured,
            )
        ]


class PortsCheck(Check[tuple[list[Listener], list[int]]]):
    id = "security.ports"

    async def probe(self, ctx: Context) -> tuple[list[Listener], list[int]]:
        expected = ctx.policy.expected_ports
        if expected is None:
            expected = list(ctx.catalogue.policy_defaults.expected_ports)
        return await ctx.call(ctx.backend.listeners), list(expected)

    def evaluate(self, data: tuple[list[Listener], list[int]], t: Mapping[str, float]) -> list[Finding]:
        listeners, expected = data
        by_port: dict[int, str] = {}
        for listener in listeners:
            if listener.process or listener.port not in by_port:
                by_port[listener.port] = listener.process
        ports = sorted(by_port)
        if not ports:
            return [Finding("pass", "none", value=0)]

        def describe(port: int) -> str:
            return f"{port} ({by_port[port]})" if by_port[port] else str(port)

        unexpected = [p for p in ports if p not in expected]
        measured: dict[str, Any] = {
            "listening": joined([describe(p) for p in ports], 16),
            "expected": joined([str(p) for p in expected], 16),
        }
        if unexpected:
            return [
                Finding(
                    "warn",
                    "unexpected",
                    {"count": len(unexpected), "ports": joined([describe(p) for p in unexpected])},
                    value=len(unexpected),
                    measured=measured,
                )
            ]
        return [
            Finding(
                "pass",
                "expected",
                {"count": len(ports), "ports": joined([describe(p) for p in ports])},
                value=0,
                measured=measured,
            )
        ]


class CertificatesCheck(Check[CertStore]):
    id = "security.certificates"

    async def probe(self, ctx: Context) -> CertStore:
        store = await ctx.call(ctx.backend.certificate_store)
        if store.path == "":
            raise Unavailable("common.unreadable", what="certificate store")
        return store

    def evaluate(self, data: CertStore, t: Mapping[str, float]) -> list[Finding]:
        measured = {"count": data.count, "expired": data.expired, "added": len(data.added)}
        if not data.exists:
            return [Finding("fail", "missing", {"path": clip(data.path)}, value=0, measured=measured)]
        if data.added:
            return [
                Finding(
                    "warn",
                    "added",
                    {"added": len(data.added), "names": joined(list(data.added), 5)},
                    value=data.count,
                    measured=measured,
                )
            ]
        if data.expired:
            return [
                Finding(
                    "warn",
                    "expired",
                    {"expired": data.expired, "count": data.count},
                    value=data.count,
                    measured=measured,
                )
            ]
        return [Finding("pass", "ok", {"count": data.count}, value=data.count, measured=measured)]


CHECKS: tuple[Check[Any], ...] = (
    FirewallCheck(),
    AntivirusCheck(),
    EncryptionCheck(),
    SecureBootCheck(),
    TpmCheck(),
    ScreenLockCheck(),
    AdminsCheck(),
    PortsCheck(),
    CertificatesCheck(),
)
