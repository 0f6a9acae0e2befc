"""*Request control* on an enrolled device: the real agent runtime (enrolled with a real token) receives the
offer on its control connection, joins the real relay, runs the handshake and consent, streams nothing it was
not granted, and refuses input it was not granted — against the real server, on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol import auth as proofs
from steun_protocol.frames import Frame, FrameType
from steun_protocol.screen import Key, encode
from steun_protocol.session import Accept, Confirm, ConsoleHandshake, RecordType, SignedOffer, record_layer
from steun_protocol.sessionplane import Channel, Granted, Refused, Stop, decode_control

from tests.sessions.helpers import Console, console_end
from tests.support.api import ApiClient
from tests.support.real_agent import real_agent
from tests.support.server import RunningServer
from tests.support.waiting import scaled


def signed_name(signed: SignedOffer) -> str:
    from steun_protocol.session import SessionOffer

    offer = msgspec.json.decode(proofs.b64decode(signed.offer, limit=4096), type=SessionOffer)
    assert offer.technician.name
    return offer.technician.name


async def test_request_control_on_an_enrolled_device(server_any_db: RunningServer, tmp_path: Path) -> None:
    server = server_any_db
    end = None
    async with (
        real_agent(server, tmp_path / "agent", handshake_timeout=15) as agent,
        ApiClient(server.url) as admin_api,
    ):
        state, sessions, ui, runtime = agent.state, agent.sessions, agent.ui, agent.runtime
        await admin_api.login_ok(server.admin_username, server.admin_password)
        console = await Console.open(admin_api)
        try:
            technician = Ed25519PrivateKey.generate()
            hs = ConsoleHandshake(technician)
            _, session = await console.result(
                "session/request",
                device_id=state.device_id,
                capabilities=["view"],
                technician_key=proofs.b64encode(hs.technician_public),
                console_commitment=proofs.b64encode(hs.commitment),
                reason="screen flickers",
            )
            signed = msgspec.convert(session["offer"], SignedOffer)
            end = await console_end(admin_api, server, session["relay_path"], session["ticket"])
            frame = await end.receive_frame(timeout=15)
            reveal = hs.receive_accept(signed, msgspec.json.decode(frame.payload, type=Accept))
            await end.send_json(reveal)
            keys = hs.receive_confirm(msgspec.json.decode((await end.receive_frame()).payload, type=Confirm))
            sealer, opener = record_layer(keys, proofs.b64decode(session["session_id"], size=16), "console")

            async def next_control() -> object:
                while True:
                    f = await end.receive_frame(timeout=15)  # type: ignore[union-attr]
                    if f.type is FrameType.SEALED:
                        record = opener.open(f.payload)
                        if record.type is RecordType.CONTROL:
                            return decode_control(record.payload)

            granted = await next_control()
            assert isinstance(granted, Granted)
            assert [c.value for c in granted.capabilities] == ["view"]
            # the prompt on the device showed the same six digits, who asks (from the signed offer) and why
            prompt = ui.prompts[0]
            assert prompt.sas == keys.sas
            assert prompt.technician.name == signed_name(signed)
            assert prompt.reason == "screen flickers"
            assert [c.value for c in prompt.capabilities] == ["view"]
            # control was not granted: a key press is refused and never acted on
            key = sealer.seal(Channel.INPUT, RecordType.DATA, encode(Key(0x61, True)))
            await end.send_frame(Frame(FrameType.SEALED, Channel.INPUT, key))
            refused = await next_control()
            assert isinstance(refused, Refused)
            assert refused.reason == "not_granted"
            stop = sealer.seal(Channel.CONTROL, RecordType.CONTROL, msgspec.json.encode(Stop(reason="done")))
            await end.send_frame(Frame(FrameType.SEALED, Channel.CONTROL, stop))
            async with asyncio.timeout(scaled(10)):
                while not sessions.outcomes:
                    await asyncio.sleep(0.02)
            # the runtime keeps its control connection: the device stays online after the session
            assert runtime.online
            from steun_server.web import AUDIT

            audit: Any = server.app[AUDIT]
            names = [r.event for r in await audit.records(limit=1000)]
            for name in ("session.requested", "consent.granted", "session.start", "session.stop"):
                assert name in names, names
        finally:
            if end is not None:
                await end.close()
            await console.close()
