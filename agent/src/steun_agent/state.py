"""The agent's identity and pins on disk: owner-only, written atomically, refused when others can read it.

Two files in the state directory:

- ``identity.pem``: the agent's Ed25519 private key (PKCS#8 PEM), made on this machine; it never leaves it.
- ``state.json``: device id, server URL, the pinned server SPKI hash and org key, group, enrolment time.

``state.json`` is written last, so its presence means the enrolment completed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol.auth import b64decode, b64encode, public_key_bytes

from .errors import StateError

KEY_FILE = "identity.pem"
STATE_FILE = "state.json"
STATE_VERSION = 1
MAX_STATE_FILE = 64 * 1024
_LOOSE = stat.S_IRWXG | stat.S_IRWXO


class _StateFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: int
    device_id: str
    server_url: str
    spki_sha256: str
    org_public_key: str
    group: str = ""
    enrolled_at: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentState:
    """Who this agent is and whom it trusts."""

    device_id: str
    private_key: Ed25519PrivateKey
    server_url: str
    spki_sha256: bytes
    org_public_key: bytes
    group: str = ""
    enrolled_at: float = 0.0

    @property
    def public_key(self) -> bytes:
        return public_key_bytes(self.private_key)

    def __repr__(self) -> str:
        return f"AgentState(device_id={self.device_id!r}, server_url={self.server_url!r}, key=<hidden>)"

    # ---------------------------------------------------------------- disk

    def save(self, state_dir: Path) -> None:
        """Write both files atomically with mode 0600 in a 0700 directory."""
        ensure_private_dir(state_dir)
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        body = _StateFile(
            version=STATE_VERSION,
            device_id=self.device_id,
            server_url=self.server_url,
            spki_sha256=b64encode(self.spki_sha256),
            org_public_key=b64encode(self.org_public_key),
            group=self.group,
            enrolled_at=self.enrolled_at or time.time(),
        )
        write_private(state_dir / KEY_FILE, pem)
        write_private(state_dir / STATE_FILE, msgspec.json.format(msgspec.json.encode(body)) + b"\n")

    @classmethod
    def load(cls, state_dir: Path) -> AgentState:
        """Read the state, refusing it when the directory or a file is accessible to anyone but its owner."""
        if not (state_dir / STATE_FILE).exists():
            raise StateError(
                f"this agent is not enrolled (no {STATE_FILE} in {state_dir}); "
                "run `steun-agent enroll --server URL --token TOKEN` first"
            )
        check_private(state_dir, directory=True)
        raw_state = read_private(state_dir / STATE_FILE)
        raw_key = read_private(state_dir / KEY_FILE)
        try:
            body = msgspec.json.decode(raw_state, type=_StateFile)
            if body.version != STATE_VERSION:
                raise StateError(
                    f"{state_dir / STATE_FILE} has version {body.version}, expected {STATE_VERSION}"
                )
            key = serialization.load_pem_private_key(raw_key, password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise StateError(f"{state_dir / KEY_FILE} does not hold an Ed25519 key")
            return cls(
                device_id=body.device_id,
                private_key=key,
                server_url=body.server_url,
                spki_sha256=b64decode(body.spki_sha256, size=32),
                org_public_key=b64decode(body.org_public_key, size=32),
                group=body.group,
                enrolled_at=body.enrolled_at,
            )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
            raise StateError(f"the agent state in {state_dir} is damaged: {exc}") from None


def is_enrolled(state_dir: Path) -> bool:
    return (state_dir / STATE_FILE).exists()


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) if needed; refuse one that others can enter or that is not ours."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create the state directory {path}: {exc.strerror or exc}") from None
    check_private(path, directory=True)


def check_private(path: Path, *, directory: bool = False) -> os.stat_result:
    """Refuse a symlink, the wrong kind of file, another owner, or any group/world permission bit."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise StateError(f"{path} is missing; the agent state is incomplete, enroll again") from None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror or exc}") from None
    kind_ok = stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)
    if not kind_ok:
        raise StateError(
            f"{path} is not a {'directory' if directory else 'regular file'} (symlinks are refused)"
        )
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise StateError(f"{path} belongs to uid {st.st_uid}, not to the user running the agent")
    if st.st_mode & _LOOSE:
        wanted = "0700" if directory else "0600"
        raise StateError(
            f"{path} is accessible to other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"the agent refuses to use it. Fix with: chmod {wanted} {path}"
        )
    return st


def read_private(path: Path) -> bytes:
    """Read a small owner-only file, checking its permissions on the opened file itself."""
    check_private(path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise StateError(f"cannot open {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_mode & _LOOSE or st.st_size > MAX_STATE_FILE:
            raise StateError(f"{path} changed while it was opened, or is too large")
        return f.read(MAX_STATE_FILE + 1)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a 0600 temporary file in the same directory, fsync, rename."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)  # mkstemp already uses 0600; say it anyway, umask cannot widen it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make the rename durable (POSIX); not possible or needed on every platform."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
