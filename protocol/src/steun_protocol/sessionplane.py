"""The session plane's names: channels, in-session control messages, and the requests that set a session up.

A session is set up on the two JSON websockets (``/agent/ws`` and ``/api/ws``) and then runs on the relay
(``/relay/ws?ticket=…``), where each side holds one websocket of binary frames (``frames.py``):

* ``DATA`` frames on channel 0 carry the handshake (``session.Accept`` / ``Reveal`` / ``Confirm``) as JSON;
* ``SEALED`` frames carry records (``session.RecordSealer``); the record header names the channel;
* ``CLOSE`` ends the session for both sides.

The relay pairs the two tickets of one session and forwards frames without reading them. Inside the sealed
records, ``RecordType.CONTROL`` records carry one ``SessionControl`` message (JSON) and ``RecordType.DATA``
records carry a channel's payload (screen, input, ... — see ``screen.py``).
"""

from __future__ import annotations

import enum
from typing import Annotated, ClassVar, Literal

import msgspec

from .messages import B64, DeviceId, LongText, Payload, Request, Sender, ShortText
from .session import Capability, SignedOffer

SessionId = Annotated[str, msgspec.Meta(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Ticket = Annotated[str, msgspec.Meta(min_length=32, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
SupportCode = Annotated[str, msgspec.Meta(min_length=9, max_length=9, pattern=r"^[0-9]{9}$")]
Capabilities = Annotated[list[Capability], msgspec.Meta(min_length=1, max_length=16)]

#: How long a support code is valid (seconds) and how many digits it has.
SUPPORT_CODE_TTL = 600.0
SUPPORT_CODE_DIGITS = 9


class Channel(enum.IntEnum):
    """Channel ids in record headers. Each needs a capability; CONTROL is always open."""

    CONTROL = 0
    SCREEN = 1  # agent → console frames, console → agent acks/configuration
    INPUT = 2
    CLIPBOARD = 3
    SHELL = 4
    FILES = 5
    CHAT = 6


#: The capability a record on each channel needs, checked by the agent for every record it receives.
CHANNEL_CAPABILITY: dict[Channel, Capability | None] = {
    Channel.CONTROL: None,
    Channel.SCREEN: Capability.VIEW,
    Channel.INPUT: Capability.CONTROL,
    Channel.CLIPBOARD: Capability.CLIPBOARD,
    Channel.SHELL: Capability.SHELL,
    Channel.FILES: Capability.FILES,
    Channel.CHAT: Capability.CHAT,
}


# ------------------------------------------------------------------ inside the session (CONTROL records)


class Granted(Payload, frozen=True, tag="granted", tag_field="type"):
    """Agent → console: what the user (or local policy) allows now. Sent after every decision."""

    capabilities: Annotated[list[Capability], msgspec.Meta(max_length=16)]
    denied: Annotated[list[Capability], msgspec.Meta(max_length=16)] = []


class AskMore(Payload, frozen=True, tag="ask", tag_field="type", omit_defaults=True):
    """Console → agent: ask for more capabilities; the agent prompts the user again.

    Capabilities outside the session's offer need ``offer``: a newer offer for the same session (same session
    id, device, agent key, technician key and console commitment) signed by the org key (``session/extend``).
    """

    capabilities: Capabilities
    reason: ShortText = ""
    offer: SignedOffer | None = None


class Stop(Payload, frozen=True, tag="stop", tag_field="type"):
    """Either side: end the session (the user pressed Stop, the technician closed the viewer)."""

    reason: ShortText = ""


class Refused(Payload, frozen=True, tag="refused", tag_field="type"):
    """Agent → console: a record was refused (for instance on a channel that was not granted)."""

    channel: int
    reason: ShortText


SessionControl = Granted | AskMore | Stop | Refused


def decode_control(data: bytes) -> SessionControl:
    """Decode one CONTROL record payload (bounded by the record size; strict)."""
    result: SessionControl = msgspec.json.decode(data, type=SessionControl, strict=True)
    return result


# ------------------------------------------------------------------ control plane (agent ↔ server)


class SupportRedeemed(Payload, frozen=True):
    device_id: DeviceId
    org_name: ShortText
    technician_name: ShortText


class SupportRedeem(Request, tag="support/redeem", frozen=True):
    """Quick support: an agent without enrollment redeems the code the user typed. Instead of auth/enroll.

    ``public_key`` is a fresh Ed25519 identity for this support session only; ``signature`` proves it over
    the hello nonce exactly as ``enroll`` does.
    """

    code: SupportCode
    public_key: B64
    hostname: ShortText
    os: ShortText
    signature: B64
    Result: ClassVar[type[Payload]] = SupportRedeemed
    max_size: ClassVar[int] = 2048


class OfferDelivered(Payload, frozen=True):
    """The agent has the offer and will answer on the relay (acceptance itself is end-to-end)."""


class SessionOfferRequest(Request, tag="session/offer", frozen=True):
    """Server → agent: a technician asks for a session; the agent joins the relay with ``ticket``."""

    offer: SignedOffer
    relay_path: Annotated[str, msgspec.Meta(max_length=128, pattern=r"^/[A-Za-z0-9/_-]*$")]
    ticket: Ticket
    Result: ClassVar[type[Payload]] = OfferDelivered
    max_size: ClassVar[int] = 16 * 1024
    sender: ClassVar[Sender] = Sender.SERVER


class SessionEvent(Request, tag="session/event", frozen=True):
    """Agent → server: something the audit chain must hold (the agent also keeps its own log)."""

    session_id: SessionId
    event: Literal[
        "consent.requested",
        "consent.granted",
        "consent.denied",
        "consent.expired",
        "session.start",
        "session.stop",
        "session.refused",
        "shell.start",
        "shell.end",
        "shell.failed",
        "files.download",
        "files.upload",
        "files.mkdir",
        "files.remove",
        "files.rename",
        "files.failed",
    ]
    capabilities: Annotated[list[Capability], msgspec.Meta(max_length=16)] = []
    detail: LongText = ""
    max_size: ClassVar[int] = 8 * 1024


# ------------------------------------------------------------------ console API (browser ↔ server)


class SupportCodeCreated(Payload, frozen=True):
    code: SupportCode
    expires_at: float


class SupportCodeEvent(Payload, frozen=True):
    kind: Literal["redeemed", "expired"]
    device_id: DeviceId | None = None
    hostname: ShortText | None = None


class SupportCodeCreate(Request, tag="support/create", frozen=True):
    """Make a 9-digit code bound to this technician; events tell when the user redeemed it."""

    Result: ClassVar[type[Payload]] = SupportCodeCreated
    Event: ClassVar[type[Payload] | None] = SupportCodeEvent


class SessionCreated(Payload, frozen=True):
    session_id: SessionId
    offer: SignedOffer
    relay_path: ShortText
    ticket: Ticket


class SessionRequest(Request, tag="session/request", frozen=True):
    """Ask a device for a session. The console keeps the private halves of both keys it sends here."""

    device_id: DeviceId
    capabilities: Capabilities
    technician_key: B64  # Ed25519 public key made by the console for this session
    console_commitment: B64  # SHA-256 of the console's ephemeral X25519 public key
    reason: ShortText = ""
    Result: ClassVar[type[Payload]] = SessionCreated
    max_size: ClassVar[int] = 4096
    max_result_size: ClassVar[int] = 16 * 1024


class SessionStop(Request, tag="session/stop", frozen=True):
    session_id: SessionId


class SessionExtended(Payload, frozen=True):
    offer: SignedOffer


class SessionExtend(Request, tag="session/extend", frozen=True):
    """Re-sign a live session's offer with more capabilities (the union of the old and these).

    The console sends the new offer to the agent in ``AskMore``; the agent checks it and asks its user again.
    """

    session_id: SessionId
    capabilities: Capabilities
    Result: ClassVar[type[Payload]] = SessionExtended
    max_size: ClassVar[int] = 4096
    max_result_size: ClassVar[int] = 16 * 1024
