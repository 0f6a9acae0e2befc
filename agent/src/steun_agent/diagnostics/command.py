"""Run a command with a timeout and bounded output, in the C locale, never through a shell. Blocks."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from .errors import PermissionDenied, ProbeFailed, ProbeTimeout, ToolMissing

#: Output kept per stream; the rest is dropped and the command stopped.
DEFAULT_LIMIT = 512 * 1024
_DENIED = (
    "permission denied",
    "operation not permitted",
    "must be root",
    "access denied",
    "are not allowed",
    "insufficient privileges",
    "you must be root",
    "need to be root",
)
_ENV = {"LC_ALL": "C", "LANG": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    truncated: bool

    @property
    def denied(self) -> bool:
        text = self.stderr.lower()
        return any(marker in text for marker in _DENIED)


def which(tool: str) -> str | None:
    return shutil.which(tool, path=_ENV["PATH"] + os.pathsep + os.environ.get("PATH", ""))


def run(
    argv: list[str],
    *,
    timeout: float = 2.0,
    limit: int = DEFAULT_LIMIT,
    env: dict[str, str] | None = None,
    check: bool = False,
) -> CommandResult:
    """Run ``argv``; ``ToolMissing`` when it is not installed, ``ProbeTimeout`` when it runs too long.

    With ``check``, a non-zero exit raises ``PermissionDenied`` (when stderr says so) or ``ProbeFailed``.
    """
    path = which(argv[0])
    if path is None:
        raise ToolMissing(argv[0])
    full_env = {**_ENV, **(env or {})}
    try:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [path, *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            start_new_session=True,  # so a timeout kills the command's children too
        )
    except PermissionError as exc:
        raise PermissionDenied(argv[0], str(exc)) from None
    except OSError as exc:
        raise ProbeFailed(f"cannot start {argv[0]}: {exc}") from None
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    truncated = timed_out = False
    assert proc.stdout is not None and proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf: bytearray = key.data
                room = limit - len(buf)
                buf += chunk[: max(0, room)]
                if len(chunk) > room:
                    truncated = True
            if truncated:
                break
    if timed_out or truncated:
        _kill(proc)
    try:
        returncode = proc.wait(timeout=max(0.05, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(proc)
        returncode = proc.wait()
        timed_out = True
    finally:
        proc.stdout.close()
        proc.stderr.close()
    if timed_out:
        raise ProbeTimeout(f"{argv[0]} did not finish within {timeout:g} s")
    result = CommandResult(
        tuple(argv), returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), truncated
    )
    if check and returncode != 0 and not truncated:
        if result.denied:
            raise PermissionDenied(" ".join(argv[:2]), result.stderr.strip()[:300])
        raise ProbeFailed(f"{' '.join(argv[:3])} exited with {returncode}: {result.stderr.strip()[:300]}")
    return result


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
