"""Network tests: interfaces, gateway, DNS, the Steun server, HTTPS sites, packet loss, Wi-Fi, proxy, MTU.

Every wait has its own budget inside the test's timeout, so an unreachable target yields ``fail`` with a
reason rather than a test timeout. Names are resolved in the probe pool (``getaddrinfo`` can hang for many
seconds and cannot be cancelled); connections are made by asyncio on the resolved address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..backend import Interface, WifiLink
from ..errors import Unavailable
from ..model import Check, Context, Finding, clip, grade_at, grade_below, joined, rnd

#: Share of the test's timeout one network wait may use (a gateway is tried by ping, then TCP).
STEP = 0.4


def budget(ctx: Context, share: float = STEP) -> float:
    return max(0.1, ctx.timeout * share)


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer (timeout)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return clip(getattr(exc, "verify_message", None) or str(exc))
    if isinstance(exc, OSError) and exc.strerror:
        return clip(exc.strerror)
    return clip(str(exc) or type(exc).__name__)


async def resolve(ctx: Context, host: str, seconds: float) -> list[str]:
    """Addresses of ``host``; raises TimeoutError or OSError."""
    async with asyncio.timeout(seconds):
        addresses, _ = await ctx.call(ctx.backend.resolve, host)
    if not addresses:
        raise OSError(f"{host} has no address")
    return addresses


class Interfaces(Check[list[Interface]]):
    id = "net.interfaces"

    async def probe(self, ctx: Context) -> list[Interface]:
        return await ctx.call(ctx.backend.interfaces)

    def evaluate(self, data: list[Interface], t: Mapping[str, float]) -> list[Finding]:
        usable = [i for i in data if i.up and i.addresses]
        names = [i.name for i in usable]
        if not usable:
            return [Finding("fail", "down", value=0, measured={"interfaces": len(data)})]
        return [
            Finding(
                "pass",
                "up",
                {"count": len(usable), "names": joined(names)},
                value=len(usable),
                measured={"addresses": joined([a for i in usable for a in i.addresses], 6)},
            )
        ]


@dataclass(frozen=True, slots=True)
class Reach:
    address: str
    ms: float | None
    method: str | None  # ping, tcp, arp; None: unreachable


class GatewayCheck(Check[list[Reach]]):
    id = "net.gateway"

    async def probe(self, ctx: Context) -> list[Reach]:
        gateways = await ctx.call(ctx.backend.gateways)
        return list(await asyncio.gather(*(self._reach(ctx, g.address) for g in gateways[:4])))

    async def _reach(self, ctx: Context, address: str) -> Reach:
        step = budget(ctx)
        try:
            ms = await ctx.call(ctx.backend.ping, address, step)
            if ms is not None:
                return Reach(address, ms, "ping")
        except OSError:
            pass  # no echo reply: some routers ignore ping; try TCP
        started = time.perf_counter()
        try:
            ms = await ctx.backend.tcp_connect(address, 53, step)
            return Reach(address, ms, "tcp")
        except ConnectionRefusedError:  # a refusal is an answer
            return Reach(address, (time.perf_counter() - started) * 1000, "tcp")
        except OSError:
            pass
        if await ctx.call(ctx.backend.neighbour_reachable, address):
            return Reach(address, None, "arp")
        return Reach(address, None, None)

    def evaluate(self, data: list[Reach], t: Mapping[str, float]) -> list[Finding]:
        if not data:
            return [Finding("fail", "none")]
        findings = []
        for r in data:
            subject = clip(r.address)
            if r.method is None:
                findings.append(Finding("fail", "unreachable", {"address": subject}, subject=subject))
                continue
            status = grade_at(r.ms, t) if r.ms is not None else "pass"
            findings.append(
                Finding(
                    status,
                    "reachable",
                    {"address": subject, "ms": rnd(r.ms) if r.ms else None, "method": r.method},
                    subject=subject,
                    value=rnd(r.ms, 2) if r.ms is not None else None,
                    measured={"method": r.method},
                )
            )
        return findings


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str
    addresses: list[str] | None
    ms: float
    reason: str = ""
    timed_out: bool = False


def dns_names(ctx: Context) -> list[str]:
    if ctx.policy.dns_names:
        return list(ctx.policy.dns_names)
    host = ctx.policy.server_host
    if host and not _is_ip(host):
        return [host]
    return list(ctx.catalogue.policy_defaults.dns_names)


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class Dns(Check[list[Resolution]]):
    id = "net.dns"

    async def probe(self, ctx: Context) -> list[Resolution]:
        return list(await asyncio.gather(*(self._one(ctx, name) for name in dns_names(ctx))))

    async def _one(self, ctx: Context, name: str) -> Resolution:
        seconds = max(0.1, ctx.timeout - 0.3)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(seconds):
                addresses, ms = await ctx.call(ctx.backend.resolve, name)
        except TimeoutError:
            return Resolution(name, None, seconds * 1000, timed_out=True)
        except OSError as exc:
            return Resolution(name, None, (time.perf_counter() - started) * 1000, reason_of(exc))
        if not addresses:
            return Resolution(name, None, ms, "no address")
        return Resolution(name, addresses, ms)

    def evaluate(self, data: list[Resolution], t: Mapping[str, float]) -> list[Finding]:
        findings = []
        for r in data:
            subject = clip(r.name)
            if r.timed_out:
                findings.append(
                    Finding(
                        "fail", "no_answer", {"name": subject, "seconds": rnd(r.ms / 1000)}, subject=subject
                    )
                )
            elif not r.addresses:
                findings.append(
                    Finding("fail", "failed", {"name": subject, "reason": r.reason}, subject=subject)
                )
            else:
                findings.append(
                    Finding(
                        grade_at(r.ms, t),
                        "resolved",
                        {"name": subject, "ms": rnd(r.ms), "address": clip(r.addresses[0])},
                        subject=subject,
                        value=rnd(r.ms, 2),
                        measured={"addresses": joined(r.addresses, 4)},
                    )
                )
        return findings


@dataclass(frozen=True, slots=True)
class Connect:
    target: str
    ms: float | None
    reason: str = ""


class SteunServer(Check[Connect]):
    id = "net.server"

    async def probe(self, ctx: Context) -> Connect:
        host, port = ctx.policy.server_host, ctx.policy.server_port
        if not host:
            raise Unavailable("none")
        target = f"{host}:{port}"
        try:
            address = (await resolve(ctx, host.strip("[]"), budget(ctx)))[0]
            ms = await ctx.backend.tcp_connect(address, port, budget(ctx))
        except (OSError, TimeoutError) as exc:
            return Connect(target, None, reason_of(exc))
        return Connect(target, ms)

    def evaluate(self, data: Connect, t: Mapping[str, float]) -> list[Finding]:
        server = clip(data.target)
        if data.ms is None:
            return [Finding("fail", "unreachable", {"server": server, "reason": data.reason}, subject=server)]
        return [
            Finding(
                grade_at(data.ms, t),
                "reachable",
                {"server": server, "ms": rnd(data.ms)},
                subject=server,
                value=rnd(data.ms, 2),
            )
        ]


@dataclass(frozen=True, slots=True)
class HttpsOutcome:
    url: str
    days: float | None = None
    expires: str = ""
    status: int | None = None
    ms: float | None = None
    invalid: str = ""
    unreachable: str = ""


class Https(Check[list[HttpsOutcome]]):
    id = "net.https"

    async def probe(self, ctx: Context) -> list[HttpsOutcome]:
        urls = list(ctx.policy.https_urls)
        if not urls:
            raise Unavailable("none")
        await ctx.call(ctx.backend.prepare_tls)
        return list(await asyncio.gather(*(self._one(ctx, url) for url in urls)))

    async def _one(self, ctx: Context, url: str) -> HttpsOutcome:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        try:
            port = parts.port or 443
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            address = (await resolve(ctx, host, budget(ctx)))[0]
            info = await ctx.backend.https_probe(
                address, port, host, path, max(0.1, ctx.timeout - 0.3 - budget(ctx))
            )
        except ssl.SSLError as exc:
            return HttpsOutcome(url, invalid=reason_of(exc))
        except (OSError, TimeoutError, ValueError) as exc:
            return HttpsOutcome(url, unreachable=reason_of(exc))
        days = (info.not_after - ctx.clock()) / 86400
        expires = dt.datetime.fromtimestamp(info.not_after, dt.UTC).date().isoformat()
        return HttpsOutcome(url, days, expires, info.status, info.latency_ms)

    def evaluate(self, data: list[HttpsOutcome], t: Mapping[str, float]) -> list[Finding]:
        findings = []
        for o in data:
            subject = clip(o.url)
            if o.invalid:
                findings.append(Finding("fail", "invalid", {"reason": o.invalid}, subject=subject))
            elif o.unreachable or o.days is None:
                findings.append(Finding("fail", "unreachable", {"reason": o.unreachable}, subject=subject))
            else:
                findings.append(
                    Finding(
                        grade_below(o.days, t),
                        "valid",
                        {
                            "status": o.status,
                            "ms": rnd(o.ms) if o.ms is not None else None,
                            "days": round(o.days),
                            "expires": o.expires,
                        },
                        subject=subject,
                        value=rnd(o.days),
                        measured={"http_status": o.status, "expires": o.expires},
                    )
                )
        return findings


@dataclass(frozen=True, slots=True)
class Loss:
    interface: str
    wireless: bool
    packets: int
    bad: int
    minutes: float | None  # None: since start-up


class PacketErrors(Check[list[Loss]]):
    id = "net.errors"

    async def probe(self, ctx: Context) -> list[Loss]:
        interfaces = {i.name: i for i in await ctx.call(ctx.backend.interfaces) if i.up}
        window = ctx.sampler.window(ctx.thresholds["window_minutes"] * 60) if ctx.sampler is not None else []
        losses = []
        if len(window) >= 2 and window[-1].at - window[0].at >= 60:
            first, last = window[0].snapshot.nics, window[-1].snapshot.nics
            minutes = (window[-1].at - window[0].at) / 60
            for name, iface in interfaces.items():
                if name in first and name in last:
                    a, b = first[name], last[name]
                    bad = max(0, (b.errors + b.drops) - (a.errors + a.drops))
                    losses.append(Loss(name, iface.wireless, max(0, b.packets - a.packets), bad, minutes))
            return losses
        counters = await ctx.call(ctx.backend.nic_counters)
        for name, iface in interfaces.items():
            c = counters.get(name)
            if c is not None:
                losses.append(Loss(name, iface.wireless, c.packets, c.errors + c.drops, None))
        return losses

    def evaluate(self, data: list[Loss], t: Mapping[str, float]) -> list[Finding]:
        if not data:
            return [Finding("not_applicable", "none")]
        findings = []
        for loss in data:
            subject = clip(loss.interface)
            measured = {"packets": loss.packets, "bad": loss.bad, "wireless": loss.wireless}
            if loss.packets < t.get("min_packets", 0):
                findings.append(
                    Finding("pass", "quiet", {"packets": loss.packets}, subject=subject, measured=measured)
                )
                continue
            percent = 100.0 * loss.bad / (loss.packets + loss.bad) if loss.packets + loss.bad else 0.0
            warn_key = "wifi_warn_at" if loss.wireless else "warn_at"
            status = grade_at(percent, t, warn=warn_key, fail="-")
            params = {"percent": rnd(percent, 2), "bad": loss.bad, "packets": loss.packets}
            if loss.minutes is None:
                findings.append(
                    Finding(status, "boot", params, subject=subject, value=rnd(percent, 3), measured=measured)
                )
            else:
                findings.append(
                    Finding(
                        status,
                        "window",
                        {**params, "minutes": round(loss.minutes)},
                        subject=subject,
                        value=rnd(percent, 3),
                        measured=measured,
                    )
                )
        return findings


class Wifi(Check[list[WifiLink]]):
    id = "net.wifi"

    async def probe(self, ctx: Context) -> list[WifiLink]:
        return await ctx.call(ctx.backend.wifi)

    def evaluate(self, data: list[WifiLink], t: Mapping[str, float]) -> list[Finding]:
        if not data:
            return [Finding("not_applicable", "none")]
        return [
            Finding(
                grade_below(w.signal_dbm, t),
                "level",
                {"dbm": round(w.signal_dbm), "quality": round(w.quality) if w.quality is not None else None},
                subject=clip(w.interface),
                value=round(w.signal_dbm),
            )
            for w in data
        ]


@dataclass(frozen=True, slots=True)
class ProxyState:
    url: str
    source: str
    ok: bool
    reason: str = ""


def redact(url: str) -> tuple[str, str, int]:
    """A proxy URL without credentials, and the host and port to test."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    shown = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    return shown, host, port


class Proxy(Check[list[ProxyState]]):
    id = "net.proxy"

    async def probe(self, ctx: Context) -> list[ProxyState]:
        settings = await ctx.call(ctx.backend.proxies)
        seen: dict[str, str] = {}
        for s in settings:
            shown, _, _ = redact(s.url)
            seen.setdefault(shown, s.source)
        return list(
            await asyncio.gather(*(self._one(ctx, url, source) for url, source in list(seen.items())[:4]))
        )

    async def _one(self, ctx: Context, url: str, source: str) -> ProxyState:
        _, host, port = redact(url)
        if not host or not port:
            return ProxyState(url, source, False, "not a valid address")
        try:
            address = (await resolve(ctx, host, budget(ctx)))[0]
            await ctx.backend.tcp_connect(address, port, budget(ctx))
        except (OSError, TimeoutError) as exc:
            return ProxyState(url, source, False, reason_of(exc))
        return ProxyState(url, source, True)

    def evaluate(self, data: list[ProxyState], t: Mapping[str, float]) -> list[Finding]:
        if not data:
            return [Finding("pass", "none", value=False)]
        findings = []
        for p in data:
            params: dict[str, Any] = {"proxy": clip(p.url), "source": clip(p.source)}
            if p.ok:
                findings.append(Finding("pass", "reachable", params, subject=clip(p.url), value=True))
            else:
                findings.append(
                    Finding(
                        "fail",
                        "unreachable",
                        {**params, "reason": p.reason},
                        subject=clip(p.url),
                        value=False,
                    )
                )
        return findings


class Mtu(Check[list[Interface]]):
    id = "net.mtu"

    async def probe(self, ctx: Context) -> list[Interface]:
        gateways = await ctx.call(ctx.backend.gateways)
        names = {g.interface for g in gateways}
        return [i for i in await ctx.call(ctx.backend.interfaces) if i.name in names]

    def evaluate(self, data: list[Interface], t: Mapping[str, float]) -> list[Finding]:
        with_mtu = [i for i in data if i.mtu]
        if not with_mtu:
            return [Finding("not_applicable", "none")]
        return [
            Finding(
                grade_below(float(i.mtu or 0), t),
                "level",
                {"interface": clip(i.name), "mtu": i.mtu},
                subject=clip(i.name),
                value=i.mtu,
            )
            for i in with_mtu
        ]


CHECKS: tuple[Check[Any], ...] = (
    Interfaces(),
    GatewayCheck(),
    Dns(),
    SteunServer(),
    Https(),
    PacketErrors(),
    Wifi(),
    Proxy(),
    Mtu(),
)
