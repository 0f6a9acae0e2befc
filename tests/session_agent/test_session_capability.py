"""The agent's session runtime end to end over real TLS: offer → relay → handshake → consent → records → stop.

The relay here is an in-test frame forwarder with the relay's contract (docs/design/0082); the console is
the Python ``ConsoleHandshake`` with the real record layer; the UI is scripted; input reaches a recording
backend through the real ``InputDispatcher``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_agent.errors import ServerRefused
from steun_agent.input.backend import InputDispatcher
from steun_agent.locallog import LocalLog
from steun_agent.policy import Mode, Policy
from steun_agent.session import SessionCapability, SessionSettings
from steun_agent.session.sender import Priority, PrioritySender
from steun_protocol.auth import public_key_bytes
from steun_protocol.frames import decode_frame, encode_frame
from steun_protocol.messages import Empty, Request
from steun_protocol.screen import Key, Refresh, encode
from steun_protocol.session import Capability, ConsoleHandshake, RecordType
from steun_protocol.sessionplane import (
    AskMore,
    Channel,
    Granted,
    OfferDelivered,
    Refused,
    SessionEvent,
    Stop,
)

from tests.session_agent.fakes import (
    FrameRelay,
    RecordingInputBackend,
    ScriptedUI,
    Technician,
    TestConsole,
    make_offer,
    offer_request,
)
from tests.support.waiting import scaled, wait_for

DEVICE = "dev-0001"


@dataclass
class RecordingSession:
    """The control connection as a capability sees it; records ``session/event``."""

    events: list[SessionEvent] = field(default_factory=list)
    heartbeat_interval: float = 30.0

    async def request(self, request: Request, result_type: type[Any], *, timeout: float | None = None) -> Any:
        assert isinstance(request, SessionEvent)
        self.events.append(request)
        return Empty()

    def names(self) -> list[str]:
        return [e.event for e in self.events]


class FakeStreamer:
    def __init__(self) -> None:
        self.handled: list[Any] = []
        self.monitor = None
        self.cancelled = asyncio.Event()

    def handle(self, message: Any) -> None:
        self.handled.append(message)

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.set()


@dataclass
class World:
    relay: FrameRelay
    org_key: Ed25519PrivateKey
    identity: Ed25519PrivateKey
    ui: ScriptedUI
    capability: SessionCapability
    session: RecordingSession
    backend: RecordingInputBackend
    streamers: list[FakeStreamer]
    technician: Technician = field(default_factory=Technician)

    async def offer(
        self, capabilities: list[Capability], *, org_key: Ed25519PrivateKey | None = None
    ) -> tuple[Any, TestConsole]:
        handshake = ConsoleHandshake(self.technician.key)
        signed = make_offer(
            org_key or self.org_key,
            handshake,
            self.technician,
            device_id=DEVICE,
            agent_key=public_key_bytes(self.identity),
            capabilities=capabilities,
        )
        agent_ticket, console_ticket = self.relay.open()
        console = TestConsole(signed, handshake)
        result = await self.capability.handlers[type(offer_request(signed, agent_ticket))](
            offer_request(signed, agent_ticket)
        )
        await console.join(self.relay, console_ticket)
        return result, console


async def make_world(
    tmp_path: Path,
    answers: list[str],
    *,
    prompt_timeout: float = 60.0,
    mode: Mode = Mode.ATTENDED,
    policy: Policy | None = None,
    streamer_factory: Any = None,
    dispatcher_factory: Any = None,
) -> World:
    relay = FrameRelay()
    await relay.start()
    org_key, identity = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ui = ScriptedUI(answers)
    backend = RecordingInputBackend()
    streamers: list[FakeStreamer] = []

    def fake_streamer(send: Any) -> FakeStreamer:
        streamers.append(FakeStreamer())
        return streamers[-1]

    def recording_dispatcher(send: Any, origin: Any, control: bool, clipboard: bool) -> InputDispatcher:
        return InputDispatcher(
            lambda: backend, origin=origin, send=send, control=control, clipboard=clipboard
        )

    settings = SessionSettings(
        server_url=relay.url,
        pin=relay.certificate.spki_sha256,
        policy=policy or Policy(prompt_timeout=prompt_timeout),
        mode=mode,
        ui=ui,
        local_log=LocalLog(tmp_path / "log"),
        streamer_factory=streamer_factory or fake_streamer,
        dispatcher_factory=dispatcher_factory or recording_dispatcher,
        handshake_timeout=scaled(10),
    )
    capability = SessionCapability(
        org_public_key=public_key_bytes(org_key), identity=identity, device_id=DEVICE, settings=settings
    )
    session = RecordingSession()
    await capability.start(session)
    return World(relay, org_key, identity, ui, capability, session, backend, streamers)


@pytest.fixture
async def world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    marker = request.node.get_closest_marker("answers")
    answers = list(marker.args[0]) if marker else ["accept"]
    timeout = marker.kwargs.get("prompt_timeout", 60.0) if marker else 60.0
    w = await make_world(tmp_path, answers, prompt_timeout=timeout)
    yield w
    await w.capability.stop()
    await w.relay.stop()


async def established(world: World, capabilities: list[Capability]) -> TestConsole:
    result, console = await world.offer(capabilities)
    assert isinstance(result, OfferDelivered)
    await console.handshake_run()
    return console


async def ended(world: World) -> Any:
    async with asyncio.timeout(scaled(10)):
        await world.capability.finished.wait()
    return world.capability.outcomes[-1]


# --------------------------------------------------------------------------------------------- tests


async def test_forged_offer_is_refused_and_audited(world: World) -> None:
    with pytest.raises(ServerRefused) as err:
        await world.offer([Capability.VIEW], org_key=Ed25519PrivateKey.generate())
    assert "offer_forged" in str(err.value)
    assert world.session.names() == ["session.refused"]
    assert "offer_forged" in world.session.events[0].detail
    assert world.capability.runner is None
    assert world.ui.prompts == []


@pytest.mark.answers(["accept"])
async def test_accept_shows_sas_grants_and_refuses_ungranted_input(world: World) -> None:
    console = await established(world, [Capability.VIEW])
    assert world.relay.origins["agent"] is None  # agents send no Origin
    granted = await console.wait_control(Granted)
    assert granted.capabilities == [Capability.VIEW]
    prompt = world.ui.prompts[0]
    assert console.keys is not None and prompt.sas == console.keys.sas  # both SAS equal
    assert prompt.org_name == "Acme Helpdesk" and prompt.technician.name == "Jan de Vries"
    assert prompt.reason == "printer does not print" and prompt.capabilities == (Capability.VIEW,)
    assert world.ui.indicator is not None and world.ui.indicator.capabilities == (Capability.VIEW,)

    # INPUT without CONTROL: refused, never reaches the backend; SCREEN with VIEW reaches the streamer.
    await console.send(Channel.INPUT, RecordType.DATA, encode(Key(0x61, True)))
    refused = await console.wait_control(Refused)
    assert refused.channel == Channel.INPUT and refused.reason == "not_granted"
    await console.send(Channel.SCREEN, RecordType.DATA, encode(Refresh()))
    await wait_for(lambda: world.streamers and world.streamers[0].handled, what="screen message handled")
    assert world.backend.calls == []
    names = world.session.names()
    assert names[:3] == ["consent.requested", "consent.granted", "session.start"]
    await console.send_control(Stop(reason="done"))
    outcome = await ended(world)
    assert outcome.reason == "technician"
    assert world.session.names()[-1] == "session.stop"
    assert world.backend.calls == []
    await console.close()


@pytest.mark.answers(["accept", "accept"])
async def test_ask_more_prompts_again_and_then_input_reaches_backend(world: World) -> None:
    console = await established(world, [Capability.VIEW, Capability.CONTROL])
    # The offer vouches for both; ask for view first by denying nothing: the first prompt grants both.
    await console.wait_control(Granted)
    await console.send(Channel.INPUT, RecordType.DATA, encode(Key(0x61, True)))
    await wait_for(lambda: ("key", 0x61, True) in world.backend.calls, what="key reached the backend")
    await console.send_control(AskMore(capabilities=[Capability.VIEW], reason="again"))
    # Already granted: no new prompt, but an answer.
    before = len(console.controls)
    granted = await console.wait_control(Granted, after=before)
    assert set(granted.capabilities) == {Capability.VIEW, Capability.CONTROL}
    assert len(world.ui.prompts) == 1
    await console.close()
    outcome = await ended(world)
    assert outcome.reason in ("relay_closed", "peer_closed")


async def test_ask_more_prompts_again(tmp_path: Path) -> None:
    # The service agent may show the screen unattended (local policy); control needs the user's yes.
    w = await make_world(
        tmp_path,
        ["deny", "accept"],
        mode=Mode.SERVICE,
        policy=Policy(unattended=frozenset({Capability.VIEW})),
    )
    try:
        console = await established(w, [Capability.VIEW, Capability.CONTROL])
        first = await console.wait_control(Granted)
        assert first.capabilities == [Capability.VIEW] and first.denied == [Capability.CONTROL]
        await console.send(Channel.INPUT, RecordType.DATA, encode(Key(0x61, True)))
        await console.wait_control(Refused)
        before = len(console.controls)
        await console.send_control(AskMore(capabilities=[Capability.CONTROL], reason="need to click"))
        second = await console.wait_control(Granted, after=before)
        assert set(second.capabilities) == {Capability.VIEW, Capability.CONTROL}
        assert len(w.ui.prompts) == 2 and w.ui.prompts[1].first is False
        assert w.ui.indicator is not None and Capability.CONTROL in w.ui.indicator.capabilities
        await console.send(Channel.INPUT, RecordType.DATA, encode(Key(0x62, True)))
        await wait_for(lambda: ("key", 0x62, True) in w.backend.calls, what="key reached the backend")
        assert ("key", 0x61, True) not in w.backend.calls  # the refused one never arrives later
        await console.close()
        await ended(w)
    finally:
        await w.capability.stop()
        await w.relay.stop()


@pytest.mark.answers(["deny"])
async def test_deny_closes_the_session(world: World) -> None:
    console = await established(world, [Capability.VIEW])
    granted = await console.wait_control(Granted)
    assert granted.capabilities == [] and granted.denied == [Capability.VIEW]
    outcome = await ended(world)
    assert outcome.reason == "denied"
    async with asyncio.timeout(scaled(5)):
        await console.close_frame.wait()
    assert "consent.denied" in world.session.names()
    assert world.streamers == []
    await console.close()


@pytest.mark.answers(["hang"], prompt_timeout=1.0)
async def test_no_answer_is_a_no(world: World) -> None:
    console = await established(world, [Capability.VIEW])
    granted = await console.wait_control(Granted)
    assert granted.capabilities == []
    outcome = await ended(world)
    assert outcome.reason == "expired"
    assert "consent.expired" in world.session.names()
    await console.close()


@pytest.mark.answers(["accept"])
async def test_indicator_stop_closes_everything_within_one_second(world: World) -> None:
    console = await established(world, [Capability.VIEW, Capability.CONTROL])
    await console.wait_control(Granted)
    await wait_for(lambda: world.streamers, what="streamer started")
    assert world.ui.indicator is not None
    started = time.monotonic()
    world.ui.indicator.press_stop()
    async with asyncio.timeout(scaled(2)):
        await console.close_frame.wait()
        await world.streamers[0].cancelled.wait()
    assert time.monotonic() - started < scaled(1.0)
    assert console.closed == "user"
    assert any(isinstance(c, Stop) for c in console.controls)
    outcome = await ended(world)
    assert outcome.reason == "user"
    assert world.session.names()[-1] == "session.stop"
    await console.close()


@pytest.mark.answers(["accept"])
async def test_replayed_record_ends_the_session(world: World) -> None:
    console = await established(world, [Capability.VIEW])
    await console.wait_control(Granted)
    await console.send(Channel.SCREEN, RecordType.DATA, encode(Refresh()))
    await console.ws.send(console.raw_sent[-1])  # the same record again
    outcome = await ended(world)
    assert outcome.reason == "record_replayed"
    assert "record_replayed" in world.session.events[-1].detail
    await console.close()


@pytest.mark.answers(["accept"])
async def test_tampered_record_ends_the_session(world: World) -> None:
    def flip(direction: str, data: bytes) -> list[bytes]:
        frame = decode_frame(data)
        if direction == "to_agent" and frame.type.name == "SEALED" and frame.channel == Channel.SCREEN:
            payload = bytearray(frame.payload)
            payload[-1] ^= 1
            return [encode_frame(type(frame)(frame.type, frame.channel, bytes(payload)))]
        return [data]

    world.relay.tamper = flip
    console = await established(world, [Capability.VIEW])
    await console.wait_control(Granted)
    await console.send(Channel.SCREEN, RecordType.DATA, encode(Refresh()))
    outcome = await ended(world)
    assert outcome.reason == "record_forged"
    assert world.streamers[0].handled == []
    await console.close()


async def test_priority_sender_puts_control_before_screen() -> None:
    written: list[int] = []

    class Sealer:
        def seal(self, channel: int, record_type: RecordType, payload: bytes) -> bytes:
            return bytes([channel])

    async def write(data: bytes) -> None:
        written.append(decode_frame(data).channel)

    sender = PrioritySender(Sealer(), write)  # type: ignore[arg-type]
    for _ in range(5):
        await sender.send_screen(Channel.SCREEN, b"x")
    sender.send_nowait(Channel.INPUT, RecordType.DATA, b"i", Priority.INPUT)
    done = sender.send_nowait(Channel.CONTROL, RecordType.CONTROL, b"c")
    task = asyncio.create_task(sender.run())
    async with asyncio.timeout(scaled(5)):
        await done
    await wait_for(lambda: len(written) == 7, what="all written")
    task.cancel()
    assert written[:2] == [Channel.CONTROL, Channel.INPUT]


async def test_priority_sender_lets_screen_and_file_chunks_take_turns() -> None:
    # A busy screen must not starve a download, nor a download the screen; shell output goes before both.
    written: list[int] = []

    class Sealer:
        def seal(self, channel: int, record_type: RecordType, payload: bytes) -> bytes:
            return bytes([channel])

    async def write(data: bytes) -> None:
        written.append(decode_frame(data).channel)

    sender = PrioritySender(Sealer(), write)  # type: ignore[arg-type]
    for _ in range(4):
        await sender.send_screen(Channel.SCREEN, b"s")
        sender.send_nowait(Channel.FILES, RecordType.DATA, b"f", Priority.BULK)
    sender.send_nowait(Channel.SHELL, RecordType.DATA, b"$", Priority.INPUT)
    task = asyncio.create_task(sender.run())
    await wait_for(lambda: len(written) == 9, what="all written")
    task.cancel()
    assert written[0] == Channel.SHELL
    assert written[1:] == [Channel.SCREEN, Channel.FILES] * 4


async def test_send_waiting_waits_for_room_and_fails_once_the_sender_closes() -> None:
    written: list[int] = []
    gate = asyncio.Event()

    class Sealer:
        def seal(self, channel: int, record_type: RecordType, payload: bytes) -> bytes:
            return bytes([channel])

    async def write(data: bytes) -> None:
        await gate.wait()
        written.append(decode_frame(data).channel)

    from steun_agent.session.sender import QUEUE_LIMITS, SendQueueFull

    sender = PrioritySender(Sealer(), write)  # type: ignore[arg-type]
    task = asyncio.create_task(sender.run())
    limit = QUEUE_LIMITS[Priority.BULK]
    senders = [
        asyncio.create_task(sender.send_waiting(Channel.FILES, b"f", Priority.BULK)) for _ in range(limit + 3)
    ]
    await asyncio.sleep(0.05)
    # one record is in the writer, `limit` queued, the rest wait for room: nothing raised, nothing dropped
    assert not any(t.done() for t in senders)
    gate.set()
    async with asyncio.timeout(scaled(5)):
        await asyncio.gather(*senders)
    assert len(written) == limit + 3
    gate.clear()
    blocked = [asyncio.create_task(sender.send_waiting(Channel.FILES, b"f", Priority.BULK)) for _ in range(3)]
    await asyncio.sleep(0.05)
    sender.close()
    results = await asyncio.gather(*blocked, return_exceptions=True)
    assert all(isinstance(r, SendQueueFull) for r in results), results
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
