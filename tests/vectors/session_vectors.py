"""Shared test vectors for the end-to-end session: the Python protocol and the console's WebCrypto code must
both reproduce ``session-v1.json`` exactly. Run this module to regenerate the file after a deliberate change."""

from __future__ import annotations

import json
import pathlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from steun_protocol.auth import b64encode, public_key_bytes
from steun_protocol.session import (
    SESSION_VERSION,
    SUITE,
    AgentHandshake,
    Capability,
    ConsoleHandshake,
    RecordType,
    SessionOffer,
    TechnicianIdentity,
    record_layer,
    sign_offer,
)

PATH = pathlib.Path(__file__).with_name("session-v1.json")


def seed(n: int) -> bytes:
    return bytes([n]) * 32


def build() -> dict[str, object]:
    org = Ed25519PrivateKey.from_private_bytes(seed(1))
    technician = Ed25519PrivateKey.from_private_bytes(seed(2))
    agent = Ed25519PrivateKey.from_private_bytes(seed(3))
    console_eph = X25519PrivateKey.from_private_bytes(seed(4))
    agent_eph = X25519PrivateKey.from_private_bytes(seed(5))
    session_id = bytes(range(16))

    console = ConsoleHandshake(technician, console_eph)
    offer = SessionOffer(
        version=SESSION_VERSION,
        suite=SUITE,
        session_id=b64encode(session_id),
        org_name="Helpdesk Voorbeeld BV",
        technician=TechnicianIdentity(
            user_id="u-7", name="Amélie Dupont", key=b64encode(public_key_bytes(technician))
        ),
        device_id="dev-42",
        agent_key=b64encode(public_key_bytes(agent)),
        capabilities=[Capability.VIEW, Capability.CONTROL],
        reason="Printer prints blank pages",
        console_commitment=b64encode(console.commitment),
        created_at=1_800_000_000.0,
        expires_at=1_800_000_120.0,
    )
    signed = sign_offer(org, offer)
    agent_side = AgentHandshake(public_key_bytes(org), agent, device_id="dev-42", ephemeral=agent_eph)
    accept = agent_side.receive_offer(signed, now=1_800_000_010.0)
    reveal = console.receive_accept(signed, accept)
    confirm, keys = agent_side.receive_reveal(reveal)
    assert console.receive_confirm(confirm) == keys

    console_sealer, _ = record_layer(keys, session_id, "console")
    agent_sealer, _ = record_layer(keys, session_id, "agent")
    records = []
    for sealer, direction, channel, kind, text in [
        (console_sealer, "console_to_agent", 0, RecordType.CONTROL, b'{"type":"hello"}'),
        (console_sealer, "console_to_agent", 3, RecordType.DATA, "é ç ë €".encode()),
        (agent_sealer, "agent_to_console", 1, RecordType.DATA, b""),
        (agent_sealer, "agent_to_console", 0, RecordType.CLOSE, b"bye"),
    ]:
        records.append(
            {
                "direction": direction,
                "channel": channel,
                "type": int(kind),
                "plaintext": b64encode(text),
                "record": b64encode(sealer.seal(channel, kind, text)),
            }
        )
    return {
        "description": "Steun session v1: deterministic keys; every value is base64url without padding",
        "inputs": {
            "org_private": b64encode(seed(1)),
            "technician_private": b64encode(seed(2)),
            "agent_private": b64encode(seed(3)),
            "console_ephemeral_private": b64encode(seed(4)),
            "agent_ephemeral_private": b64encode(seed(5)),
            "session_id": b64encode(session_id),
            "now": 1_800_000_010.0,
        },
        "signed_offer": {"offer": signed.offer, "signature": signed.signature},
        "accept": {"agent_ephemeral": accept.agent_ephemeral, "agent_key": accept.agent_key},
        "reveal": {"console_ephemeral": reveal.console_ephemeral, "signature": reveal.signature},
        "confirm": {"signature": confirm.signature},
        "expected": {
            "console_commitment": b64encode(console.commitment),
            "transcript": b64encode(keys.transcript),
            "console_to_agent_key": b64encode(keys.console_to_agent),
            "agent_to_console_key": b64encode(keys.agent_to_console),
            "sas": keys.sas,
        },
        "records": records,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    PATH.write_text(render())
    print(f"wrote {PATH}")
