"""The technician's side of the shell channel: remote shells with flow control, as the console's terminal.

``ShellMux`` owns ``Channel.SHELL`` of one :class:`~.session.TechSession`; ``await mux.open(...)`` starts a
shell on the agent (in a terminal, or on pipes) and returns a :class:`RemoteShell`: ``write`` (waits for the
agent's input credit), ``eof``, ``read`` (``("stdout" | "stderr", bytes)``, then ``None`` once it exited),
``ack`` after the output was consumed, ``resize``, ``signal``, ``close``; ``exit`` holds the final status.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

from steun_protocol.sessionplane import Channel
from steun_protocol.shell import (
    MAX_DATA_BYTES,
    MAX_SHELLS,
    WINDOW,
    Ack,
    Close,
    ConsoleMessage,
    Data,
    Eof,
    Error,
    Exit,
    Open,
    Opened,
    Resize,
    SendSignal,
    Signal,
    Stderr,
    decode_from_agent,
    encode,
)

from .login import TechError
from .session import TechSession

OPEN_TIMEOUT = 30.0


class ShellFailed(TechError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"the remote shell failed: {code}: {message}")
        self.code = code


@dataclass(frozen=True, slots=True)
class ShellExit:
    status: int
    signal: int  # Linux numbering; 0 if the shell exited

    @property
    def signal_name(self) -> str:
        try:
            return Signal(self.signal).name
        except ValueError:
            return f"SIG{self.signal}"


class RemoteShell:
    def __init__(self, mux: ShellMux, ident: int) -> None:
        self._mux = mux
        self.id = ident
        self.pid = 0
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.exit: ShellExit | None = None
        self._output: collections.deque[tuple[str, bytes] | None] = collections.deque()
        self._readable = asyncio.Event()
        self._credit = WINDOW
        self._credited = asyncio.Event()
        self._credited.set()

    # ---------------------------------------------------------------- to the agent

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            while self._credit <= 0:
                if self.exit is not None or self._mux.session.ended.is_set():
                    return
                self._credited.clear()
                await self._credited.wait()
            piece = bytes(view[: min(MAX_DATA_BYTES, self._credit)])
            self._credit -= len(piece)
            await self._mux.send(Data(self.id, piece))
            view = view[len(piece) :]

    async def eof(self) -> None:
        if self.exit is None:
            await self._mux.send(Eof(self.id))

    async def ack(self, nbytes: int) -> None:
        if nbytes and self.exit is None:
            await self._mux.send(Ack(self.id, nbytes))

    async def resize(self, cols: int, rows: int) -> None:
        await self._mux.send(Resize(self.id, max(1, min(cols, 4096)), max(1, min(rows, 4096))))

    async def signal(self, sig: Signal) -> None:
        await self._mux.send(SendSignal(self.id, sig))

    async def close(self) -> None:
        if self.exit is None:
            await self._mux.send(Close(self.id))

    # ---------------------------------------------------------------- from the agent

    async def read(self) -> tuple[str, bytes] | None:
        """The next piece of output and its stream; ``None`` once the shell has exited and all was read."""
        while not self._output:
            self._readable.clear()
            await self._readable.wait()
        return self._output.popleft()

    def _push(self, data: tuple[str, bytes] | None) -> None:
        self._output.append(data)
        self._readable.set()

    def _credit_back(self, nbytes: int) -> None:
        self._credit = min(WINDOW, self._credit + nbytes)
        self._credited.set()

    def _ended(self, status: ShellExit) -> None:
        self.exit = status
        self._push(None)
        self._credited.set()


class ShellMux:
    def __init__(self, session: TechSession) -> None:
        self.session = session
        self._shells: dict[int, RemoteShell] = {}
        self._next = 0
        session.on_channel(Channel.SHELL, self._receive)
        session.on_end(self._session_ended)

    async def open(
        self,
        *,
        cols: int = 80,
        rows: int = 24,
        term: str = "xterm-256color",
        command: str = "",
        pipes: bool = False,
    ) -> RemoteShell:
        if len(self._shells) >= MAX_SHELLS:
            raise TechError(f"at most {MAX_SHELLS} shells at once")
        while True:
            self._next = self._next % 0xFFFF + 1
            if self._next not in self._shells:
                break
        shell = RemoteShell(self, self._next)
        self._shells[shell.id] = shell
        term = "".join(c for c in term if c.isalnum() or c in "._+-")[:32] or "xterm-256color"
        await self.send(
            Open(shell.id, max(1, min(cols, 4096)), max(1, min(rows, 4096)), term, command, pipes)
        )
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                await shell.opened
        except TimeoutError:
            self._shells.pop(shell.id, None)
            raise TechError("the agent did not start the shell in time") from None
        except BaseException:
            self._shells.pop(shell.id, None)
            raise
        return shell

    async def send(self, message: ConsoleMessage) -> None:
        await self.session.send(Channel.SHELL, encode(message))

    async def _receive(self, payload: bytes) -> None:
        message = decode_from_agent(payload)
        shell = self._shells.get(message.shell)
        if shell is None:
            return
        match message:
            case Data(_, data):
                shell._push(("stdout", data))
            case Stderr(_, data):
                shell._push(("stderr", data))
            case Ack(_, nbytes):
                shell._credit_back(nbytes)
            case Opened(_, pid):
                shell.pid = pid
                if not shell.opened.done():
                    shell.opened.set_result(None)
            case Exit(_, status, sig):
                self._shells.pop(shell.id, None)
                if not shell.opened.done():
                    shell.opened.set_result(None)
                shell._ended(ShellExit(status, sig))
            case Error(_, code, text):
                self._shells.pop(shell.id, None)
                if not shell.opened.done():
                    shell.opened.set_exception(ShellFailed(code, text))
                else:
                    shell._ended(ShellExit(255, 0))

    def _session_ended(self) -> None:
        for shell in list(self._shells.values()):
            if not shell.opened.done():
                shell.opened.set_exception(TechError(f"the session ended: {self.session.end_reason}"))
            elif shell.exit is None:
                shell._ended(ShellExit(255, 0))
        self._shells.clear()
