"""The real catalogue on this Linux machine: every test returns a documented status within the time bound."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from steun_agent.diagnostics.backends.linux import LinuxDiagnostics
from steun_agent.diagnostics.command import run as run_command
from steun_agent.diagnostics.errors import ProbeTimeout, ToolMissing
from steun_agent.diagnostics.pool import ProbePool
from steun_agent.diagnostics.runner import Runner
from steun_agent.diagnostics.sampler import Sampler
from steun_agent.diagnostics.versions import compare
from steun_protocol.codec import encode
from steun_protocol.diagnostics import RUN_GRACE, DiagnosticsResult, Policy, SoftwareRequirement

from tests.support.waiting import scaled

from .helpers import CATALOGUE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux backend")
CERT_DAYS = 20


def make_ca_and_cert(tmp: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Steun test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[tuple[int, int, Path]]:
    """A plain TCP listener (the "Steun server") and an HTTPS server with a 20-day certificate."""
    ca, cert, key = make_ca_and_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    tls = await asyncio.start_server(http, "127.0.0.1", 0, ssl=context)
    tcp = await asyncio.start_server(plain, "127.0.0.1", 0)
    yield tcp.sockets[0].getsockname()[1], tls.sockets[0].getsockname()[1], ca
    tls.close()
    tcp.close()


async def test_the_real_catalogue_returns_documented_statuses_within_the_bound(
    servers: tuple[int, int, Path],
) -> None:
    tcp_port, tls_port, ca = servers
    policy = Policy(
        server_host="127.0.0.1",
        server_port=tcp_port,
        https_urls=[f"https://localhost:{tls_port}/health"],
        dns_names=["localhost"],
        required_software=[
            SoftwareRequirement(name="python3", min_version="3.0"),
            SoftwareRequirement(name="steun-no-such-package"),
        ],
        required_services=["ssh"],
    )
    runner = Runner(LinuxDiagnostics(cafile=str(ca)), pool=ProbePool())
    started = time.perf_counter()
    try:
        results = await runner.run_all(runner.select()[0], policy)
    finally:
        runner.pool.close()
    wall = time.perf_counter() - started
    assert wall < policy.check_timeout + RUN_GRACE + scaled(0.5)
    seen = {r.check_id for r in results}
    assert seen == {c.id for c in CATALOGUE.checks}
    for r in results:
        spec = CATALOGUE.check(r.check_id)
        assert r.status in spec.statuses, (r.check_id, r.status, r.summary_key, r.summary_params, r.detail)
        assert CATALOGUE.template(r.summary_key) is not None, r.summary_key
        assert len(encode(DiagnosticsResult(id=1, run_id="x", result=r))) <= DiagnosticsResult.max_size
    by_id = {r.check_id: r for r in results}
    assert (by_id["net.server"].status, by_id["net.server"].summary_key) == ("pass", "net.server.reachable")
    https = by_id["net.https"]
    assert https.summary_key == "net.https.valid" and https.status == "warn"  # 20 days < 30
    assert https.summary_params["status"] == 204 and CERT_DAYS - 1 <= float(https.value or 0) <= CERT_DAYS
    assert by_id["net.dns"].status in ("pass", "warn")
    packages = {r.subject: r for r in results if r.check_id == "software.required"}
    if "python3" in packages and packages["python3"].status != "not_applicable":
        assert packages["python3"].status == "pass"
        assert packages["steun-no-such-package"].status == "fail"
    assert by_id["disk.free"].status in ("pass", "warn", "fail")  # this machine has a root volume
    assert by_id["os.uptime"].status in ("pass", "warn")


async def test_the_sampler_records_real_samples() -> None:
    pool = ProbePool()
    sampler = Sampler(LinuxDiagnostics(), pool, interval=0.01)
    try:
        await sampler.sample_once()
        await asyncio.sleep(0.05)
        second = await sampler.sample_once()
    finally:
        pool.close()
    assert len(sampler.samples) == 2 and second.snapshot.cpu.total > 0 and second.snapshot.memory.total > 0
    assert second.top and all(u.cpu_percent >= 0 for u in second.top)


def test_commands_are_bounded_in_time_and_output() -> None:
    started = time.perf_counter()
    with pytest.raises(ProbeTimeout):
        run_command(["sleep", "5"], timeout=0.2)
    assert time.perf_counter() - started < scaled(1.5)
    out = run_command(["yes"], timeout=5, limit=1000)
    assert out.truncated and len(out.stdout) == 1000
    with pytest.raises(ToolMissing):
        run_command(["steun-no-such-tool"])
    assert run_command(["sh", "-c", "echo Permission denied >&2; exit 1"]).denied


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0", "1.0", 0),
        ("1.0", "1.1", -1),
        ("1.10", "1.9", 1),
        ("1.0~rc1", "1.0", -1),
        ("1:0.1", "9.9", 1),
        ("2.36-9+deb12u4", "2.36-9", 1),
        ("115.0esr-1", "115.0", 1),
        ("1.0a", "1.0", 1),
        ("3.11.2-1", "3.11.10-1", -1),
    ],
)
def test_version_comparison_follows_dpkg(a: str, b: str, expected: int) -> None:
    assert compare(a, b) == expected
    assert compare(b, a) == -expected
