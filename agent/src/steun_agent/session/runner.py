"""One remote-support session on the agent: relay, handshake, consent, channels, stop.

The order never changes: the offer was verified by ``AgentHandshake.receive_offer`` (org key pin, expiry,
device) before this runs; then the relay websocket (same SPKI pin as the control connection, no Origin),
Accept → Reveal → Confirm (keys and SAS), then the user's consent, and only then screen, input, shell, files
and chat. Every incoming record is opened (any ``SessionError`` ends the session with that code) and checked
against ``broker.grants.allows`` for its channel's capability before anything acts on it. The shell, files
and chat services are made when their capability is first granted and closed (shells killed, transfers
ended) when the session stops. See docs/design/0100-agent-session-runtime.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
import websockets
from steun_protocol import ProtocolError
from steun_protocol.auth import b64decode
from steun_protocol.frames import Frame, FrameType, decode_frame, encode_frame
from steun_protocol.screen import INPUT_TYPES, MessageType, decode_from_console
from steun_protocol.session import (
    AgentHandshake,
    Capability,
    Record,
    RecordType,
    Reveal,
    SessionError,
    SessionOffer,
    record_layer,
)
from steun_protocol.sessionplane import (
    CHANNEL_CAPABILITY,
    AskMore,
    Channel,
    Granted,
    Refused,
    Stop,
    decode_control,
)
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from ..chat import ChatService
from ..consent import (
    AuditEvent,
    ConsentBroker,
    ConsentError,
    ConsentResult,
    ConsentSubject,
    Prompter,
    ordered,
)
from ..errors import ConnectionLost, PinMismatch
from ..files import FilesEvent, HashCache, files_service_for
from ..locallog import LocalLog
from ..policy import Mode, Policy
from ..shell import Account, AccountError, ShellEvent, ShellService
from ..tls import PinMismatchSSLError, peer_spki, pinned_context
from ..ui.base import IndicatorInfo, SessionIndicator, StopCallback
from .sender import Priority, PrioritySender, SendQueueFull

log = logging.getLogger(__name__)

#: A relay frame: 1 MiB of payload plus the 8-byte header.
MAX_RELAY_MESSAGE = 1024 * 1024 + 8
MAX_HANDSHAKE_JSON = 8 * 1024
#: Stop closes every channel within this bound (the promise made to the user).
STOP_BOUND = 1.0
#: Audit events of shells and transfers waiting for the control connection; more are dropped and counted.
MAX_PENDING_AUDIT = 256
#: How long the end of a session waits for those events to reach the server before its own stop event.
AUDIT_DRAIN_TIMEOUT = 5.0


class SessionUI(Prompter, Protocol):
    """What the runner needs of the agent's UI (``steun_agent.ui.AgentUI`` is one). A UI that also has
    ``async show_chat(chat, technician) -> window`` (with ``async close()``) gets the chat window."""

    async def show_indicator(
        self, info: IndicatorInfo, *, on_stop: StopCallback, revoke: StopCallback | None = None
    ) -> SessionIndicator: ...


class FilesLike(Protocol):
    """``FilesService`` in this process, or a proxy to one running as another account."""

    def feed(self, payload: bytes) -> None: ...

    async def close_all(self) -> None: ...


class ClosableWindow(Protocol):
    async def close(self) -> None: ...


Send = Callable[[bytes], Awaitable[None]]


class StreamerLike(Protocol):
    monitor: Any

    def handle(self, message: Any) -> None: ...

    async def run(self) -> None: ...


class DispatcherLike(Protocol):
    control: bool
    clipboard: bool

    def handle(self, message: Any) -> None: ...

    async def run(self) -> None: ...


#: Builds the screen streamer given its send coroutine (one message → one DATA record on SCREEN).
StreamerFactory = Callable[[Send], StreamerLike]
#: Builds the input dispatcher: (send for clipboard, origin of input coordinates, control, clipboard).
DispatcherFactory = Callable[[Send, Callable[[], tuple[int, int]], bool, bool], DispatcherLike]
#: Forwards one audit event (``session/event``) to the server; must not raise.
AuditSink = Callable[[str, str, list[Capability], str], Awaitable[None]]


@dataclass(slots=True)
class SessionSettings:
    server_url: str
    pin: bytes
    policy: Policy
    mode: Mode
    ui: SessionUI
    local_log: LocalLog | None = None
    streamer_factory: StreamerFactory | None = None
    dispatcher_factory: DispatcherFactory | None = None
    #: How long to wait for the console on the relay (its ticket lives 120 s).
    handshake_timeout: float = 120.0
    open_timeout: float = 15.0
    ping_interval: float = 20.0
    #: Where ``files`` is rooted; None: the home directory of the account files act as.
    files_root: str | None = None
    #: Whole-file hashes, kept across the agent's sessions so a resumed download announces its hash at once.
    hash_cache: HashCache = field(default_factory=HashCache)

    def account(self) -> Account:
        """The account shell and files act as: the agent's own (quick support, a user's agent), or in
        service mode the one the local policy names (``decide`` forbids both when it names none)."""
        if self.mode is Mode.SERVICE:
            if self.policy.shell_account is None:
                raise AccountError("the local policy names no shell_account for this service agent")
            return Account.named(self.policy.shell_account)
        return Account.current()


@dataclass(slots=True)
class SessionOutcome:
    """How a session ended: ``reason`` is a stable word (``denied``, ``user``, ``technician``, a SessionError
    code, ``relay_closed``, ...)."""

    reason: str = ""
    sas: str | None = None
    granted: frozenset[Capability] = frozenset()
    refused_records: int = 0
    events: list[str] = field(default_factory=list)


def json_detail(data: dict[str, Any]) -> str:
    """An audit event's detail: compact JSON within the wire's 4 KiB."""
    return msgspec.json.encode(data).decode()[:4096]


def relay_url(server_url: str, relay_path: str, ticket: str) -> str:
    parsed = urllib.parse.urlsplit(server_url)
    scheme = "ws" if parsed.scheme in ("http", "ws") else "wss"
    query = urllib.parse.urlencode({"ticket": ticket})
    path = parsed.path.rstrip("/") + relay_path  # under the server's base path, as /agent/ws is
    return urllib.parse.urlunsplit((scheme, parsed.netloc, path, query, ""))


async def open_relay(url: str, pin: bytes, *, open_timeout: float, ping_interval: float) -> ClientConnection:
    """The relay websocket with the control connection's pinned TLS context; no Origin header is sent."""
    try:
        ws = await websockets.connect(
            url,
            ssl=pinned_context(pin),
            proxy=None,
            compression=None,
            open_timeout=open_timeout,
            close_timeout=STOP_BOUND / 2,
            ping_interval=ping_interval,
            ping_timeout=ping_interval,
            max_size=MAX_RELAY_MESSAGE,
            max_queue=4,
        )
    except PinMismatchSSLError as exc:
        raise PinMismatch(exc.expected, exc.seen) from None
    except InvalidStatus as exc:
        raise ConnectionLost(f"the relay answered HTTP {exc.response.status_code}") from None
    except (TimeoutError, OSError, ssl.SSLError, WebSocketException) as exc:
        raise ConnectionLost(f"cannot join the relay: {exc}") from None
    seen = peer_spki(ws.transport.get_extra_info("ssl_object"))
    if seen is None or seen != pin:
        ws.transport.abort()
        raise PinMismatch(pin, seen)
    return ws


class _Ended(Exception):
    def __init__(self, reason: str, by: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.by = by
        self.detail = detail


class SessionRunner:
    """Runs one session from a verified offer to its end. ``run()`` returns a :class:`SessionOutcome`."""

    def __init__(
        self,
        handshake: AgentHandshake,
        accept_json: bytes,
        url: str,
        settings: SessionSettings,
        audit: AuditSink,
    ) -> None:
        if handshake.offer is None:
            raise ValueError("the runner needs a handshake that received a verified offer")
        self.handshake = handshake
        self.session_id = handshake.offer.session_id
        self._accept = accept_json
        self._url = url
        self.settings = settings
        self._audit = audit
        self.outcome = SessionOutcome()
        self.broker: ConsentBroker | None = None
        self._ws: ClientConnection | None = None
        self._sender: PrioritySender | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._streamer: StreamerLike | None = None
        self._dispatcher: DispatcherLike | None = None
        self._streamer_task: asyncio.Task[None] | None = None
        self._dispatcher_task: asyncio.Task[None] | None = None
        self._dispatcher_clipboard = False
        self._indicator: SessionIndicator | None = None
        self._end: asyncio.Future[_Ended] | None = None
        self._ask_task: asyncio.Task[None] | None = None
        self.established = asyncio.Event()
        self.shell: ShellService | None = None
        self.files: FilesLike | None = None
        self.chat: ChatService | None = None
        self.chat_window: ClosableWindow | None = None
        self._pending_audit: asyncio.Queue[tuple[str, list[Capability], str]] = asyncio.Queue(
            MAX_PENDING_AUDIT
        )
        self._audit_task: asyncio.Task[None] | None = None
        self.dropped_audit = 0

    # ------------------------------------------------------------------ public

    @property
    def ending(self) -> bool:
        """The session decided to end and is closing its channels (``run`` returns within seconds)."""
        return self._end is not None and self._end.done()

    def stop(self, by: str = "agent", reason: str = "stopped") -> None:
        """End the session from outside (control connection lost, agent shutting down)."""
        if self.broker is not None:
            self.broker.revoke()
        self._finish(_Ended(reason, by))

    async def run(self) -> SessionOutcome:
        loop = asyncio.get_running_loop()
        self._end = loop.create_future()
        try:
            ended = await self._run()
        except _Ended as exc:
            ended = exc
        except SessionError as exc:
            ended = _Ended(exc.code, "error", str(exc))
        except (ConnectionLost, PinMismatch) as exc:
            ended = _Ended("relay_unreachable", "error", str(exc))
        except ConnectionClosed:
            ended = _Ended("relay_closed", "error", "the relay connection closed")
        except TimeoutError:
            ended = _Ended("handshake_timeout", "error", "the console did not complete the handshake in time")
        await self._shutdown(ended)
        return self.outcome

    # ------------------------------------------------------------------ phases

    async def _run(self) -> _Ended:
        s = self.settings
        self._ws = ws = await open_relay(
            self._url, s.pin, open_timeout=s.open_timeout, ping_interval=s.ping_interval
        )
        async with asyncio.timeout(s.handshake_timeout):
            await ws.send(encode_frame(Frame(FrameType.DATA, Channel.CONTROL, self._accept)))
            reveal = await self._receive_reveal(ws)
        confirm, keys = self.handshake.receive_reveal(reveal)
        await ws.send(encode_frame(Frame(FrameType.DATA, Channel.CONTROL, msgspec.json.encode(confirm))))
        self.outcome.sas = keys.sas
        sealer, opener = record_layer(keys, b64decode(self.session_id, size=16), "agent")
        self._sender = PrioritySender(sealer, ws.send)
        self._spawn(self._sender.run(), "sender")
        broker = self.broker = ConsentBroker(
            ConsentSubject.from_handshake(self.handshake),
            policy=s.policy,
            mode=s.mode,
            prompter=s.ui,
            local_log=s.local_log,
        )
        self._spawn(self._read(ws, opener), "reader")
        self.established.set()
        consent = asyncio.ensure_future(broker.start())
        assert self._end is not None
        waiters: set[asyncio.Future[Any]] = {consent, self._end}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if self._end.done():
            consent.cancel()
            return self._end.result()
        result = consent.result()
        self._start_services()  # before the console hears: its first shell record may follow at once
        self._send_granted(result)  # the console hears first; the audit may take a round trip
        await self._forward(result.events)
        if not result.ok:
            return _Ended("denied" if result.status == "denied" else "expired", "user", result.reason)
        self._indicator = await s.ui.show_indicator(
            IndicatorInfo(
                broker.subject.org_name,
                broker.subject.technician,
                ordered(broker.grants.granted),
                time.monotonic(),
            ),
            on_stop=lambda: self._finish(_Ended("user", "user")),
            revoke=broker.revoke,
        )
        self._start_channels()
        return await self._end

    async def _receive_reveal(self, ws: ClientConnection) -> Reveal:
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                raise SessionError("handshake_failed", "text on the relay")
            frame = decode_frame(message)
            if frame.type is FrameType.CREDIT:
                continue
            if frame.type is FrameType.CLOSE:
                raise _Ended("peer_closed", "technician", frame.payload.decode(errors="replace"))
            if frame.type is not FrameType.DATA or frame.channel != Channel.CONTROL:
                raise SessionError("handshake_failed", "a record before the handshake completed")
            if len(frame.payload) > MAX_HANDSHAKE_JSON:
                raise SessionError("handshake_failed", "handshake message too large")
            try:
                return msgspec.json.decode(frame.payload, type=Reveal, strict=True)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise SessionError("handshake_failed", f"reveal: {exc}") from None

    # ------------------------------------------------------------------ records in

    async def _read(self, ws: ClientConnection, opener: Any) -> None:
        try:
            async for message in ws:
                if isinstance(message, str):
                    raise SessionError("record_invalid", "text on the relay")
                try:
                    frame = decode_frame(message)
                except ProtocolError as exc:
                    raise SessionError("record_invalid", str(exc)) from None
                if frame.type is FrameType.CREDIT:
                    continue
                if frame.type is FrameType.CLOSE:
                    self._finish(_Ended("peer_closed", "technician", frame.payload.decode(errors="replace")))
                    return
                if frame.type is not FrameType.SEALED:
                    raise SessionError("record_invalid", "plaintext data after the handshake")
                record = opener.open(frame.payload)
                self._on_record(record)
        except SessionError as exc:
            self._finish(_Ended(exc.code, "error", str(exc)))
            return
        except ConnectionClosed:
            pass
        self._finish(_Ended("relay_closed", "error", "the relay connection closed"))

    def _on_record(self, record: Record) -> None:
        broker = self.broker
        assert broker is not None
        if record.type is RecordType.CLOSE:
            self._finish(_Ended("technician", "technician", record.payload[:256].decode(errors="replace")))
            return
        try:
            channel = Channel(record.channel)
        except ValueError:
            self._refuse(record.channel, "unknown_channel")
            return
        needed = CHANNEL_CAPABILITY[channel]
        if channel is Channel.CONTROL:
            if record.type is not RecordType.CONTROL:
                self._refuse(record.channel, "invalid")
                return
            self._on_control(record.payload)
            return
        if needed is None or not broker.grants.allows(needed):
            self._refuse(record.channel, "not_granted")
            return
        if record.type is not RecordType.DATA:
            self._refuse(record.channel, "invalid")
            return
        if channel in (Channel.SHELL, Channel.FILES, Channel.CHAT):
            service = {Channel.SHELL: self.shell, Channel.FILES: self.files, Channel.CHAT: self.chat}[channel]
            if service is None:  # granted, but it could not be made (no account, ...)
                self._refuse(record.channel, "unavailable")
                return
            try:
                service.feed(record.payload)
            except ProtocolError:
                self._refuse(record.channel, "invalid")
            return
        try:
            message = decode_from_console(record.payload)
        except ProtocolError:
            self._refuse(record.channel, "invalid")
            return
        kind = message.type
        screen = kind not in INPUT_TYPES and kind is not MessageType.CLIPBOARD
        if channel is Channel.SCREEN and screen and self._streamer is not None:
            self._streamer.handle(message)
            return
        dispatcher = self._dispatcher
        is_input = channel is Channel.INPUT and kind in INPUT_TYPES
        is_clip = channel is Channel.CLIPBOARD and kind is MessageType.CLIPBOARD
        if dispatcher is not None and (is_input or is_clip):
            dispatcher.handle(message)
            return
        self._refuse(record.channel, "unsupported")

    def _on_control(self, payload: bytes) -> None:
        try:
            message = decode_control(payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            self._refuse(Channel.CONTROL, "invalid")
            return
        if isinstance(message, Stop):
            self._finish(_Ended("technician", "technician", message.reason))
        elif isinstance(message, AskMore):
            if self._ask_task is not None and not self._ask_task.done():
                self._refuse(Channel.CONTROL, "busy")
                return
            self._ask_task = self._spawn(self._ask_more(message), "ask-more")
        # Granted / Refused are the agent's to send; from the console they mean nothing.

    async def _ask_more(self, message: AskMore) -> None:
        broker = self.broker
        assert broker is not None
        if not broker.started:
            self._refuse(Channel.CONTROL, "not_started")
            return
        capabilities = list(message.capabilities)
        offer: SessionOffer | None = None
        if message.offer is not None:
            # only the pinned org key vouches for more; the server merely re-signed what its roles allow
            try:
                offer = self.handshake.open_newer_offer(message.offer, now=time.time())
            except SessionError as exc:
                self._refuse(Channel.CONTROL, "offer_invalid")
                self.outcome.events.append("session.refused")
                await self._audit(
                    "session.refused", self.session_id, capabilities, f"offer_invalid: {exc}"[:4096]
                )
                return
        try:
            result = await broker.request_more(capabilities, offer=offer)
        except ConsentError as exc:
            self._refuse(Channel.CONTROL, "offer_invalid")
            self.outcome.events.append("session.refused")
            await self._audit(
                "session.refused", self.session_id, capabilities, f"offer_invalid: {exc}"[:4096]
            )
            return
        self._start_services()
        self._send_granted(result)
        if self._indicator is not None:
            self._indicator.update(ordered(broker.grants.granted))
        self._start_channels()
        await self._forward(result.events)

    def _refuse(self, channel: int, reason: str) -> None:
        self.outcome.refused_records += 1
        self._control(Refused(channel=channel, reason=reason))

    # ------------------------------------------------------------------ records out

    def _control(self, message: Granted | Refused | Stop) -> None:
        sender = self._sender
        if sender is None or sender.closed:
            return
        try:
            sender.send_nowait(Channel.CONTROL, RecordType.CONTROL, msgspec.json.encode(message))
        except SendQueueFull as exc:
            self._finish(_Ended("overloaded", "error", str(exc)))

    def _send_granted(self, result: ConsentResult) -> None:
        broker = self.broker
        assert broker is not None
        self.outcome.granted = broker.grants.granted
        self._control(
            Granted(capabilities=list(ordered(broker.grants.granted)), denied=list(ordered(result.refused)))
        )

    async def _send_screen(self, payload: bytes) -> None:
        assert self._sender is not None
        await self._sender.send_screen(Channel.SCREEN, payload)

    async def _send_clipboard(self, payload: bytes) -> None:
        sender = self._sender
        assert sender is not None
        broker = self.broker
        if broker is None or not broker.grants.allows(Capability.CLIPBOARD):
            return
        with contextlib.suppress(SendQueueFull):
            await sender.send_nowait(Channel.CLIPBOARD, RecordType.DATA, payload, Priority.INPUT)

    def _start_channels(self) -> None:
        broker = self.broker
        assert broker is not None
        grants = broker.grants
        s = self.settings
        if grants.allows(Capability.VIEW) and self._streamer is None and s.streamer_factory is not None:
            self._streamer = s.streamer_factory(self._send_screen)
            self._streamer_task = self._spawn(self._streamer.run(), "screen")
        control, clip = grants.allows(Capability.CONTROL), grants.allows(Capability.CLIPBOARD)
        if (
            clip
            and self._dispatcher is not None
            and not self._dispatcher_clipboard
            and s.dispatcher_factory is not None
        ):
            # made without a clipboard backend (control only): a new one with it, the old one ends
            if self._dispatcher_task is not None:
                self._dispatcher_task.cancel()
            self._dispatcher = self._dispatcher_task = None
        if (control or clip) and self._dispatcher is None and s.dispatcher_factory is not None:
            self._dispatcher = s.dispatcher_factory(self._send_clipboard, self._origin, control, clip)
            self._dispatcher_clipboard = clip  # made with a clipboard backend
            self._dispatcher_task = self._spawn(self._dispatcher.run(), "input")
        elif self._dispatcher is not None:
            self._dispatcher.control, self._dispatcher.clipboard = control, clip

    def _start_services(self) -> None:
        """Shell, files and chat on their first grant. A revoked capability's records are refused from then
        on (the grant check comes first); its service lives until the session ends."""
        broker = self.broker
        assert broker is not None
        grants, s = broker.grants, self.settings
        if grants.allows(Capability.SHELL) and self.shell is None:
            self.shell = ShellService(
                self._sender_for(Channel.SHELL, Priority.INPUT), s.account, on_event=self._shell_event
            )
        if grants.allows(Capability.FILES) and self.files is None:
            try:
                self.files = self._make_files()
            except (AccountError, OSError, ValueError) as exc:
                log.warning("files unavailable in session %s: %s", self.session_id, exc)
                self._audit_later("files.failed", [Capability.FILES], json_detail({"reason": str(exc)}))
        if grants.allows(Capability.CHAT) and self.chat is None:
            language = getattr(s.ui, "language", None)
            self.chat = ChatService(
                self._sender_for(Channel.CHAT, Priority.INPUT),
                language=language if language in ("en", "nl", "fr") else "en",
            )
            show_chat = getattr(s.ui, "show_chat", None)
            if show_chat is not None:
                self._spawn(self._show_chat(show_chat, self.chat), "chat-window")

    def _make_files(self) -> FilesLike:
        s = self.settings
        account = s.account()
        root = s.files_root or account.home
        send = self._sender_for(Channel.FILES, Priority.BULK)
        # in this process for the agent's own account; a worker process dropped to any other account
        return files_service_for(account, send, root, on_event=self._files_event, hash_cache=s.hash_cache)

    async def _show_chat(
        self, show_chat: Callable[..., Awaitable[ClosableWindow]], chat: ChatService
    ) -> None:
        broker = self.broker
        technician = broker.subject.technician.name if broker is not None else ""
        self.chat_window = await show_chat(chat, technician)

    def _sender_for(self, channel: Channel, priority: Priority) -> Send:
        """One service's send: a DATA record on its channel, returning once written (the backpressure)."""

        async def send(payload: bytes) -> None:
            sender = self._sender
            assert sender is not None
            await sender.send_waiting(channel, payload, priority)

        return send

    def _shell_event(self, event: ShellEvent) -> None:
        detail = {
            "shell": event.shell,
            "account": event.account,
            "command": event.command[:1024],
            "pid": event.pid,
            "status": event.status,
            "signal": event.signal,
            "reason": event.reason,
        }
        self._audit_later(event.name, [Capability.SHELL], json_detail(detail))

    def _files_event(self, event: FilesEvent) -> None:
        detail = {
            "path": event.path[:1024],
            "size": event.size,
            "transferred": event.transferred,
            "result": event.result,
            "sha256": event.sha256,
        }
        if event.target:  # a rename's new path
            detail["target"] = event.target[:1024]
        self._audit_later(event.name, [Capability.FILES], json_detail(detail))

    def _audit_later(self, event: str, capabilities: list[Capability], detail: str) -> None:
        """Queue an audit event for the server, in order; never blocks the service that reports it."""
        self.outcome.events.append(event)
        try:
            self._pending_audit.put_nowait((event, capabilities, detail))
        except asyncio.QueueFull:
            self.dropped_audit += 1
            log.warning("audit queue full in session %s: %s dropped", self.session_id, event)
            return
        if self._audit_task is None:
            self._audit_task = asyncio.create_task(self._drain_audit(), name="steun-session-audit")

    async def _drain_audit(self) -> None:
        while True:
            event, capabilities, detail = await self._pending_audit.get()
            try:
                await self._audit(event, self.session_id, capabilities, detail)
            except Exception:
                log.exception("audit %s failed", event)
            finally:
                self._pending_audit.task_done()

    def _origin(self) -> tuple[int, int]:
        monitor = self._streamer.monitor if self._streamer is not None else None
        return (monitor.x, monitor.y) if monitor is not None else (0, 0)

    # ------------------------------------------------------------------ ending

    def _finish(self, ended: _Ended) -> None:
        if self.broker is not None:
            self.broker.revoke()  # at once: nothing is acted on from here
        if self._end is not None and not self._end.done():
            self._end.set_result(ended)

    async def _forward(self, events: tuple[AuditEvent, ...]) -> None:
        for event in events:
            self.outcome.events.append(event.event)
            data = dict(event.data)
            caps = data.get("capabilities", data.get("requested", []))
            capabilities = [Capability(c) for c in caps if c in Capability._value2member_map_]
            detail = msgspec.json.encode({k: v for k, v in data.items() if k != "capabilities"})
            await self._audit(event.event, self.session_id, capabilities, detail.decode()[:4096])

    async def _shutdown(self, ended: _Ended) -> None:
        """Close every channel within STOP_BOUND, then record the stop (UI and audit may take longer)."""
        self.outcome.reason = ended.reason
        broker = self.broker
        if broker is not None:
            broker.revoke()
        deadline = asyncio.get_running_loop().time() + STOP_BOUND
        for task in (self._streamer_task, self._dispatcher_task, self._ask_task):
            if task is not None:
                task.cancel()
        # shells get SIGKILL, transfers end, chat closes: at once, whatever the relay does next
        services = [svc.close_all() for svc in (self.shell, self.files, self.chat) if svc is not None]
        closing = asyncio.ensure_future(asyncio.gather(*services, return_exceptions=True))
        sender, ws = self._sender, self._ws
        if sender is not None and not sender.closed and ws is not None:
            with contextlib.suppress(Exception):
                sender.send_nowait(
                    Channel.CONTROL, RecordType.CONTROL, msgspec.json.encode(Stop(reason=ended.reason))
                )
                last = sender.send_nowait(Channel.CONTROL, RecordType.CLOSE, ended.reason.encode()[:256])
                loop = asyncio.get_running_loop()
                # wait() never raises, also not when the writer failed and cancelled the record
                await asyncio.wait({last}, timeout=max(0.0, deadline - 0.4 - loop.time()))
        if sender is not None:
            sender.close()
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout_at(deadline - 0.3):
                    await ws.send(encode_frame(Frame(FrameType.CLOSE, 0, ended.reason.encode()[:256])))
            with contextlib.suppress(Exception):
                async with asyncio.timeout_at(deadline):
                    await ws.close(1000, ended.reason[:100])
            if ws.state is not websockets.State.CLOSED:
                ws.transport.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(closing)
        if not closing.done():
            log.warning("session %s: channels still closing after %.1f s", self.session_id, STOP_BOUND)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await closing  # close_all is bounded by each service (SIGKILL, task cancellation)
        if self._audit_task is not None:  # shell.end and transfers before session.stop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(AUDIT_DRAIN_TIMEOUT):
                    await self._pending_audit.join()
            self._audit_task.cancel()
            await asyncio.gather(self._audit_task, return_exceptions=True)
        if broker is not None:
            by = ended.by if ended.by in ("user", "technician", "error", "agent", "server") else "agent"
            await self._forward(await broker.stop(by=by, detail=f"{ended.reason}: {ended.detail}"[:256]))
        elif ended.reason not in ("",):
            await self._audit(
                "session.refused", self.session_id, [], f"{ended.reason}: {ended.detail}"[:4096]
            )
            self.outcome.events.append("session.refused")
        if self._indicator is not None:
            with contextlib.suppress(Exception):
                await self._indicator.close()
        # the chat window stays open, read-only (it heard `closed`), until the user closes it

    def _spawn(self, coro: Any, what: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(self._guard(coro, what), name=f"steun-session-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, coro: Any, what: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except ConnectionClosed:
            self._finish(_Ended("relay_closed", "error", "the relay connection closed"))
        except SessionError as exc:
            self._finish(_Ended(exc.code, "error", str(exc)))
        except Exception as exc:
            log.exception("session %s failed", what)
            if what in ("screen", "input"):
                return  # the session goes on without it (the console sees no frames / its input refused)
            self._finish(_Ended(f"{what}_failed", "error", str(exc)))
