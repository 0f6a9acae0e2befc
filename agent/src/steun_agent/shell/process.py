"""One program in a real pseudo-terminal (or on pipes), driven from the event loop without ever blocking it.

Every descriptor the agent holds is non-blocking and waited on through ``loop.add_reader``/``add_writer``:
the caller reads only when it has room for the bytes (flow control), so a flood of output fills the
kernel's PTY or pipe buffer and then blocks the *program*, not the agent. Exit is observed through a pidfd
(Linux) or, elsewhere, a dedicated thread — never a pool thread, so many waiting shells cannot starve the
loop's default executor.

:class:`PtyProcess`: the child starts a new session (``setsid``) and takes the PTY as its controlling
terminal, so the line discipline turns Ctrl-C into SIGINT for the foreground job, resizes raise SIGWINCH,
and closing the master hangs the session up — as with any terminal emulator.

:class:`PipeProcess`: stdin, stdout and stderr are pipes (``ssh host command`` without ``-t``): bytes pass
unchanged, stderr stays apart, and closing stdin is the end of input. The child still gets its own session,
so signals and Stop reach everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal as signals
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import AgentError
from .account import Account

log = logging.getLogger(__name__)

#: Largest single read from the master.
READ_SIZE = 64 * 1024


class SpawnError(AgentError):
    """The program could not be started in a terminal."""


def _acquire_controlling_tty() -> None:  # pragma: no cover - runs in the child between fork and exec
    # One ioctl, no locks, no allocation worth speaking of: the only thing subprocess cannot do for us.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _winsize(cols: int, rows: int) -> bytes:
    return struct.pack("HHHH", rows, cols, 0, 0)


@dataclass(frozen=True, slots=True)
class ExitStatus:
    status: int = 0
    signal: int = 0  # the OS signal number that ended the program, 0 if it exited

    @classmethod
    def from_returncode(cls, code: int) -> ExitStatus:
        return cls(0, -code) if code < 0 else cls(code & 0xFF, 0)


class ManagedProcess:
    """What both kinds share: output and input descriptors, exit, signals to the whole session, close.

    Create one with ``spawn``; every method is for the event loop's thread unless it says "blocking".
    """

    #: The output streams ``read`` takes, in the order a pump should start them.
    outputs: tuple[str, ...] = ("stdout",)

    def __init__(self, proc: subprocess.Popen[bytes], account: Account, streams: dict[str, int]) -> None:
        self._proc = proc
        self.account = account
        self.pid = proc.pid
        self._fds = dict(streams)  # "stdin"/"stdout"/"stderr" → our non-blocking end; -1 once closed
        self._exit: asyncio.Future[ExitStatus] | None = None
        self._waiters: set[asyncio.Future[None]] = set()

    # ---------------------------------------------------------------- I/O

    async def read(self, stream: str, max_bytes: int, *, stop: asyncio.Event) -> bytes:
        """Up to ``max_bytes`` of ``stream``; ``b""`` at its end, or if none is left and ``stop`` is set."""
        while True:
            fd = self._fds.get(stream, -1)
            if fd < 0:
                return b""
            try:
                data = os.read(fd, min(max_bytes, READ_SIZE))
            except BlockingIOError:
                if stop.is_set():
                    return b""
            except OSError as exc:
                if exc.errno == errno.EIO:  # a PTY whose every slave descriptor is closed
                    return b""
                raise
            else:
                if not data:
                    self._close_fd(stream)
                return data
            await self._wait_fd(fd, readable=True, stop=stop)

    async def write(self, data: bytes) -> None:
        """Write all of ``data`` to the program's input, waiting while its queue is full."""
        view = memoryview(data)
        while view:
            fd = self._fds.get("stdin", -1)
            if fd < 0:
                raise OSError(errno.EPIPE, "input closed")
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                await self._wait_fd(fd, readable=False, stop=None)
                continue
            view = view[written:]

    def close_input(self) -> None:
        """End of input (pipes); a terminal has no such thing (Ctrl-D is a key)."""

    def resize(self, cols: int, rows: int) -> None:
        """A terminal's new size (pipes: nothing to do)."""

    async def _wait_fd(self, fd: int, *, readable: bool, stop: asyncio.Event | None) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        (loop.add_reader if readable else loop.add_writer)(fd, wake)
        self._waiters.add(ready)
        waits: list[asyncio.Future[Any]] = [ready]
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopper is not None:
            waits.append(stopper)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiters.discard(ready)
            if fd in self._fds.values():
                (loop.remove_reader if readable else loop.remove_writer)(fd)
            if stopper is not None:
                stopper.cancel()
            ready.cancel()

    def _close_fd(self, stream: str) -> None:
        fd = self._fds.get(stream, -1)
        if fd < 0:
            return
        # Unregister before closing: a reused fd number must not meet a stale selector key.
        loop = asyncio.get_running_loop()
        loop.remove_reader(fd)
        loop.remove_writer(fd)
        if fd not in [v for k, v in self._fds.items() if k != stream]:  # a PTY's master is all three
            os.close(fd)
        self._fds = {k: (-1 if v == fd else v) for k, v in self._fds.items()}
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        """Close every descriptor (for a PTY: hangs the terminal up). Idempotent."""
        for stream in list(self._fds):
            self._close_fd(stream)

    # ---------------------------------------------------------------- signals and end

    def signal_foreground(self, sig: int) -> None:
        """Send ``sig`` to the program's process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def wait(self) -> ExitStatus:
        """Wait for the program (the session leader) to end; return its status."""
        if self._exit is None:
            self._exit = asyncio.get_running_loop().create_future()
            self._watch_exit(self._exit)
        return await asyncio.shield(self._exit)

    @property
    def exited(self) -> bool:
        return self._exit is not None and self._exit.done()

    def _watch_exit(self, future: asyncio.Future[ExitStatus]) -> None:
        loop = asyncio.get_running_loop()

        def settle(code: int) -> None:
            if not future.done():
                future.set_result(ExitStatus.from_returncode(code))

        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                pidfd = pidfd_open(self.pid)
            except OSError:  # already reaped, or an old kernel
                pidfd = -1
            if pidfd >= 0:

                def reap() -> None:
                    loop.remove_reader(pidfd)
                    os.close(pidfd)
                    # the pidfd is readable: the child is a zombie, so this does not block
                    code = self._proc.poll()
                    settle(code if code is not None else -signals.SIGKILL)

                loop.add_reader(pidfd, reap)
                return
        thread = threading.Thread(
            target=lambda: loop.call_soon_threadsafe(settle, self._proc.wait()),
            name=f"steun-shell-wait-{self.pid}",
            daemon=True,
        )
        thread.start()

    def session_members(self) -> list[int]:
        """Processes still in the program's session (Linux ``/proc``; elsewhere the leader). Blocking."""
        if not sys.platform.startswith("linux"):
            return [self.pid]
        return list(_session_members(self.pid))

    def hang_up(self, sig: int = signals.SIGHUP) -> None:
        """Send ``sig`` to every process of the program's session. Blocking (reads /proc): use a thread."""
        for pid in self.session_members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def _argv(account: Account, command: str) -> list[str]:
    # a login shell has an argv[0] starting with "-", as login(1) and sshd give it
    return [account.shell, "-c", command] if command else ["-" + os.path.basename(account.shell)]


def _popen(account: Account, command: str, term: str, **streams: Any) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(  # noqa: S603 - the account's own shell, no shell=True
            _argv(account, command),
            executable=account.shell,
            cwd=account.working_directory(),
            env=account.environment(term),
            start_new_session=True,
            close_fds=True,
            **streams,
            **account.spawn_ids(),
        )
    except OSError as exc:
        why = exc.strerror or exc
        raise SpawnError(f"cannot start {account.shell} as {account.name}: {why}") from None


class PtyProcess(ManagedProcess):
    """A program with a PTY as its controlling terminal."""

    @classmethod
    async def spawn(
        cls,
        account: Account,
        *,
        command: str = "",
        term: str = "xterm-256color",
        cols: int = 80,
        rows: int = 24,
    ) -> PtyProcess:
        """Start ``command`` (``$SHELL -c``) or the account's login shell in a new PTY, as ``account``."""
        proc, master = await asyncio.to_thread(cls._start, account, command, term, cols, rows)
        return cls(proc, account, {"stdin": master, "stdout": master})

    @staticmethod
    def _start(
        account: Account, command: str, term: str, cols: int, rows: int
    ) -> tuple[subprocess.Popen[bytes], int]:
        account.check()
        master, slave = os.openpty()
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, _winsize(cols, rows))
            attrs = termios.tcgetattr(slave)
            attrs[0] |= getattr(termios, "IUTF8", 0)  # erase whole UTF-8 characters, not bytes
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            proc = _popen(
                account,
                command,
                term,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                preexec_fn=_acquire_controlling_tty,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return proc, master

    def resize(self, cols: int, rows: int) -> None:
        """Set the terminal size; the kernel raises SIGWINCH in the foreground job when it changes."""
        master = self._fds["stdout"]
        if master >= 0:
            fcntl.ioctl(master, termios.TIOCSWINSZ, _winsize(cols, rows))

    def signal_foreground(self, sig: int) -> None:
        """Send ``sig`` to the terminal's foreground process group (what a key like Ctrl-C would reach)."""
        group = self.pid
        master = self._fds["stdout"]
        if master >= 0:
            with contextlib.suppress(OSError):
                group = os.tcgetpgrp(master)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


class PipeProcess(ManagedProcess):
    """A program whose stdin, stdout and stderr are pipes (no terminal)."""

    outputs = ("stdout", "stderr")

    @classmethod
    async def spawn(cls, account: Account, *, command: str = "", term: str = "dumb") -> PipeProcess:
        proc, fds = await asyncio.to_thread(cls._start, account, command, term)
        return cls(proc, account, fds)

    @staticmethod
    def _start(account: Account, command: str, term: str) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
        account.check()
        stdin_r, stdin_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ours, theirs = (stdin_w, out_r, err_r), (stdin_r, out_w, err_w)
        try:
            proc = _popen(account, command, term, stdin=stdin_r, stdout=out_w, stderr=err_w)
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        for fd in ours:
            os.set_blocking(fd, False)
        return proc, {"stdin": stdin_w, "stdout": out_r, "stderr": err_r}

    def close_input(self) -> None:
        self._close_fd("stdin")


def _session_members(sid: int) -> Iterator[int]:
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read(1024)
        except OSError:
            continue
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and ")", so split after the last one
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == sid:
            yield int(name)
