"""One control-plane websocket: pumps bytes between ``websockets`` and a sans-I/O ``Connection``.

The channel owns the only reader of the websocket. Requests wait for their reply on a future keyed by
request id; every wait has a timeout, and a missed reply means the connection is treated as dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import websockets
from steun_protocol import (
    SUPPORTED_VERSIONS,
    Connection,
    ConnectionFailed,
    ErrorCode,
    ErrorReceived,
    EventReceived,
    FrameReceived,
    RequestReceived,
    ResultReceived,
    Side,
)
from steun_protocol.auth import b64decode, pins_equal
from steun_protocol.control import AGENT_API, Hello, HelloResult
from steun_protocol.messages import Payload, Request
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from . import __version__
from .config import AgentConfig, agent_ws_url
from .errors import AgentError, ConnectionLost, PinMismatch, ServerRefused
from .tls import PinMismatchSSLError, peer_spki, pinned_context

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Payload)
#: Answers one server-to-agent request; capabilities register these by request type.
Handler = Callable[[Request], Awaitable[Payload]]

SOFTWARE = f"steun-agent/{__version__} ({platform.system()}; {platform.machine()})"[:256]


class ControlChannel:
    """An open, pin-checked websocket to ``/agent/ws`` and the protocol state that goes with it."""

    def __init__(
        self,
        ws: ClientConnection,
        spki: bytes,
        config: AgentConfig,
        handlers: Mapping[type[Request], Handler] | None = None,
    ) -> None:
        self.spki = spki  # the SPKI hash this connection's server presented (equal to the pin)
        self._ws = ws
        self._config = config
        self._handlers = dict(handlers or {})
        self._conn = Connection(AGENT_API, Side.CLIENT)
        self._waiters: dict[int, asyncio.Future[Payload]] = {}
        self._send_lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._close_reason: AgentError | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- opening

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        server_url: str,
        pin: bytes,
        config: AgentConfig,
        handlers: Mapping[type[Request], Handler] | None = None,
    ) -> AsyncIterator[ControlChannel]:
        """Open the websocket (the pin is checked inside the TLS handshake) and run its reader until exit."""
        ws = await _open(server_url, pin, config)
        channel = cls(ws, pin, config, handlers)
        # Defence in depth: the handshake hook already refused any other key; confirm on the live socket.
        seen = peer_spki(ws.transport.get_extra_info("ssl_object"))
        if seen is None or not pins_equal(seen, pin):
            ws.transport.abort()
            raise PinMismatch(pin, seen)
        channel._reader = asyncio.create_task(channel._read_loop(), name="steun-agent-reader")
        try:
            yield channel
        finally:
            await channel.aclose()

    # ---------------------------------------------------------------- requests

    async def hello(self) -> bytes:
        """Negotiate the version; returns the server's 32-byte nonce for the identity proof."""
        result = await self.request(Hello(versions=list(SUPPORTED_VERSIONS), software=SOFTWARE), HelloResult)
        try:
            return b64decode(result.nonce, size=32)
        except ValueError as exc:
            lost = ConnectionLost(f"the server sent an unusable nonce: {exc}")
            await self.aclose(1002, "bad nonce", why=lost)
            raise lost from None

    async def request(
        self,
        request: Request,
        result_type: type[P],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a reply deadline, enforced inside
    ) -> P:
        """Send ``request`` and wait for its result; ``ServerRefused`` for an error reply."""
        if self._closed.is_set():
            raise self._reason()
        sent = self._conn.send_request(request)
        future: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
        self._waiters[sent.id] = future
        await self._flush()
        wait = self._config.request_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(wait):
                result = await future
        except TimeoutError:
            self._waiters.pop(sent.id, None)
            lost = ConnectionLost(f"no reply to {sent.type_name()} within {wait:g} s")
            await self.aclose(1011, "reply timeout", why=lost)
            raise lost from None
        if not isinstance(result, result_type):  # the Api decoded it with request.Result
            raise ConnectionLost(f"{sent.type_name()} answered with {type(result).__name__}")
        return result

    # ---------------------------------------------------------------- state

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> AgentError:
        """Wait until the connection ends; returns why."""
        await self._closed.wait()
        return self._reason()

    def statistics(self) -> dict[str, Any]:
        return {**self._conn.statistics(), "waiting": len(self._waiters), "handler_tasks": len(self._tasks)}

    async def aclose(self, code: int = 1000, reason: str = "", *, why: AgentError | None = None) -> None:
        """Close the websocket (bounded by ``close_timeout``) and fail whatever still waits with ``why``."""
        self._finish(why or ConnectionLost("the connection was closed by the agent"))
        with contextlib.suppress(Exception):
            await self._ws.close(code, reason)
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for task in list(self._tasks):
            task.cancel()

    # ---------------------------------------------------------------- internals

    async def _read_loop(self) -> None:
        reason: AgentError | None = None
        try:
            async for message in self._ws:
                if isinstance(message, str):
                    self._conn.receive_text(message)
                else:
                    self._conn.receive_bytes(message)
                failed = self._process(self._conn.events_received())
                await self._flush()
                if failed is not None:
                    reason = _failure_reason(failed)
                    log.warning("control connection failed: %s", reason)
                    await self._ws.close(failed.close_code, failed.code)
                    break
        except ConnectionClosed as exc:
            reason = _closed_reason(exc)
        except Exception:  # a bug here must not leave requests waiting forever
            log.exception("the control connection's reader failed")
            reason = ConnectionLost("the agent failed while reading from the server")
            self._ws.transport.abort()
        finally:
            if reason is None:
                code, why = self._ws.close_code, self._ws.close_reason
                detail = f"code {code}{', ' + why if why else ''}"
                reason = ConnectionLost(f"the server closed the connection ({detail})", close_code=code)
            self._finish(reason)

    def _process(self, events: list[Any]) -> ConnectionFailed | None:
        failed: ConnectionFailed | None = None
        for event in events:
            if isinstance(event, ResultReceived):
                self._resolve(event.request.id, result=event.result)
            elif isinstance(event, ErrorReceived):
                refused = ServerRefused(event.code, event.message, what=event.request.type_name())
                self._resolve(event.request.id, error=refused)
            elif isinstance(event, RequestReceived):
                self._dispatch(event.request)
            elif isinstance(event, ConnectionFailed):
                failed = event
            elif isinstance(event, EventReceived | FrameReceived):
                log.debug("ignoring %s: no subscription or stream uses it yet", type(event).__name__)
        return failed

    def _resolve(
        self, request_id: int, *, result: Payload | None = None, error: AgentError | None = None
    ) -> None:
        future = self._waiters.pop(request_id, None)
        if future is None or future.done():
            return  # its waiter timed out and gave up
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result if result is not None else Payload())

    def _dispatch(self, request: Request) -> None:
        handler = self._handlers.get(type(request))
        if handler is None:
            self._conn.send_error(
                request.id, ErrorCode.UNKNOWN_TYPE, f"this agent does not handle {request.type_name()}"
            )
            return
        task = asyncio.create_task(self._answer(request, handler), name=f"steun-agent-{request.type_name()}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: Request, handler: Handler) -> None:
        try:
            result = await handler(request)
        except ServerRefused as exc:
            self._conn.send_error(request.id, exc.code, str(exc))
        except Exception:
            log.exception("handler for %s failed", request.type_name())
            self._conn.send_error(request.id, ErrorCode.INTERNAL, "the agent failed to handle the request")
        else:
            self._conn.send_result(request.id, result)
        if not self.closed:
            await self._flush()

    async def _flush(self) -> None:
        # One writer at a time and in queue order: request ids must reach the server increasing.
        async with self._send_lock:
            for data in self._conn.data_to_send():
                try:
                    await self._ws.send(data)
                except ConnectionClosed as exc:
                    self._finish(_closed_reason(exc))
                    return

    def _finish(self, reason: AgentError) -> None:
        if self._closed.is_set():
            return
        self._close_reason = reason
        self._closed.set()
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(reason)
                future.exception()  # mark retrieved: a waiter that timed out will never read it
        self._waiters.clear()

    def _reason(self) -> AgentError:
        return self._close_reason or ConnectionLost("the connection is closed")


async def _open(server_url: str, pin: bytes, config: AgentConfig) -> ClientConnection:
    """Connect with explicit limits; translate what can go wrong into the agent's errors."""
    url = agent_ws_url(server_url)
    try:
        return await websockets.connect(
            url,
            ssl=pinned_context(pin),
            proxy=None,
            compression=None,
            open_timeout=config.open_timeout,
            close_timeout=config.close_timeout,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            max_size=config.max_size,
            max_queue=config.max_queue,
            user_agent_header=SOFTWARE,
        )
    except PinMismatchSSLError as exc:
        raise PinMismatch(exc.expected, exc.seen) from None
    except InvalidStatus as exc:
        raise ConnectionLost(
            f"{url} answered HTTP {exc.response.status_code} instead of a websocket"
        ) from None
    except TimeoutError:
        raise ConnectionLost(f"{url} did not answer within {config.open_timeout:g} s") from None
    except ssl.SSLError as exc:
        raise ConnectionLost(f"TLS with {url} failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise ConnectionLost(f"cannot reach {url}: {exc.strerror or exc}") from None
    except WebSocketException as exc:
        raise ConnectionLost(f"websocket handshake with {url} failed: {exc}") from None


def _failure_reason(failed: ConnectionFailed) -> AgentError:
    if failed.by_peer:
        return ServerRefused(failed.code, failed.message, what="connection")
    return ConnectionLost(f"the server broke the protocol ({failed.code}: {failed.message})")


def _closed_reason(exc: ConnectionClosed) -> ConnectionLost:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return ConnectionLost("the connection dropped without a close frame")
    detail = f"code {frame.code}{', ' + frame.reason if frame.reason else ''}"
    by = "server" if exc.rcvd is not None else "agent"
    code = exc.rcvd.code if exc.rcvd is not None else None
    return ConnectionLost(f"the {by} closed the connection ({detail})", close_code=code)
