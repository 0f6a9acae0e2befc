"""Technician commands: sign-in, native SSH in an end-to-end session (``connect``, ``ssh``), file transfer.

``steun_server.techcli.register(verbs)`` adds the verbs to ``steun``'s argparse subparsers (and
``steun_server.techcli.run(args)`` runs one); ``python -m steun_server.techcli`` runs them on their own.
This is the technician's side: it signs in to the server API like the browser console and runs the
console's half of the end-to-end handshake (``steun_protocol.session.ConsoleHandshake``). See
docs/design/0090-native-ssh.md.
"""

from __future__ import annotations

from .cli import main, register, run

__all__ = ["main", "register", "run"]
