"""Remote shell: the account's login shell (or a command) in a real PTY, per session, under consent.

Public API for the session runtime (see ``service.py`` for the full contract)::

    shells = ShellService(send, account=Account.current, on_event=audit)   # send: bytes -> one DATA record
    shells.feed(payload)            # each console DATA record on Channel.SHELL, once `shell` is granted
    await shells.close_all()        # Stop / session end: SIGKILL every terminal session at once

A service agent passes ``account=lambda: Account.named(policy_account)``.
See docs/design/0091-remote-shell.md.
"""

from __future__ import annotations

from .account import Account, AccountError
from .process import ExitStatus, ManagedProcess, PipeProcess, PtyProcess, SpawnError
from .service import ShellEvent, ShellService, ShellStatistics, os_signal, wire_signal

__all__ = [
    "Account",
    "AccountError",
    "ExitStatus",
    "ManagedProcess",
    "PipeProcess",
    "PtyProcess",
    "ShellEvent",
    "ShellService",
    "ShellStatistics",
    "SpawnError",
    "os_signal",
    "wire_signal",
]
