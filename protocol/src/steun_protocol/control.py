"""The control plane: messages between an agent and the server (``/agent/ws``)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from .diagnostics import DiagnosticsDone, DiagnosticsResult, DiagnosticsRun
from .inventory import Inventory, LiveMetrics
from .limits import MAX_TEXT_MESSAGE, SHORT_TEXT
from .messages import B64, Api, DeviceId, Payload, Request, ShortText
from .sessionplane import SessionEvent, SessionOfferRequest, SupportRedeem


class HelloResult(Payload, frozen=True):
    version: int
    nonce: B64
    server_time: float


class Hello(Request, tag="hello", frozen=True):
    """First message of every connection: the versions the agent speaks."""

    versions: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=65535)]], msgspec.Meta(max_length=16)]
    software: ShortText
    Result: ClassVar[type[Payload]] = HelloResult
    max_size: ClassVar[int] = 1024


class EnrollResult(Payload, frozen=True):
    device_id: DeviceId
    group: Annotated[str, msgspec.Meta(max_length=SHORT_TEXT)]
    org_signature: B64


class Enroll(Request, tag="enroll", frozen=True):
    """Redeem an enrollment token: register the agent's public key, proven by signing the server nonce."""

    token: B64
    public_key: B64
    hostname: ShortText
    os: ShortText
    signature: B64
    Result: ClassVar[type[Payload]] = EnrollResult
    max_size: ClassVar[int] = 2048


class AuthResult(Payload, frozen=True):
    heartbeat_interval: Annotated[float, msgspec.Meta(gt=0, le=3600)]


class Auth(Request, tag="auth", frozen=True):
    """Prove the agent's identity by signing the server nonce (bound to the TLS key it saw)."""

    device_id: DeviceId
    signature: B64
    Result: ClassVar[type[Payload]] = AuthResult
    max_size: ClassVar[int] = 1024


class Heartbeat(Request, tag="heartbeat", frozen=True):
    metrics: LiveMetrics
    max_size: ClassVar[int] = 2048


class InventoryReport(Request, tag="inventory", frozen=True):
    inventory: Inventory
    max_size: ClassVar[int] = MAX_TEXT_MESSAGE


AGENT_API = Api(
    "agent",
    [
        Hello,
        Enroll,
        Auth,
        SupportRedeem,
        Heartbeat,
        InventoryReport,
        DiagnosticsRun,
        DiagnosticsResult,
        DiagnosticsDone,
        SessionOfferRequest,
        SessionEvent,
    ],
    hello=Hello,
)
