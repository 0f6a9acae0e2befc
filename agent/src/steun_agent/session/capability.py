"""The capability that answers ``session/offer``: verify, reply ``OfferDelivered``, run the session.

It verifies nothing beyond ``AgentHandshake.receive_offer`` (org signature against the pinned org key,
validity window, device id and key). A refused offer is answered with an error and audited as
``session.refused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol.auth import b64decode
from steun_protocol.errors import ErrorCode
from steun_protocol.messages import Empty, Payload, Request
from steun_protocol.session import AgentHandshake, Capability, SessionError
from steun_protocol.sessionplane import OfferDelivered, SessionEvent, SessionOfferRequest

from ..capabilities import Session
from ..channel import Handler
from ..errors import AgentError, ServerRefused
from .runner import SessionOutcome, SessionRunner, SessionSettings, relay_url

log = logging.getLogger(__name__)

_UNKNOWN_SESSION = "unknown-session-0000"
_AUDIT_TIMEOUT = 10.0
#: How long a new offer waits for a session that is already ending (its 1 s Stop bound and, usually well
#: within this, its last audit events). Below the server's 10 s offer-delivery timeout, so a session whose
#: audit is stuck makes the new offer fail as busy rather than hang.
_ENDING_WAIT = 8.0


def _claimed_session_id(offer_b64: str) -> str:
    """The session id an unverified offer claims: for the audit record of a refusal only."""
    try:
        raw = msgspec.json.decode(b64decode(offer_b64, limit=8192))
        sid = raw.get("session_id") if isinstance(raw, dict) else None
    except (ValueError, msgspec.DecodeError):
        return _UNKNOWN_SESSION
    if isinstance(sid, str) and 16 <= len(sid) <= 64 and all(c.isalnum() or c in "-_" for c in sid):
        return sid
    return _UNKNOWN_SESSION


class SessionCapability:
    """One session at a time. ``settings_factory`` gives the UI, policy and channel factories per session."""

    name = "session"

    def __init__(
        self,
        *,
        org_public_key: bytes,
        identity: Ed25519PrivateKey,
        device_id: str,
        settings: SessionSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._org_public_key = org_public_key
        self._identity = identity
        self._device_id = device_id
        self.settings = settings
        self._clock = clock
        self._session: Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._offering = False
        self.runner: SessionRunner | None = None
        self.outcomes: list[SessionOutcome] = []
        self.finished = asyncio.Event()
        self.refusals: list[str] = []

    @property
    def handlers(self) -> Mapping[type[Request], Handler]:
        return {SessionOfferRequest: self._on_offer}

    async def start(self, session: Session) -> None:
        self._session = session

    async def stop(self) -> None:
        """The control connection ended: end the session too (its audit can no longer be delivered)."""
        runner, task = self.runner, self._task
        if runner is not None:
            runner.stop(by="server", reason="control_lost")
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 3.0)
        self._session = None

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _on_offer(self, request: Request) -> Payload:
        assert isinstance(request, SessionOfferRequest)
        if self._offering:  # another offer is between its checks and its start: this one is second
            return await self._refuse_busy(request)
        self._offering = True  # claimed before the first await: two offers never both pass the check
        try:
            return await self._take_offer(request)
        finally:
            self._offering = False

    async def _take_offer(self, request: SessionOfferRequest) -> Payload:
        if self.busy and self.runner is not None and self.runner.ending and self._task is not None:
            # the last session is closing (scp right after ssh, say): let it finish rather than refuse
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), _ENDING_WAIT)
        if self.busy:
            return await self._refuse_busy(request)
        handshake = AgentHandshake(self._org_public_key, self._identity, device_id=self._device_id)
        try:
            accept = handshake.receive_offer(request.offer, now=self._clock())
        except SessionError as exc:
            sid = _claimed_session_id(request.offer.offer)
            self.refusals.append(exc.code)
            await self.audit("session.refused", sid, [], f"{exc.code}: {exc}")
            raise ServerRefused(ErrorCode.FORBIDDEN, f"{exc.code}: {exc}") from None
        if self.runner is not None and self.runner.chat_window is not None:
            # the last session's chat stayed readable until now; a new session brings its own
            window, self.runner.chat_window = self.runner.chat_window, None
            with contextlib.suppress(Exception):
                await window.close()
        url = relay_url(self.settings.server_url, request.relay_path, request.ticket)
        self.finished.clear()
        self.runner = SessionRunner(handshake, msgspec.json.encode(accept), url, self.settings, self.audit)
        self._task = asyncio.create_task(self._run(self.runner), name="steun-agent-session")
        return OfferDelivered()

    async def _refuse_busy(self, request: SessionOfferRequest) -> Payload:
        sid = _claimed_session_id(request.offer.offer)
        await self.audit("session.refused", sid, [], "busy: a session is already running")
        raise ServerRefused(ErrorCode.OVERLOADED, "a session is already running on this agent")

    async def _run(self, runner: SessionRunner) -> None:
        try:
            outcome = await runner.run()
            self.outcomes.append(outcome)
            log.info("session %s ended: %s", runner.session_id, outcome.reason)
        except Exception:
            log.exception("session %s failed", runner.session_id)
        finally:
            self.finished.set()

    async def audit(self, event: str, session_id: str, capabilities: list[Capability], detail: str) -> None:
        """``session/event`` on the control connection; failures are logged (the local log has it too)."""
        session = self._session
        if session is None:
            log.warning("no control connection for %s of session %s", event, session_id)
            return
        try:
            message = SessionEvent(
                session_id=session_id,
                event=event,  # type: ignore[arg-type]
                capabilities=capabilities,
                detail=detail[:4096],
            )
            await session.request(message, Empty, timeout=_AUDIT_TIMEOUT)
        except (AgentError, msgspec.ValidationError, ValueError) as exc:
            log.warning("could not forward %s of session %s: %s", event, session_id, exc)

    def info(self) -> dict[str, Any]:
        return {"busy": self.busy, "sessions": len(self.outcomes), "refusals": list(self.refusals)}
