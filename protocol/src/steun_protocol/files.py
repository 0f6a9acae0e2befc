"""Wire format of the file channel (``Channel.FILES``): browse, stat, chunked resumable verified transfers.

Each ``RecordType.DATA`` record on the files channel carries exactly one message, laid out like
``screen.py`` and ``shell.py``: fixed-width big-endian fields first (``DataView``-friendly; u64 fields read
with ``getBigUint64``, times are f64 Unix seconds), variable parts last behind a length checked against its
cap before anything is allocated, no trailing bytes.

Every message starts with ``type u8, id u32``: the id of the listing, stat or transfer it is about. The
console picks ids (so it can cancel a transfer before the agent has answered), from one space for all
three; an id may be reused once what it named has ended (last ENTRIES page, STAT_RESULT, DOWNLOAD_END,
UPLOAD_DONE, DONE, ERROR or CANCEL). Late CHUNK/CREDIT messages for an id that just ended are dropped quietly.

Paths are UTF-8, ``/``-separated and *relative to the root the agent serves* (``""`` is the root). The
wire accepts any UTF-8 path up to ``MAX_PATH_BYTES``; the agent checks it once, canonically, and answers
``path_invalid`` (NUL, ``\\``, ``..``), ``path_outside_root`` (absolute) or ``symlink_escape`` in an ERROR.

Console → agent
===============

====  =============  ===============================================================================
type  name           fields after ``type u8, id u32``
====  =============  ===============================================================================
0x01  LIST           path_len u16, path — answered by one or more ENTRIES pages, the last one flagged
0x02  STAT           path_len u16, path — answered by STAT_RESULT (symlinks inside the root followed)
0x03  DOWNLOAD       offset u64 (resume: bytes the console already holds), window u32 (initial credit,
                     1..MAX_WINDOW), path_len u16, path — answered by DOWNLOAD_META, then CHUNKs, END
0x04  UPLOAD         size u64, mtime f64 (0: leave it), flags u8 (bit 0 ``sha256`` is set, bit 1 resume
                     a partial upload if the agent holds one), policy u8 (``Overwrite``), sha256 [32],
                     path_len u16, path — answered by UPLOAD_READY; then CHUNKs from ``offset``, FINISH
0x05  FINISH         sha256 [32]: the console's hash of the whole file; the agent compares its own
0x06  MKDIR          path_len u16, path — make one directory (its parent must exist; mode 0755 less the
                     umask) — answered by DONE
0x07  REMOVE         what u8 (``Removal``: 0 a file or an empty directory, 1 not a directory, 2 an empty
                     directory), path_len u16, path — one entry, never recursive; a link is removed, not
                     what it points to — answered by DONE
0x08  RENAME         policy u8 (``Overwrite``: FAIL refuses an existing target atomically, REPLACE
                     replaces a file or an empty directory), from_len u16, from, to_len u16, to — both
                     paths checked like any other; the root itself is never moved — answered by DONE
====  =============  ===============================================================================

Both directions
===============

====  =============  ===============================================================================
0x10  CHUNK          offset u64, length u32 (1..MAX_CHUNK), data. Offsets are contiguous from the
                     transfer's start offset; a gap or overlap is refused (``invalid``)
0x11  CREDIT         bytes u32: the receiver has stored this much more; the sender may send as much
0x12  CANCEL         (nothing): stop this transfer; the agent deletes a partial upload
====  =============  ===============================================================================

Agent → console
===============

====  =============  ===============================================================================
0x81  ENTRIES        flags u8 (bit 0 last page, bit 1 truncated at MAX_LIST_ENTRIES), count u16
                     (≤ MAX_PAGE_ENTRIES), then per entry: ENTRY
0x82  STAT_RESULT    ENTRY (``name`` is the last path component; ``""`` for the root)
0x83  DOWNLOAD_META  size u64, mtime f64, offset u64 (where the CHUNKs start), flags u8 (bit 0 ``sha256``
                     is the whole file's hash already), sha256 [32] (zeros when unknown)
0x84  DOWNLOAD_END   sha256 [32] of the whole file (from byte 0); the console compares its own
0x85  UPLOAD_READY   offset u64 (bytes of a partial upload the agent kept; send from there),
                     window u32 (initial credit)
0x86  UPLOAD_DONE    sha256 [32]: hashes matched, the file is in place
0x87  DONE           (nothing): the MKDIR, REMOVE or RENAME with this id succeeded
0x8F  ERROR          code_len u8 (1..32), code ASCII ``[a-z_]`` (``FileErrorCode``), message_len u16
                     (≤ MAX_ERROR_MESSAGE), message UTF-8. Ends the request or transfer.
====  =============  ===============================================================================

``ENTRY`` = kind u8 (``EntryKind``), flags u8 (bit 0 the name is not valid UTF-8 on disk and is shown with
U+FFFD; it cannot be addressed), mode u16 (permission bits), size u64, mtime f64, name_len u16
(≤ MAX_NAME_BYTES), name UTF-8.

Flow control: the receiver of CHUNKs grants credit (the ``window`` in DOWNLOAD or UPLOAD_READY, then CREDIT
messages after it has written data to disk). A sender never has more than the credit it was granted in
flight; a receiver that gets more refuses the transfer with ``flow_violation``.

Integrity: the hash is SHA-256 over the whole file from byte 0, also when a transfer resumed; each side
computes it incrementally over what it read or wrote, so a flipped byte anywhere ends in ``hash_mismatch``
and an upload is moved into place only after its hash matched.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from .binary import Reader, invalid, message_type
from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .shell import MAX_ERROR_CODE, MAX_ERROR_MESSAGE, truncate_utf8, valid_code

# --------------------------------------------------------------------------------------------- limits

#: Largest CHUNK payload.
MAX_CHUNK = 256 * 1024
#: Largest initial window / outstanding credit per transfer.
MAX_WINDOW = 16 * 1024 * 1024
#: What a receiver grants when it has no better idea (8 chunks in flight).
DEFAULT_WINDOW = 2 * 1024 * 1024
#: Transfers one session may run at once.
MAX_TRANSFERS = 8
#: Longest path (UTF-8 bytes).
MAX_PATH_BYTES = 4096
#: Longest entry name (UTF-8 bytes).
MAX_NAME_BYTES = 1024
#: Entries in one ENTRIES page.
MAX_PAGE_ENTRIES = 256
#: Entries one LIST returns before it is cut off (``truncated``).
MAX_LIST_ENTRIES = 100_000
#: Largest file size on the wire (keeps u64 values inside what JavaScript numbers hold exactly).
MAX_FILE_SIZE = 2**53 - 1
SHA256_SIZE = 32
ZERO_HASH = bytes(SHA256_SIZE)


class MessageType(enum.IntEnum):
    LIST = 0x01
    STAT = 0x02
    DOWNLOAD = 0x03
    UPLOAD = 0x04
    FINISH = 0x05
    MKDIR = 0x06
    REMOVE = 0x07
    RENAME = 0x08
    CHUNK = 0x10
    CREDIT = 0x11
    CANCEL = 0x12
    ENTRIES = 0x81
    STAT_RESULT = 0x82
    DOWNLOAD_META = 0x83
    DOWNLOAD_END = 0x84
    UPLOAD_READY = 0x85
    UPLOAD_DONE = 0x86
    DONE = 0x87
    ERROR = 0x8F


class EntryKind(enum.IntEnum):
    FILE = 1
    DIRECTORY = 2
    SYMLINK = 3
    OTHER = 4  # device, FIFO, socket: listed, never transferred


class Overwrite(enum.IntEnum):
    """What an upload does when the target exists."""

    FAIL = 0  # refuse with ``exists``
    REPLACE = 1  # replace it atomically once the hash matched


class Removal(enum.IntEnum):
    """What a REMOVE expects to find (SFTP's ``remove`` and ``rmdir`` differ; a console's delete does not)."""

    ANY = 0  # a file, a link or an empty directory
    NOT_DIRECTORY = 1  # a file, a link, a FIFO...: a directory is refused (``not_a_file``)
    DIRECTORY = 2  # an empty directory: anything else is refused (``not_a_directory``)


class FileErrorCode(enum.StrEnum):
    """Stable codes of files ERROR messages. Never rename one."""

    PATH_INVALID = "path_invalid"  # NUL, backslash, "..", not UTF-8 on the way back, too long
    PATH_OUTSIDE_ROOT = "path_outside_root"  # absolute path
    SYMLINK_ESCAPE = "symlink_escape"  # a symbolic link leads out of the root (or was swapped in)
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    EXISTS = "exists"
    NOT_A_DIRECTORY = "not_a_directory"
    NOT_A_FILE = "not_a_file"  # a directory, device, FIFO or socket where a regular file is needed
    HASH_MISMATCH = "hash_mismatch"
    FILE_CHANGED = "file_changed"  # the file changed on disk during a download
    NO_SPACE = "no_space"
    IO_ERROR = "io_error"
    CANCELLED = "cancelled"
    TOO_MANY_TRANSFERS = "too_many_transfers"
    ID_IN_USE = "id_in_use"  # a request or transfer id that is still in use, or a target being uploaded
    BUSY = "busy"  # too many listings at once
    TRANSFER_UNKNOWN = "transfer_unknown"
    FLOW_VIOLATION = "flow_violation"
    INVALID = "invalid"  # a message that does not fit the transfer (offset gap, beyond size, ...)
    CLOSED = "closed"  # the session is stopping
    NOT_EMPTY = "not_empty"  # REMOVE or RENAME onto a directory that still holds entries


# --------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    kind: EntryKind
    size: int = 0
    mtime: float = 0.0
    mode: int = 0
    name_lossy: bool = False


@dataclass(frozen=True, slots=True)
class ListDir:
    id: int
    path: str
    type: ClassVar[MessageType] = MessageType.LIST


@dataclass(frozen=True, slots=True)
class Stat:
    id: int
    path: str
    type: ClassVar[MessageType] = MessageType.STAT


@dataclass(frozen=True, slots=True)
class Download:
    id: int
    path: str
    offset: int = 0
    window: int = DEFAULT_WINDOW
    type: ClassVar[MessageType] = MessageType.DOWNLOAD


@dataclass(frozen=True, slots=True)
class Upload:
    id: int
    path: str
    size: int
    sha256: bytes | None = None
    overwrite: Overwrite = Overwrite.FAIL
    resume: bool = True
    mtime: float = 0.0
    type: ClassVar[MessageType] = MessageType.UPLOAD


@dataclass(frozen=True, slots=True)
class MakeDir:
    id: int
    path: str
    type: ClassVar[MessageType] = MessageType.MKDIR


@dataclass(frozen=True, slots=True)
class Remove:
    id: int
    path: str
    what: Removal = Removal.ANY
    type: ClassVar[MessageType] = MessageType.REMOVE


@dataclass(frozen=True, slots=True)
class Rename:
    id: int
    source: str
    target: str
    overwrite: Overwrite = Overwrite.FAIL
    type: ClassVar[MessageType] = MessageType.RENAME


@dataclass(frozen=True, slots=True)
class Finish:
    id: int
    sha256: bytes
    type: ClassVar[MessageType] = MessageType.FINISH


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    offset: int
    data: bytes | memoryview
    type: ClassVar[MessageType] = MessageType.CHUNK


@dataclass(frozen=True, slots=True)
class Credit:
    id: int
    nbytes: int
    type: ClassVar[MessageType] = MessageType.CREDIT


@dataclass(frozen=True, slots=True)
class Cancel:
    id: int
    type: ClassVar[MessageType] = MessageType.CANCEL


@dataclass(frozen=True, slots=True)
class Entries:
    id: int
    entries: tuple[Entry, ...]
    last: bool = True
    truncated: bool = False
    type: ClassVar[MessageType] = MessageType.ENTRIES


@dataclass(frozen=True, slots=True)
class StatResult:
    id: int
    entry: Entry
    type: ClassVar[MessageType] = MessageType.STAT_RESULT


@dataclass(frozen=True, slots=True)
class DownloadMeta:
    id: int
    size: int
    mtime: float
    offset: int = 0
    sha256: bytes | None = None
    type: ClassVar[MessageType] = MessageType.DOWNLOAD_META


@dataclass(frozen=True, slots=True)
class DownloadEnd:
    id: int
    sha256: bytes
    type: ClassVar[MessageType] = MessageType.DOWNLOAD_END


@dataclass(frozen=True, slots=True)
class UploadReady:
    id: int
    offset: int
    window: int
    type: ClassVar[MessageType] = MessageType.UPLOAD_READY


@dataclass(frozen=True, slots=True)
class UploadDone:
    id: int
    sha256: bytes
    type: ClassVar[MessageType] = MessageType.UPLOAD_DONE


@dataclass(frozen=True, slots=True)
class Done:
    id: int
    type: ClassVar[MessageType] = MessageType.DONE


@dataclass(frozen=True, slots=True)
class Error:
    id: int
    code: str
    message: str = ""
    type: ClassVar[MessageType] = MessageType.ERROR


ConsoleMessage: TypeAlias = (
    ListDir | Stat | Download | Upload | Finish | MakeDir | Remove | Rename | Chunk | Credit | Cancel
)
AgentMessage: TypeAlias = (
    Entries
    | StatResult
    | DownloadMeta
    | DownloadEnd
    | UploadReady
    | UploadDone
    | Done
    | Error
    | Chunk
    | Credit
    | Cancel
)
FilesMessage: TypeAlias = ConsoleMessage | AgentMessage

BOTH_TYPES = frozenset({MessageType.CHUNK, MessageType.CREDIT, MessageType.CANCEL})
CONSOLE_TYPES = BOTH_TYPES | {
    MessageType.LIST,
    MessageType.STAT,
    MessageType.DOWNLOAD,
    MessageType.UPLOAD,
    MessageType.FINISH,
    MessageType.MKDIR,
    MessageType.REMOVE,
    MessageType.RENAME,
}
AGENT_TYPES = frozenset(MessageType) - CONSOLE_TYPES | BOTH_TYPES

# --------------------------------------------------------------------------------------------- layouts

_HEAD = struct.Struct("!BI")
_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_ENTRY = struct.Struct("!BBHQdH")
_ENTRIES = struct.Struct("!BH")
_DOWNLOAD = struct.Struct("!QI")
_UPLOAD = struct.Struct("!QdBB")
_CHUNK = struct.Struct("!QI")
_META = struct.Struct("!QdQB")
_READY = struct.Struct("!QI")

#: Bytes of a CHUNK message before its data.
CHUNK_HEADER_SIZE = _HEAD.size + _CHUNK.size
#: The largest message either side may send (a full ENTRIES page of the longest names; a CHUNK is smaller).
MAX_MESSAGE_SIZE = max(
    _HEAD.size + _ENTRIES.size + MAX_PAGE_ENTRIES * (_ENTRY.size + MAX_NAME_BYTES),
    CHUNK_HEADER_SIZE + MAX_CHUNK,
    _HEAD.size + 1 + 2 * (_U16.size + MAX_PATH_BYTES),
)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise LocalProtocolError(ErrorCode.INVALID_MESSAGE, what)


def _path(path: str) -> bytes:
    data = path.encode("utf-8")
    if len(data) > MAX_PATH_BYTES:
        raise LocalProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"path of {len(data)} bytes > {MAX_PATH_BYTES}")
    return _U16.pack(len(data)) + data


def _hash(value: bytes) -> bytes:
    _check(len(value) == SHA256_SIZE, "a SHA-256 is 32 bytes")
    return value


def _time_ok(value: float) -> bool:
    return math.isfinite(value)


def _entry(entry: Entry) -> bytes:
    name = truncate_utf8(entry.name, MAX_NAME_BYTES)
    _check(0 <= entry.size <= MAX_FILE_SIZE and _time_ok(entry.mtime), f"entry {entry.name!r}")
    packed = _ENTRY.pack(
        EntryKind(entry.kind), int(entry.name_lossy), entry.mode & 0xFFFF, entry.size, entry.mtime, len(name)
    )
    return packed + name


def encode(message: FilesMessage) -> bytes:
    """Serialise one message; raise LocalProtocolError for values outside the layout or its caps."""
    try:
        head = _HEAD.pack(message.type, message.id)
        match message:
            case ListDir(_, path) | Stat(_, path) | MakeDir(_, path):
                return head + _path(path)
            case Remove(_, path, what):
                return head + _U8.pack(Removal(what)) + _path(path)
            case Rename(_, source, target, overwrite):
                return head + _U8.pack(Overwrite(overwrite)) + _path(source) + _path(target)
            case Download(_, path, offset, window):
                _check(0 <= offset <= MAX_FILE_SIZE and 1 <= window <= MAX_WINDOW, "offset or window")
                return head + _DOWNLOAD.pack(offset, window) + _path(path)
            case Upload(_, path, size, sha256, overwrite, resume, mtime):
                _check(0 <= size <= MAX_FILE_SIZE and _time_ok(mtime), "size or mtime")
                flags = int(sha256 is not None) | int(resume) << 1
                digest = _hash(sha256) if sha256 is not None else ZERO_HASH
                return head + _UPLOAD.pack(size, mtime, flags, Overwrite(overwrite)) + digest + _path(path)
            case Finish(_, sha256) | DownloadEnd(_, sha256) | UploadDone(_, sha256):
                return head + _hash(sha256)
            case Chunk(_, offset, data):
                _check(0 <= offset <= MAX_FILE_SIZE and len(data) > 0, "chunk offset or empty chunk")
                if len(data) > MAX_CHUNK:
                    raise LocalProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"chunk of {len(data)} bytes")
                return b"".join((head, _CHUNK.pack(offset, len(data)), data))
            case Credit(_, nbytes):
                return head + _U32.pack(nbytes)
            case Cancel() | Done():
                return head
            case Entries(_, entries, last, truncated):
                _check(len(entries) <= MAX_PAGE_ENTRIES, f"{len(entries)} entries in one page")
                flags = int(last) | int(truncated) << 1
                return b"".join((head, _ENTRIES.pack(flags, len(entries)), *(_entry(e) for e in entries)))
            case StatResult(_, entry):
                return head + _entry(entry)
            case DownloadMeta(_, size, mtime, offset, sha256):
                _check(0 <= offset <= size <= MAX_FILE_SIZE and _time_ok(mtime), "size, offset or mtime")
                digest = _hash(sha256) if sha256 is not None else ZERO_HASH
                return head + _META.pack(size, mtime, offset, int(sha256 is not None)) + digest
            case UploadReady(_, offset, window):
                _check(0 <= offset <= MAX_FILE_SIZE and 1 <= window <= MAX_WINDOW, "offset or window")
                return head + _READY.pack(offset, window)
            case Error(_, code, text):
                _check(valid_code(code), f"error code {code!r}")
                msg = truncate_utf8(text, MAX_ERROR_MESSAGE)
                return b"".join((head, _U8.pack(len(code)), code.encode(), _U16.pack(len(msg)), msg))
    except (struct.error, ValueError) as exc:
        raise LocalProtocolError(ErrorCode.INVALID_MESSAGE, f"{type(message).__name__}: {exc}") from None
    raise LocalProtocolError(ErrorCode.UNKNOWN_TYPE, f"not a files message: {message!r}")


def chunk_header(transfer: int, offset: int, length: int) -> bytes:
    """The first ``CHUNK_HEADER_SIZE`` bytes of a CHUNK, for senders that read data in place behind it."""
    _check(0 < length <= MAX_CHUNK and 0 <= offset <= MAX_FILE_SIZE, "chunk")
    return _HEAD.pack(MessageType.CHUNK, transfer) + _CHUNK.pack(offset, length)


# --------------------------------------------------------------------------------------------- decoding


def decode(
    data: bytes | bytearray | memoryview, *, allowed: frozenset[MessageType] | None = None
) -> FilesMessage:
    """Parse one message; ``allowed`` restricts the types (see ``decode_from_agent``/``_console``)."""
    view, kind = message_type(data, MessageType, allowed, "files")
    r = Reader(view)
    (ident,) = r.fields(_U32)
    message = _DECODERS[kind](r, ident)
    r.end()
    return message


def decode_from_agent(data: bytes | bytearray | memoryview) -> AgentMessage:
    """What a console accepts."""
    return decode(data, allowed=AGENT_TYPES)  # type: ignore[return-value]


def decode_from_console(data: bytes | bytearray | memoryview) -> ConsoleMessage:
    """What an agent accepts."""
    return decode(data, allowed=CONSOLE_TYPES)  # type: ignore[return-value]


def _read_path(r: Reader) -> str:
    (length,) = r.fields(_U16)
    return r.text(length, MAX_PATH_BYTES, "path")


def _read_hash(r: Reader) -> bytes:
    return r.raw(SHA256_SIZE, SHA256_SIZE, "sha256")


def _read_entry(r: Reader) -> Entry:
    kind, flags, mode, size, mtime, name_len = r.fields(_ENTRY)
    try:
        entry_kind = EntryKind(kind)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.INVALID_MESSAGE, f"unknown entry kind {kind}") from None
    invalid(flags <= 1, f"entry flags {flags}")
    invalid(size <= MAX_FILE_SIZE and _time_ok(mtime), "entry size or mtime")
    name = r.text(name_len, MAX_NAME_BYTES, "entry name")
    return Entry(name, entry_kind, size, mtime, mode, bool(flags))


def _list(r: Reader, ident: int) -> ListDir:
    return ListDir(ident, _read_path(r))


def _stat(r: Reader, ident: int) -> Stat:
    return Stat(ident, _read_path(r))


def _remove(r: Reader, ident: int) -> Remove:
    (what,) = r.fields(_U8)
    try:
        removal = Removal(what)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.INVALID_MESSAGE, f"unknown removal {what}") from None
    return Remove(ident, _read_path(r), removal)


def _rename(r: Reader, ident: int) -> Rename:
    (policy,) = r.fields(_U8)
    overwrite = _overwrite(policy)
    source = _read_path(r)
    return Rename(ident, source, _read_path(r), overwrite)


def _overwrite(policy: int) -> Overwrite:
    try:
        return Overwrite(policy)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.INVALID_MESSAGE, f"unknown overwrite policy {policy}") from None


def _download(r: Reader, ident: int) -> Download:
    offset, window = r.fields(_DOWNLOAD)
    invalid(offset <= MAX_FILE_SIZE, f"offset {offset}")
    invalid(1 <= window <= MAX_WINDOW, f"window {window}")
    return Download(ident, _read_path(r), offset, window)


def _upload(r: Reader, ident: int) -> Upload:
    size, mtime, flags, policy = r.fields(_UPLOAD)
    invalid(size <= MAX_FILE_SIZE and _time_ok(mtime), "size or mtime")
    invalid(flags <= 3, f"upload flags {flags}")
    overwrite = _overwrite(policy)
    digest = _read_hash(r)
    invalid(flags & 1 == 1 or digest == ZERO_HASH, "a hash without its flag")
    path = _read_path(r)
    return Upload(ident, path, size, digest if flags & 1 else None, overwrite, bool(flags & 2), mtime)


def _chunk(r: Reader, ident: int) -> Chunk:
    offset, length = r.fields(_CHUNK)
    invalid(offset <= MAX_FILE_SIZE, f"offset {offset}")
    invalid(length > 0, "empty chunk")
    return Chunk(ident, offset, r.raw(length, MAX_CHUNK, "chunk"))


def _credit(r: Reader, ident: int) -> Credit:
    (nbytes,) = r.fields(_U32)
    return Credit(ident, nbytes)


def _entries(r: Reader, ident: int) -> Entries:
    flags, count = r.fields(_ENTRIES)
    invalid(flags <= 3, f"entries flags {flags}")
    invalid(count <= MAX_PAGE_ENTRIES, f"{count} entries in one page")
    entries = tuple(_read_entry(r) for _ in range(count))
    return Entries(ident, entries, bool(flags & 1), bool(flags & 2))


def _meta(r: Reader, ident: int) -> DownloadMeta:
    size, mtime, offset, flags = r.fields(_META)
    invalid(offset <= size <= MAX_FILE_SIZE and _time_ok(mtime), "size, offset or mtime")
    invalid(flags <= 1, f"meta flags {flags}")
    digest = _read_hash(r)
    invalid(flags == 1 or digest == ZERO_HASH, "a hash without its flag")
    return DownloadMeta(ident, size, mtime, offset, digest if flags else None)


def _ready(r: Reader, ident: int) -> UploadReady:
    offset, window = r.fields(_READY)
    invalid(offset <= MAX_FILE_SIZE and 1 <= window <= MAX_WINDOW, "offset or window")
    return UploadReady(ident, offset, window)


def _error(r: Reader, ident: int) -> Error:
    (code_len,) = r.fields(_U8)
    invalid(code_len >= 1, "empty error code")
    code = r.text(code_len, MAX_ERROR_CODE, "error code")
    invalid(valid_code(code), "error code has characters outside [a-z_]")
    (msg_len,) = r.fields(_U16)
    return Error(ident, code, r.text(msg_len, MAX_ERROR_MESSAGE, "error message"))


_DECODERS: dict[MessageType, Callable[[Reader, int], FilesMessage]] = {
    MessageType.LIST: _list,
    MessageType.STAT: _stat,
    MessageType.DOWNLOAD: _download,
    MessageType.UPLOAD: _upload,
    MessageType.FINISH: lambda r, i: Finish(i, _read_hash(r)),
    MessageType.MKDIR: lambda r, i: MakeDir(i, _read_path(r)),
    MessageType.REMOVE: _remove,
    MessageType.RENAME: _rename,
    MessageType.CHUNK: _chunk,
    MessageType.CREDIT: _credit,
    MessageType.CANCEL: lambda r, i: Cancel(i),
    MessageType.ENTRIES: _entries,
    MessageType.STAT_RESULT: lambda r, i: StatResult(i, _read_entry(r)),
    MessageType.DOWNLOAD_META: _meta,
    MessageType.DOWNLOAD_END: lambda r, i: DownloadEnd(i, _read_hash(r)),
    MessageType.UPLOAD_READY: _ready,
    MessageType.UPLOAD_DONE: lambda r, i: UploadDone(i, _read_hash(r)),
    MessageType.DONE: lambda r, i: Done(i),
    MessageType.ERROR: _error,
}
