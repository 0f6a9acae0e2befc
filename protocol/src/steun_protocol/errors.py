"""Exceptions and the stable error codes that travel on the wire."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Stable error codes. They are part of the protocol: never rename one."""

    # framing: the message itself is unusable; the connection is closed
    MALFORMED = "malformed"
    MESSAGE_TOO_LARGE = "message_too_large"
    TOO_DEEP = "too_deep"
    BAD_FRAME = "bad_frame"
    UNEXPECTED_REPLY = "unexpected_reply"
    BAD_REQUEST_ID = "bad_request_id"
    # per request: the request is refused; the connection goes on
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    # handshake and session
    UNSUPPORTED_VERSION = "unsupported_version"
    HELLO_REQUIRED = "hello_required"
    AUTH_REQUIRED = "auth_required"
    AUTH_FAILED = "auth_failed"
    DEVICE_REVOKED = "device_revoked"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_USED = "token_used"
    PIN_MISMATCH = "pin_mismatch"
    # application
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    UNAUTHORIZED = "unauthorized"
    THROTTLED = "throttled"
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"
    INTERNAL = "internal_error"


#: Codes after which the connection cannot go on.
FATAL_CODES = frozenset(
    {
        ErrorCode.MALFORMED,
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.TOO_DEEP,
        ErrorCode.BAD_FRAME,
        ErrorCode.UNEXPECTED_REPLY,
        ErrorCode.BAD_REQUEST_ID,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.HELLO_REQUIRED,
    }
)


class ProtocolError(Exception):
    """Root of every error raised by steun_protocol."""

    def __init__(self, code: ErrorCode | str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = ErrorCode(code) if code in ErrorCode.__members__.values() else code
        self.message = message


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids (a bug on our side)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""
