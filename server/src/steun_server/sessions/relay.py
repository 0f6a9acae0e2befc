"""The relay (``/relay/ws?ticket=…``): pairs the console's and the agent's websocket of a session and forwards
binary frames between them, verbatim. It holds no session key and decodes nothing but the 8-byte frame header.

Each side joins with a single-use ticket bound to one session and one side. The console side must also carry
the server's ``Origin`` and the signed-in technician's session (checked by the ``authorize_console`` callback
the server hands in); the agent side must carry no ``Origin`` at all. The relay itself knows nothing of users,
devices or the database, so the same code can run on a relay node of its own (see docs/design/0082-relay.md).

Flow control is the sockets' own: each direction is one loop that reads a frame from one side and awaits its
send to the other, so a slow reader stops the reads from its peer (TCP backpressure) instead of filling a
buffer. The two directions are independent: input from the console never waits behind screen frames going the
other way. Before the partner arrives a side is read up to one frame, which then waits; nothing is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import hashlib
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, hdrs, web
from steun_protocol.frames import HEADER, HEADER_SIZE, MAX_PAYLOAD, FrameType
from steun_protocol.limits import MAX_FRAME_PAYLOAD

log = logging.getLogger(__name__)

RELAY_PATH = "/relay/ws"
#: Largest websocket message: one frame of the largest payload and its header.
MAX_MESSAGE = MAX_FRAME_PAYLOAD + HEADER_SIZE
#: Websocket ping interval on relay sockets (the protocol's 20 s); a peer that does not answer is dropped.
PING_INTERVAL = 20.0
#: How long closing one socket may take (close frame out, close frame back) before the transport is cut.
CLOSE_GRACE = 1.0
#: Tickets are 32 random bytes, base64url; anything else is refused before a lookup.
TICKET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
#: Live tickets one relay holds at most; spent ones it remembers (to say "used" or "expired") at most.
MAX_TICKETS = 20_000
REMEMBER_SPENT = 20_000

# Close codes sent to relay sockets.
CLOSE_NORMAL = 1000  # the session ended: the other side left, sent CLOSE, or the technician stopped it
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_PROTOCOL = 1002  # this side sent something that is not a frame
CLOSE_UNSUPPORTED = 1003  # this side sent a text message
CLOSE_TOO_BIG = 1009  # a frame over its type's cap
CLOSE_NO_PARTNER = 4408  # the other side did not join within the ticket's lifetime


class Side(enum.StrEnum):
    CONSOLE = "console"
    AGENT = "agent"

    @property
    def other(self) -> Side:
        return Side.AGENT if self is Side.CONSOLE else Side.CONSOLE


class Direction(enum.StrEnum):
    CONSOLE_TO_AGENT = "console_to_agent"
    AGENT_TO_CONSOLE = "agent_to_console"

    @classmethod
    def sent_by(cls, side: Side) -> Direction:
        return cls.CONSOLE_TO_AGENT if side is Side.CONSOLE else cls.AGENT_TO_CONSOLE


#: Test hook: sees every message forwarded (session id, direction, the exact bytes).
Tap = Callable[[str, Direction, bytes], None]
#: Test hook: a hostile relay. Returns what to forward instead of the message (none, it, several, others).
Tamper = Callable[[str, Direction, bytes], list[bytes]]


class RelayRefused(Exception):
    """A join refused before the websocket upgrade; answered as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class TicketGrant:
    """What a ticket lets its holder do: join ``session_id`` as ``side``; ``subject``: who it is for."""

    session_id: str
    side: Side
    subject: str
    #: ``time.monotonic()`` after which the ticket is void (and an unpaired side is closed)
    expires_at: float


class TicketBook:
    """Single-use relay tickets in memory, stored as SHA-256 of the ticket (one node).

    Several nodes would keep the same records in Redis (``SET NX`` on claim), or the server would mint
    self-contained tickets (session, side, expiry under an HMAC the relay nodes share) and the relay would
    keep only the claimed ones; either way :class:`Relay` needs only ``peek``, ``claim`` and ``revoke``.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_tickets: int = MAX_TICKETS
    ) -> None:
        self._clock = clock
        self.max_tickets = max_tickets
        self._live: dict[str, TicketGrant] = {}
        self._spent: OrderedDict[str, str] = OrderedDict()  # digest → "used" | "expired" | "revoked"
        self.issued = 0
        self.claimed = 0

    @staticmethod
    def _digest(ticket: str) -> str:
        return hashlib.sha256(ticket.encode("ascii", "replace")).hexdigest()

    def issue(self, session_id: str, side: Side, subject: str, *, expires_at: float) -> str:
        self._purge()
        if len(self._live) >= self.max_tickets:
            raise RelayRefused(503, "overloaded", "too many relay tickets outstanding")
        ticket = secrets.token_urlsafe(32)
        self._live[self._digest(ticket)] = TicketGrant(session_id, side, subject, expires_at)
        self.issued += 1
        return ticket

    def peek(self, ticket: str) -> TicketGrant:
        """The grant of a live ticket, without using it up; raises :class:`RelayRefused`."""
        digest = self._digest(ticket)
        grant = self._live.get(digest)
        if grant is not None and self._clock() >= grant.expires_at:
            self._spend(digest, "expired")
            grant = None
        if grant is not None:
            return grant
        reason = self._spent.get(digest)
        if reason == "used":
            raise RelayRefused(403, "ticket_used", "this relay ticket was used already (they are single use)")
        if reason in ("expired", "revoked"):
            raise RelayRefused(403, "ticket_expired", "this relay ticket has expired or its session ended")
        raise RelayRefused(403, "ticket_invalid", "this relay ticket is not known")

    def claim(self, ticket: str) -> TicketGrant:
        """Use a ticket up (once, ever); raises :class:`RelayRefused` like :meth:`peek`."""
        grant = self.peek(ticket)
        self._spend(self._digest(ticket), "used")
        self.claimed += 1
        return grant

    def revoke(self, session_id: str) -> int:
        """Void every unused ticket of a session (it was stopped or it ended)."""
        digests = [d for d, g in self._live.items() if g.session_id == session_id]
        for digest in digests:
            self._spend(digest, "revoked")
        return len(digests)

    def _spend(self, digest: str, reason: str) -> None:
        self._live.pop(digest, None)
        self._spent[digest] = reason
        self._spent.move_to_end(digest)
        while len(self._spent) > REMEMBER_SPENT:
            self._spent.popitem(last=False)

    def _purge(self) -> None:
        now = self._clock()
        for digest in [d for d, g in self._live.items() if now >= g.expires_at]:
            self._spend(digest, "expired")

    def statistics(self) -> dict[str, int]:
        return {"live": len(self._live), "issued": self.issued, "claimed": self.claimed}


@dataclasses.dataclass(slots=True)
class DirectionStatistics:
    frames: int = 0
    bytes: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class RelayClosed:
    """How a relay session ended (given to ``on_closed``)."""

    session_id: str
    paired: bool
    reason: str
    duration: float
    console_to_agent: DirectionStatistics
    agent_to_console: DirectionStatistics


class _BadFrame(Exception):
    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


def check_frame(data: bytes) -> FrameType:
    """Read only the 8-byte header: a known type, a length that matches and is within the type's cap."""
    if len(data) < HEADER_SIZE:
        raise _BadFrame(CLOSE_PROTOCOL, "frame shorter than its header")
    type_byte, _flags, _channel, length = HEADER.unpack_from(data)
    try:
        frame_type = FrameType(type_byte)
    except ValueError:
        raise _BadFrame(CLOSE_PROTOCOL, f"unknown frame type 0x{type_byte:02x}") from None
    if length > MAX_PAYLOAD[frame_type]:
        raise _BadFrame(CLOSE_TOO_BIG, f"{frame_type.name} frame over its cap")
    if length != len(data) - HEADER_SIZE:
        raise _BadFrame(CLOSE_PROTOCOL, "frame length does not match its payload")
    return frame_type


class RelaySession:
    """The two sockets of one session and what went through them."""

    def __init__(self, session_id: str, *, expires_at: float) -> None:
        self.session_id = session_id
        self.expires_at = expires_at
        self.sockets: dict[Side, web.WebSocketResponse] = {}
        self.transports: dict[Side, asyncio.BaseTransport] = {}
        self.stats = {d: DirectionStatistics() for d in Direction}
        self.opened_at = time.monotonic()
        self.paired_at: float | None = None
        self.closing = False
        self.reason = ""
        #: set once: when both sides are in, or when the session starts closing
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def paired(self) -> bool:
        return self.paired_at is not None

    def attach(self, side: Side, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self.sockets[side] = ws
        if transport is not None:
            self.transports[side] = transport
        if len(self.sockets) == 2:
            self.paired_at = time.monotonic()
            if self._deadline is not None:
                self._deadline.cancel()
            self._changed.set()

    async def wait_partner(self, side: Side) -> web.WebSocketResponse | None:
        """The other side's socket once it has joined; None when the session closed first."""
        if not self.paired and not self.closing:
            await self._changed.wait()
        return None if self.closing else self.sockets.get(side.other)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def statistics(self) -> dict[str, Any]:
        return {
            "paired": self.paired,
            "sides": sorted(str(s) for s in self.sockets),
            "age": time.monotonic() - self.opened_at,
            **{str(d): dataclasses.asdict(s) for d, s in self.stats.items()},
        }


class Relay:
    """Sessions waiting for or joined by their two sides. One per process (``SessionService.relay``)."""

    def __init__(
        self,
        *,
        allowed_origins: frozenset[str],
        authorize_console: Callable[[web.Request, TicketGrant], Awaitable[None]],
        on_closed: Callable[[RelayClosed], None] | None = None,
        tickets: TicketBook | None = None,
        ping_interval: float = PING_INTERVAL,
        close_grace: float = CLOSE_GRACE,
    ) -> None:
        self.tickets = tickets or TicketBook()
        self.allowed_origins = allowed_origins
        self._authorize_console = authorize_console
        self._on_closed = on_closed
        self.ping_interval = ping_interval
        self.close_grace = close_grace
        #: Test hooks (None in production): see every forwarded message; or replace it (a hostile relay).
        self.tap: Tap | None = None
        self.tamper: Tamper | None = None
        self._sessions: dict[str, RelaySession] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._totals = {d: DirectionStatistics() for d in Direction}
        self._refused = 0
        self._ended = 0

    # -- the server's side ----------------------------------------------------------------------------------

    def open(self, session_id: str, *, console: str, agent: str, ttl: float) -> tuple[str, str]:
        """Make the two single-use tickets of a new session (console's, agent's), valid for ``ttl`` seconds.

        ``console`` and ``agent`` name who each ticket is for (``authorize_console`` checks the first). A side
        that is still alone when the tickets expire is closed (``4408``).
        """
        if session_id in self._sessions:
            raise ValueError(f"relay session {session_id} exists already")
        expires_at = time.monotonic() + ttl
        session = RelaySession(session_id, expires_at=expires_at)
        console_ticket = self.tickets.issue(session_id, Side.CONSOLE, console, expires_at=expires_at)
        agent_ticket = self.tickets.issue(session_id, Side.AGENT, agent, expires_at=expires_at)
        self._sessions[session_id] = session
        session._deadline = asyncio.get_running_loop().call_later(ttl, self._deadline_passed, session)
        return console_ticket, agent_ticket

    def _deadline_passed(self, session: RelaySession) -> None:
        if not session.paired and not session.closing:
            self._spawn(self._close(session, "no_partner", CLOSE_NO_PARTNER))

    async def close_session(self, session_id: str, reason: str = "stopped") -> bool:
        """End a session: void its tickets and close both sides (each within ``close_grace``)."""
        self.tickets.revoke(session_id)
        session = self._sessions.get(session_id)
        if session is None:
            return False
        await self._close(session, reason, CLOSE_NORMAL)
        return True

    async def close_all(self, reason: str = "server shutting down") -> None:
        sessions = list(self._sessions.values())
        await asyncio.gather(
            *(self._close(s, reason, CLOSE_GOING_AWAY) for s in sessions), return_exceptions=True
        )

    async def stop(self) -> None:
        await self.close_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def session_statistics(self, session_id: str) -> dict[str, Any] | None:
        session = self._sessions.get(session_id)
        return session.statistics() if session is not None else None

    def statistics(self) -> dict[str, Any]:
        sessions = list(self._sessions.values())
        return {
            "sessions": len(sessions),
            "paired": sum(1 for s in sessions if s.paired),
            "waiting": sum(1 for s in sessions if not s.paired),
            "ended": self._ended,
            "refused": self._refused,
            "tickets": self.tickets.statistics(),
            **{str(d): dataclasses.asdict(s) for d, s in self._totals.items()},
            "per_session": {s.session_id: s.statistics() for s in sessions},
        }

    # -- the websocket ------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /relay/ws?ticket=…``: check the ticket and the side's rules, upgrade, pair, forward."""
        try:
            session, side = await self._admit(request)
        except RelayRefused as exc:
            self._refused += 1
            return web.json_response({"error": {"code": exc.code, "message": exc.message}}, status=exc.status)
        ws = web.WebSocketResponse(
            # aiohttp refuses a message of exactly max_msg_size bytes: one more lets a full frame through
            max_msg_size=MAX_MESSAGE + 1,
            compress=False,
            heartbeat=self.ping_interval,
            autoping=True,
            timeout=self.close_grace,
        )
        await ws.prepare(request)
        if session.closing:
            await self._close_ws(ws, CLOSE_NORMAL, session.reason or "ended")
            return ws
        session.attach(side, ws, request.transport)
        try:
            await self._pump(session, side, ws)
        finally:
            # stay until the closing handshakes are done: aiohttp drops the connection when the handler
            # returns, and a peer still answering our close frame would see 1006 instead of our code
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2 * self.close_grace + 1):
                    await session.wait_closed()
            if not ws.closed:
                await self._close_ws(ws, CLOSE_NORMAL, session.reason or "ended")
        return ws

    async def _admit(self, request: web.Request) -> tuple[RelaySession, Side]:
        ticket = request.query.get("ticket", "")
        if not ticket:
            raise RelayRefused(401, "unauthorized", "the relay needs a ticket (?ticket=…)")
        if not TICKET_PATTERN.fullmatch(ticket):
            raise RelayRefused(403, "ticket_invalid", "this is not a relay ticket")
        if not web.WebSocketResponse().can_prepare(request).ok:
            raise RelayRefused(400, "invalid_request", "the relay speaks websocket only")
        grant = self.tickets.peek(ticket)
        origin = request.headers.get(hdrs.ORIGIN)
        if grant.side is Side.AGENT:
            if origin is not None:
                raise RelayRefused(403, "origin_refused", "the agent side of the relay is not for browsers")
        else:
            if origin is None or origin.lower().rstrip("/") not in self.allowed_origins:
                raise RelayRefused(403, "origin_refused", "requests from this origin are refused")
            await self._authorize_console(request, grant)
        grant = self.tickets.claim(ticket)  # after the awaits: of two racing joins, one gets in
        session = self._sessions.get(grant.session_id)
        if session is None or session.closing:
            raise RelayRefused(403, "ticket_expired", "this session has ended")
        return session, grant.side

    async def _pump(self, session: RelaySession, side: Side, ws: web.WebSocketResponse) -> None:
        """Read one side, forward to the other, until either goes or breaks the rules."""
        direction = Direction.sent_by(side)
        own_code, reason = CLOSE_NORMAL, f"{side}_closed"
        try:
            while True:
                message = await ws.receive()
                if message.type is WSMsgType.BINARY:
                    data: bytes = message.data
                    frame_type = check_frame(data)
                    partner = await session.wait_partner(side)
                    if partner is None:
                        return
                    if not await self._forward(session, direction, partner, data):
                        reason = f"{side.other}_closed"
                        return
                    if frame_type is FrameType.CLOSE:
                        reason = f"{side}_sent_close"
                        return
                elif message.type is WSMsgType.TEXT:
                    own_code, reason = CLOSE_UNSUPPORTED, f"{side}_sent_text"
                    return
                else:
                    if message.type is WSMsgType.ERROR:
                        reason = f"{side}_error"  # e.g. over max_msg_size: aiohttp has closed it (1009)
                    return
        except _BadFrame as exc:
            own_code, reason = exc.close_code, f"{side}_bad_frame"
            log.info("relay session %s: %s sent a bad frame (%s)", session.session_id, side, exc.reason)
        finally:
            if not session.closing:
                await self._close(session, reason, CLOSE_NORMAL, offender=(side, own_code))

    async def _forward(
        self, session: RelaySession, direction: Direction, partner: web.WebSocketResponse, data: bytes
    ) -> bool:
        if self.tap is not None:
            self.tap(session.session_id, direction, data)
        out = [data] if self.tamper is None else self.tamper(session.session_id, direction, data)
        try:
            for item in out:
                await partner.send_bytes(item)  # awaited: a slow reader holds this direction back
        except (ConnectionError, RuntimeError):
            return False
        stats, total = session.stats[direction], self._totals[direction]
        stats.frames += 1
        stats.bytes += len(data)
        total.frames += 1
        total.bytes += len(data)
        return True

    # -- closing ------------------------------------------------------------------------------------------

    async def _close(
        self, session: RelaySession, reason: str, code: int, *, offender: tuple[Side, int] | None = None
    ) -> None:
        """Close every socket of the session (the offender with its own code), once; report how it went."""
        if session.closing:
            await session.wait_closed()
            return
        session.closing = True
        session.reason = reason
        if session._deadline is not None:
            session._deadline.cancel()
        session._changed.set()
        self.tickets.revoke(session.session_id)
        closes = []
        for side, ws in list(session.sockets.items()):
            side_code = offender[1] if offender is not None and offender[0] is side else code
            closes.append(self._close_ws(ws, side_code, reason, session.transports.get(side)))
        try:
            await asyncio.gather(*closes)
        finally:
            self._sessions.pop(session.session_id, None)
            self._ended += 1
            session._closed.set()
            if self._on_closed is not None:
                ended = RelayClosed(
                    session_id=session.session_id,
                    paired=session.paired,
                    reason=reason,
                    duration=time.monotonic() - (session.paired_at or session.opened_at),
                    console_to_agent=session.stats[Direction.CONSOLE_TO_AGENT],
                    agent_to_console=session.stats[Direction.AGENT_TO_CONSOLE],
                )
                try:
                    self._on_closed(ended)
                except Exception:
                    log.exception("relay on_closed callback failed")

    async def _close_ws(
        self,
        ws: web.WebSocketResponse,
        code: int,
        reason: str,
        transport: asyncio.BaseTransport | None = None,
    ) -> None:
        """Send the close frame at once; give the peer ``close_grace`` to answer, then cut the transport."""
        try:
            async with asyncio.timeout(self.close_grace + 0.5):
                await ws.close(code=code, message=reason.encode("utf-8")[:120])
        except TimeoutError:
            # a peer that reads nothing (full buffers) cannot even take the close frame
            if transport is not None:
                transport.close()
        except (ConnectionError, RuntimeError):
            pass

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
