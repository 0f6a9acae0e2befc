"""The shell channel of one session: shells in PTYs, their bytes both ways within credit, signals, exit, Stop.

The session runtime holds one :class:`ShellService` per session and does three things with it:

* ``service.feed(payload)`` for every DATA record the console sent on ``Channel.SHELL`` (after it checked
  the ``shell`` capability is granted). ``feed`` is synchronous and never blocks: it queues input and starts
  work (and any error reply) in the service's own tasks, in order. A payload that does not decode raises
  ``RemoteProtocolError`` (answer it ``Refused invalid``, as for the screen channel).
* it gives the service a ``send`` coroutine at construction: one call = one encoded message = one sealed
  DATA record on ``Channel.SHELL``. ``send`` may be called from several tasks at once and should return
  once the record is handed to the connection (that wait is the backpressure).
* ``await service.close_all()`` on Stop (or when the session ends for any reason): every shell's whole
  terminal session gets SIGKILL at once; nothing more is sent. ``close_all`` is idempotent.

Audit events (``shell.start``, ``shell.end``, ``shell.failed`` — who ran what as whom and how it ended;
never the bytes typed or shown) go to ``on_event``; the runtime forwards them to the server's audit chain
with the technician's name from the signed offer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import signal as signals
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from steun_protocol.shell import (
    MAX_DATA_BYTES,
    MAX_SHELLS,
    WINDOW,
    Ack,
    Close,
    Data,
    Eof,
    Error,
    Exit,
    Open,
    Opened,
    Resize,
    SendSignal,
    ShellErrorCode,
    ShellMessage,
    Signal,
    Stderr,
    decode_from_console,
    encode,
)

from .account import Account, AccountError
from .process import ExitStatus, ManagedProcess, PipeProcess, PtyProcess, SpawnError

log = logging.getLogger(__name__)

Send = Callable[[bytes], Awaitable[None]]
#: How long a CLOSEd shell has between SIGHUP and SIGKILL (seconds).
CLOSE_GRACE = 1.0

EventName = Literal["shell.start", "shell.end", "shell.failed"]


@dataclass(frozen=True, slots=True)
class ShellEvent:
    """One line for the audit chain. ``command`` is what was asked at OPEN ("" = login shell)."""

    name: EventName
    shell: int
    account: str
    command: str
    pid: int = 0
    status: int | None = None
    signal: int | None = None
    #: exit | closed | stop | flow_violation | error | spawn_failed | account_unavailable
    reason: str = ""


@dataclass(slots=True)
class ShellStatistics:
    running: int = 0
    opened: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    flow_stalls: int = 0


def os_signal(sig: Signal) -> int:
    """The platform's number for a wire signal."""
    return int(getattr(signals, "SIG" + sig.name))


def wire_signal(number: int) -> int:
    """The wire (Linux) number for a platform signal; unknown ones pass through (capped to a byte)."""
    try:
        name = signals.Signals(number).name.removeprefix("SIG")
        return Signal[name].value
    except (ValueError, KeyError):
        return min(max(number, 1), 255)


@dataclass(eq=False, slots=True)
class _Shell:
    id: int
    request: Open
    account: Account | None = None
    proc: ManagedProcess | None = None
    cols: int = 80
    rows: int = 24
    out_unacked: int = 0
    out_room: asyncio.Event = field(default_factory=asyncio.Event)
    in_queue: collections.deque[bytes | None] = field(default_factory=collections.deque)  # None: EOF
    in_bytes: int = 0
    in_ready: asyncio.Event = field(default_factory=asyncio.Event)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    abort: bool = False
    ended: bool = False
    reason: str = "exit"
    task: asyncio.Task[None] | None = None


class ShellService:
    """Every shell of one session. See the module docstring for the contract with the runtime."""

    def __init__(
        self,
        send: Send,
        account: Callable[[], Account] = Account.current,
        *,
        on_event: Callable[[ShellEvent], None] | None = None,
        max_shells: int = MAX_SHELLS,
        window: int = WINDOW,
        close_grace: float = CLOSE_GRACE,
    ) -> None:
        self._send = send
        self._account = account
        self._on_event = on_event
        self._max_shells = max_shells
        self._window = window
        self._close_grace = close_grace
        self._shells: dict[int, _Shell] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._stats = ShellStatistics()

    def statistics(self) -> ShellStatistics:
        return dataclasses.replace(self._stats, running=len(self._shells))

    # ---------------------------------------------------------------- from the console

    def feed(self, payload: bytes) -> None:
        """Handle one console message (one DATA record's payload on the shell channel). Never blocks."""
        message = decode_from_console(payload)
        if isinstance(message, Open):
            self._open(message)
            return
        shell = self._shells.get(message.shell)
        if shell is None:
            if not isinstance(message, Ack | Close | Eof):  # late acks and closes after EXIT are normal races
                self._reply_later(Error(message.shell, ShellErrorCode.NO_SUCH_SHELL, "no such shell"))
            return
        match message:
            case Data(_, data):
                if shell.in_bytes + len(data) > self._window:
                    self._fail(shell, "more input than the window allows")
                    return
                shell.in_queue.append(data)
                shell.in_bytes += len(data)
                shell.in_ready.set()
            case Ack(_, nbytes):
                shell.out_unacked = max(0, shell.out_unacked - nbytes)
                if shell.out_unacked < self._window:
                    shell.out_room.set()
            case Resize(_, cols, rows):
                shell.cols, shell.rows = cols, rows
                if shell.proc is not None:
                    shell.proc.resize(cols, rows)
            case SendSignal(_, sig):
                if shell.proc is not None:
                    shell.proc.signal_foreground(os_signal(sig))
            case Close():
                self._close_shell(shell, "closed")
            case Eof():
                shell.in_queue.append(None)
                shell.in_ready.set()

    def _open(self, request: Open) -> None:
        if self._closed:
            self._reply_later(Error(request.shell, ShellErrorCode.CLOSED, "the session is ending"))
        elif request.shell in self._shells:
            self._reply_later(Error(request.shell, ShellErrorCode.SHELL_EXISTS, "this shell id is in use"))
        elif len(self._shells) >= self._max_shells:
            self._reply_later(
                Error(request.shell, ShellErrorCode.TOO_MANY_SHELLS, f"at most {self._max_shells} shells")
            )
        else:
            shell = _Shell(request.shell, request, cols=request.cols, rows=request.rows)
            shell.out_room.set()
            self._shells[shell.id] = shell
            shell.task = self._spawn_task(self._run(shell))

    # ---------------------------------------------------------------- one shell's life

    async def _run(self, shell: _Shell) -> None:
        request = shell.request
        try:
            try:
                shell.account = await asyncio.to_thread(self._account)
                proc = await self._start(shell)
            except (SpawnError, AccountError) as exc:
                code = ShellErrorCode.ACCOUNT_UNAVAILABLE if isinstance(exc, AccountError) else None
                code = code or ShellErrorCode.SPAWN_FAILED
                name = shell.account.name if shell.account else ""
                self._emit(ShellEvent("shell.failed", shell.id, name, request.command, reason=str(code)))
                await self._reply(Error(shell.id, code, str(exc)))
                return
            self._stats.opened += 1
            await self._reply(Opened(shell.id, proc.pid))
            self._emit(ShellEvent("shell.start", shell.id, proc.account.name, request.command, proc.pid))
            if (shell.cols, shell.rows) != (request.cols, request.rows):
                proc.resize(shell.cols, shell.rows)
            if shell.abort:  # closed while starting
                self._close_shell(shell, shell.reason)
            status = await self._serve(shell, proc)
            await self._reply(
                Exit(shell.id, status.status, wire_signal(status.signal) if status.signal else 0)
            )
            self._emit_end(shell, proc, status)
            # Whatever is left of the terminal's session gets the hangup a closing terminal gives.
            await asyncio.to_thread(proc.hang_up)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("shell %d failed", shell.id)
            if shell.proc is not None:
                await asyncio.to_thread(shell.proc.hang_up, signals.SIGKILL)
            shell.reason = "error"
            with contextlib.suppress(Exception):  # the console must not wait for a shell that is gone
                await self._reply(Error(shell.id, ShellErrorCode.CLOSED, "the shell failed on the agent"))
        finally:
            if shell.proc is not None:
                shell.proc.close()
            self._shells.pop(shell.id, None)

    async def _start(self, shell: _Shell) -> ManagedProcess:
        assert shell.account is not None
        r = shell.request
        starting: Awaitable[ManagedProcess]
        if r.pipes:
            starting = PipeProcess.spawn(shell.account, command=r.command, term=r.term)
        else:
            starting = PtyProcess.spawn(
                shell.account, command=r.command, term=r.term, cols=r.cols, rows=r.rows
            )
        spawning = asyncio.ensure_future(starting)
        try:
            shell.proc = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            # Stop arrived while the program was starting: it must not outlive the session.
            with contextlib.suppress(Exception):
                late = await spawning
                await asyncio.to_thread(late.hang_up, signals.SIGKILL)
                late.close()
            raise
        return shell.proc

    async def _serve(self, shell: _Shell, proc: ManagedProcess) -> ExitStatus:
        waiter = asyncio.ensure_future(proc.wait())
        waiter.add_done_callback(lambda _: shell.exited.set())
        feeder = asyncio.ensure_future(self._pump_input(shell, proc))
        try:
            await asyncio.gather(*(self._pump_output(shell, proc, stream) for stream in proc.outputs))
            return await waiter
        finally:
            feeder.cancel()
            waiter.cancel()

    async def _pump_output(self, shell: _Shell, proc: ManagedProcess, stream: str) -> None:
        wrap = Stderr if stream == "stderr" else Data
        while not shell.abort:
            if shell.out_unacked >= self._window:
                self._stats.flow_stalls += 1
                shell.out_room.clear()
                await shell.out_room.wait()
                continue
            room = min(MAX_DATA_BYTES, self._window - shell.out_unacked)
            data = await proc.read(stream, room, stop=shell.exited)
            if not data or shell.abort:
                return
            shell.out_unacked += len(data)
            self._stats.bytes_out += len(data)
            await self._reply(wrap(shell.id, data))

    async def _pump_input(self, shell: _Shell, proc: ManagedProcess) -> None:
        while True:
            while not shell.in_queue:
                shell.in_ready.clear()
                await shell.in_ready.wait()
            data = shell.in_queue.popleft()
            if data is None:
                proc.close_input()
                continue
            try:
                await proc.write(data)
            except OSError:  # the program closed its input; it has nowhere to go
                return
            shell.in_bytes -= len(data)
            self._stats.bytes_in += len(data)
            await self._reply(Ack(shell.id, len(data)))

    # ---------------------------------------------------------------- ending

    def _close_shell(self, shell: _Shell, reason: str) -> None:
        """CLOSE: stop forwarding output, hang the session up, kill what survives the grace period."""
        shell.reason = reason
        shell.abort = True
        shell.out_room.set()
        if shell.proc is not None:
            self._spawn_task(self._hang_up_then_kill(shell.proc))

    async def _hang_up_then_kill(self, proc: ManagedProcess) -> None:
        await asyncio.to_thread(proc.hang_up, signals.SIGHUP)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), self._close_grace)
        await asyncio.to_thread(proc.hang_up, signals.SIGKILL)

    def _fail(self, shell: _Shell, why: str) -> None:
        self._reply_later(Error(shell.id, ShellErrorCode.FLOW_VIOLATION, why))
        self._close_shell(shell, "flow_violation")

    async def close_all(self) -> None:
        """Stop: SIGKILL every shell's whole terminal session now, end every task, send nothing."""
        self._closed = True
        shells = list(self._shells.values())
        for shell in shells:
            shell.abort = True
            shell.reason = "stop"
        tasks = list(self._tasks)
        for task in tasks:  # first, so that no task sends anything once Stop began
            task.cancel()
        procs = [s.proc for s in shells if s.proc is not None]
        if procs:
            await asyncio.gather(*(asyncio.to_thread(p.hang_up, signals.SIGKILL) for p in procs))
        for shell in shells:
            if shell.proc is not None and shell.account is not None and not shell.ended:
                shell.ended = True
                event = ShellEvent(
                    "shell.end",
                    shell.id,
                    shell.account.name,
                    shell.request.command,
                    shell.proc.pid,
                    reason="stop",
                )
                self._emit(event)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._shells.clear()  # a task cancelled before it ran never reached its own clean-up

    def _emit_end(self, shell: _Shell, proc: ManagedProcess, status: ExitStatus) -> None:
        shell.ended = True
        self._emit(
            ShellEvent(
                "shell.end",
                shell.id,
                proc.account.name,
                shell.request.command,
                proc.pid,
                status=status.status if not status.signal else None,
                signal=wire_signal(status.signal) if status.signal else None,
                reason=shell.reason,
            )
        )

    # ---------------------------------------------------------------- plumbing

    async def _reply(self, message: ShellMessage) -> None:
        if not self._closed:
            await self._send(encode(message))

    def _reply_later(self, message: ShellMessage) -> None:
        self._spawn_task(self._reply(message))

    def _emit(self, event: ShellEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("shell audit listener failed")

    def _spawn_task(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
