"""The files wire format: every message round-trips; hostile input is refused with the documented codes."""

from __future__ import annotations

import contextlib
import hashlib
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from steun_protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from steun_protocol.files import (
    CHUNK_HEADER_SIZE,
    MAX_CHUNK,
    MAX_FILE_SIZE,
    MAX_MESSAGE_SIZE,
    MAX_NAME_BYTES,
    MAX_PAGE_ENTRIES,
    MAX_PATH_BYTES,
    MAX_WINDOW,
    Cancel,
    Chunk,
    Credit,
    Done,
    Download,
    DownloadEnd,
    DownloadMeta,
    Entries,
    Entry,
    EntryKind,
    Error,
    FileErrorCode,
    Finish,
    ListDir,
    MakeDir,
    MessageType,
    Overwrite,
    Removal,
    Remove,
    Rename,
    Stat,
    StatResult,
    Upload,
    UploadDone,
    UploadReady,
    chunk_header,
    decode,
    decode_from_agent,
    decode_from_console,
    encode,
)
from steun_protocol.session import MAX_RECORD_PLAINTEXT

DIGEST = hashlib.sha256(b"x").digest()
LONG_NAME = "é" * (MAX_NAME_BYTES // 2)

CONSOLE = [
    ListDir(1, ""),
    ListDir(2, "Documents/rapport été €.odt"),
    Stat(3, "a/b"),
    Download(4, "big.iso", offset=123456789012, window=MAX_WINDOW),
    Upload(5, "in/new.bin", 2**40, DIGEST, Overwrite.REPLACE, resume=True, mtime=1_700_000_000.5),
    Upload(6, "in/new.bin", 0, None, Overwrite.FAIL, resume=False),
    Finish(5, DIGEST),
    Chunk(5, MAX_FILE_SIZE - 1, b"z"),
    Chunk(5, 0, bytes(MAX_CHUNK)),
    Credit(4, MAX_CHUNK),
    Cancel(4),
    MakeDir(7, "nouveau dossier/été"),
    MakeDir(7, "x" * MAX_PATH_BYTES),
    Remove(8, "a.txt"),
    Remove(8, "dir", Removal.DIRECTORY),
    Remove(8, "link", Removal.NOT_DIRECTORY),
    Rename(9, "a.txt", "b/€.txt"),
    Rename(9, "d" * MAX_PATH_BYTES, "e" * MAX_PATH_BYTES, Overwrite.REPLACE),
    Rename(9, "", ""),  # refused by the agent (the root), not by the wire
]
AGENT = [
    Entries(1, (), last=True),
    Entries(
        1,
        (
            Entry("a.txt", EntryKind.FILE, 12, 1.5, 0o644),
            Entry("dir", EntryKind.DIRECTORY, 0, 0.0, 0o755),
            Entry("link", EntryKind.SYMLINK, 7, -3.0, 0o777),
            Entry("bad\ufffdname", EntryKind.OTHER, 0, 0.0, 0o600, name_lossy=True),
            Entry(LONG_NAME, EntryKind.FILE),
        ),
        last=False,
        truncated=True,
    ),
    Entries(1, tuple(Entry(LONG_NAME, EntryKind.FILE, MAX_FILE_SIZE) for _ in range(MAX_PAGE_ENTRIES))),
    StatResult(3, Entry("", EntryKind.DIRECTORY, 0, 1e9, 0o700)),
    DownloadMeta(4, 2**33, 1e9, 2**32, DIGEST),
    DownloadMeta(4, 0, 0.0),
    DownloadEnd(4, DIGEST),
    UploadReady(5, 2**31, 2 * 1024 * 1024),
    UploadDone(5, DIGEST),
    Error(5, FileErrorCode.SYMLINK_ESCAPE, "a symbolic link leads out of the root"),
    Chunk(4, 0, b"data"),
    Credit(5, 1),
    Cancel(5),
    Done(7),
    Error(8, FileErrorCode.NOT_EMPTY, "docs: Directory not empty"),
]


@pytest.mark.parametrize("message", CONSOLE, ids=lambda m: type(m).__name__)
def test_console_messages_round_trip(message: object) -> None:
    data = encode(message)  # type: ignore[arg-type]
    assert decode_from_console(data) == message
    assert len(data) <= MAX_RECORD_PLAINTEXT


@pytest.mark.parametrize("message", AGENT, ids=lambda m: type(m).__name__)
def test_agent_messages_round_trip(message: object) -> None:
    data = encode(message)  # type: ignore[arg-type]
    assert decode_from_agent(data) == message
    assert len(data) <= MAX_RECORD_PLAINTEXT, "the biggest page still fits one record"


def test_type_bytes_never_move() -> None:
    # New messages are appended; a renumbered type would break every console and agent already out there.
    assert {t.name: t.value for t in MessageType} == {
        "LIST": 0x01, "STAT": 0x02, "DOWNLOAD": 0x03, "UPLOAD": 0x04, "FINISH": 0x05,
        "MKDIR": 0x06, "REMOVE": 0x07, "RENAME": 0x08,
        "CHUNK": 0x10, "CREDIT": 0x11, "CANCEL": 0x12,
        "ENTRIES": 0x81, "STAT_RESULT": 0x82, "DOWNLOAD_META": 0x83, "DOWNLOAD_END": 0x84,
        "UPLOAD_READY": 0x85, "UPLOAD_DONE": 0x86, "DONE": 0x87, "ERROR": 0x8F,
    }  # fmt: skip
    assert [int(r) for r in Removal] == [0, 1, 2]
    assert FileErrorCode.NOT_EMPTY == "not_empty"


def test_change_layouts() -> None:
    assert encode(MakeDir(1, "ab")) == bytes([0x06, 0, 0, 0, 1, 0, 2]) + b"ab"
    assert encode(Remove(2, "ab", Removal.DIRECTORY)) == bytes([0x07, 0, 0, 0, 2, 2, 0, 2]) + b"ab"
    assert (
        encode(Rename(3, "a", "bc", Overwrite.REPLACE)) == bytes([0x08, 0, 0, 0, 3, 1, 0, 1]) + b"a\0\x02bc"
    )
    assert encode(Done(4)) == bytes([0x87, 0, 0, 0, 4])


def test_the_largest_message_is_known_and_fits_a_record() -> None:
    biggest = max(len(encode(m)) for m in [*CONSOLE, *AGENT])  # type: ignore[arg-type]
    assert biggest == MAX_MESSAGE_SIZE  # the full page of the longest names
    assert MAX_MESSAGE_SIZE <= MAX_RECORD_PLAINTEXT


def test_chunk_header_matches_the_encoder() -> None:
    data = encode(Chunk(9, 1024, b"abc"))
    assert data[:CHUNK_HEADER_SIZE] == chunk_header(9, 1024, 3)
    assert data == bytes([0x10, 0, 0, 0, 9]) + struct.pack("!QI", 1024, 3) + b"abc"


def _with(kind: int, ident: int, rest: bytes) -> bytes:
    return struct.pack("!BI", kind, ident) + rest


def _path(text: bytes) -> bytes:
    return struct.pack("!H", len(text)) + text


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.MALFORMED),
        (b"\x42\x00\x00\x00\x01", ErrorCode.UNKNOWN_TYPE),
        (b"\x01\x00\x00", ErrorCode.MALFORMED),  # truncated id
        (_with(0x01, 1, b"\x00\x05ab"), ErrorCode.MALFORMED),  # path shorter than announced
        (_with(0x01, 1, struct.pack("!H", MAX_PATH_BYTES + 1)), ErrorCode.MESSAGE_TOO_LARGE),
        (_with(0x01, 1, _path(b"\xff\xfe")), ErrorCode.MALFORMED),  # path not UTF-8
        (_with(0x01, 1, _path(b"a") + b"!"), ErrorCode.MALFORMED),  # trailing byte
        (_with(0x03, 1, struct.pack("!QI", 0, 0) + _path(b"a")), ErrorCode.INVALID_MESSAGE),  # no window
        (_with(0x03, 1, struct.pack("!QI", 0, MAX_WINDOW + 1) + _path(b"a")), ErrorCode.INVALID_MESSAGE),
        (_with(0x03, 1, struct.pack("!QI", 2**63, 1) + _path(b"a")), ErrorCode.INVALID_MESSAGE),  # offset
        (
            _with(0x04, 1, struct.pack("!QdBB", 1, 0.0, 4, 0) + DIGEST + _path(b"a")),
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            _with(0x04, 1, struct.pack("!QdBB", 1, 0.0, 0, 2) + DIGEST + _path(b"a")),
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            _with(0x04, 1, struct.pack("!QdBB", 1, 0.0, 0, 0) + DIGEST + _path(b"a")),
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            _with(0x04, 1, struct.pack("!QdBB", 1, math.nan, 1, 0) + DIGEST + _path(b"a")),
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            _with(0x04, 1, struct.pack("!QdBB", 2**60, 0.0, 1, 0) + DIGEST + _path(b"a")),
            ErrorCode.INVALID_MESSAGE,
        ),
        (_with(0x05, 1, DIGEST[:31]), ErrorCode.MALFORMED),
        (_with(0x10, 1, struct.pack("!QI", 0, MAX_CHUNK + 1)), ErrorCode.MESSAGE_TOO_LARGE),
        (_with(0x10, 1, struct.pack("!QI", 0, 0xFFFFFFFF)), ErrorCode.MESSAGE_TOO_LARGE),  # before allocating
        (_with(0x10, 1, struct.pack("!QI", 0, 0)), ErrorCode.INVALID_MESSAGE),  # empty chunk
        (_with(0x10, 1, struct.pack("!QI", 0, 4) + b"ab"), ErrorCode.MALFORMED),
        (_with(0x81, 1, b"\x01\x00\x00"), ErrorCode.UNKNOWN_TYPE),  # ENTRIES come from the agent
        (_with(0x87, 1, b""), ErrorCode.UNKNOWN_TYPE),  # DONE comes from the agent
        (_with(0x06, 1, b""), ErrorCode.MALFORMED),  # MKDIR without its path
        (_with(0x06, 1, _path(b"a") + b"\x00"), ErrorCode.MALFORMED),
        (_with(0x07, 1, b"\x03" + _path(b"a")), ErrorCode.INVALID_MESSAGE),  # unknown removal
        (_with(0x07, 1, b"\x00"), ErrorCode.MALFORMED),
        (_with(0x07, 1, b"\x00" + struct.pack("!H", MAX_PATH_BYTES + 1)), ErrorCode.MESSAGE_TOO_LARGE),
        (_with(0x08, 1, b"\x02" + _path(b"a") + _path(b"b")), ErrorCode.INVALID_MESSAGE),  # unknown policy
        (_with(0x08, 1, b"\x00" + _path(b"a")), ErrorCode.MALFORMED),  # no target
        (_with(0x08, 1, b"\x00" + _path(b"a") + _path(b"\xff")), ErrorCode.MALFORMED),  # target not UTF-8
        (_with(0x08, 1, b"\x00" + _path(b"a") + struct.pack("!H", 0xFFFF)), ErrorCode.MESSAGE_TOO_LARGE),
        (_with(0x08, 1, b"\x00" + _path(b"a") + _path(b"b") + b"c"), ErrorCode.MALFORMED),
    ],
)
def test_hostile_console_input_is_refused(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_from_console(data)
    assert caught.value.code == code


ENTRY = struct.Struct("!BBHQdH")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (_with(0x01, 1, _path(b"")), ErrorCode.UNKNOWN_TYPE),  # LIST from the agent
        (_with(0x81, 1, struct.pack("!BH", 1, MAX_PAGE_ENTRIES + 1)), ErrorCode.INVALID_MESSAGE),
        (_with(0x81, 1, struct.pack("!BH", 8, 0)), ErrorCode.INVALID_MESSAGE),  # unknown flags
        (
            _with(0x81, 1, struct.pack("!BH", 1, 2) + ENTRY.pack(1, 0, 0, 0, 0.0, 1) + b"a"),
            ErrorCode.MALFORMED,
        ),
        (
            _with(0x81, 1, struct.pack("!BH", 1, 1) + ENTRY.pack(9, 0, 0, 0, 0.0, 0)),
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            _with(0x81, 1, struct.pack("!BH", 1, 1) + ENTRY.pack(1, 2, 0, 0, 0.0, 0)),
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            _with(0x81, 1, struct.pack("!BH", 1, 1) + ENTRY.pack(1, 0, 0, 2**60, 0.0, 0)),
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            _with(0x81, 1, struct.pack("!BH", 1, 1) + ENTRY.pack(1, 0, 0, 0, math.inf, 0)),
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            _with(0x81, 1, struct.pack("!BH", 1, 1) + ENTRY.pack(1, 0, 0, 0, 0.0, MAX_NAME_BYTES + 1)),
            ErrorCode.MESSAGE_TOO_LARGE,
        ),
        (
            _with(0x83, 1, struct.pack("!QdQB", 10, 0.0, 11, 0) + bytes(32)),
            ErrorCode.INVALID_MESSAGE,
        ),  # offset > size
        (
            _with(0x83, 1, struct.pack("!QdQB", 10, 0.0, 0, 0) + DIGEST),
            ErrorCode.INVALID_MESSAGE,
        ),  # hash, no flag
        (_with(0x85, 1, struct.pack("!QI", 0, 0)), ErrorCode.INVALID_MESSAGE),
        (_with(0x8F, 1, b"\x00\x00\x00"), ErrorCode.INVALID_MESSAGE),
        (_with(0x8F, 1, b"\x02a\n\x00\x00"), ErrorCode.INVALID_MESSAGE),
        (_with(0x87, 1, b"\x00"), ErrorCode.MALFORMED),  # DONE has no body
        (_with(0x06, 1, _path(b"a")), ErrorCode.UNKNOWN_TYPE),  # MKDIR from the agent
    ],
)
def test_hostile_agent_input_is_refused(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_from_agent(data)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "message",
    [
        ListDir(1, "x" * (MAX_PATH_BYTES + 1)),
        Download(1, "a", window=0),
        Download(1, "a", offset=-1),
        Upload(1, "a", MAX_FILE_SIZE + 1),
        Upload(1, "a", 1, sha256=b"short"),
        Chunk(1, 0, b""),
        Chunk(1, 0, bytes(MAX_CHUNK + 1)),
        Entries(1, tuple(Entry("a", EntryKind.FILE) for _ in range(MAX_PAGE_ENTRIES + 1))),
        DownloadMeta(1, 5, 0.0, offset=6),
        Error(1, "Not A Code"),
        Credit(-1, 1),
        MakeDir(1, "x" * (MAX_PATH_BYTES + 1)),
        Rename(1, "a", "x" * (MAX_PATH_BYTES + 1)),
        Remove(1, "a", 7),  # type: ignore[arg-type]
        Rename(1, "a", "b", 9),  # type: ignore[arg-type]
    ],
)
def test_encoder_refuses_what_the_decoder_would(message: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode(message)  # type: ignore[arg-type]


def test_names_are_cut_to_their_cap_on_a_character_boundary() -> None:
    page = decode_from_agent(encode(Entries(1, (Entry("€" * MAX_NAME_BYTES, EntryKind.FILE),))))
    assert isinstance(page, Entries)
    assert page.entries[0].name == "€" * (MAX_NAME_BYTES // 3)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=96))
def test_random_bytes_raise_only_remote_protocol_errors(data: bytes) -> None:
    for decoder in (decode, decode_from_agent, decode_from_console):
        with contextlib.suppress(RemoteProtocolError):
            decoder(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(range(0x00, 0x100))), st.binary(min_size=4, max_size=200))
def test_any_type_byte_with_random_body_never_escapes(kind: int, body: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode(bytes([kind]) + body)
