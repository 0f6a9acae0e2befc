"""``steun-agent support`` against the real server: support/create on the console, the agent's redeem with a
fresh identity, session/request, the real relay (/relay/ws), the handshake with the Python console half,
consent, a refused ungranted record, Stop — and the agent's session/event records in the server's audit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_agent.config import AgentConfig
from steun_agent.errors import EXIT_OK
from steun_agent.policy import Mode, Policy
from steun_agent.session import SessionSettings
from steun_agent.session.support import SupportConfig, run_support
from steun_protocol import auth as proofs
from steun_protocol.frames import Frame, FrameType
from steun_protocol.screen import Key, encode
from steun_protocol.session import Accept, Confirm, ConsoleHandshake, RecordType, SignedOffer, record_layer
from steun_protocol.sessionplane import Channel, Granted, Refused, Stop, decode_control

from tests.session_agent.fakes import ScriptedUI
from tests.sessions.helpers import Console, console_end
from tests.support.api import ApiClient
from tests.support.server import RunningServer
from tests.support.waiting import scaled


async def test_quick_support_session_through_the_real_server(
    server: RunningServer, admin_api: ApiClient, tmp_path: Path
) -> None:
    token = proofs.EnrollmentToken.parse(await server.create_enrollment_token())
    support = SupportConfig(server.url, token.spki_sha256, server.org_public_key)
    console = await Console.open(admin_api)
    sub, created = await console.result("support/create")
    ui = ScriptedUI(["accept"])

    async def ask_code(error: str | None) -> str | None:
        assert error is None, error
        return str(created["code"])

    def settings_for(sc: SupportConfig) -> SessionSettings:
        return SessionSettings(
            server_url=sc.server_url,
            pin=sc.pin,
            policy=Policy(),
            mode=Mode.ATTENDED,
            ui=ui,
            handshake_timeout=scaled(15),
        )

    agent_config = AgentConfig(state_dir=tmp_path, open_timeout=10.0, request_timeout=10.0, close_timeout=1.0)
    command = asyncio.create_task(run_support(support, agent_config, settings_for, ask_code))
    end = None
    try:
        event = await console.next_event(sub, timeout=15)
        assert event["kind"] == "redeemed", event
        technician = Ed25519PrivateKey.generate()
        hs = ConsoleHandshake(technician)
        _, session = await console.result(
            "session/request",
            device_id=event["device_id"],
            capabilities=["view"],
            technician_key=proofs.b64encode(hs.technician_public),
            console_commitment=proofs.b64encode(hs.commitment),
            reason="printer will not print",
        )
        signed = msgspec.convert(session["offer"], SignedOffer)
        end = await console_end(admin_api, server, session["relay_path"], session["ticket"])
        frame = await end.receive_frame(timeout=15)
        reveal = hs.receive_accept(signed, msgspec.json.decode(frame.payload, type=Accept))
        await end.send_json(reveal)
        frame = await end.receive_frame()
        keys = hs.receive_confirm(msgspec.json.decode(frame.payload, type=Confirm))
        sealer, opener = record_layer(keys, proofs.b64decode(session["session_id"], size=16), "console")

        async def next_control() -> object:
            while True:
                f = await end.receive_frame(timeout=15)
                if f.type is FrameType.SEALED:
                    record = opener.open(f.payload)
                    if record.type is RecordType.CONTROL:
                        return decode_control(record.payload)

        granted = await next_control()
        assert isinstance(granted, Granted) and [c.value for c in granted.capabilities] == ["view"]
        assert ui.prompts[0].sas == keys.sas
        key = sealer.seal(Channel.INPUT, RecordType.DATA, encode(Key(0x61, True)))
        await end.send_frame(Frame(FrameType.SEALED, Channel.INPUT, key))
        refused = await next_control()
        assert isinstance(refused, Refused) and refused.reason == "not_granted"
        stop = sealer.seal(Channel.CONTROL, RecordType.CONTROL, msgspec.json.encode(Stop(reason="fixed")))
        await end.send_frame(Frame(FrameType.SEALED, Channel.CONTROL, stop))
        async with asyncio.timeout(scaled(15)):
            assert await command == EXIT_OK
        from steun_server.web import AUDIT

        audit: Any = server.app[AUDIT]
        records = [r for r in await audit.records(limit=1000) if str(r.actor).startswith("device:")]
        names = [r.event for r in records]
        for name in ("consent.requested", "consent.granted", "session.start", "session.stop"):
            assert name in names, names
    finally:
        command.cancel()
        await asyncio.gather(command, return_exceptions=True)
        if end is not None:
            await end.close()
        await console.close()
