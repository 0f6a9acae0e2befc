"""The consent broker: policy first, then the user, no answer means no, and Grants as the record gate."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_agent.consent import (
    Answer,
    ConsentBroker,
    ConsentError,
    ConsentSubject,
    Grants,
    NotGranted,
    Status,
)
from steun_agent.locallog import LocalLog
from steun_agent.policy import Mode, Policy
from steun_protocol.auth import b64encode, public_key_bytes
from steun_protocol.session import (
    SESSION_VERSION,
    SUITE,
    AgentHandshake,
    Capability,
    ConsoleHandshake,
    SessionOffer,
    TechnicianIdentity,
    open_offer,
    sign_offer,
)

from tests.agent_ui.conftest import ScriptedPrompter, subject
from tests.support.waiting import scaled

V, C, CB, SH = Capability.VIEW, Capability.CONTROL, Capability.CLIPBOARD, Capability.SHELL


def broker(
    prompter: ScriptedPrompter | None,
    *,
    policy: Policy | None = None,
    mode: Mode = Mode.ATTENDED,
    caps: tuple[Capability, ...] = (V, C, CB),
    log: LocalLog | None = None,
) -> ConsentBroker:
    return ConsentBroker(
        subject(caps), policy=policy or Policy(), mode=mode, prompter=prompter, local_log=log
    )


def events(result: object) -> list[str]:
    return [e.event for e in result.events]  # type: ignore[attr-defined]


async def test_accept_grants_what_was_asked_and_starts_the_session(tmp_path: Path) -> None:
    log = LocalLog(tmp_path / "log")
    prompter = ScriptedPrompter([Answer.ACCEPT])
    b = broker(prompter, log=log)
    result = await b.start()
    assert result.status is Status.GRANTED and result.granted == {V, C, CB}
    assert events(result) == ["consent.requested", "consent.granted", "session.start"]
    prompt = prompter.prompts[0]
    assert prompt.org_name == "Helpdesk Gemeente Voorbeeld" and prompt.technician.name == "Jan de Vries"
    assert prompt.sas == "048213" and prompt.capabilities == (V, CB, C) and prompt.timeout == 60
    assert all(b.grants.allows(c) for c in (V, C, CB))
    granted = result.events[1]
    assert granted.actor == "user" and granted.data["technician"] == {
        "user_id": "u-17",
        "name": "Jan de Vries",
    }
    # The same events, in the same order, are in the agent's own log.
    assert [r.event for r in await asyncio.to_thread(lambda: list(log.records()))] == events(result)
    assert await asyncio.to_thread(log.verify) is None


async def test_deny_grants_nothing() -> None:
    b = broker(ScriptedPrompter([Answer.DENY]))
    result = await b.start()
    assert result.status is Status.DENIED and result.reason == "user" and not result.granted
    assert events(result) == ["consent.requested", "consent.denied"]
    assert not b.started and not b.grants.allows(V)


async def test_no_answer_means_deny_after_the_policy_timeout(tmp_path: Path) -> None:
    log = LocalLog(tmp_path / "log")
    prompter = ScriptedPrompter([None])
    b = broker(prompter, policy=Policy(prompt_timeout=1.0), log=log)
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await asyncio.wait_for(b.start(), scaled(5))
    took = loop.time() - began
    assert result.status is Status.EXPIRED and result.reason == "timeout"
    assert 0.9 <= took < scaled(3)
    assert events(result) == ["consent.requested", "consent.expired"]
    assert prompter.cancelled == 1  # the question was taken off the screen
    assert not b.grants.granted
    assert [r.event for r in await asyncio.to_thread(lambda: list(log.records()))][-1] == "consent.expired"


async def test_the_prompts_own_timeout_also_counts_as_expired() -> None:
    result = await broker(ScriptedPrompter([Answer.TIMEOUT])).start()
    assert result.status is Status.EXPIRED


async def test_a_failing_prompt_is_a_no() -> None:
    class Broken:
        async def ask_consent(self, prompt: object) -> Answer:
            raise RuntimeError("Tk died")

    b = ConsentBroker(subject(), policy=Policy(), mode=Mode.ATTENDED, prompter=Broken(), local_log=None)
    result = await b.start()
    assert result.status is Status.DENIED and result.reason == "prompt_failed"


async def test_without_a_prompter_nothing_needing_a_yes_is_granted() -> None:
    result = await broker(None).start()
    assert result.status is Status.DENIED and result.reason == "no_prompter"


async def test_forbidden_capabilities_are_never_asked_nor_granted() -> None:
    prompter = ScriptedPrompter([Answer.ACCEPT])
    b = broker(prompter, policy=Policy(forbid=frozenset({SH})), caps=(V, SH))
    result = await b.start()
    assert result.granted == {V} and result.refused == {SH}
    assert prompter.prompts[0].capabilities == (V,) and prompter.prompts[0].forbidden == (SH,)
    assert events(result) == ["consent.requested", "consent.denied", "consent.granted", "session.start"]
    assert result.events[1].data["reason"] == "policy"
    assert not b.grants.allows(SH)


async def test_everything_forbidden_denies_without_a_prompt() -> None:
    prompter = ScriptedPrompter([Answer.ACCEPT])
    result = await broker(prompter, policy=Policy(forbid=frozenset({SH})), caps=(SH,)).start()
    assert result.status is Status.DENIED and result.reason == "policy" and not prompter.prompts


async def test_unattended_only_in_service_mode() -> None:
    policy = Policy(unattended=frozenset({V}))
    service = broker(ScriptedPrompter([Answer.DENY]), policy=policy, mode=Mode.SERVICE, caps=(V, C))
    result = await service.start()
    assert result.granted == {V} and result.refused == {C} and result.reason == "unattended"
    assert service.grants.allows(V) and not service.grants.allows(C)

    prompter = ScriptedPrompter([Answer.DENY])
    attended = broker(prompter, policy=policy, mode=Mode.ATTENDED, caps=(V, C))
    assert (await attended.start()).status is Status.DENIED
    assert prompter.prompts[0].capabilities == (V, C)


async def test_request_more_for_what_is_already_granted_asks_nothing() -> None:
    prompter = ScriptedPrompter([Answer.ACCEPT])
    b = broker(prompter, caps=(V, C))
    assert (await b.start()).granted == {V, C}
    already = await b.request_more([V])
    assert already.status is Status.GRANTED and already.reason == "already_granted" and not already.events
    assert len(prompter.prompts) == 1


async def test_control_after_view_prompts_again_and_deny_keeps_view() -> None:
    prompter = ScriptedPrompter([Answer.ACCEPT, Answer.DENY, Answer.ACCEPT])
    b = broker(prompter, caps=(V,))
    await b.start()
    assert b.grants.allows(V) and not b.grants.allows(C)

    offer = _offer_for(b.subject, [V, C])
    denied = await b.request_more([C], offer=offer)
    assert denied.status is Status.DENIED and len(prompter.prompts) == 2
    assert prompter.prompts[1].first is False and prompter.prompts[1].already_granted == (V,)
    assert prompter.prompts[1].capabilities == (C,)
    assert b.grants.allows(V) and not b.grants.allows(C)

    granted = await b.request_more([C])
    assert granted.status is Status.GRANTED and granted.granted == {C}
    assert events(granted) == ["consent.requested", "consent.granted"]  # no second session.start
    assert b.grants.allows(C)


async def test_request_more_outside_the_signed_offer_is_refused_without_asking() -> None:
    prompter = ScriptedPrompter([Answer.ACCEPT, Answer.ACCEPT])
    b = broker(prompter, caps=(V,))
    await b.start()
    result = await b.request_more([SH])
    assert result.status is Status.DENIED and result.reason == "not_offered"
    assert len(prompter.prompts) == 1 and not b.grants.allows(SH)


async def test_newer_offer_must_be_for_the_same_session_and_technician() -> None:
    b = broker(ScriptedPrompter([Answer.ACCEPT]), caps=(V,))
    await b.start()
    other = _offer_for(b.subject, [V, C], user_id="someone-else")
    with pytest.raises(ConsentError, match="same session"):
        await b.request_more([C], offer=other)


async def test_repeated_refusals_stop_the_nagging() -> None:
    prompter = ScriptedPrompter([Answer.ACCEPT, Answer.DENY, None, Answer.DENY, Answer.ACCEPT])
    b = broker(prompter, caps=(V,), policy=Policy(prompt_timeout=1.0))
    await b.start()
    offer = _offer_for(b.subject, [V, C])
    reasons = [(await b.request_more([C], offer=offer)).reason for _ in range(3)]
    assert reasons == ["user", "timeout", "user"]
    result = await b.request_more([C])
    assert result.reason == "too_many_requests" and len(prompter.prompts) == 4


async def test_one_prompt_at_a_time() -> None:
    prompter = ScriptedPrompter([Answer.ACCEPT, None])
    b = broker(prompter, caps=(V,))
    await b.start()
    offer = _offer_for(b.subject, [V, C, CB])
    prompter.opened.clear()
    first = asyncio.create_task(b.request_more([C], offer=offer))
    await asyncio.wait_for(prompter.opened.wait(), scaled(5))
    second = await b.request_more([CB])
    assert second.reason == "busy" and len(prompter.prompts) == 2
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert prompter.cancelled == 1


async def test_stop_revokes_at_once_and_cancels_an_open_prompt(tmp_path: Path) -> None:
    prompter = ScriptedPrompter([Answer.ACCEPT, None])
    b = broker(prompter, caps=(V,), log=LocalLog(tmp_path / "log"))
    await b.start()
    prompter.opened.clear()
    pending = asyncio.create_task(b.request_more([C], offer=_offer_for(b.subject, [V, C])))
    await asyncio.wait_for(prompter.opened.wait(), scaled(5))
    stop_events = await b.stop(by="user")
    assert [e.event for e in stop_events] == ["session.stop"]
    assert stop_events[0].data["by"] == "user" and stop_events[0].actor == "user"
    assert not b.grants.allows(V) and b.grants.revoked
    result = await asyncio.wait_for(pending, scaled(5))
    assert result.status is Status.DENIED and result.reason == "stopped"
    assert prompter.cancelled == 1
    assert (await b.request_more([V])).reason == "stopped"
    assert await b.stop() == ()  # once


async def test_stop_during_the_first_prompt_denies() -> None:
    prompter = ScriptedPrompter([None])
    b = broker(prompter)
    start = asyncio.create_task(b.start())
    await asyncio.wait_for(prompter.opened.wait(), scaled(5))
    assert await b.stop() == ()  # no session started, so no session.stop
    result = await asyncio.wait_for(start, scaled(5))
    assert result.status is Status.DENIED and result.reason == "stopped"


async def test_a_grant_that_cannot_be_logged_is_not_given(tmp_path: Path) -> None:
    blocker = tmp_path / "log"
    blocker.write_text("a file where the log directory should be")
    b = broker(ScriptedPrompter([Answer.ACCEPT]), log=LocalLog(blocker))
    result = await b.start()
    assert result.status is Status.DENIED and result.reason == "log_failed"
    assert not b.grants.granted


# ------------------------------------------------------------------------------------------------ Grants


def test_grants_refuse_anything_not_granted() -> None:
    grants = Grants()
    grants._add({V})
    assert grants.allows(V) and grants.allows("view")
    for refused in (C, "control", "shell", "VIEW", "", "view ", "anything"):
        assert not grants.allows(refused)
    with pytest.raises(NotGranted) as info:
        grants.require("control")
    assert info.value.code == "not_granted"
    grants.require(V)


def test_revoke_from_another_thread_is_immediate_and_final() -> None:
    grants = Grants()
    grants._add({V, C})
    thread = threading.Thread(target=grants.revoke)
    thread.start()
    thread.join()
    assert not grants.allows(V) and grants.granted == frozenset()
    grants._add({V})
    assert not grants.allows(V)


async def test_the_runtime_gate_refuses_records_whatever_the_server_says() -> None:
    """A sketch of the runtime's dispatch: the record's claimed capability is checked, never trusted."""
    b = broker(ScriptedPrompter([Answer.ACCEPT]), caps=(V,))
    await b.start()
    handled: list[str] = []

    def dispatch(capability: str, payload: bytes) -> None:
        b.grants.require(capability)
        handled.append(capability)

    dispatch("view", b"frame request")
    for hostile in ("control", "shell", "files"):
        with pytest.raises(NotGranted):
            dispatch(hostile, b"server says the user agreed")
    assert handled == ["view"]


# ------------------------------------------------------------------------------------------------ handshake


async def test_subject_from_a_completed_handshake() -> None:
    org, technician, identity = (Ed25519PrivateKey.generate() for _ in range(3))
    console = ConsoleHandshake(technician)
    agent = AgentHandshake(public_key_bytes(org), identity, device_id="dev-1")
    offer = SessionOffer(
        version=SESSION_VERSION,
        suite=SUITE,
        session_id=b64encode(bytes(16)),
        org_name="Org",
        technician=TechnicianIdentity(user_id="u1", name="Tech", key=b64encode(public_key_bytes(technician))),
        device_id="dev-1",
        agent_key=b64encode(public_key_bytes(identity)),
        capabilities=[V, C],
        reason="help",
        console_commitment=b64encode(console.commitment),
        created_at=1000.0,
        expires_at=2000.0,
    )
    signed = sign_offer(org, offer)
    with pytest.raises(ConsentError, match="completed handshake"):
        ConsentSubject.from_handshake(agent)
    accept = agent.receive_offer(signed, now=1500.0)
    reveal = console.receive_accept(signed, accept)
    _confirm, keys = agent.receive_reveal(reveal)
    s = ConsentSubject.from_handshake(agent)
    assert s.sas == keys.sas and s.org_name == "Org" and s.technician.name == "Tech"
    assert s.capabilities == {V, C}
    assert open_offer(signed, public_key_bytes(org), now=1500.0)[0].capabilities == [V, C]


def _offer_for(
    s: ConsentSubject, capabilities: list[Capability], *, user_id: str | None = None
) -> SessionOffer:
    return SessionOffer(
        version=SESSION_VERSION,
        suite=SUITE,
        session_id=s.session_id,
        org_name=s.org_name,
        technician=TechnicianIdentity(
            user_id=user_id or s.technician.user_id, name=s.technician.name, key="AA"
        ),
        device_id="dev-1",
        agent_key="AA",
        capabilities=capabilities,
        reason=s.reason,
        console_commitment="AA",
        created_at=0.0,
        expires_at=1.0,
    )


async def test_after_the_ui_revoked_nothing_more_is_asked() -> None:
    """Stop pressed: the UI thread revoked the grants before the runtime called stop()."""
    prompter = ScriptedPrompter([Answer.ACCEPT, Answer.ACCEPT])
    b = broker(prompter, caps=(V,))
    await b.start()
    b.revoke()
    result = await b.request_more([C], offer=_offer_for(b.subject, [V, C]))
    assert result.reason == "stopped" and len(prompter.prompts) == 1
    assert not b.grants.allows(V) and not b.grants.allows(C)
