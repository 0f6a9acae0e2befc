"""The technician's side of the file channel: list, stat, and verified, resumable transfers to and from disk.

:class:`FilesClient` owns ``Channel.FILES`` of one :class:`~.session.TechSession`. Every transfer streams
through a bounded window (the console grants credit only after writing to disk), hashes what it moves from
byte 0, and compares with the agent's hash: a download lands in ``NAME.steunpart`` and is renamed over
``NAME`` only when the hashes agree (a second run resumes the partial); an upload is moved into place by the
agent only when its own hash agrees. Local file I/O runs in threads.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steun_protocol.files import (
    DEFAULT_WINDOW,
    MAX_CHUNK,
    AgentMessage,
    Cancel,
    Chunk,
    ConsoleMessage,
    Credit,
    Done,
    Download,
    DownloadEnd,
    DownloadMeta,
    Entries,
    Entry,
    Error,
    Finish,
    ListDir,
    MakeDir,
    Overwrite,
    Removal,
    Remove,
    Rename,
    Stat,
    StatResult,
    Upload,
    UploadDone,
    UploadReady,
    decode_from_agent,
    encode,
)
from steun_protocol.sessionplane import Channel

from .login import TechError
from .session import TechSession

Progress = Callable[[int, int], None]
PARTIAL_SUFFIX = ".steunpart"
REPLY_TIMEOUT = 60.0


class RemoteFileError(TechError):
    """The agent refused or failed a request; ``code`` is the wire code (``path_invalid``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message


@dataclass(frozen=True, slots=True)
class Transferred:
    sha256: bytes
    size: int
    offset: int  # where this run started (a resume)
    seconds: float

    @property
    def bytes_per_second(self) -> float:
        return (self.size - self.offset) / max(self.seconds, 1e-6)


class FilesClient:
    def __init__(self, session: TechSession, *, window: int = DEFAULT_WINDOW) -> None:
        self.session = session
        self.window = window
        self._queues: dict[int, asyncio.Queue[AgentMessage | None]] = {}
        self._next = 0
        session.on_channel(Channel.FILES, self._receive)
        session.on_end(self._session_ended)

    # ---------------------------------------------------------------- plumbing

    def _new(self) -> tuple[int, asyncio.Queue[AgentMessage | None]]:
        while True:
            self._next = self._next % 0xFFFFFFFF + 1
            if self._next not in self._queues:
                break
        queue: asyncio.Queue[AgentMessage | None] = asyncio.Queue()
        self._queues[self._next] = queue
        return self._next, queue

    async def _receive(self, payload: bytes) -> None:
        message = decode_from_agent(payload)
        queue = self._queues.get(message.id)
        if queue is not None:
            queue.put_nowait(message)

    def _session_ended(self) -> None:
        for queue in self._queues.values():
            queue.put_nowait(None)

    async def send(self, message: ConsoleMessage) -> None:
        await self.session.send(Channel.FILES, encode(message))

    async def _next_message(
        self, queue: asyncio.Queue[AgentMessage | None], within: float = REPLY_TIMEOUT
    ) -> AgentMessage:
        try:
            async with asyncio.timeout(within):
                message = await queue.get()
        except TimeoutError:
            raise TechError("the agent did not answer in time") from None
        if message is None:
            queue.put_nowait(None)
            raise TechError(f"the session ended: {self.session.end_reason}")
        if isinstance(message, Error):
            raise RemoteFileError(message.code, message.message)
        return message

    def _done(self, ident: int) -> None:
        self._queues.pop(ident, None)

    # ---------------------------------------------------------------- requests

    async def list(self, path: str) -> list[Entry]:
        ident, queue = self._new()
        try:
            await self.send(ListDir(ident, path))
            entries: list[Entry] = []
            while True:
                page = await self._next_message(queue)
                assert isinstance(page, Entries), page
                entries += page.entries
                if page.last:
                    return entries
        finally:
            self._done(ident)

    async def stat(self, path: str) -> Entry:
        ident, queue = self._new()
        try:
            await self.send(Stat(ident, path))
            reply = await self._next_message(queue)
            assert isinstance(reply, StatResult), reply
            return reply.entry
        finally:
            self._done(ident)

    # ---------------------------------------------------------------- changes

    async def mkdir(self, path: str) -> None:
        """Make one directory on the agent (its parent must exist)."""
        await self._change(lambda ident: MakeDir(ident, path))

    async def remove(self, path: str, what: Removal = Removal.ANY) -> None:
        """Remove one file, link or empty directory on the agent; never recursive."""
        await self._change(lambda ident: Remove(ident, path, what))

    async def rename(self, source: str, target: str, *, overwrite: Overwrite = Overwrite.FAIL) -> None:
        """Move ``source`` to ``target`` on the agent (``FAIL``: refuse an existing target)."""
        await self._change(lambda ident: Rename(ident, source, target, overwrite))

    async def _change(self, message: Callable[[int], MakeDir | Remove | Rename]) -> None:
        ident, queue = self._new()
        try:
            await self.send(message(ident))
            reply = await self._next_message(queue)
            assert isinstance(reply, Done), reply
        finally:
            self._done(ident)

    # ---------------------------------------------------------------- downloads

    def stream(self, path: str, offset: int = 0) -> DownloadStream:
        """A download read in order by the caller (SFTP reads); see :class:`DownloadStream`."""
        ident, queue = self._new()
        return DownloadStream(self, ident, queue, path, offset)

    async def download(self, path: str, dest: Path, *, progress: Progress | None = None) -> Transferred:
        """Fetch ``path`` into ``dest`` via ``dest.steunpart`` (kept and resumed if the run is cut short)."""
        partial = dest.with_name(dest.name + PARTIAL_SUFFIX)
        fd = await asyncio.to_thread(os.open, partial, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        started = time.monotonic()
        try:
            have = (await asyncio.to_thread(os.fstat, fd)).st_size
            hasher = hashlib.sha256()
            await asyncio.to_thread(_hash_file, fd, have, hasher)
            stream = self.stream(path, have)
            try:
                meta = await stream.start()
                if meta.offset != have:
                    raise TechError("the agent did not resume where the partial file ends")
                pos = have
                while True:
                    data = await stream.read()
                    if data is None:
                        break
                    await asyncio.to_thread(_write_and_hash, fd, pos, data, hasher)
                    pos += len(data)
                    await stream.consumed(len(data))
                    if progress is not None:
                        progress(pos, meta.size)
            finally:
                await stream.close()
            digest = hasher.digest()
            if digest != stream.sha256:
                await asyncio.to_thread(os.unlink, partial)
                raise RemoteFileError("hash_mismatch", "the file received does not match the agent's SHA-256")
            await asyncio.to_thread(os.replace, partial, dest)
            return Transferred(digest, pos, have, time.monotonic() - started)
        finally:
            await asyncio.to_thread(os.close, fd)

    # ---------------------------------------------------------------- uploads

    async def upload(
        self,
        source: Path,
        path: str,
        *,
        overwrite: Overwrite = Overwrite.FAIL,
        progress: Progress | None = None,
        mtime: float = 0.0,
    ) -> Transferred:
        """Send ``source`` to ``path`` on the agent (which resumes a partial it kept from an earlier run)."""
        fd = await asyncio.to_thread(os.open, source, os.O_RDONLY)
        started = time.monotonic()
        ident, queue = self._new()
        try:
            size = (await asyncio.to_thread(os.fstat, fd)).st_size
            whole = hashlib.sha256()
            await asyncio.to_thread(_hash_file, fd, size, whole)
            await self.send(Upload(ident, path, size, whole.digest(), overwrite, True, mtime))
            ready = await self._next_message(queue)
            assert isinstance(ready, UploadReady), ready
            credit, pos = ready.window, ready.offset
            hasher = hashlib.sha256()
            await asyncio.to_thread(_hash_file, fd, pos, hasher)
            try:
                while pos < size:
                    while credit <= 0 or not queue.empty():
                        message = await self._next_message(queue)
                        assert isinstance(message, Credit), message
                        credit += message.nbytes
                    data = await asyncio.to_thread(
                        _read_and_hash, fd, pos, min(MAX_CHUNK, credit, size - pos), hasher
                    )
                    if not data:
                        raise TechError(f"{source} shrank while it was being sent")
                    await self.send(Chunk(ident, pos, data))
                    credit -= len(data)
                    pos += len(data)
                    if progress is not None:
                        progress(pos, size)
                await self.send(Finish(ident, hasher.digest()))
                while not isinstance(done := await self._next_message(queue, within=600.0), UploadDone):
                    assert isinstance(done, Credit), done
            except BaseException:
                if not self.session.ended.is_set():
                    await self.send(Cancel(ident))
                raise
            return Transferred(done.sha256, size, ready.offset, time.monotonic() - started)
        finally:
            self._done(ident)
            await asyncio.to_thread(os.close, fd)


class DownloadStream:
    """One DOWNLOAD read in order: ``start`` → ``read``/``consumed`` … → ``None`` at the end; ``sha256`` then.

    Credit goes back to the agent only as the caller says it consumed data, so a slow reader (an SFTP
    client far away) stops the agent instead of filling memory.
    """

    def __init__(
        self,
        client: FilesClient,
        ident: int,
        queue: asyncio.Queue[AgentMessage | None],
        path: str,
        offset: int,
    ) -> None:
        self._client = client
        self.id = ident
        self._queue = queue
        self.path = path
        self.offset = offset
        self.meta: DownloadMeta | None = None
        self.sha256: bytes | None = None
        self._finished = False

    async def start(self) -> DownloadMeta:
        await self._client.send(Download(self.id, self.path, self.offset, self._client.window))
        meta = await self._client._next_message(self._queue)
        assert isinstance(meta, DownloadMeta), meta
        self.meta = meta
        return meta

    async def read(self) -> bytes | None:
        if self._finished:
            return None
        message = await self._client._next_message(self._queue)
        if isinstance(message, DownloadEnd):
            self.sha256 = message.sha256
            self._finished = True
            return None
        assert isinstance(message, Chunk), message
        return bytes(message.data)

    async def consumed(self, nbytes: int) -> None:
        if not self._finished and nbytes:
            await self._client.send(Credit(self.id, nbytes))

    async def close(self) -> None:
        if not self._finished and not self._client.session.ended.is_set():
            await self._client.send(Cancel(self.id))
        self._finished = True
        self._client._done(self.id)


def _hash_file(fd: int, end: int, hasher: Any) -> None:
    pos = 0
    while pos < end:
        data = os.pread(fd, min(1 << 20, end - pos), pos)
        if not data:
            raise TechError("the local file is shorter than expected")
        hasher.update(data)
        pos += len(data)


def _write_and_hash(fd: int, pos: int, data: bytes, hasher: Any) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, pos)
        view, pos = view[written:], pos + written
    hasher.update(data)


def _read_and_hash(fd: int, pos: int, length: int, hasher: Any) -> bytes:
    data = os.pread(fd, length, pos)
    hasher.update(data)
    return data


class ProgressBar:
    """A one-line progress bar with throughput on a terminal stream (stderr): ``name  42% 12.3 MiB/s``."""

    def __init__(self, name: str, stream: Any, *, interval: float = 0.2) -> None:
        self._name = name
        self._stream = stream
        self._interval = interval
        self._last = 0.0
        self._start = time.monotonic()
        self._first: int | None = None
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=20)

    def __call__(self, done: int, total: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = done
        self._samples.append((now, done))
        if not final and now - self._last < self._interval:
            return
        self._last = now
        t0, d0 = self._samples[0]
        rate = (done - d0) / (now - t0) if now > t0 else 0.0
        percent = 100.0 * done / total if total else 100.0
        width = 24
        filled = int(width * percent / 100)
        line = (
            f"\r{self._name[:30]:30} [{'#' * filled}{'.' * (width - filled)}] {percent:5.1f}% "
            f"{_human(done)}/{_human(total)} {_human(rate)}/s"
        )
        self._stream.write(line)
        if final:
            self._stream.write("\n")
        self._stream.flush()

    def finish(self, result: Transferred) -> None:
        self(result.size, result.size, final=True)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"
