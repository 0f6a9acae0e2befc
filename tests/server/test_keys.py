"""Keys and TLS on the real server: the pin matches the certificate served, the org key, the TLS buffer."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import hashlib
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from steun_server.keys import load_org_key, raw_public_key

from tests.support.server import RunningServer


async def served_certificate(server: RunningServer) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    return x509.load_der_x509_certificate(der)


async def test_pin_is_the_served_certificates_spki(server: RunningServer) -> None:
    cert = await served_certificate(server)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert hashlib.sha256(spki).digest() == server.spki_sha256
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)  # browsers accept ECDSA
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}


async def test_org_key_on_disk_matches(server: RunningServer) -> None:
    key = await asyncio.to_thread(load_org_key, server.config.org_key_file)
    assert raw_public_key(key) == server.org_public_key
    assert len(server.org_public_key) == 32


async def test_tls_read_buffer_is_set_at_start(server: RunningServer) -> None:
    assert server.config.tls_read_buffer == 16 * 1024
    assert asyncio.sslproto.SSLProtocol.max_size == 16 * 1024


async def test_restart_keeps_port_data_and_sessions(server: RunningServer) -> None:
    from tests.support.api import ApiClient

    port = server.port
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, server.admin_password)
        await server.stop()
        await server.start()
        assert server.port == port
        assert (await client.get("/api/auth/me")).status == 200
