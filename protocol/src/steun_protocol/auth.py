"""Identity proofs shared by agent and server: key encodings, pins, signed payloads and enrollment tokens.

Every signature covers a context string ending in NUL, so a signature made for one purpose can never be
replayed as another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ErrorCode, ProtocolError

AGENT_AUTH_CONTEXT = b"steun-agent-auth-v1\0"
ENROLL_CONTEXT = b"steun-enroll-v1\0"
NONCE_SIZE = 32
TOKEN_PREFIX = "st1"
TOKEN_SECRET_SIZE = 24
MAX_B64 = 128


class TokenFormatError(ProtocolError):
    """An enrollment token that cannot be parsed (mistyped, truncated, wrong version)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.TOKEN_INVALID, message)


def b64encode(data: bytes) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str, *, size: int | None = None, limit: int = MAX_B64 * 3) -> bytes:
    """Strict inverse of :func:`b64encode`; ``size`` demands an exact decoded length, ``limit`` caps it."""
    if len(text) > (limit * 4 + 2) // 3 or not text.isascii():
        raise ValueError("base64 text too long or not ASCII")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url: {exc}") from None
    if b64encode(data) != text:
        raise ValueError("non-canonical base64url")
    if size is not None and len(data) != size:
        raise ValueError(f"expected {size} bytes, got {len(data)}")
    return data


def public_key_bytes(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The raw 32-byte form of an Ed25519 public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key: bytes | Ed25519PublicKey, signature: bytes, payload: bytes) -> bool:
    """True when ``signature`` is valid for ``payload``; never raises for bad input."""
    try:
        key = public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(public_key)
        key.verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def spki_sha256(certificate_der: bytes) -> bytes:
    """The SHA-256 of a certificate's SubjectPublicKeyInfo: the pin an agent keeps for its server."""
    cert = x509.load_der_x509_certificate(certificate_der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def pins_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def agent_proof_payload(nonce: bytes, spki: bytes, subject: bytes) -> bytes:
    """What an agent signs to log in or enroll: server nonce, the TLS key it saw, and who it claims to be.

    ``subject`` is the device id (``auth``) or the agent's raw public key (``enroll``). Binding the TLS key
    means a challenge relayed through a man in the middle (who must present another key) does not verify.
    """
    if len(nonce) != NONCE_SIZE or len(spki) != 32:
        raise ValueError("nonce and SPKI hash must be 32 bytes")
    return AGENT_AUTH_CONTEXT + nonce + spki + subject


def enroll_proof_payload(nonce: bytes, device_id: str, agent_public_key: bytes) -> bytes:
    """What the server signs with the org key to show the agent that it holds the pinned org key."""
    if len(nonce) != NONCE_SIZE or len(agent_public_key) != 32:
        raise ValueError("nonce and public key must be 32 bytes")
    return ENROLL_CONTEXT + nonce + agent_public_key + device_id.encode("ascii")


@dataclass(frozen=True, slots=True)
class EnrollmentToken:
    """What an admin hands to an agent: the single-use secret and the two pins that make enrollment safe."""

    secret: bytes
    spki_sha256: bytes
    org_public_key: bytes

    def __str__(self) -> str:
        parts = (self.secret, self.spki_sha256, self.org_public_key)
        return ".".join([TOKEN_PREFIX, *(b64encode(p) for p in parts)])

    def __repr__(self) -> str:
        return f"EnrollmentToken(secret=<hidden>, spki_sha256={self.spki_sha256.hex()[:16]}...)"

    @property
    def secret_hash(self) -> str:
        """What the server stores in place of the secret."""
        return hashlib.sha256(self.secret).hexdigest()

    @classmethod
    def parse(cls, text: str) -> EnrollmentToken:
        parts = text.strip().split(".")
        if len(parts) != 4 or parts[0] != TOKEN_PREFIX:
            raise TokenFormatError(
                f"an enrollment token looks like {TOKEN_PREFIX}.<secret>.<pin>.<org key>; copied whole?"
            )
        try:
            secret = b64decode(parts[1], size=TOKEN_SECRET_SIZE)
            spki = b64decode(parts[2], size=32)
            org = b64decode(parts[3], size=32)
        except ValueError as exc:
            raise TokenFormatError(f"enrollment token is damaged: {exc}") from None
        return cls(secret, spki, org)


def secret_hash(secret_b64: str) -> str:
    """The stored form of a token secret as it arrives on the wire (b64url)."""
    return hashlib.sha256(b64decode(secret_b64, size=TOKEN_SECRET_SIZE)).hexdigest()
