"""A sans-I/O connection: feed it what the websocket received, send what it queues, act on its events.

The asyncio code in the agent and the server only pumps bytes between a websocket and this object (the
shape of python-websockets' ``protocol.py`` and h11's ``Connection``). It never raises for anything the peer
sends: bad input becomes an error reply (when the request can be answered) or a ``ConnectionFailed`` event
(when it cannot), and the reason is also sent to the peer so both sides report the same error code.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Any

import msgspec

from . import codec
from .errors import FATAL_CODES, ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from .frames import Frame, decode_frame, encode_frame
from .limits import MAX_OUTGOING, MAX_PENDING_REQUESTS, MAX_REQUEST_ID
from .messages import (
    Api,
    ErrorEnvelope,
    EventEnvelope,
    Payload,
    Request,
    ResultEnvelope,
    Sender,
    _RequestRefused,
)
from .version import SUPPORTED_VERSIONS, negotiate

#: Connection-level errors travel with this id (request ids start at 1).
CONNECTION_ID = 0


class Side(enum.Enum):
    CLIENT = "client"  # opened the websocket: agent, console
    SERVER = "server"


class State(enum.Enum):
    OPEN = "open"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """The peer asks for something; answer with ``send_result`` or ``send_error`` using ``request.id``."""

    request: Request


@dataclass(frozen=True, slots=True)
class ResultReceived:
    request: Request
    result: Payload


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    request: Request
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class EventReceived:
    """An event on a subscription that ``request`` opened."""

    request: Request
    event: Payload


@dataclass(frozen=True, slots=True)
class FrameReceived:
    frame: Frame


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """The connection cannot go on. ``by_peer`` tells whether the peer reported it or we detected it."""

    code: str
    message: str
    by_peer: bool

    @property
    def close_code(self) -> int:
        """The websocket close code that fits the failure."""
        if self.code == ErrorCode.MESSAGE_TOO_LARGE:
            return 1009
        if self.code in (ErrorCode.MALFORMED, ErrorCode.BAD_FRAME, ErrorCode.TOO_DEEP):
            return 1002
        return 1008


Event = RequestReceived | ResultReceived | ErrorReceived | EventReceived | FrameReceived | ConnectionFailed


class Connection:
    """One end of a Steun JSON/binary websocket, for one ``Api``."""

    def __init__(self, api: Api, side: Side, *, versions: tuple[int, ...] = SUPPORTED_VERSIONS) -> None:
        self.api = api
        self.side = side
        self.versions = versions
        self.state = State.OPEN
        #: The negotiated protocol version (None until the hello completes, or when the API has no hello).
        self.version: int | None = None
        self.failure: ConnectionFailed | None = None
        self._hello_sent = False
        self._next_id = 1
        self._last_peer_id = 0
        self._pending: dict[int, Request] = {}  # our requests awaiting a result
        self._subscribed: dict[int, Request] = {}  # our subscriptions that receive events
        self._inbound: dict[int, Request] = {}  # peer requests we have not answered
        self._serving: dict[int, Request] = {}  # peer subscriptions we feed events to
        self._out: deque[str | bytes] = deque()
        self._events: list[Event] = []
        self._counts = {"messages_in": 0, "messages_out": 0, "frames_in": 0, "frames_out": 0}

    # ---------------------------------------------------------------- state

    @property
    def ready(self) -> bool:
        """True once application messages may flow (the hello, if any, is done)."""
        return self.state is State.OPEN and (self.api.hello is None or self.version is not None)

    def statistics(self) -> dict[str, Any]:
        return {
            **self._counts,
            "pending": len(self._pending),
            "subscriptions": len(self._subscribed),
            "serving": len(self._serving),
            "unanswered": len(self._inbound),
            "queued_out": len(self._out),
        }

    # ---------------------------------------------------------------- sending

    def send_request(self, request: Request) -> Request:
        """Queue a request; returns it with the id assigned, which replies will refer to."""
        self._check_open()
        self._check_sender(type(request))
        hello = self.api.hello
        if hello is not None and self.side is Side.SERVER:
            # The server speaks only after the client's hello fixed the version.
            if self.version is None:
                raise LocalProtocolError(ErrorCode.HELLO_REQUIRED, "no requests before the client's hello")
        elif hello is not None and not self._hello_sent:
            if not isinstance(request, hello):
                raise LocalProtocolError(
                    ErrorCode.HELLO_REQUIRED, f"the first request must be {hello.type_name()}"
                )
            self._hello_sent = True
        elif hello is not None and self.version is None:
            raise LocalProtocolError(
                ErrorCode.HELLO_REQUIRED, "wait for the hello result before other requests"
            )
        if len(self._pending) >= MAX_PENDING_REQUESTS:
            raise LocalProtocolError(ErrorCode.OVERLOADED, "too many requests awaiting a reply")
        if self._next_id > MAX_REQUEST_ID:
            raise LocalProtocolError(ErrorCode.BAD_REQUEST_ID, "request ids exhausted")
        request = msgspec.structs.replace(request, id=self._next_id)
        self._next_id += 1
        data = codec.encode(request)
        self._check_size(len(data), request.max_size, request.type_name())
        self._pending[request.id] = request
        self._queue(data.decode("utf-8"))
        return request

    def send_result(self, request_id: int, result: Payload) -> None:
        request = self._answer(request_id)
        if not isinstance(result, request.Result):
            raise LocalProtocolError(
                ErrorCode.INTERNAL, f"{request.type_name()} answers with {request.Result.__name__}"
            )
        data = codec.encode({"id": request_id, "type": "result", "result": result})
        self._check_size(len(data), request.max_result_size, request.type_name() + " result")
        if request.Event is not None:
            self._serving[request_id] = request
        self._queue(data.decode("utf-8"))

    def send_error(self, request_id: int, code: ErrorCode | str, message: str = "") -> None:
        self._answer(request_id)
        self._reply_error(request_id, code, message)

    def send_event(self, request_id: int, event: Payload) -> None:
        """Send an event on a subscription the peer opened (after its result was sent)."""
        self._check_open()
        request = self._serving.get(request_id)
        if request is None or request.Event is None or not isinstance(event, request.Event):
            raise LocalProtocolError(
                ErrorCode.INTERNAL, f"no subscription {request_id} for {type(event).__name__}"
            )
        data = codec.encode({"id": request_id, "type": "event", "event": event})
        self._check_size(len(data), request.max_result_size, request.type_name() + " event")
        self._queue(data.decode("utf-8"))

    def end_subscription(self, request_id: int) -> None:
        """Forget a subscription on either side (after an ``unsubscribe``); unknown ids are ignored."""
        self._serving.pop(request_id, None)
        self._subscribed.pop(request_id, None)

    def send_frame(self, frame: Frame) -> None:
        self._check_open()
        if not self.ready:
            raise LocalProtocolError(ErrorCode.HELLO_REQUIRED, "no frames before the hello completes")
        self._counts["frames_out"] += 1
        self._queue(encode_frame(frame))

    def fail(self, code: ErrorCode | str, message: str) -> ConnectionFailed:
        """Give up on the connection: tell the peer why and stop accepting input."""
        if self.failure is not None:
            return self.failure
        failure = ConnectionFailed(str(code), message, by_peer=False)
        if self.state is State.OPEN:
            body = _error_body(code, message)
            self._out.append(codec.encode(ErrorEnvelope(id=CONNECTION_ID, error=body)).decode())
        self._set_failed(failure)
        return failure

    def data_to_send(self) -> list[str | bytes]:
        """Everything queued for the websocket, in order: ``str`` as text messages, ``bytes`` as binary."""
        out = list(self._out)
        self._out.clear()
        return out

    # ---------------------------------------------------------------- receiving

    def events_received(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def receive_text(self, data: str | bytes) -> None:
        """Take one websocket text message."""
        if self.state is not State.OPEN:
            return
        self._counts["messages_in"] += 1
        try:
            raw = codec.as_bytes(data)
            codec.check_bounds(raw, max_size=self.api.max_message_size)
            message = self.api.decode(raw)
            self._dispatch(message, len(raw))
        except _RequestRefused as exc:
            self._refuse(exc.request_id, exc.code, exc.message)
        except ProtocolError as exc:
            self.fail(exc.code, exc.message)

    def receive_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Take one websocket binary message (one frame)."""
        if self.state is not State.OPEN:
            return
        self._counts["frames_in"] += 1
        try:
            if not self.ready:
                raise RemoteProtocolError(ErrorCode.HELLO_REQUIRED, "binary frame before the hello")
            frame = decode_frame(data)
        except ProtocolError as exc:
            self.fail(exc.code, exc.message)
            return
        self._events.append(FrameReceived(frame))

    # ---------------------------------------------------------------- internals

    def _dispatch(self, message: msgspec.Struct, size: int) -> None:
        if isinstance(message, ResultEnvelope):
            request = self._take_pending(message.id)
            result = codec.decode(bytes(message.result), request.Result, max_size=request.max_result_size)
            if request.Event is not None:
                self._subscribed[request.id] = request
            if self.api.hello is not None and isinstance(request, self.api.hello):
                self._finish_hello(result)
            self._events.append(ResultReceived(request, result))
        elif isinstance(message, ErrorEnvelope):
            if message.id == CONNECTION_ID:
                self._set_failed(ConnectionFailed(message.error.code, message.error.message, by_peer=True))
                return
            request = self._take_pending(message.id)
            self._events.append(ErrorReceived(request, message.error.code, message.error.message))
            if message.error.code in FATAL_CODES:
                self._set_failed(ConnectionFailed(message.error.code, message.error.message, by_peer=True))
        elif isinstance(message, EventEnvelope):
            subscription = self._subscribed.get(message.id)
            if subscription is None or subscription.Event is None:
                # Events may still arrive for a subscription we just ended: drop those quietly.
                if message.id in self._pending or message.id >= self._next_id:
                    raise RemoteProtocolError(
                        ErrorCode.UNEXPECTED_REPLY, f"event for unknown subscription {message.id}"
                    )
                return
            event = codec.decode(
                bytes(message.event), subscription.Event, max_size=subscription.max_result_size
            )
            self._events.append(EventReceived(subscription, event))
        else:
            assert isinstance(message, Request)
            self._receive_request(message, size)

    def _receive_request(self, request: Request, size: int) -> None:
        if request.id <= self._last_peer_id:
            raise RemoteProtocolError(
                ErrorCode.BAD_REQUEST_ID,
                f"request id {request.id} does not increase (last {self._last_peer_id})",
            )
        self._last_peer_id = request.id
        hello = self.api.hello
        if hello is not None and self.version is None:
            if self.side is not Side.SERVER or not isinstance(request, hello):
                raise RemoteProtocolError(
                    ErrorCode.HELLO_REQUIRED, f"the first request must be {hello.type_name()}"
                )
            version = negotiate(getattr(request, "versions", ()), self.versions)
            if version is None:
                raise RemoteProtocolError(
                    ErrorCode.UNSUPPORTED_VERSION,
                    f"peer offers versions {list(getattr(request, 'versions', ()))[:16]}, "
                    f"this side speaks {list(self.versions)}",
                )
            self.version = version
        if size > request.max_size:
            refusal = (
                ErrorCode.MESSAGE_TOO_LARGE,
                f"{request.type_name()} is limited to {request.max_size} bytes",
            )
        elif not self._may_receive(type(request)):
            refusal = (ErrorCode.INVALID_MESSAGE, f"{request.type_name()} may not be sent to this side")
        elif len(self._inbound) >= MAX_PENDING_REQUESTS:
            refusal = (ErrorCode.OVERLOADED, "too many unanswered requests")
        else:
            self._inbound[request.id] = request
            self._events.append(RequestReceived(request))
            return
        self._reply_error(request.id, *refusal)
        self._events.append(RequestReceived(request))

    def _finish_hello(self, result: Payload) -> None:
        version = getattr(result, "version", None)
        if version not in self.versions:
            raise RemoteProtocolError(
                ErrorCode.UNSUPPORTED_VERSION, f"server chose version {version}, not offered"
            )
        self.version = version

    def _refuse(self, request_id: int, code: ErrorCode | str, message: str) -> None:
        """Answer a request that did not decode, if its id is one we may still answer."""
        if request_id <= self._last_peer_id:
            self.fail(ErrorCode.BAD_REQUEST_ID, f"request id {request_id} does not increase")
            return
        if self.api.hello is not None and self.version is None:
            self.fail(
                ErrorCode.HELLO_REQUIRED, f"the first request must be a valid {self.api.hello.type_name()}"
            )
            return
        self._last_peer_id = request_id
        self._reply_error(request_id, code, message)

    def _reply_error(self, request_id: int, code: ErrorCode | str, message: str) -> None:
        self._queue(codec.encode(ErrorEnvelope(id=request_id, error=_error_body(code, message))).decode())

    def _take_pending(self, request_id: int) -> Request:
        request = self._pending.pop(request_id, None)
        if request is None:
            raise RemoteProtocolError(ErrorCode.UNEXPECTED_REPLY, f"reply to unknown request {request_id}")
        return request

    def _answer(self, request_id: int) -> Request:
        self._check_open()
        request = self._inbound.pop(request_id, None)
        if request is None:
            raise LocalProtocolError(ErrorCode.INTERNAL, f"no unanswered request {request_id}")
        return request

    def _may_receive(self, cls: type[Request]) -> bool:
        peer = Sender.CLIENT if self.side is Side.SERVER else Sender.SERVER
        return cls.sender in (peer, Sender.EITHER)

    def _check_sender(self, cls: type[Request]) -> None:
        me = Sender.CLIENT if self.side is Side.CLIENT else Sender.SERVER
        if cls.sender not in (me, Sender.EITHER):
            raise LocalProtocolError(
                ErrorCode.INTERNAL, f"{cls.type_name()} may not be sent by the {self.side.value}"
            )

    @staticmethod
    def _check_size(size: int, limit: int, what: str) -> None:
        if size > limit:
            raise LocalProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"{what} of {size} bytes exceeds {limit}")

    def _check_open(self) -> None:
        if self.state is not State.OPEN:
            raise LocalProtocolError(ErrorCode.INTERNAL, "the connection has failed")

    def _queue(self, data: str | bytes) -> None:
        if len(self._out) >= MAX_OUTGOING:
            raise LocalProtocolError(ErrorCode.OVERLOADED, "outgoing queue full: drain data_to_send()")
        if isinstance(data, str):
            self._counts["messages_out"] += 1
        self._out.append(data)

    def _set_failed(self, failure: ConnectionFailed) -> None:
        self.state = State.FAILED
        self.failure = failure
        self._pending.clear()
        self._subscribed.clear()
        self._inbound.clear()
        self._serving.clear()
        self._events.append(failure)


def _error_body(code: ErrorCode | str, message: str) -> Any:
    from .messages import ErrorBody

    return ErrorBody(code=str(code)[:256], message=message[:4096])
