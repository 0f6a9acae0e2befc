"""Paths from the console, checked once and canonically against the root the agent serves; never one outside.

A wire path is relative to the root, ``/``-separated, UTF-8. :func:`split` refuses what can only be a trick
or a mistake — NUL bytes and backslashes (``path_invalid``), ``..`` components (``path_invalid``), absolute
and drive-letter paths (``path_outside_root``) — and drops empty and ``.`` components.

:class:`PathGuard` then walks the components from an open descriptor of the root, one ``openat`` at a time
with ``O_NOFOLLOW``, holding a descriptor for every directory it entered. A symbolic link met on the way is
read and its target walked the same way: an absolute target must lie under the root's real path, and a
``..`` may never climb above the root — otherwise ``symlink_escape``. The caller gets the descriptor of the
directory that holds the last component and that component's name, and opens or creates it relative to
that descriptor with ``O_NOFOLLOW``: a path component or the file itself swapped for a link after the check
fails (``ELOOP`` → ``symlink_escape``) instead of being followed, and a renamed parent cannot redirect the
write, because the directory is held open, not named again. (``openat2(RESOLVE_BENEATH)`` would do the same
in the kernel; Python has no binding for it.)

MKDIR, REMOVE and RENAME (:meth:`PathGuard.make_dir`, :meth:`~PathGuard.remove`, :meth:`~PathGuard.rename`)
are one system call each on such a directory descriptor, never following the last component; RENAME locates
both of its paths this way.

Every method here blocks (file system calls): run them in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import stat
import sys
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, cast

from steun_protocol.files import MAX_PATH_BYTES, Entry, EntryKind, FileErrorCode, Overwrite, Removal

from ..errors import AgentError

#: Links followed in one lookup before giving up (as the kernel's MAXSYMLINKS).
MAX_LINK_HOPS = 40
#: Mode of a directory MKDIR makes (less the umask).
NEW_DIR_MODE = 0o755
_DRIVE = re.compile(r"[A-Za-z]:(/|$)")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOFOLLOW_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK})


class FilesError(AgentError):
    """A request on the files channel failed; ``code`` is the stable wire code."""

    def __init__(self, code: FileErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def from_os_error(exc: OSError, what: str) -> FilesError:
    """Translate an OS error at the boundary into a wire code and a sentence."""
    code = {
        errno.ENOENT: FileErrorCode.NOT_FOUND,
        errno.EACCES: FileErrorCode.PERMISSION_DENIED,
        errno.EPERM: FileErrorCode.PERMISSION_DENIED,
        errno.EROFS: FileErrorCode.PERMISSION_DENIED,
        errno.ENOTDIR: FileErrorCode.NOT_A_DIRECTORY,
        errno.EISDIR: FileErrorCode.NOT_A_FILE,
        errno.EEXIST: FileErrorCode.EXISTS,
        errno.ENOSPC: FileErrorCode.NO_SPACE,
        errno.EDQUOT: FileErrorCode.NO_SPACE,
        errno.ELOOP: FileErrorCode.SYMLINK_ESCAPE,
        errno.EMLINK: FileErrorCode.SYMLINK_ESCAPE,
        errno.ENOTEMPTY: FileErrorCode.NOT_EMPTY,
        errno.EINVAL: FileErrorCode.INVALID,  # e.g. a directory moved into itself
    }.get(exc.errno or 0, FileErrorCode.IO_ERROR)
    if exc.errno == errno.EXDEV:
        return FilesError(code, f"{what}: it cannot be moved to another file system")
    return FilesError(code, f"{what}: {exc.strerror or exc}")


def split(path: str) -> tuple[str, ...]:
    """The canonical components of a wire path, or FilesError (``path_invalid`` / ``path_outside_root``)."""
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise FilesError(FileErrorCode.PATH_INVALID, f"the path is longer than {MAX_PATH_BYTES} bytes")
    if "\0" in path:
        raise FilesError(FileErrorCode.PATH_INVALID, "the path contains a NUL byte")
    if "\\" in path:
        raise FilesError(FileErrorCode.PATH_INVALID, "the path contains a backslash; use / between names")
    if path.startswith("/") or _DRIVE.match(path):
        raise FilesError(
            FileErrorCode.PATH_OUTSIDE_ROOT, "absolute paths are refused; give one below the root"
        )
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if ".." in parts:
        raise FilesError(FileErrorCode.PATH_INVALID, "'..' is not allowed in a path")
    return parts


def entry_kind(mode: int) -> EntryKind:
    if stat.S_ISREG(mode):
        return EntryKind.FILE
    if stat.S_ISDIR(mode):
        return EntryKind.DIRECTORY
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    return EntryKind.OTHER


def wire_name(name: str) -> tuple[str, bool]:
    """A file name for the wire, and whether it had to be shown lossily (not UTF-8 on disk)."""
    try:
        name.encode("utf-8")
        return name, False
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), True


def make_entry(name: str, st: os.stat_result) -> Entry:
    shown, lossy = wire_name(name)
    size = st.st_size if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) else 0
    return Entry(shown, entry_kind(st.st_mode), size, st.st_mtime, stat.S_IMODE(st.st_mode), lossy)


@dataclass(slots=True)
class Located:
    """The directory (an open descriptor) holding the last component, and that component's name.

    ``name`` is None when the path is the root itself. ``parts`` are the canonical components after links.
    The caller owns ``dir_fd`` and closes it (``close``).
    """

    dir_fd: int
    name: str | None
    parts: tuple[str, ...]

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    @property
    def shown(self) -> str:
        return "/".join(self.parts) or "/"


class PathGuard:
    """The root one session's file channel serves. Blocking: call from a thread."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = os.fspath(root)
        self._real_root = ""
        self._root_parts: tuple[str, ...] = ()
        self._root_fd = -1

    @property
    def root(self) -> str:
        return self._real_root or self._root

    def open(self) -> None:
        """Resolve the root once (its own links are the admin's choice) and hold it open."""
        if self._root_fd >= 0:
            return
        real = os.path.realpath(self._root)
        self._root_fd = os.open(real, _DIR_FLAGS)
        self._real_root = real
        self._root_parts = tuple(p for p in real.split("/") if p)

    def close(self) -> None:
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    # ---------------------------------------------------------------- the walk

    def locate(self, path: str, *, follow_last: bool = True) -> Located:
        """Walk ``path`` below the root; see the module docstring. Raises FilesError."""
        self.open()
        pending = list(reversed(split(path)))  # a stack: next component last
        fds = [os.dup(self._root_fd)]
        names: list[str] = []
        hops = 0
        try:
            while pending:
                name = pending.pop()
                if name == "..":  # only from a link's target
                    if len(fds) == 1:
                        raise FilesError(
                            FileErrorCode.SYMLINK_ESCAPE, "a symbolic link leads out of the root"
                        )
                    os.close(fds.pop())
                    names.pop()
                    continue
                last = not pending
                if last and not follow_last:
                    return self._found(fds, names, name)
                try:
                    st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
                except FileNotFoundError:
                    if last:  # may be created (an upload)
                        return self._found(fds, names, name)
                    raise FilesError(
                        FileErrorCode.NOT_FOUND, f"{'/'.join([*names, name])} does not exist"
                    ) from None
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_LINK_HOPS:
                        raise FilesError(FileErrorCode.SYMLINK_ESCAPE, "too many levels of symbolic links")
                    target = os.readlink(name, dir_fd=fds[-1])
                    if target.startswith("/"):
                        inside = self._below_root(target)
                        while len(fds) > 1:
                            os.close(fds.pop())
                        names.clear()
                        pending.extend(reversed(inside))
                    else:
                        pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                    continue
                if last:
                    return self._found(fds, names, name)
                fds.append(self._enter(fds[-1], name, names))
                names.append(name)
            return self._found(fds, names, None)
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise from_os_error(exc, "/".join(names) or "/") from None
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    def _below_root(self, target: str) -> list[str]:
        parts = [p for p in target.split("/") if p not in ("", ".")]
        n = len(self._root_parts)
        if tuple(parts[:n]) != self._root_parts:
            raise FilesError(FileErrorCode.SYMLINK_ESCAPE, "a symbolic link leads out of the root")
        return parts[n:]

    @staticmethod
    def _enter(dir_fd: int, name: str, names: list[str]) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in _NOFOLLOW_ERRNOS:  # it was a directory a moment ago: swapped for a link
                raise FilesError(FileErrorCode.SYMLINK_ESCAPE, "a directory was replaced by a link") from None
            raise from_os_error(exc, "/".join([*names, name])) from None

    @staticmethod
    def _found(fds: list[int], names: list[str], name: str | None) -> Located:
        held = fds.pop()
        for fd in fds:
            os.close(fd)
        fds.clear()
        return Located(held, name, (*names, name) if name is not None else tuple(names))

    # ---------------------------------------------------------------- operations

    def open_file(self, path: str) -> tuple[int, os.stat_result, Located]:
        """Open a regular file for reading; return its descriptor, its stat and where it is."""
        where = self.locate(path)
        try:
            if where.name is None:
                raise FilesError(FileErrorCode.NOT_A_FILE, "the root is a directory")
            fd = self.open_at(where, os.O_RDONLY)
        finally:
            where.close()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise FilesError(FileErrorCode.NOT_A_FILE, f"{where.shown} is not a regular file")
        return fd, st, where

    @staticmethod
    def open_at(where: Located, flags: int, mode: int = 0o600) -> int:
        """Open ``where.name`` relative to its directory, never following a link, never waiting on a FIFO."""
        assert where.name is not None
        flags |= os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
        try:
            fd = os.open(where.name, flags, mode, dir_fd=where.dir_fd)
        except OSError as exc:
            if exc.errno in _NOFOLLOW_ERRNOS:
                raise FilesError(
                    FileErrorCode.SYMLINK_ESCAPE, f"{where.shown} became a symbolic link"
                ) from None
            raise from_os_error(exc, where.shown) from None
        os.set_blocking(fd, True)
        return fd

    def stat(self, path: str) -> Entry:
        where = self.locate(path)
        try:
            if where.name is None:
                return make_entry("", os.fstat(where.dir_fd))
            try:
                st = os.stat(where.name, dir_fd=where.dir_fd, follow_symlinks=False)
            except OSError as exc:
                raise from_os_error(exc, where.shown) from None
            return make_entry(where.name, st)
        finally:
            where.close()

    def list_dir(self, path: str, limit: int) -> Generator[Entry, None, None]:
        """The entries of a directory, unsorted, at most ``limit`` (the caller pages them)."""
        where = self.locate(path)
        try:
            if where.name is None:
                fd = os.dup(where.dir_fd)
            else:
                try:
                    fd = os.open(where.name, _DIR_FLAGS, dir_fd=where.dir_fd)
                except OSError as exc:
                    if exc.errno in _NOFOLLOW_ERRNOS:
                        raise FilesError(
                            FileErrorCode.SYMLINK_ESCAPE, f"{where.shown} became a link"
                        ) from None
                    raise from_os_error(exc, where.shown) from None
        finally:
            where.close()
        try:
            with os.scandir(fd) as it:
                for count, item in enumerate(it):
                    if count >= limit:
                        return
                    try:
                        st = item.stat(follow_symlinks=False)
                    except OSError:
                        continue  # vanished meanwhile
                    yield make_entry(item.name, st)
        except OSError as exc:
            raise from_os_error(exc, where.shown) from None
        finally:
            with suppress(OSError):
                os.close(fd)

    # ---------------------------------------------------------------- changes (MKDIR, REMOVE, RENAME)

    def make_dir(self, path: str, mode: int = NEW_DIR_MODE) -> str:
        """Make one directory (the parent must exist); return its canonical path."""
        where = self.locate(path, follow_last=False)
        try:
            if where.name is None:
                raise FilesError(FileErrorCode.EXISTS, "the root exists")
            with _mapped(where):
                os.mkdir(where.name, mode, dir_fd=where.dir_fd)
            return where.shown
        finally:
            where.close()

    def remove(self, path: str, what: Removal = Removal.ANY) -> str:
        """Remove one entry, never recursively; a link is removed, not what it points to."""
        where = self.locate(path, follow_last=False)
        try:
            name, dfd = where.name, where.dir_fd
            if name is None:
                raise FilesError(FileErrorCode.PERMISSION_DENIED, "the root itself cannot be removed")
            with _mapped(where):
                if what is Removal.ANY:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    what = Removal.DIRECTORY if stat.S_ISDIR(st.st_mode) else Removal.NOT_DIRECTORY
                # unlinkat never follows the last component and refuses a directory; with AT_REMOVEDIR
                # it refuses anything but an empty directory: the kernel decides, whatever was swapped in.
                if what is Removal.DIRECTORY:
                    os.rmdir(name, dir_fd=dfd)
                else:
                    os.unlink(name, dir_fd=dfd)
            return where.shown
        finally:
            where.close()

    def rename(self, source: str, target: str, overwrite: Overwrite = Overwrite.FAIL) -> tuple[str, str]:
        """Move one entry (a link moves as a link) within the root; return both canonical paths.

        ``Overwrite.FAIL`` refuses an existing target atomically (``renameat2(RENAME_NOREPLACE)``);
        ``REPLACE`` replaces a file, a link (never followed) or an empty directory.
        """
        src = self.locate(source, follow_last=False)
        try:
            if src.name is None:
                raise FilesError(FileErrorCode.PERMISSION_DENIED, "the root itself cannot be moved")
            with _mapped(src):
                os.stat(src.name, dir_fd=src.dir_fd, follow_symlinks=False)
            dst = self.locate(target, follow_last=False)
            try:
                if dst.name is None:
                    raise FilesError(FileErrorCode.PERMISSION_DENIED, "nothing can replace the root")
                with _mapped(dst):
                    if overwrite is Overwrite.REPLACE:
                        os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)
                    else:
                        _rename_noreplace(src.dir_fd, src.name, dst.dir_fd, dst.name)
                return src.shown, dst.shown
            finally:
                dst.close()
        finally:
            src.close()


_RENAME_NOREPLACE = 1


@contextmanager
def _mapped(where: Located) -> Iterator[None]:
    """OS errors of the system calls inside become wire codes, named after ``where``."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise FilesError(FileErrorCode.EXISTS, f"{where.shown} exists") from None
        raise from_os_error(exc, where.shown) from None


def _load_renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Any = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a libc without it (glibc < 2.28)
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return cast("Callable[..., int]", function)


_renameat2 = _load_renameat2()


def _rename_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """Rename, refusing an existing target in the same system call where the kernel can."""
    if _renameat2 is not None:
        if _renameat2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        number = ctypes.get_errno()
        if number not in (errno.ENOSYS, errno.EINVAL):  # EINVAL: no NOREPLACE on this file system
            raise OSError(number, os.strerror(number))
    # Check, then rename: a narrow race in which a target made meanwhile is replaced, inside the root.
    try:
        os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
