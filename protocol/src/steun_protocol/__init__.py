"""steun_protocol: Steun's wire protocol, free of I/O (bytes in, typed events out)."""

from .connection import (
    Connection,
    ConnectionFailed,
    ErrorReceived,
    EventReceived,
    FrameReceived,
    RequestReceived,
    ResultReceived,
    Side,
)
from .errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from .messages import Api, Request
from .version import PROTOCOL_VERSION, SUPPORTED_VERSIONS

__all__ = [
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "Api",
    "Connection",
    "ConnectionFailed",
    "ErrorCode",
    "ErrorReceived",
    "EventReceived",
    "FrameReceived",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "Request",
    "RequestReceived",
    "ResultReceived",
    "Side",
]
