"""The console's end of the files channel, as a faithful test peer: it downloads into a file and uploads from
one in chunks, hashing as it goes, granting and spending credit exactly as the protocol says.

Hooks let a test misbehave on purpose: stop after N bytes (a dropped connection), flip a byte in one chunk,
or run something after each chunk (change the file under the agent's feet)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steun_agent.files import FilesEvent, FilesService, HashCache
from steun_protocol.files import (
    DEFAULT_WINDOW,
    MAX_CHUNK,
    AgentMessage,
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

from tests.support.waiting import scaled

TIMEOUT = 60.0


class TransferFailed(Exception):
    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Dropped(Exception):
    """The peer stopped on purpose (``stop_after``), as a dropped connection would."""


@dataclass
class Outcome:
    sha256: bytes
    offset: int  # where this transfer started (resume)
    transferred: int  # bytes that travelled in this transfer
    meta: DownloadMeta | None = None


def file_sha256(path: Path) -> bytes:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.digest()


@dataclass
class FilesConsole:
    root: Path
    window: int = DEFAULT_WINDOW
    hash_cache: HashCache = field(default_factory=HashCache)
    agent_window: int = DEFAULT_WINDOW
    #: Builds the agent's end from (send, root, on_event); None: an in-process FilesService.
    make_service: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        self.events: list[FilesEvent] = []
        self.sent_after_close: list[AgentMessage] = []
        self.closed = False
        self._queues: defaultdict[int, asyncio.Queue[AgentMessage]] = defaultdict(asyncio.Queue)
        self._next_id = 1
        self.service: Any = (
            FilesService(
                self._from_agent,
                self.root,
                window=self.agent_window,
                hash_cache=self.hash_cache,
                on_event=self.events.append,
            )
            if self.make_service is None
            else self.make_service(self._from_agent, self.root, self.events.append)
        )

    async def _from_agent(self, data: bytes) -> None:
        message = decode_from_agent(data)
        if self.closed:
            self.sent_after_close.append(message)
        self._queues[message.id].put_nowait(message)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def send(self, message: ConsoleMessage) -> None:
        self.service.feed(encode(message))

    async def next(self, ident: int, timeout: float = TIMEOUT) -> AgentMessage:
        return await asyncio.wait_for(self._queues[ident].get(), scaled(timeout))

    def pending(self, ident: int) -> int:
        return self._queues[ident].qsize()

    async def close(self) -> None:
        await self.service.close_all()
        self.closed = True

    # ---------------------------------------------------------------- requests

    async def request(self, message: ListDir | Stat | MakeDir | Remove | Rename) -> AgentMessage:
        await self.send(message)
        return await self.next(message.id)

    async def change(self, message: MakeDir | Remove | Rename) -> None:
        reply = await self.request(message)
        if isinstance(reply, Error):
            raise TransferFailed(reply.code, reply.message)
        assert isinstance(reply, Done), reply

    async def mkdir(self, path: str) -> None:
        await self.change(MakeDir(self.new_id(), path))

    async def remove(self, path: str, what: Removal = Removal.ANY) -> None:
        await self.change(Remove(self.new_id(), path, what))

    async def rename(self, source: str, target: str, overwrite: Overwrite = Overwrite.FAIL) -> None:
        await self.change(Rename(self.new_id(), source, target, overwrite))

    async def list(self, path: str) -> list[Entry]:
        ident = self.new_id()
        await self.send(ListDir(ident, path))
        entries: list[Entry] = []
        while True:
            page = await self.next(ident)
            if isinstance(page, Error):
                raise TransferFailed(page.code, page.message)
            assert isinstance(page, Entries)
            entries += page.entries
            if page.last:
                return entries

    async def stat(self, path: str) -> Entry:
        reply = await self.request(Stat(self.new_id(), path))
        if isinstance(reply, Error):
            raise TransferFailed(reply.code, reply.message)
        assert isinstance(reply, StatResult)
        return reply.entry

    # ---------------------------------------------------------------- downloads

    async def download(
        self,
        path: str,
        dest: Path,
        *,
        resume: bool = False,
        stop_after: int | None = None,
        flip_at: int | None = None,
        after_chunk: Callable[[int], Awaitable[None]] | None = None,
        ident: int | None = None,
    ) -> Outcome:
        ident = ident or self.new_id()
        offset = dest.stat().st_size if resume and dest.exists() else 0
        await self.send(Download(ident, path, offset, self.window))
        meta = await self.next(ident)
        if isinstance(meta, Error):
            raise TransferFailed(meta.code, meta.message)
        assert isinstance(meta, DownloadMeta) and meta.offset == offset
        hasher = hashlib.sha256()
        fd = await asyncio.to_thread(os.open, dest, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(_hash_prefix, fd, offset, hasher)
            await asyncio.to_thread(os.ftruncate, fd, offset)
            pos = offset
            while True:
                message = await self.next(ident)
                if isinstance(message, Error):
                    raise TransferFailed(message.code, message.message)
                if isinstance(message, DownloadEnd):
                    digest = hasher.digest()
                    if digest != message.sha256:
                        raise TransferFailed(
                            "hash_mismatch", "the file received does not match the agent's hash"
                        )
                    return Outcome(digest, offset, pos - offset, meta)
                assert isinstance(message, Chunk), message
                assert message.offset == pos, (message.offset, pos)
                data = bytes(message.data)
                if flip_at is not None and pos <= flip_at < pos + len(data):
                    i = flip_at - pos
                    data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
                await asyncio.to_thread(_write_and_hash, fd, pos, data, hasher)
                pos += len(data)
                if stop_after is not None and pos - offset >= stop_after:
                    raise Dropped(pos)
                await self.send(Credit(ident, len(data)))
                if after_chunk is not None:
                    await after_chunk(pos)
        finally:
            await asyncio.to_thread(os.close, fd)

    # ---------------------------------------------------------------- uploads

    async def upload(
        self,
        source: Path,
        path: str,
        *,
        overwrite: Overwrite = Overwrite.FAIL,
        resume: bool = True,
        announce_hash: bool = True,
        stop_after: int | None = None,
        flip_at: int | None = None,
        mtime: float = 0.0,
        ident: int | None = None,
        on_ready: Callable[[UploadReady], None] | None = None,
    ) -> Outcome:
        ident = ident or self.new_id()
        size = source.stat().st_size
        whole = await asyncio.to_thread(file_sha256, source) if announce_hash else None
        await self.send(Upload(ident, path, size, whole, overwrite, resume, mtime))
        ready = await self.next(ident)
        if isinstance(ready, Error):
            raise TransferFailed(ready.code, ready.message)
        assert isinstance(ready, UploadReady)
        if on_ready is not None:
            on_ready(ready)
        credit = ready.window
        hasher = hashlib.sha256()
        fd = await asyncio.to_thread(os.open, source, os.O_RDONLY)
        try:
            await asyncio.to_thread(_hash_prefix, fd, ready.offset, hasher)
            pos = ready.offset
            while pos < size:
                while credit <= 0:
                    credit += await self._credit(ident)
                data = await asyncio.to_thread(
                    _read_and_hash, fd, pos, min(MAX_CHUNK, credit, size - pos), hasher
                )
                if flip_at is not None and pos <= flip_at < pos + len(data):
                    i = flip_at - pos
                    data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
                await self.send(Chunk(ident, pos, data))
                credit -= len(data)
                pos += len(data)
                if stop_after is not None and pos - ready.offset >= stop_after:
                    raise Dropped(pos)
                while self.pending(ident):  # take credit as it comes, without waiting for it
                    credit += await self._credit(ident)
            await self.send(Finish(ident, hasher.digest()))
            while True:
                message = await self.next(ident)
                if isinstance(message, Credit):
                    continue
                if isinstance(message, Error):
                    raise TransferFailed(message.code, message.message)
                assert isinstance(message, UploadDone), message
                return Outcome(message.sha256, ready.offset, size - ready.offset)
        finally:
            await asyncio.to_thread(os.close, fd)

    async def _credit(self, ident: int) -> int:
        message = await self.next(ident)
        if isinstance(message, Error):
            raise TransferFailed(message.code, message.message)
        assert isinstance(message, Credit), message
        return message.nbytes


def _hash_prefix(fd: int, end: int, hasher: Any) -> None:
    pos = 0
    while pos < end:
        data = os.pread(fd, min(1 << 20, end - pos), pos)
        if not data:
            raise AssertionError("the local partial file is shorter than its resume offset")
        hasher.update(data)
        pos += len(data)


def _write_and_hash(fd: int, pos: int, data: bytes, hasher: Any) -> None:
    os.pwrite(fd, data, pos)
    hasher.update(data)


def _read_and_hash(fd: int, pos: int, length: int, hasher: Any) -> bytes:
    data = os.pread(fd, length, pos)
    hasher.update(data)
    return data
