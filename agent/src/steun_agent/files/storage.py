"""The disk side of transfers: streamed reads hashed as they go, resumable partial uploads, atomic commit.

An upload never writes to its target. It goes to a hidden partial file beside it — ``.NAME.KEY.steunpart``,
where KEY is derived from the target's canonical path, the announced size and hash — created ``O_EXCL |
O_NOFOLLOW`` with mode 0600 in the directory descriptor :class:`PathGuard` returned. When the console's hash
and the agent's own hash of what it wrote agree, the partial is synced, given its mode and mtime, and renamed
over the target (``os.replace``; with ``Overwrite.FAIL`` a hard link, which refuses an existing target
atomically). A dropped connection leaves the partial in place, so the next UPLOAD of the same file resumes:
the agent re-hashes the partial from disk (its hash state is never trusted from memory) and answers with its
length. A CANCEL deletes it; a successful commit removes stale partials of the same target.

Every function here blocks: call it from a thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from typing import Any

from steun_protocol.files import FileErrorCode, Overwrite

from .pathguard import FilesError, Located, from_os_error

#: Read size when hashing what is already on disk.
HASH_BLOCK = 1024 * 1024
PARTIAL_SUFFIX = ".steunpart"
#: Longest file name most file systems take (bytes).
NAME_MAX = 255
NEW_FILE_MODE = 0o644
KEY_LENGTH = 16


def read_chunk(fd: int, offset: int, length: int, hasher: Any) -> bytes:
    """Read exactly ``length`` bytes at ``offset`` (fewer only at end of file) and feed them to ``hasher``."""
    parts: list[bytes] = []
    got = 0
    while got < length:
        data = os.pread(fd, length - got, offset + got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    hasher.update(data)
    return data


def hash_range(fd: int, start: int, end: int, hasher: Any) -> int:
    """Feed bytes ``[start, end)`` of ``fd`` to ``hasher`` in bounded blocks; return where it stopped."""
    pos = start
    while pos < end:
        data = os.pread(fd, min(HASH_BLOCK, end - pos), pos)
        if not data:
            break
        hasher.update(data)
        pos += len(data)
    return pos


def partial_name(target: str, key: str) -> str:
    name = f".{target}.{key}{PARTIAL_SUFFIX}"
    if len(os.fsencode(name)) > NAME_MAX:
        name = f".steun-{hashlib.sha256(os.fsencode(target)).hexdigest()[:16]}.{key}{PARTIAL_SUFFIX}"
    return name


def _is_key(text: str) -> bool:
    return len(text) == KEY_LENGTH and all(c in "0123456789abcdef" for c in text)


def upload_key(parts: tuple[str, ...], size: int, sha256: bytes | None) -> str:
    ident = "\0".join(("steun-upload-v1", "/".join(parts), str(size), sha256.hex() if sha256 else ""))
    return hashlib.sha256(os.fsencode(ident)).hexdigest()[:KEY_LENGTH]


@dataclass(slots=True)
class PartialUpload:
    """An upload in progress: the target's directory (held open), the partial's descriptor, its hash."""

    where: Located
    target: str
    partial: str
    fd: int
    offset: int
    size: int
    hasher: Any
    mode: int
    overwrite: Overwrite

    def write(self, offset: int, data: bytes) -> None:
        """Write at ``offset`` (always the current end) and hash it."""
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view = view[written:]
            offset += written
        self.hasher.update(data)
        self.offset = offset

    def commit(self, mtime: float) -> None:
        """Move the verified partial into place."""
        dfd = self.where.dir_fd
        try:
            os.fsync(self.fd)
            os.fchmod(self.fd, self.mode)
            if mtime > 0:
                os.utime(self.fd, (mtime, mtime))
            if self.overwrite is Overwrite.REPLACE:
                os.replace(self.partial, self.target, src_dir_fd=dfd, dst_dir_fd=dfd)
            else:
                self._link_new()
        except OSError as exc:
            raise from_os_error(exc, self.target) from None
        self._remove_stale()
        self.close()

    def _link_new(self) -> None:
        dfd = self.where.dir_fd
        try:
            os.link(self.partial, self.target, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            # A file system without hard links: check, then rename (a narrow race, nothing leaves the root).
            with contextlib.suppress(FileNotFoundError):
                os.stat(self.target, dir_fd=dfd, follow_symlinks=False)
                raise FileExistsError(errno.EEXIST, "exists") from None
            os.rename(self.partial, self.target, src_dir_fd=dfd, dst_dir_fd=dfd)
            return
        os.unlink(self.partial, dir_fd=dfd)

    def _remove_stale(self) -> None:
        prefix = self.partial.rsplit(".", 2)[0] + "."
        with contextlib.suppress(OSError), os.scandir(self.where.dir_fd) as it:
            for item in it:
                key = item.name[len(prefix) : -len(PARTIAL_SUFFIX)]
                if item.name.startswith(prefix) and item.name.endswith(PARTIAL_SUFFIX) and _is_key(key):
                    st = item.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
                        os.unlink(item.name, dir_fd=self.where.dir_fd)

    def discard(self) -> None:
        """Delete the partial (CANCEL, hash mismatch)."""
        with contextlib.suppress(OSError):
            os.unlink(self.partial, dir_fd=self.where.dir_fd)
        self.close()

    def close(self) -> None:
        """Close, keeping the partial for a later resume (the session ended)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.where.close()


def prepare_upload(
    where: Located,
    *,
    size: int,
    sha256: bytes | None,
    overwrite: Overwrite,
    resume: bool,
) -> PartialUpload:
    """Check the target, open (or resume) its partial, re-hash what the partial holds.

    Takes ownership of ``where`` (from :meth:`PathGuard.locate`): it is held by the result or closed.
    """
    try:
        if where.name is None:
            raise FilesError(FileErrorCode.NOT_A_FILE, "cannot upload onto the root directory")
        mode = NEW_FILE_MODE
        try:
            st = os.stat(where.name, dir_fd=where.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                raise FilesError(FileErrorCode.NOT_A_FILE, f"{where.shown} exists and is not a regular file")
            if overwrite is Overwrite.FAIL:
                raise FilesError(FileErrorCode.EXISTS, f"{where.shown} exists")
            mode = stat.S_IMODE(st.st_mode)
        partial = partial_name(where.name, upload_key(where.parts, size, sha256))
        fd, offset = _open_partial(where, partial, resume=resume, size=size)
        hasher = hashlib.sha256()
        try:
            if offset:
                offset = hash_range(fd, 0, offset, hasher)
        except OSError:
            os.close(fd)
            raise
        return PartialUpload(where, where.name, partial, fd, offset, size, hasher, mode, overwrite)
    except OSError as exc:
        where.close()
        raise from_os_error(exc, where.shown) from None
    except BaseException:
        where.close()
        raise


def _open_partial(where: Located, partial: str, *, resume: bool, size: int) -> tuple[int, int]:
    dfd = where.dir_fd
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    if resume:
        try:
            fd = os.open(partial, flags, dir_fd=dfd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EMLINK):
                raise
            os.unlink(partial, dir_fd=dfd)  # a link where our partial should be: never write through it
        else:
            st = os.fstat(fd)
            # Only a plain file of ours with one name: a hard link planted under the partial's name would
            # otherwise let an upload write into another file.
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_nlink == 1:
                os.set_blocking(fd, True)
                if st.st_size > size:
                    os.ftruncate(fd, 0)
                    return fd, 0
                return fd, st.st_size
            os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(partial, dir_fd=dfd)
    fd = os.open(partial, flags | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dfd)
    os.set_blocking(fd, True)
    return fd, 0
