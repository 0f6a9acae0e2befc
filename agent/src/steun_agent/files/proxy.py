"""Files as another account: :class:`FilesProxy` has FilesService's interface and forwards to a worker.

The session runtime gets its files service from :func:`files_service_for`: the agent's own account (quick
support, a user's agent) is served in this process by :class:`FilesService`; another account (a service
agent, running as root, and the account its local policy names) by a :class:`FilesProxy`, which starts the
worker (``worker.py``) as that account on the first record and pumps frames (``pipe.py``) both ways:

* ``feed(payload)`` decodes the record first (``RemoteProtocolError`` at once, as FilesService does) and
  queues it for the worker's stdin; never blocks. The queue is bounded — what a console may have in flight
  within the credit the worker granted, and some — and a worker that does not keep up ends the channel.
* Each record frame from the worker is decoded (only valid agent messages pass) and handed to ``send``; the
  next frame is read only once ``send`` returned, so a slow connection pauses the worker through the pipe.
  Event frames become ``on_event`` calls, at most one per audited request forwarded.
* A worker that breaks the frame layout, oversteps a limit, sends an invalid message or exits ends the files
  channel, never the agent: it is killed, every request still open is answered ``io_error``, and later ones
  too (``failure`` says why).
* ``close_all()`` (Stop): nothing more is forwarded; end of input tells the worker to stop its transfers
  (keeping partial uploads) and exit; SIGTERM after 0.5 s, SIGKILL 0.2 s later: it is gone within 1 s.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from steun_protocol.errors import RemoteProtocolError
from steun_protocol.files import (
    DEFAULT_WINDOW,
    MAX_TRANSFERS,
    Cancel,
    Done,
    Download,
    DownloadEnd,
    Entries,
    Error,
    FileErrorCode,
    ListDir,
    MakeDir,
    Remove,
    Rename,
    Stat,
    StatResult,
    Upload,
    UploadDone,
    decode_from_agent,
    decode_from_console,
    encode,
)

from ..shell.account import USER_PATH, Account, AccountError
from .pipe import HEADER, TAG_EVENT, TAG_RECORD, PipeError, decode_event, frame, read_header
from .service import FilesEvent, FilesService, HashCache

log = logging.getLogger(__name__)

Send = Callable[[bytes], Awaitable[None]]

#: Bytes queued for the worker at most: every transfer's upload window, and a megabyte for the rest.
MAX_QUEUED_BYTES = MAX_TRANSFERS * DEFAULT_WINDOW + 1024 * 1024
#: Messages queued for the worker at most.
MAX_QUEUED = 4096
#: Requests forwarded and not answered yet, at most.
MAX_OPEN = 4096
#: After end of input, how long the worker has to exit before SIGTERM; then before SIGKILL.
EOF_GRACE = 0.5
TERM_GRACE = 0.2
#: The last bytes of the worker's stderr kept for the log.
STDERR_TAIL = 4096
#: The umask the worker runs with (uploads set their own mode; MKDIR's 0755 stays 0755).
WORKER_UMASK = 0o022

_REQUESTS = (ListDir, Stat, Download, Upload, MakeDir, Remove, Rename)
_AUDITED = (Download, Upload, MakeDir, Remove, Rename)


def files_service_for(
    account: Account | None,
    send: Callable[[bytes], Awaitable[None]],
    root: str,
    *,
    on_event: Callable[[FilesEvent], None] | None = None,
    hash_cache: HashCache | None = None,
) -> FilesService | FilesProxy:
    """The files service of one session, acting as ``account`` (None: as the agent itself).

    The agent's own account is served in this process; another one by a worker process running as it
    (the agent must be root then: ``AccountError`` otherwise). ``hash_cache`` is not shared with a worker.
    """
    if account is None or account.is_agent_user:
        return FilesService(send, root, hash_cache=hash_cache, on_event=on_event)
    if os.geteuid() != 0:
        raise AccountError(f"the agent runs as uid {os.geteuid()} and cannot act as {account.name!r}")
    return FilesProxy(account, send, root, on_event=on_event)


def worker_command(account: Account, root: str) -> list[str]:
    """The worker's command line. Blocking (reads the group database): call it from a thread."""
    groups = os.getgrouplist(account.name, account.gid)
    return [
        sys.executable, "-I", "-m", "steun_agent.files.worker", "--root", root,
        "--uid", str(account.uid), "--gid", str(account.gid), "--groups", ",".join(map(str, groups)),
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProxyStatistics:
    pid: int | None
    queued: int
    queued_bytes: int
    open_requests: int
    bytes_to_worker: int
    bytes_from_worker: int
    failure: str | None


class FilesProxy:
    """FilesService's interface (``feed``, ``close_all``), served by a worker acting as ``account``."""

    def __init__(
        self,
        account: Account,
        send: Send,
        root: str | os.PathLike[str],
        *,
        on_event: Callable[[FilesEvent], None] | None = None,
        command: Sequence[str] | None = None,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:
        self.account = account
        self._send = send
        self._root = os.fspath(root)
        self._on_event = on_event
        self._command = list(command) if command is not None else None
        self._max_queued_bytes = max_queued_bytes
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._open: collections.Counter[int] = collections.Counter()
        self._events_due = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._sending: asyncio.Future[None] | None = None
        self._replies: set[asyncio.Future[None]] = set()
        self._closed = False
        self._stderr = bytearray()
        self._to_worker = 0
        self._from_worker = 0
        #: Why the files channel ended (the worker failed or misbehaved), or None.
        self.failure: str | None = None

    @property
    def root(self) -> str:
        return self._root

    def statistics(self) -> ProxyStatistics:
        return ProxyStatistics(
            self._proc.pid if self._proc is not None else None,
            len(self._queue),
            self._queued_bytes,
            len(self._open),
            self._to_worker,
            self._from_worker,
            self.failure,
        )

    # ---------------------------------------------------------------- from the console

    def feed(self, payload: bytes) -> None:
        """Check one console message and queue it for the worker. Never blocks."""
        message = decode_from_console(payload)  # RemoteProtocolError: the runner answers Refused invalid
        request = isinstance(message, _REQUESTS)
        if self._closed or self.failure is not None:
            if request:
                if self._closed:
                    self._reply_later(Error(message.id, FileErrorCode.CLOSED, "the session is ending"))
                else:
                    self._reply_later(Error(message.id, FileErrorCode.IO_ERROR, self._ended()))
            return
        if request:
            self._open[message.id] += 1
            self._events_due += isinstance(message, _AUDITED)
        elif isinstance(message, Cancel):
            self._open.pop(message.id, None)
        if len(self._open) > MAX_OPEN:
            self._fail("too many requests wait for the file worker")
            return
        if len(self._queue) >= MAX_QUEUED or self._queued_bytes + len(payload) > self._max_queued_bytes:
            self._fail("the file worker does not keep up")
            return
        self._queue.append(bytes(payload))
        self._queued_bytes += len(payload)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        self._wake.set()

    # ---------------------------------------------------------------- the worker

    async def _run(self) -> None:
        try:
            command = self._command
            if command is None:
                command = await asyncio.to_thread(worker_command, self.account, self._root)
            self._proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._environment(),
                cwd="/",
                umask=WORKER_UMASK,
                start_new_session=True,  # no terminal signals: the agent decides when it ends
                close_fds=True,
            )
        except (OSError, ValueError, KeyError) as exc:
            self._fail(f"cannot start the file worker: {exc}")
            return
        if self._closed or self.failure is not None:
            self._proc.kill()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._loops = [
            asyncio.ensure_future(self._write_loop(proc.stdin)),
            asyncio.ensure_future(self._read_loop(proc.stdout)),
            asyncio.ensure_future(self._stderr_loop(proc.stderr)),
        ]
        await asyncio.gather(*self._loops, return_exceptions=True)

    def _environment(self) -> dict[str, str]:
        name = self.account.name
        return {
            "PATH": USER_PATH,
            "HOME": self.account.home,
            "USER": name,
            "LOGNAME": name,
            "LANG": "C.UTF-8",
        }

    async def _write_loop(self, stdin: asyncio.StreamWriter) -> None:
        try:
            while True:
                while not self._queue:
                    if self._closed or self.failure is not None:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                payload = self._queue.popleft()
                self._queued_bytes -= len(payload)
                stdin.write(frame(TAG_RECORD, payload))
                self._to_worker += len(payload)
                await stdin.drain()
        except (ConnectionError, RuntimeError):
            return  # the worker is gone: the read loop reports it

    async def _read_loop(self, stdout: asyncio.StreamReader) -> None:
        try:
            while True:
                try:
                    header = await stdout.readexactly(HEADER.size)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        raise PipeError("a frame was cut short") from None
                    break
                length, tag = read_header(header)
                body = await stdout.readexactly(length)
                self._from_worker += length
                if tag == TAG_EVENT:
                    self._event(body)
                else:
                    await self._forward(body)
        except PipeError as exc:
            self._fail(f"the file worker broke the protocol: {exc}")
            return
        except asyncio.IncompleteReadError:
            self._fail("the file worker's frame was cut short")
            return
        except RemoteProtocolError as exc:
            self._fail(f"the file worker sent an invalid message: {exc}")
            return
        if not self._closed:
            status = await self._reaped(1.0)
            self._fail(f"the file worker exited (status {status})")

    async def _forward(self, body: bytes) -> None:
        message = decode_from_agent(body)
        if isinstance(message, Error | StatResult | DownloadEnd | UploadDone | Done) or (
            isinstance(message, Entries) and message.last
        ):
            count = self._open.get(message.id, 0)
            if count > 1:
                self._open[message.id] = count - 1
            else:
                self._open.pop(message.id, None)
        if self._closed or self.failure is not None:
            return  # Stop: nothing more goes out
        sending = asyncio.ensure_future(self._send(body))
        self._sending = sending
        try:
            await asyncio.wait([sending])
        finally:
            self._sending = None
            if not sending.done():
                sending.cancel()
        if not sending.cancelled() and (exc := sending.exception()) is not None:
            self._fail(f"sending failed: {exc}")

    def _event(self, body: bytes) -> None:
        event = decode_event(body)
        if self._events_due <= 0:
            raise PipeError("an audit event for no request")
        self._events_due -= 1
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("files audit listener failed")

    async def _stderr_loop(self, stderr: asyncio.StreamReader) -> None:
        while data := await stderr.read(STDERR_TAIL):
            self._stderr += data
            del self._stderr[:-STDERR_TAIL]

    async def _reaped(self, within: float) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(proc.wait(), within)
        return proc.returncode

    # ---------------------------------------------------------------- ending

    def _fail(self, reason: str) -> None:
        """End the files channel: kill the worker, answer every open request ``io_error``."""
        if self.failure is not None or self._closed:
            return
        self.failure = reason
        tail = self._stderr.decode("utf-8", "replace").strip()
        log.warning("files as %s ended: %s%s", self.account.name, reason, f"\n{tail}" if tail else "")
        self._queue.clear()
        self._queued_bytes = 0
        self._wake.set()
        self._kill()
        if self._sending is not None:
            self._sending.cancel()
        for ident in list(self._open):
            self._reply_later(Error(ident, FileErrorCode.IO_ERROR, self._ended()))
        self._open.clear()

    def _ended(self) -> str:
        return f"file access ended: {self.failure}"

    def _kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def close_all(self) -> None:
        """Stop: forward nothing more; the worker stops its transfers and exits, or is killed, within 1 s."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._queued_bytes = 0
        self._wake.set()
        if self._sending is not None:
            self._sending.cancel()
        for task in list(self._replies):
            task.cancel()
        if self._task is not None and self._proc is None:
            await asyncio.wait([self._task], timeout=EOF_GRACE)  # still starting
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()  # end of input: the worker stops its transfers and exits
            if await self._reaped(EOF_GRACE) is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                if await self._reaped(TERM_GRACE) is None:
                    self._kill()
                    await self._reaped(0.2)
        if self._loops:  # the worker is gone: its last events are read, then its pipes end
            await asyncio.wait(self._loops, timeout=0.1)
        tasks = [*self._loops, *([self._task] if self._task is not None else []), *self._replies]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _reply_later(self, message: Error) -> None:
        task = asyncio.ensure_future(self._reply_quietly(message))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _reply_quietly(self, message: Error) -> None:
        with contextlib.suppress(Exception):
            await self._send(encode(message))
