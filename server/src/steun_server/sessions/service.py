"""Remote sessions on the server: support codes, session requests (signed offers), stops, agent events, relay.

The server's part in a session is small on purpose: it checks who may ask for what, signs the offer with the
org key, hands each side a single-use relay ticket, delivers the offer to the agent over its control
connection and writes the audit chain. It never sees a session key: consent and the session itself are end
to end (``steun_protocol.session``), and the relay only forwards sealed frames.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from steun_protocol import auth as proofs
from steun_protocol.errors import ErrorCode, ProtocolError
from steun_protocol.messages import Empty, Payload, Request
from steun_protocol.session import (
    SESSION_ID_SIZE,
    SESSION_VERSION,
    SUITE,
    Capability,
    SessionError,
    SessionOffer,
    SignedOffer,
    TechnicianIdentity,
    sign_offer,
)
from steun_protocol.sessionplane import (
    SessionCreated,
    SessionEvent,
    SessionExtend,
    SessionExtended,
    SessionOfferRequest,
    SessionRequest,
    SupportCodeEvent,
)

from ..auth.roles import Role, has_permission
from ..auth.service import Principal
from ..config import ServerConfig
from ..errors import ApiError
from ..fleet import store
from ..fleet.agent_ws import AgentSession
from ..fleet.hooks import QuickSupportGrant, RedeemRefused
from ..fleet.service import FLEET, AgentRequestError, AgentRequestRefused, AuditThrottle, FleetService
from ..keys import ServerKeys
from ..web import AUTH, CONFIG, AppService
from ..wsapi import CommandError
from .codes import THROTTLED, SupportCodes, Technician
from .relay import RELAY_PATH, Relay, RelayClosed, RelayRefused, TicketGrant

log = logging.getLogger(__name__)

#: An offer is valid this long after it was made (the agent refuses it later; its user may still be deciding).
OFFER_TTL = 120.0
#: How long the agent has to say it received the offer (acceptance itself comes later, end to end).
OFFER_DELIVERY_TIMEOUT = 10.0
#: Sessions alive at once on this node, and per technician.
MAX_LIVE_SESSIONS = 10_000
MAX_SESSIONS_PER_TECHNICIAN = 16
#: ``session/event`` records one session may add to the audit chain (a hostile agent cannot flood it).
MAX_EVENTS_PER_SESSION = 64
#: Ended sessions remembered (late ``session/event`` and ``session/stop`` still find them).
REMEMBER_ENDED = 4096

#: The lowest role that may ask for each capability (docs/design/0081-session-requests.md).
CAPABILITY_ROLES: Mapping[Capability, Role] = {
    Capability.VIEW: Role.TECHNICIAN,
    Capability.CONTROL: Role.TECHNICIAN,
    Capability.CLIPBOARD: Role.TECHNICIAN,
    Capability.CHAT: Role.TECHNICIAN,
    Capability.SHELL: Role.SPECIALIST,
    Capability.FILES: Role.SPECIALIST,
    Capability.INSTALL: Role.ADMIN,
}

# Audit event names (the agent's own events keep theirs: consent.granted, session.start, ...).
SUPPORT_CODE_CREATED = "support.code_created"
SUPPORT_CODE_REDEEMED = "support.code_redeemed"
SUPPORT_REDEEM_FAILED = "support.redeem_failed"
SESSION_REQUESTED = "session.requested"
SESSION_EXTEND_REQUESTED = "session.extend_requested"
SESSION_STOPPED = "session.stopped"
SESSION_ENDED = "session.ended"

DEVICE_OFFLINE = "device_offline"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    org_name: str
    ticket_ttl: float
    code_ttl: float
    address_free_failures: int
    global_free_failures: int

    @classmethod
    def from_config(cls, config: ServerConfig) -> SessionSettings:
        return cls(
            org_name=config.org_name,
            ticket_ttl=config.relay_ticket_ttl,
            code_ttl=config.support_code_ttl,
            address_free_failures=config.support_redeem_free_failures,
            global_free_failures=config.support_redeem_global_free_failures,
        )


@dataclasses.dataclass(slots=True)
class SessionRecord:
    session_id: str
    device_id: str
    hostname: str
    quick_support: bool
    technician: Technician
    capabilities: tuple[Capability, ...]
    reason: str
    created_at: float
    offer: SessionOffer | None = None
    ended: bool = False
    end_reason: str = ""
    events: int = 0

    def audit_data(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "device_id": self.device_id,
            "hostname": self.hostname,
            "quick_support": self.quick_support,
            "technician": {"user_id": self.technician.user_id, "username": self.technician.username},
            "capabilities": [str(c) for c in self.capabilities],
        }


def technician_of(principal: Principal) -> Technician:
    return Technician(principal.user_id, principal.username, principal.display_name or principal.username)


def support_code_secret(keys: ServerKeys) -> bytes:
    """The HMAC key for support codes: derived from the org key, so every node holding it agrees."""
    hkdf = HKDF(hashes.SHA256(), 32, salt=None, info=b"steun-support-code-hmac-v1")
    return hkdf.derive(keys.org_key.private_bytes_raw())


class SessionService(AppService):
    """Support codes, live sessions and the relay of one node; under ``SESSIONS`` in the application."""

    def __init__(self, app: web.Application, settings: SessionSettings) -> None:
        super().__init__(app)
        self.settings = settings
        config = app[CONFIG]
        self.relay = Relay(
            allowed_origins=config.allowed_origins,
            authorize_console=self._authorize_console,
            on_closed=self._relay_closed,
        )
        self._codes: SupportCodes | None = None
        self._live: dict[str, SessionRecord] = {}
        self._ended: collections.OrderedDict[str, SessionRecord] = collections.OrderedDict()
        self._redeem_failures = AuditThrottle(60.0)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def fleet(self) -> FleetService:
        return self._app[FLEET]

    @property
    def codes(self) -> SupportCodes:
        if self._codes is None:
            self._codes = SupportCodes(
                support_code_secret(self.keys),
                ttl=self.settings.code_ttl,
                address_free=self.settings.address_free_failures,
                global_free=self.settings.global_free_failures,
            )
        return self._codes

    def session(self, session_id: str) -> SessionRecord | None:
        return self._live.get(session_id) or self._ended.get(session_id)

    def statistics(self) -> dict[str, Any]:
        return {
            "live_sessions": len(self._live),
            "codes": self.codes.statistics(),
            "relay": self.relay.statistics(),
        }

    # -- support codes (console side) ---------------------------------------------------------------------

    async def create_code(self, principal: Principal, notify: Any, *, source: str) -> tuple[str, float, str]:
        """A code for ``principal``; returns ``(code, expires_at, key)``. ``notify`` gets its events."""
        technician = technician_of(principal)
        try:
            self.codes.check_room(technician)
        except OverflowError as exc:
            raise CommandError(ErrorCode.OVERLOADED, str(exc)) from None
        # audited before it exists: a redemption during the write would find no subscription to tell
        await self.audit.emit(
            SUPPORT_CODE_CREATED,
            actor=principal.username,
            source=source,
            data={"technician": {"user_id": technician.user_id, "username": technician.username}},
        )
        try:
            code, entry = self.codes.create(technician, notify)
        except OverflowError as exc:
            raise CommandError(ErrorCode.OVERLOADED, str(exc)) from None
        return code, entry.expires_at, entry.key

    # -- support codes (agent side: fleet.hooks.SupportDesk) ----------------------------------------------

    def claim(self, code: str, *, address: str) -> QuickSupportGrant:
        entry = self.codes.claim(code, address=address)
        return QuickSupportGrant(
            org_name=self.settings.org_name,
            technician_name=entry.technician.name,
            owner=f"user:{entry.technician.user_id}",
            code_key=entry.key,
        )

    async def redeemed(self, grant: QuickSupportGrant, device: store.DeviceRecord, *, address: str) -> None:
        entry = self.codes.take_claimed(grant.code_key)
        if entry is not None:
            entry.notify(SupportCodeEvent(kind="redeemed", device_id=device.id, hostname=device.hostname))
        technician = entry.technician if entry is not None else None
        await self._emit(
            SUPPORT_CODE_REDEEMED,
            actor=f"device:{device.id}",
            source=address,
            data={
                "device_id": device.id,
                "hostname": device.hostname,
                "os": device.os,
                "technician": (
                    {"user_id": technician.user_id, "username": technician.username} if technician else None
                ),
            },
        )

    async def refused(self, refusal: RedeemRefused, *, address: str) -> None:
        if refusal.code == THROTTLED:
            return  # answered without looking at the code; the failures before it were recorded
        key = f"address:{address}"
        suppressed = self._redeem_failures.admit(key)
        if suppressed is None:
            return
        await self._emit(
            SUPPORT_REDEEM_FAILED,
            actor=key,
            source=address,
            data={
                "reason": refusal.code,
                "suppressed_since_last": suppressed,
                "address_failures": self.codes.by_address.failures(address),
            },
        )

    def released(self, device_id: str) -> None:
        """A quick-support device went away; its relay sessions carry on until either side ends them."""

    # -- sessions -------------------------------------------------------------------------------------------

    async def request_session(
        self, principal: Principal, params: SessionRequest, *, source: str
    ) -> SessionCreated:
        capabilities = tuple(dict.fromkeys(params.capabilities))
        for capability in capabilities:
            needed = CAPABILITY_ROLES[capability]
            if not has_permission(principal.role, needed):
                raise CommandError(ErrorCode.FORBIDDEN, f"asking for {capability} needs the {needed} role")
        try:
            proofs.load_public_key(proofs.b64decode(params.technician_key, size=32))
            proofs.b64decode(params.console_commitment, size=32)
        except ValueError as exc:
            raise CommandError(
                ErrorCode.INVALID_MESSAGE, f"technician_key or console_commitment: {exc}"
            ) from None
        technician = technician_of(principal)
        record, link = await self._device_for(principal, params.device_id)
        live_here = sum(1 for s in self._live.values() if s.technician.user_id == technician.user_id)
        if len(self._live) >= MAX_LIVE_SESSIONS or live_here >= MAX_SESSIONS_PER_TECHNICIAN:
            raise CommandError(ErrorCode.OVERLOADED, "too many sessions are open; stop one first")
        now = time.time()
        session_id = proofs.b64encode(secrets.token_bytes(SESSION_ID_SIZE))
        offer = SessionOffer(
            version=SESSION_VERSION,
            suite=SUITE,
            session_id=session_id,
            org_name=self.settings.org_name,
            technician=TechnicianIdentity(
                user_id=str(technician.user_id), name=technician.name, key=params.technician_key
            ),
            device_id=record.id,
            agent_key=record.public_key,
            capabilities=list(capabilities),
            reason=params.reason,
            console_commitment=params.console_commitment,
            created_at=now,
            expires_at=now + OFFER_TTL,
        )
        try:
            signed = sign_offer(self.keys.org_key, offer)
        except SessionError as exc:
            raise CommandError(ErrorCode.INVALID_MESSAGE, exc.message) from None
        session = SessionRecord(
            session_id=session_id,
            device_id=record.id,
            hostname=record.hostname,
            quick_support=link.quick_support,
            technician=technician,
            capabilities=capabilities,
            reason=params.reason,
            created_at=now,
            offer=offer,
        )
        # audited before anything leaves: a request that cannot be recorded is not made
        await self.audit.emit(
            SESSION_REQUESTED,
            actor=principal.username,
            source=source,
            data={**session.audit_data(), "reason": params.reason},
        )
        try:
            console_ticket, agent_ticket = self.relay.open(
                session_id,
                console=f"user:{technician.user_id}",
                agent=f"device:{record.id}",
                ttl=self.settings.ticket_ttl,
            )
        except RelayRefused as exc:
            raise CommandError(exc.code, exc.message) from None
        self._live[session_id] = session
        await self._deliver(link, session, signed, agent_ticket)
        return SessionCreated(
            session_id=session_id, offer=signed, relay_path=RELAY_PATH, ticket=console_ticket
        )

    async def extend_session(
        self, principal: Principal, params: SessionExtend, *, source: str
    ) -> SessionExtended:
        """Re-sign a live session's offer with more capabilities; the agent still asks its user."""
        session = self._live.get(params.session_id)
        if session is None or session.offer is None:
            raise CommandError(ErrorCode.NOT_FOUND, "no such live session")
        if session.technician.user_id != principal.user_id and not has_permission(principal.role, Role.ADMIN):
            raise CommandError(ErrorCode.FORBIDDEN, "only its technician or an admin may extend a session")
        added = tuple(dict.fromkeys(params.capabilities))
        for capability in added:
            needed = CAPABILITY_ROLES[capability]
            if not has_permission(principal.role, needed):
                raise CommandError(ErrorCode.FORBIDDEN, f"asking for {capability} needs the {needed} role")
        capabilities = tuple(dict.fromkeys((*session.capabilities, *added)))
        now = time.time()
        offer = msgspec.structs.replace(
            session.offer, capabilities=list(capabilities), created_at=now, expires_at=now + OFFER_TTL
        )
        try:
            signed = sign_offer(self.keys.org_key, offer)
        except SessionError as exc:
            raise CommandError(ErrorCode.INVALID_MESSAGE, exc.message) from None
        # audited before it leaves, like the request itself
        await self.audit.emit(
            SESSION_EXTEND_REQUESTED,
            actor=principal.username,
            source=source,
            data={
                **session.audit_data(),
                "requested": [str(c) for c in added],
                "offered": [str(c) for c in capabilities],
            },
        )
        session.offer = offer
        session.capabilities = capabilities
        return SessionExtended(offer=signed)

    async def _device_for(
        self, principal: Principal, device_id: str
    ) -> tuple[store.DeviceRecord, AgentSession]:
        fleet = self.fleet
        quick = fleet.quick.get(device_id)
        if quick is not None:
            if quick.owner != f"user:{principal.user_id}":
                raise CommandError(
                    ErrorCode.FORBIDDEN,
                    "this quick-support device belongs to the technician who gave the code",
                )
            record = quick.record
        else:
            found = await store.get_device(fleet.db, device_id)
            if found is None or found.revoked:
                raise CommandError(ErrorCode.NOT_FOUND, f"no device {device_id!r}")
            record = found
        entry = fleet.presence.entry(device_id)
        if entry is None or not isinstance(entry.link, AgentSession):
            raise CommandError(DEVICE_OFFLINE, "the device is not online")
        return record, entry.link

    async def _deliver(
        self, link: AgentSession, session: SessionRecord, signed: SignedOffer, ticket: str
    ) -> None:
        request = SessionOfferRequest(offer=signed, relay_path=RELAY_PATH, ticket=ticket)
        try:
            await link.request(request, timeout=OFFER_DELIVERY_TIMEOUT)
        except AgentRequestError as exc:
            failure = CommandError(exc.code, f"the device refused the offer: {exc.message}")
        except TimeoutError:
            failure = CommandError(ErrorCode.TIMEOUT, "the device did not take the offer in time")
        except ConnectionError as exc:
            failure = CommandError(DEVICE_OFFLINE, f"the device went away: {exc}")
        except ProtocolError as exc:  # its control connection has too many requests in flight
            failure = CommandError(ErrorCode.OVERLOADED, exc.message)
        else:
            return
        await self.relay.close_session(session.session_id, "offer_not_delivered")
        raise failure

    async def stop_session(self, principal: Principal, session_id: str, *, source: str) -> None:
        session = self.session(session_id)
        if session is None:
            raise CommandError(ErrorCode.NOT_FOUND, "no such session")
        if session.technician.user_id != principal.user_id and not has_permission(principal.role, Role.ADMIN):
            raise CommandError(ErrorCode.FORBIDDEN, "only its technician or an admin may stop a session")
        if session.ended:
            return
        await self._emit(SESSION_STOPPED, actor=principal.username, source=source, data=session.audit_data())
        await self.relay.close_session(session_id, "stopped")

    # -- agent events ---------------------------------------------------------------------------------------

    async def session_event(self, link: Any, request: Request) -> Payload:
        """``session/event`` from an agent: into the audit chain, with who asked for what on which device."""
        assert isinstance(request, SessionEvent)
        device_id: str = link.device_id
        session = self.session(request.session_id)
        if session is None or session.device_id != device_id:
            raise AgentRequestRefused(ErrorCode.NOT_FOUND, "no such session for this device")
        if session.events >= MAX_EVENTS_PER_SESSION:
            raise AgentRequestRefused(ErrorCode.THROTTLED, "too many events for this session")
        session.events += 1
        data = {
            **session.audit_data(),
            "offered": [str(c) for c in session.capabilities],
            "capabilities": [str(c) for c in request.capabilities],
            "detail": request.detail,
        }
        await self.audit.emit(request.event, actor=f"device:{device_id}", source=link.remote, data=data)
        return Empty()

    # -- relay ----------------------------------------------------------------------------------------------

    async def _authorize_console(self, request: web.Request, grant: TicketGrant) -> None:
        try:
            principal = await request.app[AUTH].authenticate(request)
        except ApiError as exc:
            raise RelayRefused(exc.status, exc.code, exc.message) from None
        if grant.subject != f"user:{principal.user_id}":
            raise RelayRefused(403, ErrorCode.FORBIDDEN, "this relay ticket was made for another technician")

    def _relay_closed(self, ended: RelayClosed) -> None:
        session = self._live.pop(ended.session_id, None)
        if session is None:
            return
        session.ended = True
        session.end_reason = ended.reason
        self._ended[session.session_id] = session
        while len(self._ended) > REMEMBER_ENDED:
            self._ended.popitem(last=False)
        data = {
            **session.audit_data(),
            "reason": ended.reason,
            "paired": ended.paired,
            "duration": round(ended.duration, 3),
            "console_to_agent": dataclasses.asdict(ended.console_to_agent),
            "agent_to_console": dataclasses.asdict(ended.agent_to_console),
        }
        self._spawn(self._emit(SESSION_ENDED, actor=None, source=None, data=data))

    # -- plumbing -------------------------------------------------------------------------------------------

    async def _emit(
        self, event: str, *, actor: str | None, source: str | None, data: Mapping[str, Any]
    ) -> None:
        try:
            await self.audit.emit(event, actor=actor, source=source, data=data)
        except Exception:
            log.exception("audit %s failed", event)

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        await self.relay.stop()
        if self._codes is not None:
            self._codes.close()
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


SESSIONS = web.AppKey("steun_sessions", SessionService)


def setup(app: web.Application) -> None:
    """Register the session service, its start/stop, and close relay sockets early at shutdown."""
    service = SessionService(app, SessionSettings.from_config(app[CONFIG]))
    app[SESSIONS] = service
    # at once, not at start-up: a ``support/redeem`` must never find the fleet without its desk
    app[FLEET].support_desk = service
    app[FLEET].agent_handlers[SessionEvent] = service.session_event

    async def sessions_ctx(app: web.Application) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.stop()

    async def on_shutdown(app: web.Application) -> None:
        await service.relay.close_all()

    app.cleanup_ctx.append(sessions_ctx)
    app.on_shutdown.append(on_shutdown)
