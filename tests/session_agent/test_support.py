"""``steun-agent support``: the support config, code entry, ``support/redeem`` with a fresh identity, then one
session through the same capability, ending the command when the session ends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_agent.config import AgentConfig
from steun_agent.errors import EXIT_OK, ConfigError
from steun_agent.policy import Mode, Policy
from steun_agent.session import SessionSettings
from steun_agent.session.support import SupportConfig, parse_support_config, run_support
from steun_protocol.auth import b64encode, public_key_bytes
from steun_protocol.session import Capability, ConsoleHandshake
from steun_protocol.sessionplane import Granted, OfferDelivered, Stop

from tests.session_agent.fakes import (
    FrameRelay,
    ScriptedUI,
    SupportControl,
    Technician,
    TestConsole,
    make_offer,
    offer_request,
)
from tests.support.waiting import scaled, wait_for


def test_support_config_json_and_toml() -> None:
    org = b64encode(public_key_bytes(Ed25519PrivateKey.generate()))
    pin = "ab" * 32
    as_json = json.dumps(
        {
            "version": 1,
            "server_url": "https://steun.example.org",
            "spki_sha256": pin,
            "org_public_key": org,
            "org_name": "Acme",
        }
    ).encode()
    config = parse_support_config(as_json)
    assert config.pin == bytes.fromhex(pin) and config.org_name == "Acme"
    as_toml = (
        f'version = 1\nserver_url = "https://steun.example.org"\nspki_sha256 = "{pin}"\n'
        f'org_public_key = "{org}"\n'.encode()
    )
    assert parse_support_config(as_toml).server_url == config.server_url
    with pytest.raises(ConfigError):
        parse_support_config(as_json.replace(b'"version": 1', b'"version": 1, "insecure": true'))
    with pytest.raises(ConfigError):
        parse_support_config(as_json.replace(pin.encode(), b"abcd"))


async def test_support_redeems_and_serves_one_session(tmp_path: Path) -> None:
    relay = FrameRelay()
    control = SupportControl(relay.certificate)
    relay.control = control
    await relay.start()
    org_key = Ed25519PrivateKey.generate()
    ui = ScriptedUI(["accept"])
    support = SupportConfig(relay.url, relay.certificate.spki_sha256, public_key_bytes(org_key))
    codes = ["000000000", "123456789"]
    errors: list[str | None] = []

    async def ask_code(error: str | None) -> str | None:
        errors.append(error)
        return codes.pop(0) if codes else None

    def settings_for(sc: SupportConfig) -> SessionSettings:
        return SessionSettings(
            server_url=sc.server_url,
            pin=sc.pin,
            policy=Policy(),
            mode=Mode.ATTENDED,
            ui=ui,
            handshake_timeout=scaled(10),
        )

    agent_config = AgentConfig(state_dir=tmp_path, open_timeout=5.0, request_timeout=5.0, close_timeout=1.0)
    command = asyncio.create_task(run_support(support, agent_config, settings_for, ask_code))
    try:
        await wait_for(lambda: control.redeemed.is_set() or command.done(), timeout=15, what="redeemed")
        assert not command.done(), command.result()
        assert errors[0] is None and errors[1] is not None  # the wrong code was refused, asked again
        technician = Technician()
        handshake = ConsoleHandshake(technician.key)
        assert control.agent_key is not None
        signed = make_offer(
            org_key,
            handshake,
            technician,
            device_id=control.device_id,
            agent_key=control.agent_key,
            capabilities=[Capability.VIEW],
        )
        agent_ticket, console_ticket = relay.open()
        console = TestConsole(signed, handshake)
        await control.ask(offer_request(signed, agent_ticket))
        await console.join(relay, console_ticket)
        keys = await console.handshake_run()
        granted = await console.wait_control(Granted)
        assert granted.capabilities == [Capability.VIEW] and ui.prompts[0].sas == keys.sas
        reply: Any = await wait_for(lambda: control.replies, what="offer reply")
        assert isinstance(reply[0].result, OfferDelivered)
        await console.send_control(Stop(reason="fixed"))
        async with asyncio.timeout(scaled(10)):
            assert await command == EXIT_OK
        names = [e.event for e in control.events]
        assert names[:3] == ["consent.requested", "consent.granted", "session.start"]
        assert names[-1] == "session.stop"
        await console.close()
    finally:
        command.cancel()
        await asyncio.gather(command, return_exceptions=True)
        await relay.stop()
