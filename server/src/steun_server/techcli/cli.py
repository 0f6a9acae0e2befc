"""The technician's verbs: ``login``, ``logout``, ``connect``, ``ssh``, ``files ls|get|put|mkdir|rm|mv``.

``steun connect DEVICE`` is an OpenSSH ProxyCommand: it opens an end-to-end session with the ``shell`` and
``files`` capabilities, prints the security code on stderr, waits for the user's consent, and then serves
SSH on its stdin/stdout (see ``sshserver.py``). ``steun ssh DEVICE [ssh options] [command]`` runs the
system's ``ssh`` with that ProxyCommand and the proxy's host key pinned, so ``ssh``/``scp``/``sftp`` work
as usual; in ``~/.ssh/config``::

    Host *.steun
        ProxyCommand steun connect %h
        UserKnownHostsFile ~/.config/steun/known_hosts
        HostKeyAlias steun-proxy

Exit codes: 0 done, 1 failed, 2 usage, 3 not signed in, 4 refused by the user, 5 hash mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steun_protocol.files import EntryKind, Overwrite
from steun_protocol.session import Capability

from .files import FilesClient, ProgressBar, RemoteFileError
from .login import ApiRefused, Login, NotSignedIn, TechApi, TechError, sign_in, tech_home
from .session import ConsentRefused, TechSession
from .sshserver import HOST_KEY_ALIAS, KNOWN_HOSTS_FILE, host_key, print_sas, serve_stdio

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGNED_OUT, EXIT_REFUSED, EXIT_MISMATCH = 0, 1, 2, 3, 4, 5

log = logging.getLogger(__name__)


def _say(text: str) -> None:
    with contextlib.suppress(OSError):
        sys.stderr.write(f"steun: {text}\n")
        sys.stderr.flush()


# --------------------------------------------------------------------------------------------- verbs


def _login(args: argparse.Namespace) -> int:
    login = Login(
        server=args.server.rstrip("/"), username=args.user, pin=args.pin or "", ca_file=args.ca or ""
    )
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.user} on {login.server}: ")
    try:
        asyncio.run(sign_in(login, password, totp_code=args.totp))
    except ApiRefused as exc:
        if exc.code != "totp_required" or args.password_stdin:
            raise
        code = input("Authenticator code: ").strip()
        asyncio.run(sign_in(login, password, totp_code=code))
    _say(f"signed in to {login.server} as {login.username}")
    return EXIT_OK


async def _logout(args: argparse.Namespace) -> int:
    login = Login.load()
    api = await TechApi.open(login)
    try:
        with contextlib.suppress(TechError):
            await api.request("POST", "/api/auth/logout", {})
    finally:
        await api.close()
    with contextlib.suppress(FileNotFoundError):
        (tech_home() / "login.json").unlink()
    return EXIT_OK


async def _open(
    api: TechApi, device: str, capabilities: list[Capability], reason: str, *, needs_one: bool = False
) -> TechSession:
    """A session whose user allowed ``capabilities`` (or, with ``needs_one``, at least one of them)."""
    _say(f"asking {device} for: {', '.join(c.value for c in capabilities)} (the user is asked to allow it)")
    session = await TechSession.open(api, device, capabilities, reason=reason, on_sas=print_sas)
    try:
        await session.wait_granted([])  # the user's decision, whatever it is
        if needs_one and not session.granted & set(capabilities):
            raise ConsentRefused(capabilities)
        if not needs_one:
            await session.wait_granted(capabilities)
    except BaseException:
        await session.close()
        raise
    return session


async def _connect(args: argparse.Namespace) -> int:
    key = await asyncio.to_thread(host_key)
    api = await TechApi.open(Login.load())
    try:
        wanted = [Capability.SHELL, Capability.FILES]
        session = await _open(api, args.device, wanted, args.reason, needs_one=True)
        try:
            if session.denied:
                _say(f"the user did not allow: {', '.join(sorted(c.value for c in session.denied))}")
            await serve_stdio(session, key)
        finally:
            await session.close()
            if session.ended_by == "agent":
                _say(f"the session was ended on the device ({session.end_reason})")
    finally:
        await api.close()
    return EXIT_OK


def ssh_command(
    device: str,
    options: Sequence[str] = (),
    command: Sequence[str] = (),
    *,
    program: str = "ssh",
    home: Path | None = None,
) -> list[str]:
    """The OpenSSH command line ``steun ssh`` runs; with ``program`` "scp" or "sftp" the device goes in
    ``options`` as their syntax wants it (``DEVICE:path``)."""
    proxy = shlex.join([sys.executable, "-m", "steun_server.techcli", "connect"]) + " %n"
    known = (home or tech_home()) / KNOWN_HOSTS_FILE
    steun = [
        "-o", f"ProxyCommand={proxy}",
        "-o", f"UserKnownHostsFile={known}",
        "-o", f"HostKeyAlias={HOST_KEY_ALIAS}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "GlobalKnownHostsFile=/dev/null",
    ]  # fmt: skip
    if program == "ssh":
        return [program, *steun, *options, device, *command]
    return [program, *steun, *options]


def _ssh(args: argparse.Namespace) -> int:
    host_key()  # the known_hosts line must exist before ssh checks it
    program = shutil.which("ssh")
    if program is None:
        raise TechError("OpenSSH's ssh client is not installed")
    options = ["-t"] if args.t else ["-T"] if args.T else []
    argv = ssh_command(args.device, options, args.command)
    os.execv(program, argv)  # noqa: S606 - the user's own ssh, argv built above
    return EXIT_FAILED  # pragma: no cover


async def _files(args: argparse.Namespace) -> int:
    api = await TechApi.open(Login.load())
    try:
        session = await _open(api, args.device, [Capability.FILES], args.reason)
        try:
            files = FilesClient(session)
            if args.files_verb == "ls":
                for entry in sorted(
                    await files.list(args.path), key=lambda e: (e.kind is not EntryKind.DIRECTORY, e.name)
                ):
                    mark = (
                        "/"
                        if entry.kind is EntryKind.DIRECTORY
                        else "@"
                        if entry.kind is EntryKind.SYMLINK
                        else ""
                    )
                    print(f"{entry.mode:04o} {entry.size:>14} {entry.name}{mark}")
            elif args.files_verb == "mkdir":
                await files.mkdir(args.path)
            elif args.files_verb == "rm":
                await files.remove(args.path)
            elif args.files_verb == "mv":
                overwrite = Overwrite.REPLACE if args.force else Overwrite.FAIL
                await files.rename(args.source, args.target, overwrite=overwrite)
            elif args.files_verb == "get":
                dest = Path(args.local or Path(args.remote).name or "download")
                if await asyncio.to_thread(dest.is_dir):
                    dest = dest / (Path(args.remote).name or "download")
                bar = ProgressBar(dest.name, sys.stderr)
                result = await files.download(args.remote, dest, progress=bar)
                bar.finish(result)
                _say(f"{dest}: {result.size} bytes, sha256 {result.sha256.hex()} verified, "
                     f"{result.bytes_per_second / 1e6:.1f} MB/s")  # fmt: skip
            else:
                source = Path(args.local)
                remote = args.remote or source.name
                bar = ProgressBar(source.name, sys.stderr)
                overwrite = Overwrite.REPLACE if args.force else Overwrite.FAIL
                result = await files.upload(source, remote, overwrite=overwrite, progress=bar)
                bar.finish(result)
                _say(f"{remote}: {result.size} bytes, sha256 {result.sha256.hex()} verified by the agent, "
                     f"{result.bytes_per_second / 1e6:.1f} MB/s")  # fmt: skip
        finally:
            await session.close()
    finally:
        await api.close()
    return EXIT_OK


# --------------------------------------------------------------------------------------------- parser


def register(verbs: Any) -> None:
    """Add the technician's verbs to an ``argparse`` subparsers object (``steun``'s own, or ours)."""
    login = verbs.add_parser("login", help="sign in to a Steun server for the technician commands")
    login.add_argument("--server", required=True, help="https://steun.example.org")
    login.add_argument("--user", required=True)
    login.add_argument(
        "--pin", help="the server's SPKI SHA-256 (b64url) as 'steun init' prints it; write --pin=VALUE"
    )
    login.add_argument("--ca", help="a CA file to trust instead of the system's")
    login.add_argument("--totp", help="the authenticator code (asked for when needed)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.set_defaults(tech_sync=_login)
    verbs.add_parser("logout", help="end the technician sign-in").set_defaults(tech=_logout)

    connect = verbs.add_parser("connect", help="ProxyCommand for OpenSSH: SSH to DEVICE through Steun")
    connect.add_argument("device", help="device id or hostname (a '.steun' suffix is ignored)")
    connect.add_argument("--reason", default="native SSH", help="shown to the user in the consent prompt")
    connect.set_defaults(tech=_connect)

    ssh = verbs.add_parser("ssh", help="ssh to DEVICE through Steun (runs OpenSSH's ssh)")
    ssh.add_argument("-t", action="store_true", help="ask for a terminal even for a command")
    ssh.add_argument("-T", action="store_true", help="no terminal, also for a shell")
    ssh.add_argument("device")
    ssh.add_argument("command", nargs=argparse.REMAINDER, help="a command to run instead of a shell")
    ssh.set_defaults(tech_sync=_ssh)

    files = verbs.add_parser("files", help="list, download, upload, make, remove and move files on DEVICE")
    files_verbs = files.add_subparsers(dest="files_verb", required=True)
    for name, helptext in (
        ("ls", "list a directory"),
        ("get", "download a file"),
        ("put", "upload a file"),
        ("mkdir", "make a directory (its parent must exist)"),
        ("rm", "remove a file, link or empty directory (never recursive)"),
        ("mv", "move or rename a file or directory"),
    ):
        verb = files_verbs.add_parser(name, help=helptext)
        verb.add_argument("device")
        verb.add_argument("--reason", default=f"files {name}", help="shown to the user in the consent prompt")
        if name == "ls":
            verb.add_argument("path", nargs="?", default="")
        elif name in ("mkdir", "rm"):
            verb.add_argument("path")
        elif name == "mv":
            verb.add_argument("source")
            verb.add_argument("target")
            verb.add_argument("--force", action="store_true", help="replace the target if it exists")
        elif name == "get":
            verb.add_argument("remote")
            verb.add_argument("local", nargs="?")
        else:
            verb.add_argument("local")
            verb.add_argument("remote", nargs="?")
            verb.add_argument("--force", action="store_true", help="replace the remote file if it exists")
        verb.set_defaults(tech=_files)


def run(args: argparse.Namespace) -> int:
    """Run a parsed technician verb; the exit code."""
    try:
        if getattr(args, "tech_sync", None) is not None:
            code: int = args.tech_sync(args)
            return code
        result: int = asyncio.run(args.tech(args))
        return result
    except NotSignedIn as exc:
        _say(str(exc))
        return EXIT_SIGNED_OUT
    except ConsentRefused as exc:
        _say(str(exc))
        return EXIT_REFUSED
    except RemoteFileError as exc:
        _say(str(exc))
        return EXIT_MISMATCH if exc.code == "hash_mismatch" else EXIT_FAILED
    except TechError as exc:
        _say(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="steun", description="Steun technician commands")
    register(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="steun: %(message)s")
    return run(args)
