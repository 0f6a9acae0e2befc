"""The SPKI pin is checked inside the TLS handshake: on a mismatch not one byte of ours reaches the server."""

from __future__ import annotations

import os
import ssl

import pytest
from steun_agent.channel import ControlChannel
from steun_agent.config import AgentConfig
from steun_agent.errors import EXIT_TRUST, ConnectionLost, PinMismatch
from steun_agent.tls import pinned_context

from tests.agent.conftest import fast_config
from tests.agent.fakes import FakeServer, RawTLSServer, make_certificate


async def test_wrong_pin_sends_nothing(config: AgentConfig) -> None:
    certificate = make_certificate()
    server = RawTLSServer(certificate)
    await server.start()
    try:
        wrong = bytes(32)
        with pytest.raises(PinMismatch) as info:
            async with ControlChannel.connect(f"https://127.0.0.1:{server.port}", wrong, config):
                pytest.fail("connected despite the wrong pin")
        assert info.value.seen == certificate.spki_sha256
        assert info.value.exit_code == EXIT_TRUST
        assert certificate.spki_sha256.hex() in str(info.value)
        assert "Nothing was sent" in str(info.value)
        assert bytes(server.received) == b""
    finally:
        await server.stop()


async def test_right_pin_does_send_the_upgrade(tmp_path: object) -> None:
    """The control for the test above: with the right pin the same server does receive our request."""
    certificate = make_certificate()
    server = RawTLSServer(certificate)
    await server.start()
    try:
        config = fast_config(tmp_path, open_timeout=0.5)  # type: ignore[arg-type]
        with pytest.raises(ConnectionLost, match="did not answer"):
            async with ControlChannel.connect(
                f"https://127.0.0.1:{server.port}", certificate.spki_sha256, config
            ):
                pass
        assert bytes(server.received).startswith(b"GET /agent/ws HTTP/1.1")
    finally:
        await server.stop()


async def test_pin_checked_against_a_real_websocket_server(
    fake_server: FakeServer, config: AgentConfig
) -> None:
    async with ControlChannel.connect(
        fake_server.url, fake_server.certificate.spki_sha256, config
    ) as channel:
        assert channel.spki == fake_server.certificate.spki_sha256
        assert len(await channel.hello()) == 32
    with pytest.raises(PinMismatch):
        async with ControlChannel.connect(fake_server.url, os.urandom(32), config):
            pass
    assert fake_server.connections == 1  # the mismatched attempt never reached the websocket handler


def test_context_trusts_no_ca_store() -> None:
    ctx = pinned_context(bytes(32))
    assert ctx.verify_mode == ssl.CERT_NONE  # trust comes from the pin alone
    assert not ctx.check_hostname
    assert ctx.get_ca_certs() == []
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    with pytest.raises(ValueError, match="32-byte"):
        pinned_context(b"short")


async def test_unreachable_server_is_a_retryable_error(config: AgentConfig) -> None:
    with pytest.raises(ConnectionLost, match="cannot reach"):
        async with ControlChannel.connect("https://127.0.0.1:1", bytes(32), config):
            pass
