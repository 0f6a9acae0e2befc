"""Issue 4, pure: ``AskMore`` carrying a newer offer, ``session/extend``, and ``AgentHandshake.open_newer_offer``."""

from __future__ import annotations

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol.auth import b64encode
from steun_protocol.console import CONSOLE_API
from steun_protocol.session import Capability, SessionError, sign_offer
from steun_protocol.sessionplane import AskMore, SessionExtend, SessionExtended, decode_control

from tests.protocol.test_session import NOW, Parties

SESSION = "AAECAwQFBgcICQoLDA0ODw"


def test_ask_more_without_an_offer_is_unchanged() -> None:
    encoded = msgspec.json.encode(AskMore(capabilities=[Capability.CONTROL], reason="click"))
    assert b"offer" not in encoded  # old agents and consoles read the same bytes
    decoded = decode_control(encoded)
    assert isinstance(decoded, AskMore) and decoded.offer is None


def test_ask_more_carries_a_signed_offer() -> None:
    parties = Parties()
    message = AskMore(capabilities=[Capability.CONTROL], offer=parties.signed)
    decoded = decode_control(msgspec.json.encode(message))
    assert decoded == message


def test_ask_more_rejects_a_malformed_offer() -> None:
    raw = b'{"type":"ask","capabilities":["control"],"offer":{"offer":1}}'
    with pytest.raises(msgspec.ValidationError):
        decode_control(raw)


def test_session_extend_is_a_console_command() -> None:
    assert CONSOLE_API.requests["session/extend"] is SessionExtend
    assert SessionExtend.Result is SessionExtended
    request = SessionExtend(id=7, session_id=SESSION, capabilities=[Capability.CONTROL])
    assert CONSOLE_API.decode(msgspec.json.encode(request)) == request
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"session_id": SESSION, "capabilities": []}, SessionExtend)


def test_a_newer_offer_for_the_same_session_opens() -> None:
    parties = Parties()
    parties.agent.receive_offer(parties.signed, now=NOW)
    newer = parties.make_offer([Capability.VIEW, Capability.CONTROL], created_at=NOW, expires_at=NOW + 120)
    opened = parties.agent.open_newer_offer(sign_offer(parties.org, newer), now=NOW + 1)
    assert opened == newer


def test_a_newer_offer_before_the_first_is_refused() -> None:
    parties = Parties()
    with pytest.raises(SessionError) as err:
        parties.agent.open_newer_offer(parties.signed, now=NOW)
    assert err.value.code == "offer_invalid"


@pytest.mark.parametrize(
    "changes",
    [
        {"session_id": b64encode(bytes(16))},
        {"device_id": "dev-2"},
        {"agent_key": b64encode(bytes(32))},
        {"org_name": "Other"},
        {"console_commitment": b64encode(bytes(32))},
        {"technician": "other-key"},
    ],
)
def test_a_newer_offer_for_anything_else_is_refused(changes: dict[str, object]) -> None:
    parties = Parties()
    parties.agent.receive_offer(parties.signed, now=NOW)
    if changes.get("technician") == "other-key":
        technician = msgspec.structs.replace(parties.offer.technician, key=b64encode(b"\x05" * 32))
        changes = {"technician": technician}
    newer = parties.make_offer([Capability.VIEW, Capability.CONTROL], **changes)
    with pytest.raises(SessionError) as err:
        parties.agent.open_newer_offer(sign_offer(parties.org, newer), now=NOW)
    assert err.value.code == "offer_invalid"


def test_a_newer_offer_signed_by_another_key_or_expired_is_refused() -> None:
    parties = Parties()
    parties.agent.receive_offer(parties.signed, now=NOW)
    newer = parties.make_offer([Capability.VIEW, Capability.CONTROL])
    with pytest.raises(SessionError) as err:
        parties.agent.open_newer_offer(sign_offer(Ed25519PrivateKey.generate(), newer), now=NOW)
    assert err.value.code == "offer_forged"
    with pytest.raises(SessionError) as err:
        parties.agent.open_newer_offer(sign_offer(parties.org, newer), now=NOW + 1000)
    assert err.value.code == "offer_expired"
