"""The agent's own record of consent and sessions: append-only JSON lines, hash-chained, bounded, verifiable.

Each line is one record, the same shape as the server's audit chain (``steun_server.audit``)::

    {"v":1,"seq":7,"time":…,"event":"consent.granted","actor":…,"source":"agent","data":{…},
     "prev_hash":"<hash of record 6>","hash":"<sha256 of this record without 'hash'>"}

The first record ever has ``prev_hash`` = 64 zeros. When the current file would grow past ``max_bytes`` it
is renamed ``<name>.1`` (older ones shift up, the oldest beyond ``keep`` is deleted) and the chain carries on
in a new file: its first record's ``prev_hash`` is the last hash of the file before. :meth:`LocalLog.verify`
walks all retained files oldest first; the first record of the oldest retained file is the anchor (its
predecessor was rotated away). Truncation of the newest records cannot be seen locally; the same events also
go to the server's audit chain, which is the copy nobody on this machine can rewrite.

Files are owner-only (directory 0700, files 0600), appends take an advisory lock and write one whole line
with ``O_APPEND`` and ``fsync``. Everything here blocks: call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EXIT_STATE, AgentError

GENESIS_HASH = "0" * 64
SOURCE = "agent"
MAX_DATA_BYTES = 8 * 1024
#: A record line is never longer than this (data is capped, names are short).
MAX_LINE_BYTES = MAX_DATA_BYTES + 2048
DEFAULT_NAME = "consent.jsonl"
_FIELDS = ("v", "seq", "time", "event", "actor", "source", "data", "prev_hash", "hash")

if sys.platform != "win32":
    import fcntl


class LocalLogError(AgentError):
    """The local log cannot be written where it should be (wrong owner, unwritable, damaged directory)."""

    exit_code = EXIT_STATE


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of every field but ``hash`` (``prev_hash`` included)."""
    return hashlib.sha256(canonical_json({k: v for k, v in body.items() if k != "hash"}).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LogRecord:
    seq: int
    time: float
    event: str
    actor: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "seq": self.seq,
            "time": self.time,
            "event": self.event,
            "actor": self.actor,
            "source": SOURCE,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class Broken:
    """Where :meth:`LocalLog.verify` found the chain broken: file, 1-based line number, and why."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class LocalLog:
    """One hash chain in ``directory``: ``<name>`` now, ``<name>.1`` … ``<name>.<keep-1>`` before it."""

    def __init__(
        self,
        directory: Path,
        *,
        name: str = DEFAULT_NAME,
        max_bytes: int = 1024 * 1024,
        keep: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes < MAX_LINE_BYTES:
            raise ValueError(f"max_bytes must be at least {MAX_LINE_BYTES}")
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.directory = directory
        self.name = name
        self.max_bytes = max_bytes
        self.keep = keep
        self._clock = clock

    @property
    def path(self) -> Path:
        return self.directory / self.name

    def files(self) -> list[Path]:
        """The retained files, oldest first."""
        older = [self.directory / f"{self.name}.{i}" for i in range(self.keep - 1, 0, -1)]
        return [p for p in (*older, self.path) if p.exists()]

    # ----------------------------------------------------------------------------------------- writing

    def append(
        self, event: str, data: Mapping[str, Any] | None = None, *, actor: str | None = None
    ) -> LogRecord:
        """Add one record at the head of the chain and return it (written and fsynced)."""
        payload = dict(data or {})
        if len(canonical_json(payload).encode()) > MAX_DATA_BYTES:
            raise ValueError(f"local log data for {event} exceeds {MAX_DATA_BYTES} bytes")
        self._prepare_directory()
        with self._locked():
            seq, prev = self._head()
            body: dict[str, Any] = {
                "v": 1,
                "seq": seq + 1,
                "time": float(self._clock()),
                "event": event,
                "actor": actor,
                "source": SOURCE,
                "data": payload,
                "prev_hash": prev,
            }
            body["hash"] = record_hash(body)
            line = (canonical_json(body) + "\n").encode()
            if self._size(self.path) + len(line) > self.max_bytes and self._size(self.path) > 0:
                self._rotate()
            self._write(line)
        return LogRecord(body["seq"], body["time"], event, actor, payload, prev, body["hash"])

    def _prepare_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(self.directory)
        except OSError as exc:
            raise LocalLogError(f"cannot create the local log directory {self.directory}: {exc}") from None
        if hasattr(os, "geteuid"):
            if st.st_uid != os.geteuid():
                raise LocalLogError(
                    f"{self.directory} belongs to uid {st.st_uid}, not to the user running the agent"
                )
            if stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(self.directory, 0o700)  # ours, and nobody else's business

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time, across processes too (the service and a quick-support run may share)."""
        fd = os.open(self.directory / f".{self.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if sys.platform != "win32":
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0

    def _head(self) -> tuple[int, str]:
        """The last record's seq and hash; after a damaged tail the chain restarts (and verify says so)."""
        for path in reversed(self.files()):
            last = _last_line(path)
            if last is None:
                continue
            try:
                record = json.loads(last)
                return int(record["seq"]), str(record["hash"])
            except (ValueError, KeyError, TypeError):
                # Keep the damaged file as evidence and start a fresh file; verify() reports the break.
                self._rotate()
                return 0, GENESIS_HASH
        return 0, GENESIS_HASH

    def _rotate(self) -> None:
        oldest = self.directory / f"{self.name}.{self.keep - 1}"
        if self.keep == 1:
            self.path.unlink(missing_ok=True)
            return
        oldest.unlink(missing_ok=True)
        for i in range(self.keep - 2, 0, -1):
            src = self.directory / f"{self.name}.{i}"
            if src.exists():
                os.replace(src, self.directory / f"{self.name}.{i + 1}")
        if self.path.exists():
            os.replace(self.path, self.directory / f"{self.name}.1")

    def _write(self, line: bytes) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            st = os.fstat(fd)
            if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
                raise LocalLogError(f"{self.path} belongs to uid {st.st_uid}, not to the agent's user")
            if stat.S_IMODE(st.st_mode) & 0o077:
                os.fchmod(fd, 0o600)
            written = os.write(fd, line)  # one write of one line: O_APPEND keeps lines whole
            if written != len(line):
                raise LocalLogError(f"short write to {self.path} ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)

    # ----------------------------------------------------------------------------------------- reading

    def records(self) -> Iterator[LogRecord]:
        """Every readable record, oldest first (no checks; see :meth:`verify`)."""
        for path in self.files():
            with path.open("rb") as f:
                for raw in f:
                    try:
                        r = json.loads(raw)
                        yield LogRecord(
                            r["seq"], r["time"], r["event"], r["actor"], r["data"], r["prev_hash"], r["hash"]
                        )
                    except (ValueError, KeyError, TypeError):
                        continue

    def verify(self) -> Broken | None:
        """Walk the chain across the retained files; None if intact, else the first broken line."""
        prev_hash: str | None = None  # None: the next record is the anchor
        prev_seq = 0
        for path in self.files():
            with path.open("rb") as f:
                for number, raw in enumerate(f, start=1):
                    problem, record = _check_line(raw)
                    if record is None:
                        return Broken(path, number, problem)
                    if prev_hash is None:
                        # The oldest retained record: genesis if nothing was rotated away, else the anchor.
                        if record["seq"] == 1 and record["prev_hash"] != GENESIS_HASH:
                            return Broken(path, number, "the first record does not start from genesis")
                    elif record["prev_hash"] != prev_hash:
                        return Broken(path, number, "prev_hash is not the hash of the record before")
                    elif record["seq"] != prev_seq + 1:
                        return Broken(path, number, f"seq {record['seq']} does not follow {prev_seq}")
                    prev_hash, prev_seq = record["hash"], record["seq"]
        return None


def _check_line(raw: bytes) -> tuple[str, dict[str, Any] | None]:
    if not raw.endswith(b"\n"):
        return "the line is incomplete (an interrupted write, or cut)", None
    if len(raw) > MAX_LINE_BYTES:
        return "the line is longer than any record", None
    try:
        record = json.loads(raw)
    except ValueError:
        return "the line is not JSON", None
    if not isinstance(record, dict) or sorted(record) != sorted(_FIELDS):
        return "the line is not a log record", None
    if not isinstance(record["seq"], int) or not isinstance(record["hash"], str):
        return "the line is not a log record", None
    if record_hash(record) != record["hash"]:
        return "the record's content does not match its hash (changed after it was written)", None
    return "", record


def _last_line(path: Path) -> bytes | None:
    """The file's last line (without reading it all); None for an empty or missing file."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return None
            start = max(0, size - MAX_LINE_BYTES - 1)
            f.seek(start)
            tail = f.read()
    except FileNotFoundError:
        return None
    if not tail.endswith(b"\n"):
        return b"\x00"  # an incomplete last line: never a valid record
    lines = tail[:-1].rsplit(b"\n", 1)
    return lines[-1]
