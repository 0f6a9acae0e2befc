"""The console websocket API (``/api/ws``): a registry of typed commands and one dispatcher.

Home Assistant's ``websocket_api`` shape. Each command declares its ``type`` string, the msgspec Struct of its
parameters (a ``steun_protocol`` request class works as is) and the role it needs; the dispatcher decodes the
``{"id", "type", ...}`` envelope, checks size, depth, id order and permission, runs the handler and answers
``result`` / ``error``. A handler that opens a subscription calls :meth:`ConsoleConnection.subscribe` and
then :meth:`ConsoleConnection.send_event`; subscriptions are cancelled by ``unsubscribe`` or when the
socket closes.

A handler::

    async def devices_list(conn: ConsoleConnection, msg_id: int, params: DevicesList) -> DeviceList:
        ...

    COMMANDS = [CommandSpec(type="devices/list", params=DevicesList, permission=Role.TECHNICIAN,
                            handler=devices_list)]

Outgoing messages go through a bounded queue drained by one writer task; a console that does not read fast
enough is disconnected (``overloaded``) instead of growing the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec
from aiohttp import WSMsgType, web
from steun_protocol.codec import check_bounds
from steun_protocol.errors import ErrorCode, RemoteProtocolError
from steun_protocol.limits import MAX_REQUEST_ID, MAX_TEXT_MESSAGE

from .auth.roles import Role, has_permission
from .errors import ApiError
from .web import AUTH, CONFIG, WS_COMMANDS, RouteSpec, current_user

log = logging.getLogger(__name__)

CommandHandler = Callable[["ConsoleConnection", int, Any], Awaitable[Any]]
Unsubscribe = Callable[[], Any]

#: Largest request a console may send on /api/ws (results and events may be larger).
MAX_COMMAND_SIZE = 64 * 1024
#: How often a long-lived socket re-checks that its session is still valid (seconds).
SESSION_RECHECK_INTERVAL = 60.0
#: Subscriptions one connection may hold at once.
MAX_SUBSCRIPTIONS = 256


class CommandError(Exception):
    """Raised by a handler to answer ``error`` with a stable code; the connection goes on."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CommandSpec:
    type: str
    handler: CommandHandler
    permission: Role
    #: msgspec Struct of the parameters (the message's fields other than id/type), or None for none.
    params: Any = None
    summary: str = ""


class _Envelope(msgspec.Struct):
    id: Any = None
    type: Any = None


class CommandRegistry:
    """Commands by type; the app holds one under ``WS_COMMANDS``."""

    def __init__(self, commands: Iterable[CommandSpec] = ()) -> None:
        self._commands: dict[str, CommandSpec] = {}
        for spec in commands:
            self.register(spec)

    def register(self, spec: CommandSpec) -> None:
        if spec.type in self._commands or spec.type in ("result", "error", "event"):
            raise ValueError(f"console command {spec.type!r} registered twice or reserved")
        self._commands[spec.type] = spec

    def get(self, type: str) -> CommandSpec | None:
        return self._commands.get(type)

    def __iter__(self) -> Any:
        return iter(self._commands.values())

    def __len__(self) -> int:
        return len(self._commands)


def check_command_permission(role: Role | str, spec: CommandSpec) -> bool:
    """The permission check the dispatcher runs; exposed for callers that route commands elsewhere."""
    return has_permission(role, spec.permission)


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionStatistics:
    queued: int
    queue_limit: int
    subscriptions: int
    received: int
    sent: int


class ConsoleConnection:
    """One console websocket: what a command handler gets to reply, subscribe and send events."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, *, queue_size: int) -> None:
        self.request = request
        self.app = request.app
        self.user = current_user(request)
        self._ws = ws
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=queue_size)
        self._subscriptions: dict[int, Unsubscribe] = {}
        self._last_id = -1
        self._writable_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._received = 0
        self._sent = 0
        self._overflowed = False
        self.closed = False

    # -- for handlers ---------------------------------------------------------------------------------------

    def subscribe(self, msg_id: int, unsubscribe: Unsubscribe) -> None:
        """Tie a subscription to the request ``msg_id``; ``unsubscribe`` runs when it ends (may be async)."""
        if len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
            raise CommandError(ErrorCode.OVERLOADED, "too many subscriptions on this connection")
        self._subscriptions[msg_id] = unsubscribe

    def send_event(self, msg_id: int, event: Any) -> None:
        """Queue an ``event`` for the subscription opened by request ``msg_id`` (never blocks)."""
        if msg_id in self._subscriptions:
            self._send({"id": msg_id, "type": "event", "event": event})

    async def wait_writable(self, below: int) -> None:
        """Wait until fewer than ``below`` messages are queued (returns at once if so, or if closed).

        Subscription pumps use it to coalesce changes while a console is slow rather than overflow its queue.
        """
        if self.closed or self._queue.qsize() < below:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writable_waiters.append((below, future))
        try:
            await future
        finally:
            self._writable_waiters = [(b, f) for b, f in self._writable_waiters if f is not future]

    def _wake_writable(self, *, all_waiters: bool = False) -> None:
        size = self._queue.qsize()
        for below, future in self._writable_waiters:
            if (all_waiters or size < below) and not future.done():
                future.set_result(None)

    def send_result(self, msg_id: int, result: Any) -> None:
        self._send({"id": msg_id, "type": "result", "result": {} if result is None else result})

    def send_error(self, msg_id: int | None, code: str, message: str) -> None:
        self._send({"id": msg_id, "type": "error", "error": {"code": str(code), "message": message[:4096]}})

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            queued=self._queue.qsize(),
            queue_limit=self._queue.maxsize,
            subscriptions=len(self._subscriptions),
            received=self._received,
            sent=self._sent,
        )

    # -- internals ------------------------------------------------------------------------------------------

    def _send(self, message: Any) -> None:
        if self.closed:
            return
        try:
            data = msgspec.json.encode(message)
        except (TypeError, msgspec.EncodeError):
            log.exception("console message could not be encoded")
            return
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            log.warning("console websocket of %s is too slow; closing it", self.user.username)
            self._overloaded()

    def _overloaded(self) -> None:
        self.closed = True
        self._overflowed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def _writer(self) -> None:
        while True:
            data = await self._queue.get()
            if data is None:
                self._wake_writable(all_waiters=True)
                if self._overflowed and not self._ws.closed:
                    await self._ws.close(code=1013, message=b"overloaded")
                return
            await self._ws.send_str(data.decode())
            self._sent += 1
            if self._writable_waiters:
                self._wake_writable()

    async def _unsubscribe(self, msg_id: int) -> bool:
        unsubscribe = self._subscriptions.pop(msg_id, None)
        if unsubscribe is None:
            return False
        try:
            outcome = unsubscribe()
            if asyncio.iscoroutine(outcome):
                await outcome
        except Exception:
            log.exception("unsubscribe of %d failed", msg_id)
        return True

    async def _close_subscriptions(self) -> None:
        for msg_id in list(self._subscriptions):
            await self._unsubscribe(msg_id)

    async def _handle(self, data: bytes, registry: CommandRegistry) -> None:
        self._received += 1
        try:
            check_bounds(data, max_size=MAX_COMMAND_SIZE)
            envelope = msgspec.json.decode(data, type=_Envelope)
        except RemoteProtocolError as exc:
            self.send_error(None, exc.code, exc.message)
            return
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            self.send_error(None, ErrorCode.MALFORMED, "a message must be one JSON object")
            return
        msg_id = envelope.id
        if not isinstance(msg_id, int) or isinstance(msg_id, bool) or not 0 <= msg_id <= MAX_REQUEST_ID:
            self.send_error(None, ErrorCode.INVALID_MESSAGE, "id must be a non-negative integer")
            return
        if msg_id <= self._last_id:
            self.send_error(msg_id, ErrorCode.INVALID_MESSAGE, "ids must increase")
            return
        self._last_id = msg_id
        if not isinstance(envelope.type, str):
            self.send_error(msg_id, ErrorCode.INVALID_MESSAGE, "type must be a string")
            return
        if envelope.type == "unsubscribe":
            await self._builtin_unsubscribe(msg_id, data)
            return
        spec = registry.get(envelope.type)
        if spec is None:
            self.send_error(msg_id, ErrorCode.UNKNOWN_TYPE, f"unknown command {envelope.type[:64]!r}")
            return
        if not check_command_permission(self.user.role, spec):
            self.send_error(msg_id, ErrorCode.FORBIDDEN, f"{spec.type} needs the {spec.permission} role")
            return
        try:
            params = _decode_params(data, spec)
        except CommandError as exc:
            self.send_error(msg_id, exc.code, exc.message)
            return
        try:
            result = await spec.handler(self, msg_id, params)
        except CommandError as exc:
            await self._unsubscribe(msg_id)
            self.send_error(msg_id, exc.code, exc.message)
            return
        except ApiError as exc:
            await self._unsubscribe(msg_id)
            self.send_error(msg_id, exc.code, exc.message)
            return
        except Exception:
            log.exception("console command %s failed", spec.type)
            await self._unsubscribe(msg_id)
            self.send_error(msg_id, ErrorCode.INTERNAL, "internal error")
            return
        self.send_result(msg_id, result)

    async def _builtin_unsubscribe(self, msg_id: int, data: bytes) -> None:
        try:
            request = msgspec.json.decode(data, type=_UnsubscribeRequest)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.send_error(msg_id, ErrorCode.INVALID_MESSAGE, str(exc))
            return
        if await self._unsubscribe(request.subscription):
            self.send_result(msg_id, {})
        else:
            self.send_error(msg_id, ErrorCode.NOT_FOUND, "no such subscription")


class _UnsubscribeRequest(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    type: str
    subscription: int


def _decode_params(data: bytes, spec: CommandSpec) -> Any:
    params = spec.params
    try:
        if params is None:
            raw = msgspec.json.decode(data, type=dict[str, Any])
            extra = set(raw) - {"id", "type"}
            if extra:
                raise CommandError(ErrorCode.INVALID_MESSAGE, f"unknown fields: {sorted(extra)}")
            return None
        config = getattr(params, "__struct_config__", None)
        if config is not None and config.tag_field == "type":
            # a steun_protocol Request: the envelope's id/type are its own fields
            return msgspec.json.decode(data, type=params, strict=True)
        raw = msgspec.json.decode(data, type=dict[str, Any])
        raw.pop("id", None)
        raw.pop("type", None)
        if config is not None:
            known = set(getattr(params, "__struct_fields__", ()))
            extra = set(raw) - known
            if extra:
                raise CommandError(ErrorCode.INVALID_MESSAGE, f"unknown fields: {sorted(extra)}")
        return msgspec.convert(raw, type=params, strict=True)
    except msgspec.ValidationError as exc:
        raise CommandError(ErrorCode.INVALID_MESSAGE, str(exc)) from None
    except msgspec.DecodeError:
        raise CommandError(ErrorCode.MALFORMED, "not valid JSON") from None


async def console_websocket(request: web.Request) -> web.StreamResponse:
    """Serve one console websocket (the route guard has checked Origin and the session already)."""
    config = request.app[CONFIG]
    registry = request.app[WS_COMMANDS]
    ws = web.WebSocketResponse(
        max_msg_size=MAX_TEXT_MESSAGE,
        heartbeat=30.0,
        compress=False,
        autoping=True,
    )
    await ws.prepare(request)
    conn = ConsoleConnection(request, ws, queue_size=config.ws_send_queue)
    writer = asyncio.create_task(conn._writer(), name="steun-console-ws-writer")
    auth = request.app[AUTH]
    checked_at = time.monotonic()
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = msg.data.encode("utf-8", "surrogatepass")
            elif msg.type == WSMsgType.BINARY:
                conn.send_error(None, ErrorCode.MALFORMED, "the console API speaks JSON text messages")
                continue
            else:
                break
            if time.monotonic() - checked_at > SESSION_RECHECK_INTERVAL:
                checked_at = time.monotonic()
                if not await auth.session_valid(conn.user):
                    conn.send_error(None, ErrorCode.UNAUTHORIZED, "the session has ended")
                    break
            await conn._handle(data, registry)
            if conn.closed:
                break
    finally:
        await conn._close_subscriptions()
        if not conn.closed:
            conn.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                conn._queue.put_nowait(None)
        try:
            await asyncio.wait_for(writer, timeout=5)
        except (TimeoutError, ConnectionError):
            writer.cancel()
        if not ws.closed:
            await ws.close()
    return ws


ROUTES = [
    RouteSpec(
        method="GET",
        path="/api/ws",
        handler=console_websocket,
        permission=Role.TECHNICIAN,
        websocket=True,
        summary="Console websocket (commands, results, subscription events)",
        description="Upgrade to a websocket. Needs the session cookie and the server's own Origin.",
        tags=("console",),
    )
]
