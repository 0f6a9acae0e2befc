"""The console's end of the shell channel, as a test peer: it records what the agent sends and acknowledges
output the way the console's terminal does (after "painting" it), unless told to hold back."""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict

from steun_agent.shell import Account, ShellEvent, ShellService
from steun_protocol.shell import (
    Ack,
    AgentMessage,
    ConsoleMessage,
    Data,
    Error,
    Exit,
    Opened,
    Stderr,
    decode_from_agent,
    encode,
)

from tests.support.waiting import wait_for


class ShellConsole:
    def __init__(self, *, auto_ack: bool = True, account: Account | None = None, **options: object) -> None:
        self.auto_ack = auto_ack
        self.messages: list[AgentMessage] = []
        self.output: defaultdict[int, bytearray] = defaultdict(bytearray)
        self.errors: defaultdict[int, bytearray] = defaultdict(bytearray)
        self.unacked: defaultdict[int, int] = defaultdict(int)
        self.events: list[ShellEvent] = []
        self.closed = False
        # The tests read bash's prompts and job control, whatever the account's own login shell is.
        chosen = account or dataclasses.replace(Account.current(), shell="/bin/bash")
        self.service = ShellService(
            self._receive,
            lambda: chosen,
            on_event=self.events.append,
            **options,  # type: ignore[arg-type]
        )

    async def _receive(self, data: bytes) -> None:
        assert not self.closed, "the agent sent something after close_all"
        message = decode_from_agent(data)
        self.messages.append(message)
        if isinstance(message, Data | Stderr):
            (self.output if isinstance(message, Data) else self.errors)[message.shell] += message.data
            if self.auto_ack:
                self.service.feed(encode(Ack(message.shell, len(message.data))))
            else:
                self.unacked[message.shell] += len(message.data)

    async def send(self, message: ConsoleMessage) -> None:
        self.service.feed(encode(message))

    async def type(self, shell: int, text: str) -> None:
        await self.send(Data(shell, text.encode()))

    async def ack_all(self, shell: int) -> None:
        pending, self.unacked[shell] = self.unacked[shell], 0
        if pending:
            await self.send(Ack(shell, pending))

    async def wait_output(self, shell: int, needle: bytes | str, *, timeout: float = 10.0) -> None:
        want = needle.encode() if isinstance(needle, str) else needle
        await wait_for(lambda: want in self.output[shell], timeout=timeout, what=f"{want!r} on shell {shell}")

    async def wait_opened(self, shell: int) -> Opened:
        return await wait_for(lambda: self._find(Opened, shell), what=f"shell {shell} to open")

    async def wait_exit(self, shell: int, *, timeout: float = 10.0) -> Exit:
        return await wait_for(lambda: self._find(Exit, shell), timeout=timeout, what=f"shell {shell} to exit")

    async def wait_error(self, shell: int) -> Error:
        return await wait_for(lambda: self._find(Error, shell), what=f"an error on shell {shell}")

    def _find(self, kind: type, shell: int):  # type: ignore[no-untyped-def]
        return next((m for m in self.messages if isinstance(m, kind) and m.shell == shell), None)

    async def close_all(self) -> None:
        await self.service.close_all()
        self.closed = True


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a container's PID 1 may never reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def children_named(session_leader: int, name: str) -> list[int]:
    """Processes of ``session_leader``'s session whose command name is ``name``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode(errors="replace")
        fields = stat[stat.rfind(b")") + 2 :].split()
        if comm == name and int(fields[3]) == session_leader and fields[0] not in (b"Z", b"X"):
            found.append(int(entry))
    return found
