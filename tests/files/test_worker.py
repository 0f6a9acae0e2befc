"""Files as the policy's account: the worker process runs as ``nobody`` (the agent is root here) and the
agent's FilesProxy forwards to it. What that account may not read stays unreadable, what it writes is its
own; a worker that misbehaves is killed and ends the files channel, never the agent; Stop ends it within a
second; a 200 MiB transfer each way keeps the agent's memory flat."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from steun_agent.files import FilesEvent, FilesProxy, FilesService, files_service_for
from steun_agent.files.pipe import HEADER, MAX_FRAME_BODY, TAG_EVENT, TAG_RECORD, encode_event
from steun_agent.shell import Account
from steun_protocol.errors import RemoteProtocolError
from steun_protocol.files import (
    MAX_CHUNK,
    Chunk,
    Done,
    Download,
    DownloadMeta,
    Error,
    FileErrorCode,
    ListDir,
    Stat,
    encode,
)

from tests.support.waiting import scaled, wait_for

from .peer import Dropped, FilesConsole, TransferFailed, file_sha256
from .test_large import sparse_file

MIB = 1 << 20

if os.geteuid() != 0:
    pytest.skip("the file worker tests become another account: they run as root", allow_module_level=True)

NOBODY = Account.named("nobody")


@pytest.fixture
def tree() -> Iterator[Path]:
    """A root nobody may enter, with what only root may read and a directory nobody owns."""
    base = Path(tempfile.mkdtemp(prefix="steun-worker-", dir="/tmp"))
    try:
        base.chmod(0o755)
        (base / "public.txt").write_text("for everyone")
        (base / "public.txt").chmod(0o644)
        (base / "secret.txt").write_text("root only")
        (base / "secret.txt").chmod(0o600)
        (base / "private").mkdir(mode=0o700)
        (base / "private" / "inner.txt").write_text("root only")
        (base / "mine").mkdir(mode=0o755)
        os.chown(base / "mine", NOBODY.uid, NOBODY.gid)
        yield base
    finally:
        shutil.rmtree(base)


def proxied(account: Account = NOBODY, **options: object):  # type: ignore[no-untyped-def]
    def make(send, root, on_event):  # type: ignore[no-untyped-def]
        return FilesProxy(account, send, root, on_event=on_event, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def console(tree: Path) -> AsyncIterator[FilesConsole]:
    peer = FilesConsole(tree, make_service=proxied())
    yield peer
    await peer.close()


async def code_of(attempt: object) -> str:
    try:
        await attempt  # type: ignore[misc]
    except TransferFailed as exc:
        return exc.code
    return "ok"


# ------------------------------------------------------------------------------------------- as the account


async def test_the_account_reads_what_it_may_and_nothing_more(
    console: FilesConsole, tree: Path, tmp_path: Path
) -> None:
    names = {e.name for e in await console.list("")}
    assert names == {"public.txt", "secret.txt", "private", "mine"}
    got = await console.download("public.txt", tmp_path / "public.txt")
    assert got.sha256 == file_sha256(tree / "public.txt")
    assert await code_of(console.download("secret.txt", tmp_path / "s")) == FileErrorCode.PERMISSION_DENIED
    assert await code_of(console.list("private")) == FileErrorCode.PERMISSION_DENIED
    assert await code_of(console.stat("private/inner.txt")) == FileErrorCode.PERMISSION_DENIED
    assert console.service.statistics().pid is not None


async def test_what_the_account_writes_is_its_own(console: FilesConsole, tree: Path, tmp_path: Path) -> None:
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(3 * MAX_CHUNK + 5))
    await console.upload(source, "mine/up.bin")
    st = (tree / "mine" / "up.bin").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (NOBODY.uid, NOBODY.gid, 0o644)
    assert file_sha256(tree / "mine" / "up.bin") == file_sha256(source)
    await console.mkdir("mine/dir")
    st = (tree / "mine" / "dir").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (NOBODY.uid, 0o755)  # umask 022 in the worker
    await console.rename("mine/up.bin", "mine/dir/up.bin")
    assert await code_of(console.upload(source, "root-owned.bin")) == FileErrorCode.PERMISSION_DENIED
    assert await code_of(console.mkdir("private/x")) == FileErrorCode.PERMISSION_DENIED
    assert await code_of(console.remove("secret.txt")) == FileErrorCode.PERMISSION_DENIED
    assert await code_of(console.rename("public.txt", "mine/stolen.txt")) == FileErrorCode.PERMISSION_DENIED
    assert (tree / "secret.txt").exists() and (tree / "public.txt").exists()
    assert not (tree / "root-owned.bin").exists()
    # an event follows its reply on the worker's pipe: it may arrive a moment after the reply
    await wait_for(lambda: len(console.events) == 7, what="the last audit event")
    assert [(e.name, e.result) for e in console.events] == [
        ("files.upload", "ok"),
        ("files.mkdir", "ok"),
        ("files.rename", "ok"),
        ("files.upload", "permission_denied"),
        ("files.mkdir", "permission_denied"),
        ("files.remove", "permission_denied"),
        ("files.rename", "permission_denied"),
    ]
    assert all(isinstance(e, FilesEvent) for e in console.events)


async def test_decode_errors_are_raised_at_once_like_the_service(console: FilesConsole) -> None:
    for bad in (b"", b"\x42\x00\x00\x00\x01", encode(Done(1))):
        with pytest.raises(RemoteProtocolError):
            console.service.feed(bad)
    assert console.service.statistics().pid is None, "nothing was forwarded, no worker started"


def test_the_factory_chooses_by_account(tree: Path) -> None:
    async def send(_: bytes) -> None:
        return None

    assert isinstance(files_service_for(None, send, str(tree)), FilesService)
    assert isinstance(files_service_for(Account.current(), send, str(tree)), FilesService)
    assert isinstance(files_service_for(NOBODY, send, str(tree)), FilesProxy)


# ------------------------------------------------------------------------------------------- Stop


async def test_stop_ends_the_worker_and_its_transfers_within_a_second(tree: Path, tmp_path: Path) -> None:
    sparse_file(tree / "mine" / "big.img", 64 * MIB)
    console = FilesConsole(tree, make_service=proxied())
    for ident in (10, 11):  # held open: one chunk of credit each, never renewed
        await console.send(Download(ident, "mine/big.img", 0, MAX_CHUNK))
        assert isinstance(await console.next(ident), DownloadMeta)
    source = tmp_path / "u"
    source.write_bytes(os.urandom(8 * MAX_CHUNK))
    with pytest.raises(Dropped):
        await console.upload(source, "mine/u", stop_after=MAX_CHUNK, ident=20)
    proxy: FilesProxy = console.service
    process = proxy._proc
    assert process is not None
    started = time.monotonic()
    await console.close()
    assert time.monotonic() - started < 1.0
    assert process.returncode == 0, "end of input: the worker stopped its transfers and exited"
    assert console.sent_after_close == []
    assert sorted((e.name, e.result) for e in console.events) == [
        ("files.download", "closed"),
        ("files.download", "closed"),
        ("files.upload", "closed"),
    ]
    assert [p.name for p in (tree / "mine").iterdir() if p.name.endswith(".steunpart")], "kept for a resume"
    await console.send(Stat(30, "public.txt"))
    refused = await console.next(30)
    assert isinstance(refused, Error) and refused.code == FileErrorCode.CLOSED


STUBBORN = """
import signal, struct, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
done = bytes([0x87, 0, 0, 0, 1])
sys.stdout.buffer.write(struct.pack("!IB", len(done), 0) + done)
sys.stdout.buffer.flush()
time.sleep(120)
"""


async def test_a_worker_that_ignores_stop_is_killed_within_a_second(tree: Path) -> None:
    console = FilesConsole(tree, make_service=proxied(command=[sys.executable, "-c", STUBBORN]))
    await console.send(Stat(1, ""))
    assert isinstance(await console.next(1), Done)  # it is up, SIGTERM is ignored from now on
    process = console.service._proc
    started = time.monotonic()
    await console.close()
    assert time.monotonic() - started < 1.0
    assert process.returncode == -9


# ------------------------------------------------------------------------------------------- a bad worker


def _frame(length: int, tag: int, body: bytes) -> bytes:
    return HEADER.pack(length, tag) + body


_EVENT = encode_event(FilesEvent("files.remove", "everything", 0, 0, "ok"))


BAD_OUTPUT = {
    "garbage": b"garbage! " * 100,
    "over-long frame": _frame(MAX_FRAME_BODY + 1, TAG_RECORD, b""),
    "over-long event": _frame(64 * 1024 + 1, TAG_EVENT, b""),
    "unknown tag": _frame(1, 7, b"x"),
    "invalid message": _frame(5, TAG_RECORD, b"\x42\x00\x00\x00\x01"),
    "a console message": _frame(7, TAG_RECORD, encode(ListDir(1, ""))),
    "not an event": _frame(2, TAG_EVENT, b"{}"),
    "event nobody asked for": _frame(len(_EVENT), TAG_EVENT, _EVENT),
    "cut short": _frame(100, TAG_RECORD, b"\x87\x00"),
}


@pytest.mark.parametrize("output", BAD_OUTPUT.values(), ids=BAD_OUTPUT.keys())
async def test_a_worker_that_misbehaves_is_killed_and_ends_the_channel(tree: Path, output: bytes) -> None:
    script = (
        "import sys, time\n"
        f"sys.stdout.buffer.write({output!r}); sys.stdout.buffer.flush()\n"
        "sys.stdout.close() if len(sys.argv) > 1 else time.sleep(120)\n"
    )
    args = ["cut"] if output.endswith(b"\x87\x00") else []
    console = FilesConsole(tree, make_service=proxied(command=[sys.executable, "-c", script, *args]))
    proxy: FilesProxy = console.service
    await console.send(Stat(1, "public.txt"))
    reply = await console.next(1)
    assert isinstance(reply, Error) and reply.code == FileErrorCode.IO_ERROR, reply
    assert proxy.failure is not None and "file access ended" in reply.message
    process = proxy._proc
    assert process is not None
    await asyncio.wait_for(process.wait(), scaled(5))
    await console.send(Stat(2, "public.txt"))  # the channel stays ended, the agent carries on
    later = await console.next(2)
    assert isinstance(later, Error) and later.code == FileErrorCode.IO_ERROR
    await console.close()


async def test_a_worker_that_exits_ends_the_channel(tree: Path) -> None:
    command = [sys.executable, "-c", "import sys; sys.stdin.read(1); sys.exit(5)"]
    console = FilesConsole(tree, make_service=proxied(command=command))
    await console.send(Stat(1, ""))
    reply = await console.next(1)
    assert isinstance(reply, Error) and reply.code == FileErrorCode.IO_ERROR
    assert "status 5" in (console.service.failure or "")
    await console.close()


async def test_a_worker_that_cannot_start_ends_the_channel(tree: Path) -> None:
    console = FilesConsole(tree, make_service=proxied(command=["/nonexistent/python"]))
    await console.send(Stat(1, ""))
    reply = await console.next(1)
    assert isinstance(reply, Error) and reply.code == FileErrorCode.IO_ERROR
    assert "cannot start" in (console.service.failure or "")
    await console.close()


async def test_a_worker_that_does_not_keep_up_ends_the_channel(tree: Path) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(120)"]  # never reads its input
    console = FilesConsole(tree, make_service=proxied(command=command, max_queued_bytes=4 * MAX_CHUNK))
    proxy: FilesProxy = console.service
    await console.send(Stat(1, ""))
    data = bytes(MAX_CHUNK)
    for i in range(64):  # chunks for nothing: each one is checked and queued; the queue is bounded
        proxy.feed(encode(Chunk(99, i * MAX_CHUNK, data)))
        if proxy.failure is not None:
            break
    assert proxy.failure is not None and "keep up" in proxy.failure
    assert proxy.statistics().queued_bytes == 0
    reply = await console.next(1)
    assert isinstance(reply, Error) and reply.code == FileErrorCode.IO_ERROR
    await wait_for(lambda: proxy._proc is not None and proxy._proc.returncode is not None, what="the kill")
    await console.close()


# ------------------------------------------------------------------------------------------- memory


@contextlib.contextmanager
def traced() -> Iterator[dict[str, int]]:
    figures: dict[str, int] = {}
    tracemalloc.start()
    try:
        yield figures
    finally:
        figures["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


@pytest.mark.timeout(300)
async def test_200_mib_each_way_through_the_worker_in_constant_memory(tree: Path, tmp_path: Path) -> None:
    size = 200 * MIB
    source = sparse_file(tree / "mine" / "big.img", size)
    console = FilesConsole(tree, make_service=proxied())
    try:
        with traced() as down:
            got = await console.download("mine/big.img", tmp_path / "copy.img")
        assert got.transferred == size and got.sha256 == file_sha256(source)
        with traced() as up:
            sent = await console.upload(tmp_path / "copy.img", "mine/back.img")
        assert sent.transferred == size and file_sha256(tree / "mine" / "back.img") == got.sha256
        assert (tree / "mine" / "back.img").stat().st_uid == NOBODY.uid
    finally:
        await console.close()
        (tmp_path / "copy.img").unlink(missing_ok=True)
    # the proxy holds one frame, the console peer at most a window (2 MiB): never the file (measured: 2.8 MiB)
    assert down["peak"] < 8 * MIB, down
    assert up["peak"] < 8 * MIB, up
