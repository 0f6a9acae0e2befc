"""The agent's end of sessions for the native-SSH tests: the real handshake through the real relay, then the
shell and files services wired to sealed records — exactly the dispatch the agent's session runtime does for
``Channel.SHELL`` and ``Channel.FILES`` (``ShellService.feed`` / ``FilesService.feed`` for each DATA record of
a granted channel, their ``send`` sealing DATA records back, ``close_all`` on Stop).

The user's consent is stood in for by ``grant``: the capabilities this "user" allows of those asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path

import msgspec
from steun_agent.files import FilesEvent, FilesService
from steun_agent.shell import Account, ShellEvent, ShellService
from steun_protocol.auth import b64decode
from steun_protocol.frames import Frame, FrameType
from steun_protocol.session import AgentHandshake, Capability, RecordType, Reveal, record_layer
from steun_protocol.sessionplane import CHANNEL_CAPABILITY, Channel, Granted, Refused, Stop, decode_control

from tests.sessions.helpers import RelayEnd, agent_end, next_offer
from tests.support.agent_client import AgentClient, Identity
from tests.support.server import RunningServer


@dataclasses.dataclass
class AgentSession:
    session_id: str
    asked: frozenset[Capability]
    granted: frozenset[Capability]
    end: RelayEnd
    shells: ShellService
    files: FilesService
    send: object
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    refused: list[int] = dataclasses.field(default_factory=list)
    file_events: list[FilesEvent] = dataclasses.field(default_factory=list)


class ServicesAgent:
    def __init__(
        self,
        server: RunningServer,
        client: AgentClient,
        identity: Identity,
        root: Path,
        *,
        grant: frozenset[Capability] | None = None,
    ) -> None:
        self.server = server
        self.client = client
        self.identity = identity
        self.root = root
        self.grant = grant  # None: whatever is asked
        self.sessions: list[AgentSession] = []
        self.shell_events: list[ShellEvent] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.create_task(self._offers())

    async def _offers(self) -> None:
        while True:
            try:
                offer = await next_offer(self.client)
            except TimeoutError:  # no technician asked for a while: keep listening
                continue
            task = asyncio.create_task(self._session(offer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _session(self, offer_request) -> None:  # type: ignore[no-untyped-def]
        assert self.identity.device_id is not None
        handshake = AgentHandshake(
            self.server.org_public_key, self.identity.key, device_id=self.identity.device_id
        )
        accept = handshake.receive_offer(offer_request.offer, now=time.time())
        assert handshake.offer is not None
        end = await agent_end(self.server, offer_request.relay_path, offer_request.ticket)
        await end.send_json(accept)
        frame = await end.receive_frame(timeout=60)
        confirm, keys = handshake.receive_reveal(msgspec.json.decode(frame.payload, type=Reveal))
        await end.send_json(confirm)
        session_id = handshake.offer.session_id
        sealer, opener = record_layer(keys, b64decode(session_id, size=16), "agent")
        lock = asyncio.Lock()

        async def send(channel: Channel, payload: bytes, kind: RecordType = RecordType.DATA) -> None:
            async with lock:
                await end.send_frame(Frame(FrameType.SEALED, channel, sealer.seal(channel, kind, payload)))

        asked = frozenset(handshake.offer.capabilities)
        granted = asked if self.grant is None else asked & self.grant
        account = dataclasses.replace(Account.current(), shell="/bin/bash")
        file_events: list[FilesEvent] = []
        state = AgentSession(
            session_id,
            asked,
            granted,
            end,
            ShellService(
                lambda p: send(Channel.SHELL, p), lambda: account, on_event=self.shell_events.append
            ),
            FilesService(lambda p: send(Channel.FILES, p), self.root, on_event=file_events.append),
            send,
            file_events=file_events,
        )
        self.sessions.append(state)
        granted_message = Granted(capabilities=sorted(granted), denied=sorted(asked - granted))
        await send(Channel.CONTROL, msgspec.json.encode(granted_message), RecordType.CONTROL)
        try:
            await self._serve(state, opener)
        finally:
            await state.shells.close_all()
            await state.files.close_all()
            with contextlib.suppress(Exception):
                await end.close()
            state.done.set()

    async def _serve(self, state: AgentSession, opener) -> None:  # type: ignore[no-untyped-def]
        services = {Channel.SHELL: state.shells, Channel.FILES: state.files}
        while True:
            try:
                frame = await state.end.receive_frame(timeout=3600)
            except ConnectionError:
                return
            if frame.type is FrameType.CLOSE:
                return
            if frame.type is not FrameType.SEALED:
                continue
            record = opener.open(frame.payload)
            if record.type is RecordType.CLOSE:
                return
            if record.type is RecordType.CONTROL:
                if isinstance(decode_control(record.payload), Stop):
                    return
                continue
            channel = Channel(record.channel)
            needed = CHANNEL_CAPABILITY[channel]
            service = services.get(channel)
            if service is None or needed not in state.granted:
                state.refused.append(record.channel)
                refusal = Refused(channel=record.channel, reason="not_granted")
                await state.send(Channel.CONTROL, msgspec.json.encode(refusal), RecordType.CONTROL)  # type: ignore[operator]
                continue
            service.feed(record.payload)

    async def stop(self, state: AgentSession, reason: str = "user") -> None:
        """The user pressed Stop: everything ends at once, the console is told."""
        await state.shells.close_all()
        await state.files.close_all()
        with contextlib.suppress(Exception):
            await state.send(Channel.CONTROL, msgspec.json.encode(Stop(reason=reason)), RecordType.CONTROL)  # type: ignore[operator]
            await state.send(Channel.CONTROL, reason.encode(), RecordType.CLOSE)  # type: ignore[operator]
            await state.end.close()

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._loop] if self._loop else []), return_exceptions=True)
