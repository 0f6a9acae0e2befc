"""Enrollment tokens, pins and signed proofs."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol import ErrorCode
from steun_protocol.auth import (
    EnrollmentToken,
    TokenFormatError,
    agent_proof_payload,
    b64decode,
    b64encode,
    enroll_proof_payload,
    public_key_bytes,
    secret_hash,
    verify,
)


def make_token() -> EnrollmentToken:
    return EnrollmentToken(os.urandom(24), os.urandom(32), public_key_bytes(Ed25519PrivateKey.generate()))


def test_token_round_trip_and_secret_hiding() -> None:
    token = make_token()
    text = str(token)
    assert text.startswith("st1.") and EnrollmentToken.parse(text) == token
    assert EnrollmentToken.parse("  " + text + "\n") == token
    assert token.secret.hex() not in repr(token)
    assert token.secret_hash == secret_hash(b64encode(token.secret))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-5],  # truncated
        lambda t: t.replace("st1.", "st2."),  # other version
        lambda t: t.replace(".", "", 1),  # missing separator
        lambda t: t + ".extra",
        lambda t: t[:10] + "!" + t[11:],  # not base64url
        lambda t: "",
    ],
)
def test_damaged_tokens_are_refused_clearly(mangle: object) -> None:
    text = str(make_token())
    with pytest.raises(TokenFormatError) as info:
        EnrollmentToken.parse(mangle(text))  # type: ignore[operator]
    assert info.value.code == ErrorCode.TOKEN_INVALID


def test_b64_is_strict() -> None:
    assert b64decode(b64encode(b"\x00\xff" * 5)) == b"\x00\xff" * 5
    with pytest.raises(ValueError, match="base64url"):
        b64decode("AB=")
    with pytest.raises(ValueError, match="expected 4 bytes"):
        b64decode("AAAA", size=4)


def test_agent_proof_is_bound_to_nonce_pin_and_subject() -> None:
    key = Ed25519PrivateKey.generate()
    nonce, spki = os.urandom(32), os.urandom(32)
    payload = agent_proof_payload(nonce, spki, b"device-1")
    signature = key.sign(payload)
    public = public_key_bytes(key)
    assert verify(public, signature, payload)
    assert not verify(public, signature, agent_proof_payload(nonce, os.urandom(32), b"device-1"))
    assert not verify(public, signature, agent_proof_payload(os.urandom(32), spki, b"device-1"))
    assert not verify(public, signature, agent_proof_payload(nonce, spki, b"device-2"))
    assert not verify(public, b"garbage", payload)
    assert not verify(b"short", signature, payload)


def test_enroll_proof_cannot_be_replayed_as_agent_proof() -> None:
    nonce, agent_key = os.urandom(32), os.urandom(32)
    assert enroll_proof_payload(nonce, "dev", agent_key) != agent_proof_payload(nonce, agent_key, b"dev")
    with pytest.raises(ValueError, match="32 bytes"):
        enroll_proof_payload(b"short", "dev", agent_key)
