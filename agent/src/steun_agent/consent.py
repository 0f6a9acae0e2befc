"""Consent: the agent asks its own user, under the local policy, before a technician may do anything.

The server cannot grant anything here. A :class:`ConsentBroker` takes who asks and for what from an offer the
agent verified against its pinned org key, sorts the capabilities with :func:`steun_agent.policy.decide`, asks
the user through a :class:`Prompter` (Tk window or terminal), treats no answer within the prompt timeout as a
no, and keeps the result in a :class:`Grants` object. The session runtime asks :meth:`Grants.allows` about
every incoming record and refuses a record for anything not granted, whatever the server or console says.

Every outcome is written to the local log (:mod:`steun_agent.locallog`) and returned as :class:`AuditEvent`
values, which the runtime forwards to the server's audit chain. A grant that cannot be written to the local
log is not given (fail closed); a stop always happens, logged or not.

See docs/design/0060-consent-and-local-policy.md.
"""

from __future__ import annotations

import asyncio
import enum
import getpass
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from steun_protocol.session import AgentHandshake, Capability, SessionOffer

from .errors import AgentError
from .locallog import LocalLog
from .policy import Decision, Mode, Policy, decide

log = logging.getLogger(__name__)

#: Shown in this order everywhere (prompt, indicator, events), mildest first.
CAPABILITY_ORDER: tuple[Capability, ...] = (
    Capability.VIEW,
    Capability.CHAT,
    Capability.CLIPBOARD,
    Capability.CONTROL,
    Capability.FILES,
    Capability.SHELL,
    Capability.INSTALL,
)

CONSENT_REQUESTED = "consent.requested"
CONSENT_GRANTED = "consent.granted"
CONSENT_DENIED = "consent.denied"
CONSENT_EXPIRED = "consent.expired"
SESSION_START = "session.start"
SESSION_STOP = "session.stop"

_SAS = re.compile(r"^[0-9]{6}$")


def ordered(capabilities: Iterable[Capability]) -> tuple[Capability, ...]:
    chosen = set(capabilities)
    return tuple(c for c in CAPABILITY_ORDER if c in chosen)


class ConsentError(AgentError):
    """Root of the consent errors."""


class NotGranted(ConsentError):
    """A record arrived for a capability the user has not granted (or the session was stopped)."""

    code = "not_granted"

    def __init__(self, capability: str) -> None:
        self.capability = capability
        super().__init__(f"capability {capability!r} is not granted in this session")


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Technician:
    user_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ConsentSubject:
    """Who asks and for what (vouched for by the org key), and the handshake's short authentication string."""

    session_id: str
    org_name: str
    technician: Technician
    capabilities: frozenset[Capability]
    reason: str
    sas: str

    def __post_init__(self) -> None:
        if not _SAS.match(self.sas):
            raise ValueError("the SAS is six digits")
        if not self.capabilities:
            raise ValueError("a request asks for at least one capability")

    @classmethod
    def from_offer(cls, offer: SessionOffer, sas: str) -> ConsentSubject:
        """``offer`` must come from ``steun_protocol.session.open_offer`` (signature checked with the pin)."""
        return cls(
            session_id=offer.session_id,
            org_name=offer.org_name,
            technician=Technician(offer.technician.user_id, offer.technician.name),
            capabilities=frozenset(offer.capabilities),
            reason=offer.reason,
            sas=sas,
        )

    @classmethod
    def from_handshake(cls, handshake: AgentHandshake) -> ConsentSubject:
        """The safest way in: a handshake holds only a verified offer, and has a SAS once it completed."""
        if handshake.offer is None or handshake.keys is None:
            raise ConsentError("consent needs a completed handshake (verified offer and session keys)")
        return cls.from_offer(handshake.offer, handshake.keys.sas)


class Answer(enum.StrEnum):
    ACCEPT = "accept"
    DENY = "deny"
    #: The prompt's own countdown ran out (the broker's timeout is the authority either way).
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class ConsentPrompt:
    """Everything a prompt shows. Strings are as signed: a :class:`Prompter` sanitises them for display."""

    org_name: str
    technician: Technician
    reason: str
    sas: str
    #: What the user is asked to allow now.
    capabilities: tuple[Capability, ...]
    #: Asked for but refused by the local policy (shown so the user knows why they are missing).
    forbidden: tuple[Capability, ...]
    #: Granted earlier in this session (only for a later request).
    already_granted: tuple[Capability, ...]
    #: Seconds before no answer means no.
    timeout: float
    #: False for a later request (``request_more``).
    first: bool = True


class Prompter(Protocol):
    """Asks the user. Implemented by the Tk UI and the terminal fallback in :mod:`steun_agent.ui`.

    ``ask_consent`` may be cancelled at any moment (timeout, Stop, session end); it must then take its
    question off the screen at once. Anything it raises counts as a no.
    """

    async def ask_consent(self, prompt: ConsentPrompt) -> Answer: ...


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event for the server's audit chain (``event`` is a dotted name; ``data`` is JSON)."""

    event: str
    time: float
    actor: str | None
    data: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"event": self.event, "time": self.time, "actor": self.actor, "data": dict(self.data)}


class Status(enum.StrEnum):
    GRANTED = "granted"  # at least one capability is newly granted
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ConsentResult:
    status: Status
    #: Granted by this request (not the session's whole set: see ``Grants.granted``).
    granted: frozenset[Capability]
    #: Asked for in this request and not granted (forbidden, denied, expired).
    refused: frozenset[Capability]
    #: Why, in stable words: ``user``, ``policy``, ``unattended``, ``timeout``, ``no_prompter``,
    #: ``prompt_failed``, ``busy``, ``too_many_requests``, ``not_offered``, ``stopped``, ``log_failed``,
    #: ``already_granted``.
    reason: str
    #: For the server's audit chain, in order. Already in the local log.
    events: tuple[AuditEvent, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status is Status.GRANTED


# --------------------------------------------------------------------------------------------- grants


class Grants:
    """What this session may do. Thread-safe without locks: ``revoke`` may be called from the UI thread.

    ``_revoked`` only ever goes from False to True, and ``allows`` reads it after the granted set, so a
    revoke racing with anything ends with nothing allowed.
    """

    def __init__(self) -> None:
        self._granted: frozenset[Capability] = frozenset()
        self._revoked = False

    def allows(self, capability: Capability | str) -> bool:
        """True only for a capability the user (or the local policy) granted, and never after a stop."""
        granted = self._granted
        if self._revoked:
            return False
        try:
            return Capability(capability) in granted
        except ValueError:
            return False

    def require(self, capability: Capability | str) -> None:
        """Raise :class:`NotGranted` unless ``allows(capability)``."""
        if not self.allows(capability):
            raise NotGranted(str(capability))

    @property
    def granted(self) -> frozenset[Capability]:
        granted = self._granted
        return frozenset() if self._revoked else granted

    @property
    def revoked(self) -> bool:
        return self._revoked

    def revoke(self) -> None:
        """Allow nothing more, from any thread, at once. Irreversible."""
        self._revoked = True

    def _add(self, capabilities: Iterable[Capability]) -> None:
        if not self._revoked:
            self._granted = self._granted | frozenset(capabilities)


# --------------------------------------------------------------------------------------------- broker


class ConsentBroker:
    """One per session: the first request (:meth:`start`), later ones (:meth:`request_more`), :meth:`stop`."""

    def __init__(
        self,
        subject: ConsentSubject,
        *,
        policy: Policy,
        mode: Mode,
        prompter: Prompter | None,
        local_log: LocalLog | None,
        clock: Callable[[], float] = time.time,
        max_refusals: int = 3,
    ) -> None:
        self.subject = subject
        self.policy = policy
        self.mode = mode
        self.grants = Grants()
        self._prompter = prompter
        self._log = local_log
        self._clock = clock
        self._max_refusals = max_refusals
        self._refusals = 0
        #: Capabilities the org key vouched for in this session; later requests stay within it.
        self._scope = frozenset(subject.capabilities)
        self._pending: asyncio.Task[Answer] | None = None
        self._started_at: float | None = None
        self._stopped = False
        self._local_user = _local_user()

    @property
    def started(self) -> bool:
        return self._started_at is not None

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def start(self) -> ConsentResult:
        """Ask for everything in the offer. A grant also opens the session (``session.start``)."""
        if self._started_at is not None or self._stopped:
            raise ConsentError("start() is called once per session")
        return await self._request(self.subject.capabilities, first=True)

    async def request_more(
        self, capabilities: Iterable[Capability], *, offer: SessionOffer | None = None
    ) -> ConsentResult:
        """The technician asks for more (e.g. control after view): the user is asked again.

        Only capabilities the org key vouched for may be asked: those of the session's offer, or of a newer
        ``offer`` for the same session, technician and organisation (verified by the caller with
        ``open_offer``). Otherwise a technician could ask the user for what the server's roles do not allow.
        """
        wanted = frozenset(Capability(c) for c in capabilities)
        if offer is not None:
            self._widen_scope(offer)
        if self._stopped or self.grants.revoked:  # Stop pressed: the UI thread revoked before we heard
            return await self._refuse(wanted, CONSENT_DENIED, "stopped")
        if not self.started:
            raise ConsentError("request_more() before a granted start()")
        outside = wanted - self._scope
        if outside:
            extra = {"outside": _names(outside)}
            return await self._refuse(wanted, CONSENT_DENIED, "not_offered", extra=extra)
        new = wanted - self.grants.granted
        if not new:
            return ConsentResult(Status.GRANTED, frozenset(), frozenset(), "already_granted")
        return await self._request(new, first=False)

    def revoke(self) -> None:
        """Synchronous and thread-safe: nothing is allowed any more. :meth:`stop` still records why."""
        self.grants.revoke()

    async def stop(self, *, by: str = "user", detail: str = "") -> tuple[AuditEvent, ...]:
        """End the session: revoke first (before any await), cancel an open prompt, then record the stop.

        ``by`` says who ended it: ``user`` (Stop button), ``technician``, ``server``, ``error``, ``agent``.
        """
        self.grants.revoke()
        if self._pending is not None:
            self._pending.cancel()
        if self._stopped:
            return ()
        self._stopped = True
        if self._started_at is None:
            return ()
        now = self._clock()
        event = self._event(
            SESSION_STOP,
            {"by": by, "detail": detail[:256], "duration": round(now - self._started_at, 3)},
            actor="user" if by == "user" else None,
        )
        await self._record(event, required=False)
        return (event,)

    # ----------------------------------------------------------------------------------------- inside

    def _widen_scope(self, offer: SessionOffer) -> None:
        s = self.subject
        if (
            offer.session_id != s.session_id
            or offer.org_name != s.org_name
            or offer.technician.user_id != s.technician.user_id
        ):
            raise ConsentError("a newer offer must be for the same session, organisation and technician")
        self._scope = self._scope | frozenset(offer.capabilities)

    async def _request(self, wanted: frozenset[Capability], *, first: bool) -> ConsentResult:
        decision = decide(wanted, self.policy, self.mode)
        events: list[AuditEvent] = []
        requested = self._event(
            CONSENT_REQUESTED,
            {
                "requested": _names(wanted),
                "forbidden_by_policy": _names(decision.forbidden),
                "unattended": _names(decision.unattended),
                "prompt": _names(decision.prompt),
                "first": first,
            },
            actor=self._technician_actor(),
        )
        events.append(requested)
        await self._record(requested, required=False)
        if decision.forbidden:
            events.append(await self._denial(decision.forbidden, CONSENT_DENIED, "policy"))

        granted: frozenset[Capability] = frozenset()
        status, reason = Status.DENIED, "policy"
        if decision.unattended:
            event = self._event(
                CONSENT_GRANTED, {"capabilities": _names(decision.unattended), "by": "policy"}, actor="policy"
            )
            if not await self._record(event, required=True):
                return self._result(Status.DENIED, frozenset(), wanted, "log_failed", events)
            events.append(event)
            granted, status, reason = decision.unattended, Status.GRANTED, "unattended"

        if decision.prompt:
            answer, why = await self._ask(decision, first=first)
            if answer is Answer.ACCEPT:
                event = self._event(
                    CONSENT_GRANTED,
                    {"capabilities": _names(decision.prompt), "by": "user", "local_user": self._local_user},
                    actor="user",
                )
                if await self._record(event, required=True):
                    events.append(event)
                    granted, status, reason = granted | decision.prompt, Status.GRANTED, "user"
                else:
                    events.append(await self._denial(decision.prompt, CONSENT_DENIED, "log_failed"))
                    if not granted:
                        status, reason = Status.DENIED, "log_failed"
            else:
                if why in ("user", "timeout"):  # the user said no, or nothing: count it against nagging
                    self._refusals += 1
                name = CONSENT_EXPIRED if answer is Answer.TIMEOUT else CONSENT_DENIED
                events.append(await self._denial(decision.prompt, name, why))
                if not granted:
                    status = Status.EXPIRED if answer is Answer.TIMEOUT else Status.DENIED
                    reason = why

        if granted and (self._stopped or self.grants.revoked):  # stopped while we asked or wrote
            return self._result(Status.DENIED, frozenset(), wanted, "stopped", events)
        if granted:
            self.grants._add(granted)
            if self._started_at is None:
                self._started_at = self._clock()
                start = self._event(
                    SESSION_START,
                    {"capabilities": _names(self.grants.granted), "mode": self.mode.value},
                    actor=self._technician_actor(),
                )
                await self._record(start, required=False)
                events.append(start)
        return self._result(status, granted, wanted - granted, reason, events)

    async def _ask(self, decision: Decision, *, first: bool) -> tuple[Answer, str]:
        """The user's answer and, for a no, the reason word. Bounded by the policy's timeout, always."""
        if self._stopped or self.grants.revoked:
            return Answer.DENY, "stopped"
        if self._prompter is None:
            return Answer.DENY, "no_prompter"
        if self._pending is not None:
            return Answer.DENY, "busy"
        if self._refusals >= self._max_refusals:
            return Answer.DENY, "too_many_requests"
        prompt = ConsentPrompt(
            org_name=self.subject.org_name,
            technician=self.subject.technician,
            reason=self.subject.reason,
            sas=self.subject.sas,
            capabilities=ordered(decision.prompt),
            forbidden=ordered(decision.forbidden),
            already_granted=ordered(self.grants.granted),
            timeout=self.policy.prompt_timeout,
            first=first,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.prompt_timeout
        task = asyncio.ensure_future(self._prompter.ask_consent(prompt))
        self._pending = task
        try:
            async with asyncio.timeout_at(deadline):
                answer = await asyncio.shield(task)
        except TimeoutError:
            return Answer.TIMEOUT, "timeout"
        except asyncio.CancelledError:
            if self._stopped and task.cancelled():
                return Answer.DENY, "stopped"  # stop() cancelled the prompt, not our caller
            raise
        except Exception:
            log.exception("the consent prompt failed; treating it as a no")
            return Answer.DENY, "prompt_failed"
        finally:
            if not task.done():
                task.cancel()
            self._pending = None
        if self._stopped or self.grants.revoked:
            return Answer.DENY, "stopped"
        if answer is Answer.ACCEPT and loop.time() > deadline:
            return Answer.TIMEOUT, "timeout"
        if answer is Answer.TIMEOUT:
            return Answer.TIMEOUT, "timeout"
        return (Answer.ACCEPT, "user") if answer is Answer.ACCEPT else (Answer.DENY, "user")

    async def _denial(
        self, capabilities: frozenset[Capability], name: str, reason: str, *, required: bool = False
    ) -> AuditEvent:
        actor = {"policy": "policy", "user": "user", "timeout": "user"}.get(reason)
        event = self._event(name, {"capabilities": _names(capabilities), "reason": reason}, actor=actor)
        await self._record(event, required=required)
        return event

    async def _refuse(
        self, wanted: frozenset[Capability], name: str, reason: str, *, extra: Mapping[str, Any] | None = None
    ) -> ConsentResult:
        data = {"capabilities": _names(wanted), "reason": reason, **(extra or {})}
        event = self._event(name, data, actor=None)
        await self._record(event, required=False)
        return self._result(Status.DENIED, frozenset(), wanted, reason, [event])

    def _result(
        self,
        status: Status,
        granted: frozenset[Capability],
        refused: frozenset[Capability],
        reason: str,
        events: list[AuditEvent],
    ) -> ConsentResult:
        return ConsentResult(status, granted, refused, reason, tuple(events))

    def _technician_actor(self) -> str:
        return f"technician:{self.subject.technician.user_id}"

    def _event(self, name: str, data: Mapping[str, Any], *, actor: str | None) -> AuditEvent:
        s = self.subject
        common = {
            "session_id": s.session_id,
            "org": s.org_name,
            "technician": {"user_id": s.technician.user_id, "name": s.technician.name},
        }
        if name in (CONSENT_REQUESTED, SESSION_START):
            common["reason"] = s.reason
        return AuditEvent(name, self._clock(), actor, {**common, **data})

    async def _record(self, event: AuditEvent, *, required: bool) -> bool:
        """Append to the local log in a worker thread; False if that failed and ``required`` matters."""
        if self._log is None:
            return True
        try:
            await asyncio.to_thread(self._log.append, event.event, event.data, actor=event.actor)
        except (OSError, ValueError, AgentError) as exc:
            if required:
                log.error("cannot write %s to the local log (%s); not granting", event.event, exc)
                return False
            log.warning("cannot write %s to the local log: %s", event.event, exc)
        return True


def _names(capabilities: Iterable[Capability]) -> list[str]:
    return [c.value for c in ordered(capabilities)]


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        return "?"
