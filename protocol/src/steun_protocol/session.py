"""End-to-end session security: the signed offer, a commit-reveal X25519 handshake, the SAS, sealed records.

The relay between console and agent forwards what this module produces and can neither read nor forge it.

Handshake (console C, agent A; the server signs the offer with the org key but holds no session key)::

    C: e_c ← X25519;  commitment = SHA-256(e_c.pub)           (sent to the server with the request)
    S → A: SignedOffer{offer (incl. commitment, technician key, capabilities), org signature}
    A: verify org signature against its pin, expiry, device; e_a ← X25519
    A → C: Accept{e_a.pub, agent identity key}
    C → A: Reveal{e_c.pub, technician signature over T}       (A checks SHA-256(e_c.pub) = commitment)
    A → C: Confirm{agent signature over T}
    both:  keys, SAS = HKDF-SHA256(X25519(e, e'), salt=T, ...)

T, the transcript hash, covers the protocol version, suite, session id, SHA-256 of the exact offer bytes,
both identity keys, both ephemeral keys and the capabilities asked for. Because C commits to e_c before it
sees e_a, a man in the middle (the relay operator included) must fix its keys before it can know both SASes,
and so matches the six digits read out on the phone with probability 10⁻⁶.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .auth import b64decode, b64encode, public_key_bytes, verify
from .errors import ProtocolError
from .messages import B64, Payload, ShortText

SESSION_VERSION = 1
SUITE = "x25519-ed25519-hkdf-sha256-aes-256-gcm"
OFFER_CONTEXT = b"steun-offer-v1\0"
TRANSCRIPT_CONTEXT = b"steun-session-v1\0"
SIGNATURE_CONTEXT = {"console": b"steun-session-sig-v1\0console\0", "agent": b"steun-session-sig-v1\0agent\0"}
KEYS_INFO = b"steun-session-keys-v1"
SAS_INFO = b"steun-sas-v1"
SESSION_ID_SIZE = 16
MAX_OFFER_BYTES = 4096


class Capability(enum.StrEnum):
    """What a technician may do in a session: granted by the user (or local policy), never by the server."""

    VIEW = "view"
    CONTROL = "control"
    CLIPBOARD = "clipboard"
    SHELL = "shell"
    FILES = "files"
    CHAT = "chat"
    INSTALL = "install"


class SessionError(ProtocolError):
    """A handshake or record that must end the session. ``code`` says why, in stable words."""


# --------------------------------------------------------------------------------------------- messages


class TechnicianIdentity(Payload, frozen=True):
    user_id: ShortText
    name: ShortText
    key: B64  # Ed25519 public key of this console login, raw, b64url


class SessionOffer(Payload, frozen=True):
    """What the org key vouches for: who asks, for what, on which device, until when."""

    version: int
    suite: ShortText
    session_id: B64
    org_name: ShortText
    technician: TechnicianIdentity
    device_id: ShortText
    agent_key: B64  # the device identity the offer is for
    capabilities: Annotated[list[Capability], msgspec.Meta(min_length=1, max_length=16)]
    reason: ShortText
    console_commitment: B64  # SHA-256 of the console's ephemeral X25519 public key
    created_at: float
    expires_at: float


class SignedOffer(Payload, frozen=True):
    offer: Annotated[
        str, msgspec.Meta(max_length=MAX_OFFER_BYTES * 2)
    ]  # b64url of the exact offer JSON bytes
    signature: B64  # org key over OFFER_CONTEXT + offer bytes


class Accept(Payload, frozen=True):
    agent_ephemeral: B64
    agent_key: B64
    type: Literal["accept"] = "accept"


class Reveal(Payload, frozen=True):
    console_ephemeral: B64
    signature: B64
    type: Literal["reveal"] = "reveal"


class Confirm(Payload, frozen=True):
    signature: B64
    type: Literal["confirm"] = "confirm"


def sign_offer(org_key: Ed25519PrivateKey, offer: SessionOffer) -> SignedOffer:
    data = msgspec.json.encode(offer)
    if len(data) > MAX_OFFER_BYTES:
        raise SessionError("offer_invalid", f"offer of {len(data)} bytes exceeds {MAX_OFFER_BYTES}")
    return SignedOffer(offer=b64encode(data), signature=b64encode(org_key.sign(OFFER_CONTEXT + data)))


def open_offer(signed: SignedOffer, org_public_key: bytes, *, now: float) -> tuple[SessionOffer, bytes]:
    """Verify an offer against the pinned org key and its validity window; return it and its exact bytes."""
    try:
        data = b64decode(signed.offer, limit=MAX_OFFER_BYTES)
        signature = b64decode(signed.signature, size=64)
    except ValueError as exc:
        raise SessionError("offer_invalid", f"offer encoding: {exc}") from None
    if len(data) > MAX_OFFER_BYTES or not verify(org_public_key, signature, OFFER_CONTEXT + data):
        raise SessionError("offer_forged", "the offer is not signed by this organisation's key")
    try:
        offer = msgspec.json.decode(data, type=SessionOffer, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SessionError("offer_invalid", f"offer content: {exc}") from None
    if offer.version != SESSION_VERSION or offer.suite != SUITE:
        raise SessionError("unsupported_version", f"offer uses {offer.suite} v{offer.version}")
    if not offer.created_at - 60 <= now <= offer.expires_at:
        raise SessionError("offer_expired", "the offer is outside its validity window")
    return offer, data


# --------------------------------------------------------------------------------------------- key schedule


def _lp(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data


def transcript_hash(
    offer_bytes: bytes,
    offer: SessionOffer,
    console_ephemeral: bytes,
    agent_ephemeral: bytes,
    agent_key: bytes,
) -> bytes:
    """T: binds everything both sides agreed on. Length-prefixed fields, so no two inputs collide."""
    parts = [
        struct.pack("!H", offer.version),
        offer.suite.encode(),
        b64decode(offer.session_id, size=SESSION_ID_SIZE),
        hashlib.sha256(offer_bytes).digest(),
        b64decode(offer.technician.key, size=32),
        agent_key,
        console_ephemeral,
        agent_ephemeral,
        ",".join(sorted(c.value for c in offer.capabilities)).encode(),
    ]
    return hashlib.sha256(TRANSCRIPT_CONTEXT + b"".join(_lp(p) for p in parts)).digest()


@dataclass(frozen=True, slots=True)
class SessionKeys:
    transcript: bytes
    console_to_agent: bytes
    agent_to_console: bytes
    sas: str  # six digits, read out on the phone


def derive_keys(shared_secret: bytes, transcript: bytes) -> SessionKeys:
    if len(shared_secret) != 32 or not any(shared_secret):
        raise SessionError("handshake_failed", "degenerate X25519 shared secret")
    okm = HKDF(hashes.SHA256(), 64, salt=transcript, info=KEYS_INFO).derive(shared_secret)
    sas_bytes = HKDF(hashes.SHA256(), 4, salt=transcript, info=SAS_INFO).derive(shared_secret)
    sas = f"{struct.unpack('!I', sas_bytes)[0] % 1_000_000:06d}"
    return SessionKeys(transcript, okm[:32], okm[32:], sas)


def _exchange(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:  # wrong length, or a low-order point giving an all-zero secret
        raise SessionError("handshake_failed", f"bad ephemeral key: {exc}") from None


def _x25519_public(private: X25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _decode(text: str, size: int, what: str) -> bytes:
    try:
        return b64decode(text, size=size)
    except ValueError as exc:
        raise SessionError("handshake_failed", f"{what}: {exc}") from None


# --------------------------------------------------------------------------------------------- the two sides


class ConsoleHandshake:
    """The technician's half (the browser does the same in WebCrypto; this one serves tools and tests)."""

    def __init__(self, technician_key: Ed25519PrivateKey, ephemeral: X25519PrivateKey | None = None) -> None:
        self._technician_key = technician_key
        self._ephemeral = ephemeral or X25519PrivateKey.generate()
        self.ephemeral_public = _x25519_public(self._ephemeral)
        self.commitment = hashlib.sha256(self.ephemeral_public).digest()
        self.technician_public = public_key_bytes(technician_key)
        self.keys: SessionKeys | None = None
        self._offer: SessionOffer | None = None
        self._offer_bytes = b""
        self._agent_key = b""

    def receive_accept(self, signed: SignedOffer, accept: Accept) -> Reveal:
        """The agent answered the offer: reveal our ephemeral key and sign the transcript."""
        if self.keys is not None:
            raise SessionError("handshake_failed", "accept received twice")
        try:
            offer_bytes = b64decode(signed.offer, limit=MAX_OFFER_BYTES)
            offer = msgspec.json.decode(offer_bytes, type=SessionOffer, strict=True)
        except (ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise SessionError("offer_invalid", f"offer: {exc}") from None
        if not hmac.compare_digest(_decode(offer.console_commitment, 32, "commitment"), self.commitment):
            raise SessionError("handshake_failed", "the offer does not carry this console's commitment")
        agent_key = _decode(accept.agent_key, 32, "agent key")
        if agent_key != _decode(offer.agent_key, 32, "offer agent key"):
            raise SessionError("handshake_failed", "the answering agent is not the device the offer is for")
        agent_ephemeral = _decode(accept.agent_ephemeral, 32, "agent ephemeral")
        transcript = transcript_hash(offer_bytes, offer, self.ephemeral_public, agent_ephemeral, agent_key)
        self.keys = derive_keys(_exchange(self._ephemeral, agent_ephemeral), transcript)
        self._offer, self._offer_bytes, self._agent_key = offer, offer_bytes, agent_key
        signature = self._technician_key.sign(SIGNATURE_CONTEXT["console"] + transcript)
        return Reveal(console_ephemeral=b64encode(self.ephemeral_public), signature=b64encode(signature))

    def receive_confirm(self, confirm: Confirm) -> SessionKeys:
        """The agent signed the same transcript: the session is established."""
        if self.keys is None:
            raise SessionError("handshake_failed", "confirm before accept")
        signature = _decode(confirm.signature, 64, "agent signature")
        if not verify(self._agent_key, signature, SIGNATURE_CONTEXT["agent"] + self.keys.transcript):
            raise SessionError("handshake_failed", "the agent's signature does not match the transcript")
        return self.keys


class AgentHandshake:
    """The endpoint's half: it trusts only its pinned org key and its own identity."""

    def __init__(
        self,
        org_public_key: bytes,
        agent_identity: Ed25519PrivateKey,
        *,
        device_id: str,
        ephemeral: X25519PrivateKey | None = None,
    ) -> None:
        self._org_public_key = org_public_key
        self._identity = agent_identity
        self._device_id = device_id
        self._ephemeral = ephemeral or X25519PrivateKey.generate()
        self.ephemeral_public = _x25519_public(self._ephemeral)
        self.agent_public = public_key_bytes(agent_identity)
        self.offer: SessionOffer | None = None
        self._offer_bytes = b""
        self.keys: SessionKeys | None = None

    def receive_offer(self, signed: SignedOffer, *, now: float) -> Accept:
        if self.offer is not None:
            raise SessionError("handshake_failed", "offer received twice")
        offer, offer_bytes = open_offer(signed, self._org_public_key, now=now)
        if (
            offer.device_id != self._device_id
            or _decode(offer.agent_key, 32, "agent key") != self.agent_public
        ):
            raise SessionError("offer_invalid", "the offer is for another device")
        self.offer, self._offer_bytes = offer, offer_bytes
        return Accept(
            agent_ephemeral=b64encode(self.ephemeral_public), agent_key=b64encode(self.agent_public)
        )

    def open_newer_offer(self, signed: SignedOffer, *, now: float) -> SessionOffer:
        """A newer offer for this session (``AskMore.offer``).

        Signed by the pinned org key, valid now, and for the same session, device, agent key, organisation,
        technician and console commitment as the first one.
        """
        first = self.offer
        if first is None:
            raise SessionError("offer_invalid", "no session offer yet")
        offer, _ = open_offer(signed, self._org_public_key, now=now)
        if (
            offer.session_id != first.session_id
            or offer.device_id != first.device_id
            or offer.agent_key != first.agent_key
            or offer.org_name != first.org_name
            or offer.technician.user_id != first.technician.user_id
            or offer.technician.key != first.technician.key
            or offer.console_commitment != first.console_commitment
        ):
            raise SessionError("offer_invalid", "the newer offer is not for this session")
        return offer

    def receive_reveal(self, reveal: Reveal) -> tuple[Confirm, SessionKeys]:
        if self.offer is None or self.keys is not None:
            raise SessionError("handshake_failed", "reveal out of order")
        console_ephemeral = _decode(reveal.console_ephemeral, 32, "console ephemeral")
        commitment = _decode(self.offer.console_commitment, 32, "commitment")
        if not hmac.compare_digest(hashlib.sha256(console_ephemeral).digest(), commitment):
            raise SessionError("handshake_failed", "the console's key does not match its commitment")
        transcript = transcript_hash(
            self._offer_bytes, self.offer, console_ephemeral, self.ephemeral_public, self.agent_public
        )
        technician_key = _decode(self.offer.technician.key, 32, "technician key")
        signature = _decode(reveal.signature, 64, "technician signature")
        if not verify(technician_key, signature, SIGNATURE_CONTEXT["console"] + transcript):
            raise SessionError("handshake_failed", "the technician's signature does not match the transcript")
        self.keys = derive_keys(_exchange(self._ephemeral, console_ephemeral), transcript)
        mine = self._identity.sign(SIGNATURE_CONTEXT["agent"] + transcript)
        return Confirm(signature=b64encode(mine)), self.keys


# --------------------------------------------------------------------------------------------- records


class Direction(enum.IntEnum):
    CONSOLE_TO_AGENT = 1
    AGENT_TO_CONSOLE = 2


class RecordType(enum.IntEnum):
    CONTROL = 1  # JSON control messages inside the session (consent, capability requests, ...)
    DATA = 2  # channel payloads (screen, input, shell, files, ...)
    CLOSE = 3  # the sender ends the session; anything after it is refused


#: version u8 | direction u8 | channel u16 | record type u8 | reserved u8 | sequence u64 — all big-endian
RECORD_HEADER = struct.Struct("!BBHBBQ")
TAG_SIZE = 16
MAX_RECORD_PLAINTEXT = 1024 * 1024 - RECORD_HEADER.size - TAG_SIZE


@dataclass(frozen=True, slots=True)
class Record:
    channel: int
    type: RecordType
    sequence: int
    payload: bytes


def _nonce(direction: Direction, sequence: int) -> bytes:
    return struct.pack("!IQ", direction, sequence)


class RecordSealer:
    """Seals records in one direction. Sequences start at 1 and never repeat (the nonce is built on them)."""

    def __init__(self, key: bytes, direction: Direction, session_id: bytes) -> None:
        self._aead = AESGCM(key)
        self._direction = direction
        self._session_id = session_id
        self._sequence = 0
        self.closed = False

    def seal(self, channel: int, record_type: RecordType, payload: bytes) -> bytes:
        if self.closed:
            raise SessionError("session_closed", "no records after close")
        if len(payload) > MAX_RECORD_PLAINTEXT:
            raise SessionError("record_too_large", f"record of {len(payload)} bytes > {MAX_RECORD_PLAINTEXT}")
        self._sequence += 1
        header = RECORD_HEADER.pack(SESSION_VERSION, self._direction, channel, record_type, 0, self._sequence)
        if record_type is RecordType.CLOSE:
            self.closed = True
        sealed = self._aead.encrypt(
            _nonce(self._direction, self._sequence), payload, self._session_id + header
        )
        return header + sealed


class RecordOpener:
    """Opens the peer's records. Anything replayed, reordered, forged, truncated or after close is fatal."""

    def __init__(self, key: bytes, direction: Direction, session_id: bytes) -> None:
        self._aead = AESGCM(key)
        self._direction = direction
        self._session_id = session_id
        self.last_sequence = 0
        self.closed = False

    def open(self, data: bytes) -> Record:
        if self.closed:
            raise SessionError("session_closed", "record after the peer closed the session")
        if len(data) < RECORD_HEADER.size + TAG_SIZE:
            raise SessionError(
                "record_truncated", f"record of {len(data)} bytes is shorter than header and tag"
            )
        version, direction, channel, kind, reserved, sequence = RECORD_HEADER.unpack_from(data)
        if version != SESSION_VERSION or direction != self._direction or reserved != 0:
            raise SessionError(
                "record_invalid", f"record header v{version} dir{direction} is not for this side"
            )
        header = bytes(data[: RECORD_HEADER.size])
        # Authenticate first, so a damaged record always reads "forged" and "replayed" means a genuine replay.
        try:
            plaintext = self._aead.decrypt(
                _nonce(self._direction, sequence),
                bytes(data[RECORD_HEADER.size :]),
                self._session_id + header,
            )
        except InvalidTag:
            raise SessionError("record_forged", f"record {sequence} failed authentication") from None
        if sequence <= self.last_sequence:
            raise SessionError(
                "record_replayed", f"sequence {sequence} is not above the last one ({self.last_sequence})"
            )
        try:
            record_type = RecordType(kind)
        except ValueError:
            raise SessionError("record_invalid", f"unknown record type {kind}") from None
        self.last_sequence = sequence
        if record_type is RecordType.CLOSE:
            self.closed = True
        return Record(channel, record_type, sequence, plaintext)


def record_layer(
    keys: SessionKeys, session_id: bytes, side: Literal["console", "agent"]
) -> tuple[RecordSealer, RecordOpener]:
    """The sealer and opener one side uses, keyed per direction."""
    c2a, a2c = Direction.CONSOLE_TO_AGENT, Direction.AGENT_TO_CONSOLE
    if side == "console":
        return (
            RecordSealer(keys.console_to_agent, c2a, session_id),
            RecordOpener(keys.agent_to_console, a2c, session_id),
        )
    return (
        RecordSealer(keys.agent_to_console, a2c, session_id),
        RecordOpener(keys.console_to_agent, c2a, session_id),
    )
