"""The files channel end to end against a real directory: listings, transfers both ways, resume, verification,
cancel, limits, and Stop. The console side is a faithful peer (tests/files/peer.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from steun_agent.files import service as files_service
from steun_protocol.files import (
    MAX_CHUNK,
    MAX_PAGE_ENTRIES,
    Cancel,
    Chunk,
    Credit,
    Download,
    DownloadMeta,
    EntryKind,
    Error,
    FileErrorCode,
    Finish,
    Overwrite,
    Upload,
    UploadReady,
)

from tests.support.waiting import wait_for

from .conftest import partials, pattern_file
from .peer import Dropped, FilesConsole, TransferFailed, file_sha256

MIB = 1024 * 1024


async def test_listing_comes_in_pages_with_kinds_and_lossy_names(console: FilesConsole, root: Path) -> None:
    (root / "dir").mkdir()
    for i in range(MAX_PAGE_ENTRIES + 10):
        (root / "dir" / f"f{i:04}.txt").write_bytes(b"x" * i)
    (root / "dir" / "sub").mkdir()
    (root / "dir" / "link").symlink_to("f0001.txt")
    os.close(
        os.open(os.path.join(os.fsencode(root / "dir"), b"caf\xe9.txt"), os.O_CREAT | os.O_WRONLY, 0o600)
    )
    entries = await console.list("dir")
    assert len(entries) == MAX_PAGE_ENTRIES + 13
    by_name = {e.name: e for e in entries}
    assert by_name["f0007.txt"].kind is EntryKind.FILE and by_name["f0007.txt"].size == 7
    assert by_name["sub"].kind is EntryKind.DIRECTORY
    assert by_name["link"].kind is EntryKind.SYMLINK
    lossy = by_name["caf\ufffd.txt"]
    assert lossy.name_lossy and lossy.kind is EntryKind.FILE


async def test_a_huge_directory_is_cut_off_and_says_so(
    console: FilesConsole, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_service, "MAX_LIST_ENTRIES", 300)
    for i in range(400):
        (root / f"f{i}").touch()
    ident = console.new_id()
    from steun_protocol.files import Entries, ListDir

    await console.send(ListDir(ident, ""))
    pages = []
    while not pages or not pages[-1].last:
        page = await console.next(ident)
        assert isinstance(page, Entries)
        pages.append(page)
    assert sum(len(p.entries) for p in pages) == 300
    assert pages[-1].truncated and not any(p.truncated for p in pages[:-1])


async def test_stat(console: FilesConsole, root: Path) -> None:
    (root / "a.txt").write_text("hello")
    (root / "a.txt").chmod(0o640)
    entry = await console.stat("a.txt")
    assert (entry.name, entry.kind, entry.size, entry.mode) == ("a.txt", EntryKind.FILE, 5, 0o640)
    assert (await console.stat("")).kind is EntryKind.DIRECTORY


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../etc/passwd", FileErrorCode.PATH_INVALID),
        ("/etc/passwd", FileErrorCode.PATH_OUTSIDE_ROOT),
        ("a\0b", FileErrorCode.PATH_INVALID),
        ("..\\x", FileErrorCode.PATH_INVALID),
        ("out", FileErrorCode.SYMLINK_ESCAPE),
        ("missing", FileErrorCode.NOT_FOUND),
    ],
)
async def test_refused_paths_get_their_code_everywhere(
    console: FilesConsole, root: Path, tmp_path: Path, path: str, code: FileErrorCode
) -> None:
    (tmp_path / "secret").write_text("secret")
    (root / "out").symlink_to(tmp_path / "secret")
    for attempt in (console.list(path), console.stat(path), console.download(path, tmp_path / "got")):
        with pytest.raises(TransferFailed) as caught:
            await attempt
        assert caught.value.code == code
    source = tmp_path / "payload"
    source.write_text("payload")
    with pytest.raises(TransferFailed) as caught:
        await console.upload(source, path if path != "missing" else "missing/x", overwrite=Overwrite.REPLACE)
    assert caught.value.code == code
    assert (tmp_path / "secret").read_text() == "secret"
    assert {p.name for p in tmp_path.iterdir()} == {"payload", "secret", "served"}, "nothing written outside"


async def test_download_and_upload_round_trip(console: FilesConsole, root: Path, tmp_path: Path) -> None:
    source = pattern_file(root / "data.bin", 3 * MAX_CHUNK + 123)
    got = await console.download("data.bin", tmp_path / "copy.bin")
    assert got.sha256 == file_sha256(source) == file_sha256(tmp_path / "copy.bin")
    assert got.meta is not None and got.meta.size == source.stat().st_size
    sent = await console.upload(tmp_path / "copy.bin", "back.bin", mtime=1_600_000_000.0)
    assert sent.sha256 == got.sha256 == file_sha256(root / "back.bin")
    assert (root / "back.bin").stat().st_mtime == 1_600_000_000.0
    assert partials(root) == []
    assert [(e.name, e.result) for e in console.events] == [("files.download", "ok"), ("files.upload", "ok")]
    assert console.events[0].sha256 == got.sha256.hex()


async def test_empty_files_travel(console: FilesConsole, root: Path, tmp_path: Path) -> None:
    (root / "empty").touch()
    assert (await console.download("empty", tmp_path / "e")).sha256 == hashlib.sha256().digest()
    assert (await console.upload(tmp_path / "e", "empty2")).transferred == 0
    assert (root / "empty2").stat().st_size == 0


async def test_upload_without_an_announced_hash_is_still_verified(
    console: FilesConsole, root: Path, tmp_path: Path
) -> None:
    source = pattern_file(tmp_path / "s", MAX_CHUNK + 5)
    await console.upload(source, "s", announce_hash=False)  # a browser hashes as it reads
    assert file_sha256(root / "s") == file_sha256(source)


async def test_existing_targets(console: FilesConsole, root: Path, tmp_path: Path) -> None:
    (root / "t.txt").write_text("old")
    (root / "t.txt").chmod(0o600)
    (root / "d").mkdir()
    source = tmp_path / "new"
    source.write_text("new")
    with pytest.raises(TransferFailed) as caught:
        await console.upload(source, "t.txt")
    assert caught.value.code == FileErrorCode.EXISTS
    with pytest.raises(TransferFailed) as caught:
        await console.upload(source, "d", overwrite=Overwrite.REPLACE)
    assert caught.value.code == FileErrorCode.NOT_A_FILE
    await console.upload(source, "t.txt", overwrite=Overwrite.REPLACE)
    assert (root / "t.txt").read_text() == "new"
    assert (root / "t.txt").stat().st_mode & 0o777 == 0o600  # the replaced file's mode is kept
    assert partials(root) == []


async def test_a_flipped_byte_in_a_download_is_detected(
    console: FilesConsole, root: Path, tmp_path: Path
) -> None:
    pattern_file(root / "f", 2 * MAX_CHUNK)
    with pytest.raises(TransferFailed) as caught:
        await console.download("f", tmp_path / "f", flip_at=MAX_CHUNK + 17)
    assert caught.value.code == "hash_mismatch"


async def test_a_flipped_byte_in_an_upload_is_detected_and_nothing_lands(
    console: FilesConsole, root: Path, tmp_path: Path
) -> None:
    source = pattern_file(tmp_path / "f", 2 * MAX_CHUNK)
    for announce in (True, False):
        with pytest.raises(TransferFailed) as caught:
            await console.upload(source, "f", flip_at=MAX_CHUNK + 17, announce_hash=announce)
        assert caught.value.code == FileErrorCode.HASH_MISMATCH
        assert not (root / "f").exists() and partials(root) == []


async def test_an_interrupted_download_resumes_and_verifies(root: Path, tmp_path: Path) -> None:
    source = pattern_file(root / "big", 10 * MAX_CHUNK + 99)
    first = FilesConsole(root)
    with pytest.raises(Dropped):
        await first.download("big", tmp_path / "big", stop_after=4 * MAX_CHUNK)
    await first.close()  # the session ends: the connection dropped
    assert (tmp_path / "big").stat().st_size == 4 * MAX_CHUNK
    second = FilesConsole(root, hash_cache=first.hash_cache)
    got = await second.download("big", tmp_path / "big", resume=True)
    assert (got.offset, got.transferred) == (4 * MAX_CHUNK, source.stat().st_size - 4 * MAX_CHUNK)
    assert got.sha256 == file_sha256(source) == file_sha256(tmp_path / "big")
    # a later resume of the same, unchanged file announces the hash up front
    third = FilesConsole(root, hash_cache=first.hash_cache)
    (tmp_path / "big").write_bytes((tmp_path / "big").read_bytes()[:MAX_CHUNK])
    again = await third.download("big", tmp_path / "big", resume=True)
    assert again.meta is not None and again.meta.sha256 == got.sha256
    for peer in (second, third):
        await peer.close()


async def test_an_interrupted_upload_resumes_from_the_partial_and_verifies(
    root: Path, tmp_path: Path
) -> None:
    source = pattern_file(tmp_path / "big", 10 * MAX_CHUNK + 99)
    (root / "up").mkdir()
    first = FilesConsole(root)
    with pytest.raises(Dropped):
        await first.upload(source, "up/big", stop_after=5 * MAX_CHUNK)
    await first.close()
    assert not (root / "up" / "big").exists()
    assert len(partials(root / "up")) == 1  # hidden beside the target, kept for the resume
    second = FilesConsole(root)
    readies: list[UploadReady] = []
    done = await second.upload(source, "up/big", on_ready=readies.append)
    assert 0 < readies[0].offset <= 5 * MAX_CHUNK
    assert done.transferred == source.stat().st_size - readies[0].offset
    assert file_sha256(root / "up" / "big") == file_sha256(source) == done.sha256
    assert partials(root / "up") == []
    await second.close()


async def test_a_resumed_partial_that_was_damaged_is_caught(root: Path, tmp_path: Path) -> None:
    source = pattern_file(tmp_path / "big", 6 * MAX_CHUNK)
    first = FilesConsole(root)
    with pytest.raises(Dropped):
        await first.upload(source, "big", stop_after=3 * MAX_CHUNK)
    await first.close()
    (name,) = partials(root)
    with (root / name).open("r+b") as f:  # a byte rots on disk while nobody looks
        f.seek(1000)
        f.write(b"\xff")
    second = FilesConsole(root)
    with pytest.raises(TransferFailed) as caught:
        await second.upload(source, "big")
    assert caught.value.code == FileErrorCode.HASH_MISMATCH
    assert not (root / "big").exists() and partials(root) == []
    third = FilesConsole(root)  # and the next attempt starts clean and succeeds
    await third.upload(source, "big")
    assert file_sha256(root / "big") == file_sha256(source)
    for peer in (second, third):
        await peer.close()


async def test_cancel_stops_a_download_and_deletes_a_partial_upload(
    console: FilesConsole, root: Path, tmp_path: Path
) -> None:
    pattern_file(root / "f", 20 * MAX_CHUNK)
    await console.send(Download(50, "f", 0, MAX_CHUNK))
    assert isinstance(await console.next(50), DownloadMeta)
    assert isinstance(await console.next(50), Chunk)  # then it waits for credit
    await console.send(Cancel(50))
    await wait_for(lambda: not console.service.statistics().transfers, what="the download to end")
    await console.send(Credit(50, MAX_CHUNK))  # a late credit is dropped quietly
    source = pattern_file(tmp_path / "u", 4 * MAX_CHUNK)
    with pytest.raises(Dropped):
        await console.upload(source, "u", stop_after=2 * MAX_CHUNK, ident=51)
    await wait_for(lambda: partials(root), what="the partial to exist")
    await console.send(Cancel(51))
    await wait_for(lambda: not partials(root), what="the partial to be deleted")
    assert not (root / "u").exists()
    assert [e.result for e in console.events] == ["cancelled", "cancelled"]
    await console.send(Chunk(51, 2 * MAX_CHUNK, b"late"))  # late chunks too
    late = [await console.next(i) for i in (50, 51) for _ in range(console.pending(i))]
    assert not any(isinstance(m, Error) for m in late), late


async def test_several_transfers_at_once_and_the_limit(root: Path, tmp_path: Path) -> None:
    console = FilesConsole(root)
    console.service._max_transfers = 3
    sources = [pattern_file(root / f"s{i}", (i + 2) * MAX_CHUNK) for i in range(3)]
    for i in range(3):  # three downloads held open (one chunk of credit each, never renewed)
        await console.send(Download(100 + i, f"s{i}", 0, MAX_CHUNK))
    await wait_for(lambda: len(console.service.statistics().transfers) == 3)
    await console.send(Upload(200, "x", 1))
    refused = await console.next(200)
    assert isinstance(refused, Error) and refused.code == FileErrorCode.TOO_MANY_TRANSFERS
    for i in range(3):
        await console.send(Cancel(100 + i))
    await wait_for(lambda: not console.service.statistics().transfers)
    results = await asyncio.gather(*(console.download(f"s{i}", tmp_path / f"d{i}") for i in range(3)))
    assert [r.sha256 for r in results] == [file_sha256(s) for s in sources]
    uploads = await asyncio.gather(*(console.upload(tmp_path / f"d{i}", f"u{i}") for i in range(3)))
    assert [u.sha256 for u in uploads] == [file_sha256(s) for s in sources]
    await console.close()


async def test_console_misbehaviour_is_refused(console: FilesConsole, root: Path) -> None:
    await console.send(Upload(7, "x", 4 * MAX_CHUNK))
    ready = await console.next(7)
    assert isinstance(ready, UploadReady)
    await console.send(Chunk(7, 5, b"gap"))  # not at the expected offset
    error = await console.next(7)
    assert isinstance(error, Error) and error.code == FileErrorCode.INVALID
    await console.send(Upload(8, "y", 100 * MAX_CHUNK))
    ready = await console.next(8)
    assert isinstance(ready, UploadReady)
    pos = 0
    while pos <= ready.window:  # ignoring the credit
        await console.send(Chunk(8, pos, bytes(MAX_CHUNK)))
        pos += MAX_CHUNK
    while not isinstance(message := await console.next(8), Error):
        assert isinstance(message, Credit)
    assert message.code == FileErrorCode.FLOW_VIOLATION
    await console.send(Upload(9, "z", 10))
    assert isinstance(await console.next(9), UploadReady)
    await console.send(Finish(9, bytes(32)))  # finished before sending anything
    error = await console.next(9)
    assert isinstance(error, Error) and error.code == FileErrorCode.INVALID
    await console.send(Finish(99, bytes(32)))
    stray = await console.next(99)
    assert isinstance(stray, Error) and stray.code == FileErrorCode.TRANSFER_UNKNOWN
    await wait_for(lambda: partials(root) == [], what="partials of refused uploads to be removed")


async def test_a_file_that_changes_during_a_download_is_reported(root: Path, tmp_path: Path) -> None:
    console = FilesConsole(root, window=MAX_CHUNK)  # one chunk at a time: the change lands mid-way
    source = pattern_file(root / "f", 4 * MAX_CHUNK)

    async def grow(pos: int) -> None:
        if pos == MAX_CHUNK:
            await asyncio.to_thread(lambda: source.open("ab").write(b"more"))

    with pytest.raises(TransferFailed) as caught:
        await console.download("f", tmp_path / "f", after_chunk=grow)
    assert caught.value.code == FileErrorCode.FILE_CHANGED
    await console.close()


async def test_ids_in_use_and_same_target_twice(console: FilesConsole, root: Path) -> None:
    await console.send(Upload(1, "same", 10))
    assert isinstance(await console.next(1), UploadReady)
    await console.send(Download(1, "same", 0, MAX_CHUNK))
    error = await console.next(1)
    assert isinstance(error, Error) and error.code == FileErrorCode.ID_IN_USE
    await console.send(Upload(2, "same", 10))
    error = await console.next(2)
    assert isinstance(error, Error) and error.code == FileErrorCode.ID_IN_USE


async def test_stop_ends_every_transfer_at_once_and_keeps_partials(root: Path, tmp_path: Path) -> None:
    console = FilesConsole(root)
    for i in range(3):
        pattern_file(root / f"s{i}", 8 * MAX_CHUNK)
        await console.send(Download(10 + i, f"s{i}", 0, MAX_CHUNK))
    source = pattern_file(tmp_path / "u", 8 * MAX_CHUNK)
    with pytest.raises(Dropped):
        await console.upload(source, "u", stop_after=MAX_CHUNK, ident=20)
    await wait_for(lambda: len(console.service.statistics().transfers) == 4)
    await asyncio.wait_for(console.close(), 2.0)
    assert console.service.statistics().transfers == ()
    assert console.sent_after_close == []
    assert len(partials(root)) == 1  # a later session resumes it
    assert {e.result for e in console.events} == {"closed"}
    await console.send(Download(30, "s0", 0, MAX_CHUNK))
    refused = await console.next(30)
    assert isinstance(refused, Error) and refused.code == FileErrorCode.CLOSED
