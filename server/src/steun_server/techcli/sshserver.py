"""Native SSH for the technician: an asyncssh server on ``steun connect``'s stdio, spoken to by OpenSSH.

The standard ``ssh``/``scp``/``sftp`` client runs ``steun connect DEVICE`` as its ProxyCommand and speaks
SSH over that process's stdin/stdout. The SSH server answering is this module, on the technician's own
machine; every SSH session becomes Steun shell-channel messages and every SFTP (and scp) request becomes
files-channel messages, sealed end to end to the agent — the relay stays blind, and the agent applies its
user's consent to each channel as it does for the browser console. No SSH code runs on the end user's
machine. See docs/design/0090-native-ssh.md (also for why there is no SSH-level authentication).

A session with a terminal (``ssh host``, ``ssh -t``) runs in a PTY on the agent; one without (``ssh host
command``, ``ssh -T``) runs on pipes, so bytes, stderr and end of input behave as with sshd. SFTP's mkdir,
rmdir, remove and rename (``posix-rename`` too) are the files channel's MKDIR, REMOVE and RENAME. Limits of
this version: no links, no attribute changes; an SFTP upload is spooled to a private local temporary file and
sent, verified, when the client closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import posixpath
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import asyncssh
from steun_protocol.files import Entry, EntryKind, Overwrite, Removal
from steun_protocol.session import Capability
from steun_protocol.shell import Signal

from .files import DownloadStream, FilesClient, RemoteFileError
from .login import TechError, tech_home
from .session import TechSession
from .shell import RemoteShell, ShellFailed, ShellMux

log = logging.getLogger(__name__)

HOST_KEY_FILE = "ssh_host_ed25519_key"
KNOWN_HOSTS_FILE = "known_hosts"
#: The name ``steun ssh`` gives OpenSSH for the proxy's host key (HostKeyAlias).
HOST_KEY_ALIAS = "steun-proxy"
READ_SIZE = 32 * 1024

_TYPE_BITS = {EntryKind.FILE: 0o100000, EntryKind.DIRECTORY: 0o040000, EntryKind.SYMLINK: 0o120000}


def host_key(home: Path | None = None) -> asyncssh.SSHKey:
    """This technician's proxy host key (made on first use, kept 0600) and its known_hosts line."""
    directory = home or tech_home()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / HOST_KEY_FILE
    try:
        key = asyncssh.read_private_key(str(path))
    except FileNotFoundError:
        key = asyncssh.generate_private_key("ssh-ed25519")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.export_private_key())
    known = directory / KNOWN_HOSTS_FILE
    line = f"{HOST_KEY_ALIAS} {key.export_public_key().decode().strip()}\n"
    if not known.exists() or known.read_text() != line:
        known.write_text(line)
    return key


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        # The SSH connection runs inside this technician's own process, to a client they started; who they
        # are was proven to the server (sign-in) and to the agent (the signed offer, the handshake, the
        # user's consent). Asking again here would add nothing. See 0090-native-ssh.md.
        return False


def _sftp_error(exc: RemoteFileError) -> asyncssh.SFTPError:
    cls: Any = {
        "not_found": asyncssh.SFTPNoSuchFile,
        "permission_denied": asyncssh.SFTPPermissionDenied,
        "path_invalid": asyncssh.SFTPPermissionDenied,
        "path_outside_root": asyncssh.SFTPPermissionDenied,
        "symlink_escape": asyncssh.SFTPPermissionDenied,
        "exists": asyncssh.SFTPFileAlreadyExists,
        "not_a_directory": asyncssh.SFTPNotADirectory,
        "not_a_file": asyncssh.SFTPFileIsADirectory,
        "not_empty": asyncssh.SFTPDirNotEmpty,
        "no_space": asyncssh.SFTPNoSpaceOnFilesystem,
    }.get(exc.code, asyncssh.SFTPFailure)
    error: asyncssh.SFTPError = cls(f"{exc.code}: {exc.detail}")
    return error


def _attrs(entry: Entry) -> asyncssh.SFTPAttrs:
    mtime = int(entry.mtime)
    return asyncssh.SFTPAttrs(
        type=asyncssh.FILEXFER_TYPE_DIRECTORY
        if entry.kind is EntryKind.DIRECTORY
        else asyncssh.FILEXFER_TYPE_REGULAR,
        size=entry.size,
        permissions=_TYPE_BITS.get(entry.kind, 0) | (entry.mode & 0o7777),
        atime=mtime,
        mtime=mtime,
    )


def wire_path(path: bytes) -> str:
    """An SFTP path (absolute below the served root, or relative to it) as a files-channel path."""
    try:
        text = path.decode("utf-8")
    except UnicodeDecodeError:
        raise asyncssh.SFTPNoSuchFile("the path is not UTF-8") from None
    # ".." is resolved here, within the virtual root; the agent still refuses anything that escapes it.
    return posixpath.normpath(posixpath.join("/", text)).lstrip("/")


class _ReadHandle:
    def __init__(self, files: FilesClient, path: str, entry: Entry) -> None:
        self.files = files
        self.path = path
        self.entry = entry
        self.stream: DownloadStream | None = None
        self.buf = bytearray()
        self.start = 0  # file offset of buf[0]
        self.eof = False
        self.hasher: Any = None  # set while reading sequentially from byte 0

    async def read(self, offset: int, size: int) -> bytes:
        if (
            self.stream is None
            or offset < self.start
            or offset > self.start + len(self.buf) + self.files.window
        ):
            await self._restart(offset)
        assert self.stream is not None
        while self.start + len(self.buf) < offset + size and not self.eof:
            data = await self.stream.read()
            if data is None:
                self.eof = True
                if self.hasher is not None and self.hasher.digest() != self.stream.sha256:
                    raise asyncssh.SFTPFailure(
                        "hash_mismatch: the data read does not match the agent's SHA-256"
                    )
                break
            if self.hasher is not None:
                self.hasher.update(data)
            self.buf += data
        lo = offset - self.start
        result = bytes(self.buf[lo : lo + size])
        drop = lo + len(result)  # what lies before the end of this read is done with
        if drop:
            del self.buf[:drop]
            self.start += drop
            await self.stream.consumed(drop)
        return result

    async def _restart(self, offset: int) -> None:
        await self.close()
        self.stream = self.files.stream(self.path, min(offset, self.entry.size))
        meta = await self.stream.start()
        self.start, self.buf, self.eof = meta.offset, bytearray(), False
        self.hasher = hashlib.sha256() if meta.offset == 0 else None

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.close()
            self.stream = None


class _WriteHandle:
    def __init__(
        self,
        files: FilesClient,
        path: str,
        spool: Path,
        fd: int,
        overwrite: Overwrite,
        *,
        append: bool = False,
    ) -> None:
        self.files = files
        self.path = path
        self.spool = spool
        self.fd = fd
        self.overwrite = overwrite
        self.append = append  # FXF_APPEND: every write goes to the end, whatever its offset says
        self.mtime = 0.0

    async def write(self, offset: int, data: bytes) -> None:
        if self.append:
            await asyncio.to_thread(os.write, self.fd, data)
        else:
            await asyncio.to_thread(os.pwrite, self.fd, data, offset)

    async def close(self) -> None:
        try:
            await asyncio.to_thread(os.close, self.fd)
            await self.files.upload(self.spool, self.path, overwrite=self.overwrite, mtime=self.mtime)
        except RemoteFileError as exc:
            raise _sftp_error(exc) from None
        finally:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.unlink, self.spool)


class SteunSFTPServer(asyncssh.SFTPServer):
    """SFTP requests as files-channel requests; paths are below the root the agent serves."""

    def __init__(
        self, chan: asyncssh.SSHServerChannel[bytes], files: FilesClient, session: TechSession
    ) -> None:
        super().__init__(chan)
        self._files = files
        self._session = session

    def _check(self) -> None:
        if Capability.FILES not in self._session.granted:
            raise asyncssh.SFTPPermissionDenied("the user did not allow file access in this session")

    async def _entry(self, path: bytes) -> Entry:
        self._check()
        try:
            return await self._files.stat(wire_path(path))
        except RemoteFileError as exc:
            raise _sftp_error(exc) from None

    def exit(self) -> None:
        # sshd's sftp-server exits 0 at the end of the session, and OpenSSH's scp treats a subsystem that
        # ends without an exit status as a failure; asyncssh's handler sends none by itself.
        with contextlib.suppress(Exception):
            self.channel.exit(0)

    async def realpath(self, path: bytes) -> bytes:
        return b"/" + wire_path(path).encode()

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return _attrs(await self._entry(path))

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return _attrs(await self._entry(path))

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        here = await self._entry(path)
        try:
            entries = await self._files.list(wire_path(path))
        except RemoteFileError as exc:
            raise _sftp_error(exc) from None
        for name in (b".", b".."):
            yield asyncssh.SFTPName(name, attrs=_attrs(here))
        for entry in entries:
            if not entry.name_lossy:
                yield asyncssh.SFTPName(entry.name.encode(), attrs=_attrs(entry))

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        self._check()
        target = wire_path(path)
        writing = bool(pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND))
        if not writing:
            entry = await self._entry(path)
            if entry.kind is not EntryKind.FILE:
                raise asyncssh.SFTPFailure(f"{target} is not a regular file")
            return _ReadHandle(self._files, target, entry)
        if pflags & asyncssh.FXF_READ:
            raise asyncssh.SFTPOpUnsupported("read-write opens are not supported through Steun")
        fd, name = await asyncio.to_thread(tempfile.mkstemp, prefix="steun-sftp-")
        spool = Path(name)
        append = bool(pflags & asyncssh.FXF_APPEND)
        if not pflags & asyncssh.FXF_TRUNC:  # writes land on top of what is there (reput): start from it
            await asyncio.to_thread(os.close, fd)
            with contextlib.suppress(RemoteFileError):
                await self._files.download(target, spool)  # replaces the (empty) spool file
            flags = os.O_WRONLY | os.O_NOFOLLOW | (os.O_APPEND if append else 0)
            fd = await asyncio.to_thread(os.open, spool, flags)
        overwrite = Overwrite.FAIL if pflags & asyncssh.FXF_EXCL else Overwrite.REPLACE
        return _WriteHandle(self._files, target, spool, fd, overwrite, append=append)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        assert isinstance(file_obj, _ReadHandle)
        try:
            return await file_obj.read(offset, size)
        except RemoteFileError as exc:
            raise _sftp_error(exc) from None

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if not isinstance(file_obj, _WriteHandle):
            raise asyncssh.SFTPPermissionDenied("the file was opened for reading")
        await file_obj.write(offset, data)
        return len(data)

    async def close(self, file_obj: object) -> None:
        if isinstance(file_obj, _ReadHandle | _WriteHandle):
            await file_obj.close()

    async def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        if isinstance(file_obj, _ReadHandle):
            return _attrs(file_obj.entry)
        assert isinstance(file_obj, _WriteHandle)
        st = await asyncio.to_thread(os.fstat, file_obj.fd)
        return asyncssh.SFTPAttrs(size=st.st_size, permissions=0o100644)

    async def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        if isinstance(file_obj, _WriteHandle) and attrs.mtime is not None:
            file_obj.mtime = float(attrs.mtime)

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPOpUnsupported("changing attributes is not supported through Steun")

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        # The agent makes it 0755 less its umask; a mode asked for here is not carried (as setstat is not).
        self._check()
        await _changing(self._files.mkdir(wire_path(path)))

    async def rmdir(self, path: bytes) -> None:
        self._check()
        await _changing(self._files.remove(wire_path(path), Removal.DIRECTORY))

    async def remove(self, path: bytes) -> None:
        self._check()
        await _changing(self._files.remove(wire_path(path), Removal.NOT_DIRECTORY))

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        # SFTP v3 rename refuses an existing target (as sshd's sftp-server does); posix-rename replaces it.
        self._check()
        await _changing(self._files.rename(wire_path(oldpath), wire_path(newpath)))

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._check()
        await _changing(
            self._files.rename(wire_path(oldpath), wire_path(newpath), overwrite=Overwrite.REPLACE)
        )

    async def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPOpUnsupported("links are followed by the agent, not read")

    async def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("creating links is not supported through Steun")

    async def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("creating links is not supported through Steun")


async def _changing(request: Awaitable[None]) -> None:
    try:
        await request
    except RemoteFileError as exc:
        raise _sftp_error(exc) from None


def _signal(name: str) -> Signal | None:
    try:
        return Signal[name.upper().removeprefix("SIG")]
    except KeyError:
        return None


class SshBridge:
    """Serves one SSH connection (on a socket) from one Steun session."""

    def __init__(self, session: TechSession, key: asyncssh.SSHKey) -> None:
        self.session = session
        self.shells = ShellMux(session)
        self.files = FilesClient(session)
        self._key = key
        self._conn: asyncssh.SSHServerConnection | None = None
        self.closed = asyncio.Event()

    async def serve(self, sock: socket.socket) -> None:
        def sftp_factory(chan: asyncssh.SSHServerChannel[bytes]) -> SteunSFTPServer:
            return SteunSFTPServer(chan, self.files, self.session)

        self._conn = await asyncssh.run_server(
            sock,
            server_factory=_Server,
            server_host_keys=[self._key],
            process_factory=self._process,
            sftp_factory=sftp_factory,
            allow_scp=True,
            encoding=None,
            keepalive_interval=0,
            login_timeout=60.0,
        )
        self.session.on_end(self._session_ended)
        if self.session.ended.is_set():
            self._session_ended()
        await self._conn.wait_closed()
        self.closed.set()

    def _session_ended(self) -> None:
        """The Steun session ended under us: say why in the SSH disconnect, which ssh prints."""
        if self._conn is not None:
            reason = self.session.end_reason or "ended"
            if self.session.ended_by == "agent" and reason == "user":
                why = "the user ended the session on the device"
            else:
                why = f"the Steun session ended ({self.session.ended_by}: {reason})"
            self._conn.disconnect(asyncssh.DISC_BY_APPLICATION, why[:200])

    async def _process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        if Capability.SHELL not in self.session.granted:
            process.stderr.write(b"steun: the user did not allow shell access in this session\r\n")
            process.exit(1)
            return
        cols, rows, _, _ = process.get_terminal_size()
        term = process.get_terminal_type()
        try:
            shell = await self.shells.open(
                cols=cols or 80,
                rows=rows or 24,
                term=term or "dumb",
                command=process.command or "",
                pipes=term is None,
            )
        except (ShellFailed, TechError) as exc:
            process.stderr.write(f"steun: {exc}\r\n".encode())
            process.exit(1)
            return
        feeder = asyncio.ensure_future(self._feed(process, shell))
        try:
            while (output := await shell.read()) is not None:
                stream, data = output
                out = process.stderr if stream == "stderr" else process.stdout
                out.write(data)
                await out.drain()
                await shell.ack(len(data))
        except (asyncssh.Error, ConnectionError, BrokenPipeError):
            await shell.close()
        finally:
            feeder.cancel()
        status = shell.exit
        if status is None or not status.signal:
            process.exit(status.status if status else 255)
        else:
            process.exit_with_signal(status.signal_name, False, "", "")

    async def _feed(self, process: asyncssh.SSHServerProcess[bytes], shell: RemoteShell) -> None:
        while True:
            try:
                data = await process.stdin.read(READ_SIZE)
            except asyncssh.TerminalSizeChanged as change:
                await shell.resize(change.width, change.height)
                continue
            except asyncssh.SignalReceived as received:
                sig = _signal(received.signal)
                if sig is not None:
                    await shell.signal(sig)
                continue
            except asyncssh.BreakReceived:
                await shell.write(b"\x03")
                continue
            if not data:
                await shell.eof()  # pipes: stdin closes; a terminal ignores it, as sshd's does
                return
            await shell.write(data)


async def serve_stdio(session: TechSession, key: asyncssh.SSHKey, stdin: int = 0, stdout: int = 1) -> None:
    """Be the SSH server on this process's stdin/stdout (the ProxyCommand's pipes) until either side ends."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(stdin, "rb", 0, closefd=False)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(stdout, "wb", 0, closefd=False)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    bridge = SshBridge(session, key)

    async def upstream() -> None:  # OpenSSH → asyncssh
        while data := await reader.read(1 << 16):
            await loop.sock_sendall(ours, data)
        with contextlib.suppress(OSError):
            ours.shutdown(socket.SHUT_WR)

    async def downstream() -> None:  # asyncssh → OpenSSH
        while data := await loop.sock_recv(ours, 1 << 16):
            writer.write(data)
            await writer.drain()

    pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    server = asyncio.ensure_future(bridge.serve(theirs))
    try:
        await asyncio.wait([server, pumps[1]], return_when=asyncio.FIRST_COMPLETED)
        failure = server.exception() if server.done() else None
        if failure is not None:
            raise failure
    finally:
        for task in (*pumps, server):
            task.cancel()
        await asyncio.gather(*pumps, server, return_exceptions=True)
        ours.close()
        theirs.close()
        with contextlib.suppress(Exception):
            transport.close()


def print_sas(sas: str) -> None:
    """Tell the technician the six digits to compare with what the user sees (the ProxyCommand's stderr)."""
    with contextlib.suppress(OSError):
        sys.stderr.write(f"steun: security code {sas[:3]} {sas[3:]} — check it with the user.\n")
        sys.stderr.flush()
