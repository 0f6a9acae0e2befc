"""Message base classes, reply envelopes and the registry (``Api``) that decodes them.

Every JSON message is an object ``{"id": int, "type": str, ...}``. Requests are frozen msgspec Structs
tagged by ``type``; each names the Struct of its result, its maximum encoded size and who may send it.
Replies are ``result``, ``error`` and ``event`` envelopes (the Home Assistant websocket shape).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Union

import msgspec

from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .limits import DEFAULT_MESSAGE_SIZE, LONG_TEXT, MAX_REQUEST_ID, SHORT_TEXT

RequestId = Annotated[int, msgspec.Meta(ge=0, le=MAX_REQUEST_ID)]
ShortText = Annotated[str, msgspec.Meta(max_length=SHORT_TEXT)]
LongText = Annotated[str, msgspec.Meta(max_length=LONG_TEXT)]
#: A key, signature, nonce or token in unpadded base64url.
B64 = Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[A-Za-z0-9_-]*$")]
DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class Sender(enum.Enum):
    """Who may send a request type."""

    CLIENT = "client"  # the side that opened the websocket (agent, console)
    SERVER = "server"
    EITHER = "either"


class Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base for result and event bodies and nested values."""


class Empty(Payload, frozen=True):
    """A result that carries nothing."""


class Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="type"):
    """Base of everything that travels as one JSON object."""

    id: RequestId = 0


class Request(Message, frozen=True):
    """A message that asks the peer for a result. Subclasses set ``type`` via ``tag=``."""

    #: The Struct of the ``result`` the peer answers with.
    Result: ClassVar[type[Payload]] = Empty
    #: The Struct of ``event`` payloads when this request opens a subscription (None: it does not).
    Event: ClassVar[type[Payload] | None] = None
    #: Largest encoded size accepted for this request type.
    max_size: ClassVar[int] = DEFAULT_MESSAGE_SIZE
    #: Largest encoded size accepted for its result and events.
    max_result_size: ClassVar[int] = DEFAULT_MESSAGE_SIZE
    #: Which side may send it.
    sender: ClassVar[Sender] = Sender.CLIENT

    @classmethod
    def type_name(cls) -> str:
        tag = cls.__struct_config__.tag
        assert isinstance(tag, str)
        return tag


class ErrorBody(Payload, frozen=True):
    code: ShortText
    message: LongText = ""


class ResultEnvelope(Message, tag="result", frozen=True):
    result: msgspec.Raw


class ErrorEnvelope(Message, tag="error", frozen=True):
    error: ErrorBody


class EventEnvelope(Message, tag="event", frozen=True):
    event: msgspec.Raw


_REPLIES: tuple[type[Message], ...] = (ResultEnvelope, ErrorEnvelope, EventEnvelope)
_RESERVED = frozenset(r.__struct_config__.tag for r in _REPLIES)


class _Header(msgspec.Struct):
    """Just enough of a message to answer it when the rest does not validate."""

    id: Any = None
    type: Any = None


class Api:
    """A registry of request types that one kind of connection speaks (e.g. the agent control plane)."""

    def __init__(self, name: str, requests: Iterable[type[Request]], *, hello: type[Request] | None = None):
        self.name = name
        self.requests: dict[str, type[Request]] = {}
        for cls in requests:
            tag = cls.type_name()
            if tag in _RESERVED or tag in self.requests:
                raise LocalProtocolError(ErrorCode.INTERNAL, f"duplicate or reserved message type {tag!r}")
            self.requests[tag] = cls
        if hello is not None and hello.type_name() not in self.requests:
            raise LocalProtocolError(ErrorCode.INTERNAL, "the hello request must be registered")
        #: The request that must open every connection of this API (version negotiation), if any.
        self.hello = hello
        members = (*self.requests.values(), *_REPLIES)
        self._union: Any = Union[members]  # noqa: UP007 - a runtime union of classes for msgspec
        self._decoder = msgspec.json.Decoder(self._union, strict=True)
        self.max_message_size = max(
            [cls.max_size for cls in self.requests.values()]
            + [cls.max_result_size for cls in self.requests.values()]
        )

    def decode(self, data: bytes) -> Message:
        """Decode one message that has already passed the size and depth checks."""
        try:
            return self._decoder.decode(data)  # type: ignore[no-any-return]
        except msgspec.ValidationError as exc:
            header = self._header(data)
            if (
                header is not None
                and isinstance(header.type, str)
                and header.type not in self.requests
                and header.type not in _RESERVED
            ):
                message = f"unknown message type {header.type[:64]!r}"
                if _valid_id(header.id):
                    raise _RequestRefused(header.id, ErrorCode.UNKNOWN_TYPE, message) from None
                raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, message) from None
            if header is not None and _valid_id(header.id) and header.type in self.requests:
                raise _RequestRefused(header.id, ErrorCode.INVALID_MESSAGE, str(exc)) from None
            raise RemoteProtocolError(ErrorCode.INVALID_MESSAGE, str(exc)) from None
        except (msgspec.DecodeError, RecursionError) as exc:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"not valid JSON: {exc}") from None

    @staticmethod
    def _header(data: bytes) -> _Header | None:
        try:
            return msgspec.json.decode(data, type=_Header)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None


def _valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_REQUEST_ID


class _RequestRefused(RemoteProtocolError):
    """A request that can be answered with an error reply while the connection goes on."""

    def __init__(self, request_id: int, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)
        self.request_id = request_id
