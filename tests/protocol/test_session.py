"""End-to-end session: shared vectors, and every way we could think of to break the handshake and records."""

from __future__ import annotations

import json

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol.auth import b64decode, b64encode, public_key_bytes
from steun_protocol.session import (
    SESSION_VERSION,
    SUITE,
    Accept,
    AgentHandshake,
    Capability,
    Confirm,
    ConsoleHandshake,
    RecordType,
    Reveal,
    SessionError,
    SessionOffer,
    SignedOffer,
    TechnicianIdentity,
    record_layer,
    sign_offer,
)

from tests.vectors import session_vectors

NOW = 1_800_000_010.0
SESSION_ID = bytes(range(16))


class Parties:
    def __init__(self, capabilities: list[Capability] | None = None) -> None:
        self.org = Ed25519PrivateKey.generate()
        self.technician = Ed25519PrivateKey.generate()
        self.agent_identity = Ed25519PrivateKey.generate()
        self.console = ConsoleHandshake(self.technician)
        self.agent = AgentHandshake(public_key_bytes(self.org), self.agent_identity, device_id="dev-1")
        self.offer = self.make_offer(capabilities or [Capability.VIEW])
        self.signed = sign_offer(self.org, self.offer)

    def make_offer(self, capabilities: list[Capability], **changes: object) -> SessionOffer:
        offer = SessionOffer(
            version=SESSION_VERSION,
            suite=SUITE,
            session_id=b64encode(SESSION_ID),
            org_name="Org",
            technician=TechnicianIdentity(
                user_id="u1", name="Tech", key=b64encode(public_key_bytes(self.technician))
            ),
            device_id="dev-1",
            agent_key=b64encode(public_key_bytes(self.agent_identity)),
            capabilities=capabilities,
            reason="help",
            console_commitment=b64encode(self.console.commitment),
            created_at=NOW - 10,
            expires_at=NOW + 110,
        )
        return msgspec.structs.replace(offer, **changes)

    def run(self) -> tuple[object, object]:
        accept = self.agent.receive_offer(self.signed, now=NOW)
        reveal = self.console.receive_accept(self.signed, accept)
        confirm, agent_keys = self.agent.receive_reveal(reveal)
        return self.console.receive_confirm(confirm), agent_keys


def test_vectors_are_reproduced_exactly() -> None:
    stored = json.loads(session_vectors.PATH.read_text())
    assert stored == json.loads(session_vectors.render()), "implementation drifted from the shared vectors"
    assert len(stored["expected"]["sas"]) == 6


def test_both_sides_agree_on_keys_and_sas() -> None:
    console_keys, agent_keys = Parties().run()
    assert console_keys == agent_keys
    assert console_keys.console_to_agent != console_keys.agent_to_console  # type: ignore[attr-defined]


def test_records_flow_both_ways() -> None:
    keys, _ = Parties().run()
    c_seal, c_open = record_layer(keys, SESSION_ID, "console")  # type: ignore[arg-type]
    a_seal, a_open = record_layer(keys, SESSION_ID, "agent")  # type: ignore[arg-type]
    record = a_open.open(c_seal.seal(5, RecordType.DATA, b"type this"))
    assert (record.channel, record.type, record.sequence, record.payload) == (
        5,
        RecordType.DATA,
        1,
        b"type this",
    )
    assert c_open.open(a_seal.seal(1, RecordType.DATA, b"screen")).payload == b"screen"


def test_offer_signed_by_another_key_is_refused() -> None:
    parties = Parties()
    forged = sign_offer(Ed25519PrivateKey.generate(), parties.offer)
    with pytest.raises(SessionError) as info:
        parties.agent.receive_offer(forged, now=NOW)
    assert info.value.code == "offer_forged"


def test_tampered_offer_bytes_are_refused() -> None:
    parties = Parties()
    data = b64decode(parties.signed.offer, limit=4096).replace(b'"view"', b'"shell"')
    tampered = SignedOffer(offer=b64encode(data), signature=parties.signed.signature)
    with pytest.raises(SessionError) as info:
        parties.agent.receive_offer(tampered, now=NOW)
    assert info.value.code == "offer_forged"


@pytest.mark.parametrize("now", [NOW - 200, NOW + 200])
def test_offer_outside_its_window_is_refused(now: float) -> None:
    parties = Parties()
    with pytest.raises(SessionError) as info:
        parties.agent.receive_offer(parties.signed, now=now)
    assert info.value.code == "offer_expired"


def test_offer_for_another_device_is_refused() -> None:
    parties = Parties()
    other = sign_offer(parties.org, parties.make_offer([Capability.VIEW], device_id="dev-2"))
    with pytest.raises(SessionError) as info:
        parties.agent.receive_offer(other, now=NOW)
    assert info.value.code == "offer_invalid"


def test_console_revealing_another_key_than_committed_is_refused() -> None:
    parties = Parties()
    accept = parties.agent.receive_offer(parties.signed, now=NOW)
    # a man in the middle answers with its own console half, not the committed one
    impostor = ConsoleHandshake(parties.technician)
    impostor.commitment = parties.console.commitment
    reveal = impostor.receive_accept(parties.signed, accept)
    with pytest.raises(SessionError, match="commitment"):
        parties.agent.receive_reveal(reveal)


def test_technician_signature_must_match() -> None:
    parties = Parties()
    accept = parties.agent.receive_offer(parties.signed, now=NOW)
    reveal = parties.console.receive_accept(parties.signed, accept)
    bad = Reveal(console_ephemeral=reveal.console_ephemeral, signature=b64encode(b"\x00" * 64))
    with pytest.raises(SessionError, match="technician"):
        parties.agent.receive_reveal(bad)


def test_agent_signature_must_match() -> None:
    parties = Parties()
    accept = parties.agent.receive_offer(parties.signed, now=NOW)
    parties.console.receive_accept(parties.signed, accept)
    forged = Ed25519PrivateKey.generate().sign(b"anything")
    with pytest.raises(SessionError, match="agent"):
        parties.console.receive_confirm(Confirm(signature=b64encode(forged)))


def test_accept_from_another_agent_is_refused() -> None:
    parties = Parties()
    accept = parties.agent.receive_offer(parties.signed, now=NOW)
    other = Accept(
        agent_ephemeral=accept.agent_ephemeral,
        agent_key=b64encode(public_key_bytes(Ed25519PrivateKey.generate())),
    )
    with pytest.raises(SessionError, match="not the device"):
        parties.console.receive_accept(parties.signed, other)


def test_low_order_ephemeral_key_is_refused() -> None:
    parties = Parties()
    accept = parties.agent.receive_offer(parties.signed, now=NOW)
    zero = Accept(agent_ephemeral=b64encode(b"\x00" * 32), agent_key=accept.agent_key)
    with pytest.raises(SessionError) as info:
        parties.console.receive_accept(parties.signed, zero)
    assert info.value.code == "handshake_failed"


def test_relay_in_the_middle_gets_different_sas() -> None:
    """The relay operator (holding the org key) runs two handshakes; the six digits differ on each side."""
    parties = Parties()
    mitm_agent = Ed25519PrivateKey.generate()
    # towards the real agent: the MITM's own console half, in an offer it signs with the org key
    mitm_console = ConsoleHandshake(Ed25519PrivateKey.generate())
    offer_to_agent = parties.make_offer(
        [Capability.VIEW],
        console_commitment=b64encode(mitm_console.commitment),
        technician=TechnicianIdentity(
            user_id="u1", name="Tech", key=b64encode(mitm_console.technician_public)
        ),
    )
    signed_to_agent = sign_offer(parties.org, offer_to_agent)
    accept = parties.agent.receive_offer(signed_to_agent, now=NOW)
    _, agent_keys = parties.agent.receive_reveal(mitm_console.receive_accept(signed_to_agent, accept))
    # towards the real console: the MITM's own agent half
    offer_to_console = parties.make_offer(
        [Capability.VIEW], agent_key=b64encode(public_key_bytes(mitm_agent))
    )
    signed_to_console = sign_offer(parties.org, offer_to_console)
    fake_agent = AgentHandshake(public_key_bytes(parties.org), mitm_agent, device_id="dev-1")
    reveal = parties.console.receive_accept(
        signed_to_console, fake_agent.receive_offer(signed_to_console, now=NOW)
    )
    _, console_keys = fake_agent.receive_reveal(reveal)
    assert agent_keys.sas != console_keys.sas


@pytest.fixture
def records() -> tuple[object, object]:
    keys, _ = Parties().run()
    sealer, _ = record_layer(keys, SESSION_ID, "console")  # type: ignore[arg-type]
    _, opener = record_layer(keys, SESSION_ID, "agent")  # type: ignore[arg-type]
    return sealer, opener


def test_replayed_record_kills_the_session(records: tuple) -> None:  # type: ignore[type-arg]
    sealer, opener = records
    first = sealer.seal(0, RecordType.DATA, b"a")
    opener.open(first)
    with pytest.raises(SessionError) as info:
        opener.open(first)
    assert info.value.code == "record_replayed"


def test_reordered_records_kill_the_session(records: tuple) -> None:  # type: ignore[type-arg]
    sealer, opener = records
    first, second = sealer.seal(0, RecordType.DATA, b"a"), sealer.seal(0, RecordType.DATA, b"b")
    opener.open(second)
    with pytest.raises(SessionError) as info:
        opener.open(first)
    assert info.value.code == "record_replayed"


@pytest.mark.parametrize("position", [0, 1, 3, 5, 13, 14, 20, -1])
def test_flipped_bit_anywhere_is_detected(records: tuple, position: int) -> None:  # type: ignore[type-arg]
    sealer, opener = records
    data = bytearray(sealer.seal(2, RecordType.DATA, b"secret keystrokes"))
    data[position] ^= 0x01
    with pytest.raises(SessionError) as info:
        opener.open(bytes(data))
    assert info.value.code in {"record_forged", "record_invalid"}


@pytest.mark.parametrize("cut", [1, 16, 30])
def test_truncated_record_is_detected(records: tuple, cut: int) -> None:  # type: ignore[type-arg]
    sealer, opener = records
    data = sealer.seal(2, RecordType.DATA, b"x" * 20)
    with pytest.raises(SessionError) as info:
        opener.open(data[:-cut])
    assert info.value.code in {"record_forged", "record_truncated"}


def test_reflected_record_is_refused(records: tuple) -> None:  # type: ignore[type-arg]
    sealer, _ = records
    keys, _ = Parties().run()
    _, console_opener = record_layer(keys, SESSION_ID, "console")  # type: ignore[arg-type]
    with pytest.raises(SessionError):
        console_opener.open(sealer.seal(0, RecordType.DATA, b"echo"))


def test_nothing_after_close(records: tuple) -> None:  # type: ignore[type-arg]
    sealer, opener = records
    opener.open(sealer.seal(0, RecordType.CLOSE, b""))
    with pytest.raises(SessionError):
        sealer.seal(0, RecordType.DATA, b"late")
    with pytest.raises(SessionError) as info:
        opener.open(b"\x00" * 64)
    assert info.value.code == "session_closed"


def test_session_control_messages_round_trip_strictly() -> None:
    from steun_protocol.sessionplane import AskMore, Granted, Stop, decode_control

    for message in [
        Granted(capabilities=[Capability.VIEW]),
        AskMore(capabilities=[Capability.CONTROL]),
        Stop(),
    ]:
        assert decode_control(msgspec.json.encode(message)) == message
    with pytest.raises(msgspec.ValidationError):
        decode_control(b'{"type": "granted", "capabilities": ["root"]}')
    with pytest.raises(msgspec.ValidationError):
        decode_control(b'{"type": "format", "capabilities": []}')
