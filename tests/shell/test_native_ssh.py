"""Native SSH end to end: OpenSSH's own ssh, scp and sftp, with ``steun connect`` as their ProxyCommand, through
the real server and relay, to the agent's shell and files services on the other end of a sealed session.

The technician signs in with the real CLI (``python -m steun_server.techcli login``); every ssh/scp/sftp run
starts a new end-to-end session, which the real agent runtime (``RealDevice`` in native.py) accepts for what
its user grants, one session at a time. What the agent did is read from the server's audit chain. Nothing
here mocks Steun: the only stand-in is the person answering the consent prompt and pressing Stop."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import socket
import sys
from pathlib import Path

import asyncssh
from steun_protocol.session import Capability

from tests.support.waiting import scaled, wait_for

from .helpers import alive
from .native import DEVICE, RealDevice, Tech

# OpenSSH's client is installed by scripts/bootstrap --tests; without it these tests fail, they do not skip.

NON_ASCII = "é ç ë €"


async def test_ssh_runs_a_command_with_its_exit_status_and_utf8(device: RealDevice, tech: Tech) -> None:
    code, out, err = await tech.ssh(command=f"printf '%s\\n' '{NON_ASCII}'; echo to-stderr >&2; exit 3")
    assert code == 3, err.decode()
    assert out == f"{NON_ASCII}\n".encode()  # pipes: no CR, no echo
    assert b"to-stderr" in err
    assert b"security code" in err  # told to the technician, to compare with the user's screen
    await device.wait_idle()
    (start,) = await device.events("shell.start")
    assert start.detail["command"].startswith("printf")
    assert start.detail["account"] == pwd.getpwuid(os.geteuid()).pw_name  # attended: as the agent's user
    (end,) = await device.events("shell.end")
    assert (end.detail["pid"], end.detail["status"]) == (start.detail["pid"], 3)


async def test_ssh_stdin_reaches_the_command_and_ends_it(device: RealDevice, tech: Tech) -> None:
    data = os.urandom(300_000)
    code, out, err = await tech.ssh(command="sha256sum", stdin=data)
    assert code == 0, err.decode()
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()


async def test_an_interactive_shell_with_a_terminal(device: RealDevice, tech: Tech) -> None:
    proc = await asyncio.create_subprocess_exec(
        *tech.openssh("ssh", "-tt"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=tech.env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    seen = bytearray()

    async def until(needle: bytes) -> None:
        while needle not in seen:
            seen.extend(await asyncio.wait_for(proc.stdout.read(4096), scaled(30)))  # type: ignore[union-attr]

    proc.stdin.write(b"stty size; sleep 300\n")
    await until(b"24 80")  # ssh asked for a terminal; without a local one it has no size, we give 80x24
    pid = (await device.wait_event("shell.start")).detail["pid"]
    await wait_for(lambda: _has_child(pid, "sleep"), what="sleep to start")
    proc.stdin.write(b"\x03")  # typed by the technician: the agent's terminal makes it SIGINT
    proc.stdin.write(b"echo after-$?\nexit 6\n")
    await until(b"after-130")
    assert await asyncio.wait_for(proc.wait(), scaled(30)) == 6


async def test_scp_both_ways_with_a_non_ascii_name(device: RealDevice, tech: Tech, tmp_path: Path) -> None:
    local = tmp_path / "rapport.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    code, _, err = await tech.run(tech.openssh("scp", str(local), f"{DEVICE}:{NON_ASCII}.bin"))
    assert code == 0, err.decode()
    assert (device.root / f"{NON_ASCII}.bin").read_bytes() == local.read_bytes()
    back = tmp_path / "back.bin"
    code, _, err = await tech.run(tech.openssh("scp", f"{DEVICE}:{NON_ASCII}.bin", str(back)))
    assert code == 0, err.decode()
    assert back.read_bytes() == local.read_bytes()


async def test_legacy_scp_protocol(device: RealDevice, tech: Tech, tmp_path: Path) -> None:
    (device.root / "old.txt").write_text("legacy")
    code, _, err = await tech.run(tech.openssh("scp", "-O", f"{DEVICE}:old.txt", str(tmp_path / "old.txt")))
    assert code == 0, err.decode()
    assert (tmp_path / "old.txt").read_text() == "legacy"


async def test_sftp_lists_gets_puts_and_stays_inside_the_root(
    device: RealDevice, tech: Tech, tmp_path: Path
) -> None:
    (device.root / "docs").mkdir()
    (device.root / "docs" / "a.txt").write_text("alpha")
    (tmp_path / "secret.txt").write_text("secret")  # beside the root, not in it
    (device.root / "docs" / "out").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "up.txt").write_text("upload")
    whole = os.urandom(200_000)
    (tmp_path / "whole.bin").write_bytes(whole)
    (device.root / "docs" / "whole.bin").write_bytes(whole[:70_000])  # an upload that was cut short
    batch = tmp_path / "batch"
    batch.write_text(
        f"cd docs\nls -1\nget a.txt {tmp_path}/a.txt\nput {tmp_path}/up.txt up.txt\n"
        f"reput {tmp_path}/whole.bin whole.bin\n"
        f"-get out {tmp_path}/stolen.txt\n-get ../../secret.txt {tmp_path}/stolen2.txt\n"
    )
    code, out, err = await tech.run(tech.openssh("sftp", "-b", str(batch), DEVICE))
    assert code == 0, err.decode()
    listing = out.decode()
    assert "a.txt" in listing and "out" in listing
    assert (tmp_path / "a.txt").read_text() == "alpha"
    assert (device.root / "docs" / "up.txt").read_text() == "upload"
    assert (device.root / "docs" / "whole.bin").read_bytes() == whole  # resumed on top of what was there
    assert not (tmp_path / "stolen.txt").exists() and not (tmp_path / "stolen2.txt").exists()
    assert err.count(b"not found") == 2  # the link out of the root and the ".." path: refused, as if absent


async def test_sftp_mkdir_rmdir_rm_and_rename(device: RealDevice, tech: Tech, tmp_path: Path) -> None:
    root = device.root
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("keep")
    (root / "old.txt").write_text("old")
    (root / "taken.txt").write_text("taken")
    (tmp_path / "secret.txt").write_text("secret")  # beside the root, not in it
    (root / "out").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "up.txt").write_text("upload")
    batch = tmp_path / "batch"
    batch.write_text(
        "mkdir new\n"
        f"put {tmp_path}/up.txt new/up.txt\n"
        "rename new/up.txt new/renamed.txt\n"
        "rename new renamed-dir\n"
        "-rename -l old.txt taken.txt\n"  # SFTP v3 rename: an existing target is refused
        "rename old.txt taken.txt\n"  # posix-rename (OpenSSH's default): replaced
        "rm renamed-dir/renamed.txt\n"
        "rmdir renamed-dir\n"
        "-mkdir full\n"  # exists
        "-rmdir full\n"  # not empty: never recursive
        "-rm full\n"  # a directory
        "-rmdir full/keep.txt\n"  # not a directory
        "-rmdir /\n"  # the root
        "rename taken.txt out\n"  # onto a link out of the root: the link is replaced, never followed
        "rename full ../../moved\n"  # ".." stops at the root (folded here; the agent refuses any left)
    )
    beside = {p.name for p in tmp_path.iterdir()}
    code, _, err = await tech.run(tech.openssh("sftp", "-b", str(batch), DEVICE))
    assert code == 0, err.decode()
    await device.wait_idle()  # the session's files events are in the audit chain before its session.stop
    assert not (root / "new").exists() and not (root / "renamed-dir").exists()
    assert not (root / "old.txt").exists() and not (root / "taken.txt").exists()
    assert not (root / "out").is_symlink() and (root / "out").read_text() == "old"
    assert (tmp_path / "secret.txt").read_text() == "secret"
    assert (root / "moved" / "keep.txt").read_text() == "keep"
    assert {p.name for p in tmp_path.iterdir()} == beside, "nothing made or moved beside the root"
    # what sshd's sftp-server answers too (SFTP v3 has no "exists", "not empty" or "is a directory")
    refused = [line for line in err.decode().splitlines() if line.startswith("remote ")]
    assert refused == [
        'remote rename "/old.txt" to "/taken.txt": Failure',
        'remote mkdir "/full": Failure',
        'remote rmdir "/full": Failure',
        "remote delete /full: Failure",
        'remote rmdir "/full/keep.txt": No such file or directory',
        'remote rmdir "/": Permission denied',
    ]
    changes = [e for e in await device.events("files.") if e.name != "files.upload"]
    assert {e.session_id for e in changes} == set(await device.session_ids())  # one sftp, one session
    assert [(e.name, e.detail["result"]) for e in changes] == [
        ("files.mkdir", "ok"), ("files.rename", "ok"), ("files.rename", "ok"), ("files.rename", "exists"),
        ("files.rename", "ok"), ("files.remove", "ok"), ("files.remove", "ok"), ("files.mkdir", "exists"),
        ("files.remove", "not_empty"), ("files.remove", "not_a_file"), ("files.remove", "not_a_directory"),
        ("files.remove", "permission_denied"), ("files.rename", "ok"), ("files.rename", "ok"),
    ]  # fmt: skip


async def test_the_users_consent_decides(device: RealDevice, tech: Tech, tmp_path: Path) -> None:
    device.grant = frozenset({Capability.FILES})  # the user allows files, not a shell
    code, _, err = await tech.ssh(command="echo never")
    assert code != 0
    assert b"did not allow" in err
    (device.root / "f.txt").write_text("files only")
    code, _, err = await tech.run(tech.openssh("scp", f"{DEVICE}:f.txt", str(tmp_path / "f.txt")))
    assert code == 0, err.decode()
    device.grant = frozenset()  # the user says no
    code, _, err = await tech.ssh(command="echo never")
    assert code != 0 and b"did not allow" in err
    await device.wait_idle()
    assert not await device.events("shell.start")
    assert len(device.ui.prompts) == 3  # the policy refused the shell; the user was asked the rest


async def test_stop_on_the_device_ends_ssh_and_the_remote_shell(device: RealDevice, tech: Tech) -> None:
    proc = await asyncio.create_subprocess_exec(
        *tech.openssh("ssh", command=("echo started; exec sleep 306",)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=tech.env,
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), scaled(60)) == b"started\n"
    start = await device.wait_event("shell.start")
    device.press_stop()
    code = await asyncio.wait_for(proc.wait(), scaled(5))
    assert code != 0
    assert proc.stderr is not None
    assert b"the user ended the session on the device" in await proc.stderr.read()  # ssh says why
    await wait_for(lambda: not alive(start.detail["pid"]), timeout=2.0, what="the remote shell to end")
    assert (await device.wait_ended()).reason == "user"
    stop = await device.wait_event("session.stop")
    assert (stop.session_id, stop.detail["by"]) == (start.session_id, "user")
    assert (await device.events("shell.end"))[-1].detail["pid"] == start.detail["pid"]


async def test_one_session_at_a_time(device: RealDevice, tech: Tech) -> None:
    proc = await asyncio.create_subprocess_exec(
        *tech.openssh("ssh", command=("echo started; exec sleep 308",)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=tech.env,
    )
    assert proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), scaled(60)) == b"started\n"
        code, _, err = await tech.ssh(command="echo second")  # the agent answers a second offer "overloaded"
        assert code != 0 and b"already running" in err, err.decode()
        assert proc.returncode is None  # the first session goes on
    finally:
        proc.terminate()
        await proc.wait()
    await device.wait_idle()
    code, out, err = await tech.ssh(command="echo third")  # and once it ended, the next one is served
    assert (code, out) == (0, b"third\n"), err.decode()


async def test_terminal_resize_and_signals_through_ssh(device: RealDevice, tech: Tech) -> None:
    # OpenSSH only forwards a resize from a real local terminal; asyncssh's client sends the same messages.
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "steun_server.techcli", "connect", DEVICE,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=tech.env,
    )  # fmt: skip
    ours, theirs = socket.socketpair()
    pumps = [
        asyncio.create_task(_pump_to_proxy(theirs, proxy)),
        asyncio.create_task(_pump_from_proxy(theirs, proxy)),
    ]
    try:
        async with asyncssh.connect(
            DEVICE, sock=ours, username="tina", known_hosts=None, client_keys=None
        ) as conn:
            chan, session = await conn.create_session(
                _Collect, term_type="xterm", term_size=(80, 24), encoding=None
            )
            chan.write(b"stty size\n")
            await wait_for(lambda: b"24 80\r\n" in session.data, what="the shell")
            chan.change_terminal_size(120, 40)
            chan.write(b"stty size\n")
            await wait_for(lambda: b"40 120\r\n" in session.data, what="the resize")
            chan.write(b"exec sleep 307\n")
            await wait_for(lambda: b"exec sleep 307" in session.data, what="the command echo")
            pid = (await device.wait_event("shell.start")).detail["pid"]
            await wait_for(lambda: _has_child(pid, "sleep"), what="sleep to start")
            chan.send_signal("TERM")
            await chan.wait_closed()
            assert chan.get_exit_signal() is not None, (chan.get_exit_status(), session.data[-300:])
            assert chan.get_exit_signal()[0] == "TERM"
    finally:
        for pump in pumps:
            pump.cancel()
        theirs.close()
        if proxy.returncode is None:
            proxy.terminate()
        await proxy.wait()


class _Collect(asyncssh.SSHClientSession[bytes]):
    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.data += data


def _has_child(session_leader: int, name: str) -> bool:
    from .helpers import children_named

    return bool(children_named(session_leader, name)) or _comm(session_leader) == name


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


async def _pump_to_proxy(sock: socket.socket, proc: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    assert proc.stdin is not None
    sock.setblocking(False)
    while data := await loop.sock_recv(sock, 65536):
        proc.stdin.write(data)
        await proc.stdin.drain()


async def _pump_from_proxy(sock: socket.socket, proc: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    assert proc.stdout is not None
    while data := await proc.stdout.read(65536):
        await loop.sock_sendall(sock, data)
