"""The file channel of one session: listings, stats, mkdir/remove/rename, and chunked, verified transfers.

The session runtime holds one :class:`FilesService` per session and:

* calls ``service.feed(payload)`` for every DATA record the console sent on ``Channel.FILES`` (after
  checking ``files`` is granted). ``feed`` is synchronous and never touches the disk: it queues chunks and
  starts work (and error replies) in tasks, so a slow disk never stalls the session's reader. Undecodable
  payloads raise ``RemoteProtocolError``.
* gives it a ``send`` coroutine: one call = one encoded message = one sealed DATA record on ``Channel.FILES``;
  called from several tasks; returns once the record is handed to the connection (backpressure).
* calls ``await service.close_all()`` on Stop or session end: every transfer stops at once, nothing more is
  sent, partial uploads stay on disk (hidden) so the same upload in a later session resumes.

Memory is bounded by construction: a download has at most one chunk in hand (the console's credit paces it);
an upload queues at most the window it granted; listings go out in pages; all file I/O runs in threads, and
one transfer never has two I/O calls in flight, so a cancelled transfer never closes a descriptor that a
thread is still using.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import os
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from steun_protocol.files import (
    DEFAULT_WINDOW,
    MAX_CHUNK,
    MAX_LIST_ENTRIES,
    MAX_PAGE_ENTRIES,
    MAX_TRANSFERS,
    MAX_WINDOW,
    Cancel,
    Chunk,
    Credit,
    Done,
    Download,
    DownloadEnd,
    DownloadMeta,
    Entries,
    Error,
    FileErrorCode,
    FilesMessage,
    Finish,
    ListDir,
    MakeDir,
    Remove,
    Rename,
    Stat,
    StatResult,
    Upload,
    UploadDone,
    UploadReady,
    decode_from_console,
    encode,
)

from .pathguard import FilesError, PathGuard, from_os_error
from .storage import HASH_BLOCK, PartialUpload, hash_range, prepare_upload, read_chunk

log = logging.getLogger(__name__)

T = TypeVar("T")
Send = Callable[[bytes], Awaitable[None]]

#: LIST, STAT, MKDIR, REMOVE and RENAME requests in progress at once; more are answered ``busy``.
MAX_REQUESTS = 16
#: Ids of ended jobs remembered, so late chunks and credits for them are dropped quietly.
RECENT_IDS = 256
#: Whole-file hashes remembered (by device, inode, size, mtime) so a resumed download can announce its hash.
HASH_CACHE_SIZE = 64

EventName = Literal["files.download", "files.upload", "files.mkdir", "files.remove", "files.rename"]
#: Every audit event name the files capability emits.
EVENT_NAMES: tuple[EventName, ...] = typing.get_args(EventName)
JobKind = Literal["list", "stat", "download", "upload", "mkdir", "remove", "rename"]
#: Requests that change the tree; each is audited, whatever its result.
CHANGES: frozenset[str] = frozenset({"mkdir", "remove", "rename"})


@dataclass(frozen=True, slots=True)
class FilesEvent:
    """One line for the audit chain: a finished, failed or cancelled transfer (never its content), or a
    MKDIR / REMOVE / RENAME (refused ones too: ``result`` is then the error code)."""

    name: EventName
    path: str
    size: int
    transferred: int
    result: str  # "ok" or a FileErrorCode value
    sha256: str = ""
    target: str = ""  # files.rename: where ``path`` went


@dataclass(frozen=True, slots=True)
class TransferStatus:
    id: int
    kind: str
    path: str
    size: int
    done: int
    bytes_per_second: float


@dataclass(slots=True)
class FilesStatistics:
    transfers: tuple[TransferStatus, ...] = ()
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    completed: int = 0
    failed: int = 0


class HashCache:
    """Whole-file SHA-256 by file identity; keep one per agent so a resume in a later session benefits."""

    def __init__(self, size: int = HASH_CACHE_SIZE) -> None:
        self._size = size
        self._items: collections.OrderedDict[tuple[int, ...], bytes] = collections.OrderedDict()

    @staticmethod
    def key(st: os.stat_result) -> tuple[int, ...]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def get(self, st: os.stat_result) -> bytes | None:
        return self._items.get(self.key(st))

    def put(self, st: os.stat_result, digest: bytes) -> None:
        self._items[self.key(st)] = digest
        self._items.move_to_end(self.key(st))
        while len(self._items) > self._size:
            self._items.popitem(last=False)


@dataclass(eq=False, slots=True)
class _Job:
    id: int
    kind: JobKind
    path: str
    target: str = ""  # rename
    task: asyncio.Task[None] | None = None
    io: asyncio.Future[Any] | None = None  # the one blocking call in flight
    size: int = 0
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # download: bytes the console still accepts
    credit: int = 0
    # upload: what the console may still send, what it sent, what waits for the disk
    upload: PartialUpload | None = None
    ready: bool = False
    expected: int = 0
    granted: int = 0
    received: int = 0
    queue: collections.deque[bytes] = field(default_factory=collections.deque)
    finish: bytes | None = None
    sha256: bytes = b""


class FilesService:
    """Every file request of one session below one root. See the module docstring for the contract."""

    def __init__(
        self,
        send: Send,
        root: str | os.PathLike[str],
        *,
        window: int = DEFAULT_WINDOW,
        max_transfers: int = MAX_TRANSFERS,
        hash_cache: HashCache | None = None,
        on_event: Callable[[FilesEvent], None] | None = None,
    ) -> None:
        if not MAX_CHUNK <= window <= MAX_WINDOW:
            raise ValueError(f"window must be within [{MAX_CHUNK}, {MAX_WINDOW}]")
        self._send = send
        self._guard = PathGuard(root)
        self._window = window
        self._max_transfers = max_transfers
        self._hashes = hash_cache if hash_cache is not None else HashCache()
        self._on_event = on_event
        self._jobs: dict[int, _Job] = {}
        self._recent: collections.deque[int] = collections.deque(maxlen=RECENT_IDS)
        self._closed = False
        self._stats = FilesStatistics()
        self._uploading: set[tuple[str, ...]] = set()
        self._replies: set[asyncio.Future[None]] = set()

    @property
    def root(self) -> str:
        return self._guard.root

    def statistics(self) -> FilesStatistics:
        now = time.monotonic()
        transfers = tuple(
            TransferStatus(j.id, j.kind, j.path, j.size, j.done, j.done / max(now - j.started, 1e-6))
            for j in self._jobs.values()
            if j.kind in ("download", "upload")
        )
        requests = sum(1 for j in self._jobs.values() if j.kind in ("list", "stat"))
        return dataclasses.replace(self._stats, transfers=transfers, requests=requests)

    # ---------------------------------------------------------------- from the console

    def feed(self, payload: bytes) -> None:
        """Handle one console message (one DATA record's payload on the files channel). Never blocks."""
        message = decode_from_console(payload)
        match message:
            case ListDir() | Stat() | Download() | Upload() | MakeDir() | Remove() | Rename():
                self._start(message)
            case Chunk(ident, offset, data):
                job = self._jobs.get(ident)
                if job is None or job.kind != "upload":
                    self._stray(ident)
                elif not job.ready or offset != job.expected or offset + len(data) > job.size:
                    self._fail(job, FileErrorCode.INVALID, f"chunk at {offset}, expected {job.expected}")
                elif job.received + len(data) > job.granted:
                    self._fail(job, FileErrorCode.FLOW_VIOLATION, "more data than the credit allows")
                else:
                    job.queue.append(bytes(data))
                    job.expected += len(data)
                    job.received += len(data)
                    job.wake.set()
            case Credit(ident, nbytes):
                job = self._jobs.get(ident)
                if job is not None and job.kind == "download":
                    job.credit = min(job.credit + nbytes, MAX_WINDOW)
                    job.wake.set()
            case Finish(ident, digest):
                job = self._jobs.get(ident)
                if job is None or job.kind != "upload":
                    self._stray(ident)
                else:
                    job.finish = digest
                    job.wake.set()
            case Cancel(ident):
                job = self._jobs.get(ident)
                if job is not None and job.task is not None:
                    job.task.cancel()

    def _stray(self, ident: int) -> None:
        if ident not in self._recent:  # late messages for a job that just ended are normal
            self._reply_later(Error(ident, FileErrorCode.TRANSFER_UNKNOWN, "no such transfer"))

    def _start(self, message: ListDir | Stat | Download | Upload | MakeDir | Remove | Rename) -> None:
        ident = message.id
        transfers = sum(1 for j in self._jobs.values() if j.kind in ("download", "upload"))
        refusal: tuple[FileErrorCode, str] | None = None
        if self._closed:
            refusal = FileErrorCode.CLOSED, "the session is ending"
        elif ident in self._jobs:
            refusal = FileErrorCode.ID_IN_USE, "this id is in use"
        elif isinstance(message, Download | Upload) and transfers >= self._max_transfers:
            refusal = FileErrorCode.TOO_MANY_TRANSFERS, f"at most {self._max_transfers} transfers at once"
        elif not isinstance(message, Download | Upload) and len(self._jobs) - transfers >= MAX_REQUESTS:
            refusal = FileErrorCode.BUSY, f"at most {MAX_REQUESTS} requests at once"
        if refusal is not None:
            if isinstance(message, MakeDir | Remove | Rename):  # a change asked for is audited, even refused
                self._audit(self._change_job(message), refusal[0])
            self._reply_later(Error(ident, *refusal))
            return
        job: _Job
        match message:
            case ListDir(_, path):
                job = _Job(ident, "list", path)
                job.task = self._spawn(job, self._list(job))
            case Stat(_, path):
                job = _Job(ident, "stat", path)
                job.task = self._spawn(job, self._stat(job))
            case Download():
                job = _Job(ident, "download", message.path, credit=message.window)
                job.task = self._spawn(job, self._download(job, message))
            case Upload():
                job = _Job(ident, "upload", message.path, size=message.size)
                job.task = self._spawn(job, self._upload(job, message))
            case MakeDir() | Remove() | Rename():
                job = self._change_job(message)
                job.task = self._spawn(job, self._change(job, message))

    @staticmethod
    def _change_job(message: MakeDir | Remove | Rename) -> _Job:
        match message:
            case MakeDir(ident, path):
                return _Job(ident, "mkdir", path)
            case Remove(ident, path):
                return _Job(ident, "remove", path)
            case Rename(ident, source, target):
                return _Job(ident, "rename", source, target=target)

    def _spawn(self, job: _Job, work: Awaitable[None]) -> asyncio.Task[None]:
        self._jobs[job.id] = job
        return asyncio.ensure_future(self._run(job, work))

    async def _run(self, job: _Job, work: Awaitable[None]) -> None:
        result = "ok"
        try:
            await work
        except asyncio.CancelledError:
            result = FileErrorCode.CLOSED if self._closed else FileErrorCode.CANCELLED
            io = job.io
            await self._cleanup(job, discard=not self._closed)
            if job.kind in CHANGES and (job.done or (io is not None and _succeeded(io))):
                result = "ok"  # its one system call was made: the audit says what happened to the disk
            self._audit(job, result)
            self._stats.failed += job.kind in ("download", "upload")
            raise
        except FilesError as exc:
            result = exc.code
            await self._cleanup(job, discard=True)
            await self._reply_quietly(Error(job.id, exc.code, exc.message))
        except OSError as exc:
            error = from_os_error(exc, job.path)
            result = error.code
            await self._cleanup(job, discard=True)
            await self._reply_quietly(Error(job.id, error.code, error.message))
        except Exception:
            log.exception("files job %d failed", job.id)
            result = FileErrorCode.IO_ERROR
            await self._cleanup(job, discard=True)
            await self._reply_quietly(Error(job.id, FileErrorCode.IO_ERROR, "internal error"))
        finally:
            self._jobs.pop(job.id, None)
            self._recent.append(job.id)
        if job.kind in CHANGES:
            self._audit(job, result)
        if job.kind in ("download", "upload"):
            self._audit(job, result)
            if result == "ok":
                self._stats.completed += 1
            else:
                self._stats.failed += 1

    @staticmethod
    async def _settle(job: _Job) -> None:
        """Wait for the job's blocking call in flight, if any: never close what a thread still uses."""
        if job.io is not None:
            await asyncio.wait([job.io])
            job.io = None

    async def _cleanup(self, job: _Job, *, discard: bool) -> None:
        await self._settle(job)
        if job.upload is not None:
            self._uploading.discard(job.upload.where.parts)
            upload, job.upload = job.upload, None
            await asyncio.to_thread(upload.discard if discard else upload.close)

    def _fail(self, job: _Job, code: FileErrorCode, why: str) -> None:
        """End a job for something the console did wrong; the job's task reports nothing more."""
        if job.task is not None:
            job.task.cancel()
        self._reply_later(Error(job.id, code, why))

    async def _io(self, job: _Job, fn: Callable[..., T], *args: Any) -> T:
        """One blocking call in a thread; cancelling the job waits for it to finish before cleaning up."""
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        job.io = future
        try:
            return await asyncio.shield(future)
        finally:
            if future.done():
                job.io = None

    # ---------------------------------------------------------------- listings

    async def _list(self, job: _Job) -> None:
        entries = self._guard.list_dir(job.path, MAX_LIST_ENTRIES + 1)
        try:
            total = 0
            while True:
                page = await self._io(job, lambda: list(itertools.islice(entries, MAX_PAGE_ENTRIES)))
                total += len(page)
                truncated = total > MAX_LIST_ENTRIES
                if truncated:
                    page = page[: len(page) - (total - MAX_LIST_ENTRIES)]
                last = truncated or len(page) < MAX_PAGE_ENTRIES
                await self._reply(Entries(job.id, tuple(page), last=last, truncated=truncated))
                if last:
                    return
        finally:
            await self._settle(job)
            await asyncio.to_thread(entries.close)

    async def _stat(self, job: _Job) -> None:
        entry = await self._io(job, self._guard.stat, job.path)
        await self._reply(StatResult(job.id, entry))

    # ---------------------------------------------------------------- changes

    async def _change(self, job: _Job, request: MakeDir | Remove | Rename) -> None:
        match request:
            case MakeDir(_, path):
                job.path = await self._io(job, self._guard.make_dir, path)
            case Remove(_, path, what):
                job.path = await self._io(job, self._guard.remove, path, what)
            case Rename(_, source, target, overwrite):
                job.path, job.target = await self._io(job, self._guard.rename, source, target, overwrite)
        job.done = 1
        await self._reply(Done(job.id))

    # ---------------------------------------------------------------- downloads

    async def _download(self, job: _Job, request: Download) -> None:
        fd, st, where = await self._io(job, self._guard.open_file, request.path)
        try:
            job.path, job.size = where.shown, st.st_size
            if request.offset > st.st_size:
                raise FilesError(FileErrorCode.INVALID, f"offset {request.offset} is beyond the end")
            hasher = hashlib.sha256()
            pos = 0
            while (
                pos < request.offset
            ):  # resume: the hash covers the whole file, so hash what the console has
                pos = await self._io(
                    job, hash_range, fd, pos, min(pos + 8 * HASH_BLOCK, request.offset), hasher
                )
            known = self._hashes.get(st)
            await self._reply(DownloadMeta(job.id, st.st_size, st.st_mtime, request.offset, known))
            job.done = pos
            while pos < st.st_size:
                while job.credit <= 0:
                    job.wake.clear()
                    await job.wake.wait()
                length = min(MAX_CHUNK, job.credit, st.st_size - pos)
                data = await self._io(job, read_chunk, fd, pos, length, hasher)
                if not data:
                    raise FilesError(FileErrorCode.FILE_CHANGED, f"{job.path} shrank during the download")
                job.credit -= len(data)
                await self._send(encode(Chunk(job.id, pos, data)))
                pos += len(data)
                job.done = pos
                self._stats.bytes_sent += len(data)
            after = await self._io(job, os.fstat, fd)
            if after.st_size != st.st_size or after.st_mtime_ns != st.st_mtime_ns:
                raise FilesError(FileErrorCode.FILE_CHANGED, f"{job.path} changed during the download")
            digest = hasher.digest()
            if known is not None and known != digest:
                raise FilesError(FileErrorCode.FILE_CHANGED, f"{job.path} changed since it was last read")
            self._hashes.put(st, digest)
            job.sha256 = digest
            await self._reply(DownloadEnd(job.id, digest))
        finally:
            await self._settle(job)
            os.close(fd)

    # ---------------------------------------------------------------- uploads

    async def _upload(self, job: _Job, request: Upload) -> None:
        where = await self._io(job, self._guard.locate, request.path)
        if where.parts in self._uploading:
            await asyncio.to_thread(where.close)
            raise FilesError(FileErrorCode.ID_IN_USE, f"{where.shown} is already being uploaded")
        self._uploading.add(where.parts)
        job.path = where.shown
        try:
            upload = await self._io(
                job,
                lambda: prepare_upload(
                    where,
                    size=request.size,
                    sha256=request.sha256,
                    overwrite=request.overwrite,
                    resume=request.resume,
                ),
            )
        except BaseException:
            self._uploading.discard(where.parts)
            raise
        job.upload = upload
        job.expected = job.done = upload.offset
        job.granted = self._window
        job.ready = True
        await self._reply(UploadReady(job.id, upload.offset, self._window))
        while True:
            while not job.queue and (job.finish is None or job.expected < job.size):
                if job.finish is not None:
                    raise FilesError(
                        FileErrorCode.INVALID, f"FINISH after {job.expected} of {job.size} bytes"
                    )
                job.wake.clear()
                await job.wake.wait()
            if not job.queue:
                break
            data = job.queue.popleft()
            await self._io(job, upload.write, job.done, data)
            job.done += len(data)
            self._stats.bytes_received += len(data)
            job.granted += len(data)
            await self._send(encode(Credit(job.id, len(data))))
        digest = upload.hasher.digest()
        if digest != job.finish or (request.sha256 is not None and digest != request.sha256):
            raise FilesError(
                FileErrorCode.HASH_MISMATCH, f"{job.path}: the data received does not match its hash"
            )
        await self._io(job, upload.commit, request.mtime)
        self._uploading.discard(upload.where.parts)
        job.upload = None
        job.sha256 = digest
        await self._reply(UploadDone(job.id, digest))

    # ---------------------------------------------------------------- Stop

    async def close_all(self) -> None:
        """Stop: end every transfer and listing now; keep partial uploads for a later resume; send nothing."""
        self._closed = True
        tasks: list[asyncio.Future[None]] = [j.task for j in self._jobs.values() if j.task is not None]
        tasks += self._replies
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self._guard.close)

    # ---------------------------------------------------------------- plumbing

    async def _reply(self, message: FilesMessage) -> None:
        await self._send(encode(message))

    def _reply_later(self, message: FilesMessage) -> None:
        task = asyncio.ensure_future(self._reply_quietly(message))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _reply_quietly(self, message: FilesMessage) -> None:
        with contextlib.suppress(Exception):
            await self._reply(message)

    def _audit(self, job: _Job, result: str) -> None:
        if self._on_event is None or job.kind in ("list", "stat"):
            return
        name = typing.cast(EventName, f"files.{job.kind}")
        event = FilesEvent(name, job.path, job.size, job.done, str(result), job.sha256.hex(), job.target)
        try:
            self._on_event(event)
        except Exception:
            log.exception("files audit listener failed")


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None
