"""Shell, files and chat inside a real session: the real agent runtime, the real server and relay, sealed
records from the Python console half. What the issue asks of consent and Stop is tried against them: nothing
runs without its grant, and Stop ends a running shell and a running transfer at once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from steun_protocol import chat, files, shell
from steun_protocol.sessionplane import Channel, Refused

from tests.session_agent.live import LiveSession, live_session
from tests.support.server import RunningServer
from tests.support.waiting import scaled


async def shell_output(
    live: LiveSession, ident: int, until: bytes, timeout: float = 15
) -> tuple[bytes, object]:
    """Read the shell channel (acking what arrives) until ``until`` shows or the shell exits."""
    out = b""
    async with asyncio.timeout(scaled(timeout)):
        while True:
            message = shell.decode_from_agent(await live.receive(Channel.SHELL))
            if isinstance(message, shell.Data | shell.Stderr):
                out += message.data
                await live.send(Channel.SHELL, shell.encode(shell.Ack(ident, len(message.data))))
                if until and until in out:
                    return out, message
            elif isinstance(message, shell.Exit | shell.Error):
                return out, message


async def test_shell_files_and_chat_in_one_granted_session(server: RunningServer, tmp_path: Path) -> None:
    root = tmp_path / "home"
    (root / "logs").mkdir(parents=True)
    content = os.urandom(3 * 1024 * 1024 + 17)
    (root / "logs" / "printer é.log").write_bytes(content)
    async with live_session(
        server, tmp_path, capabilities=["shell", "files", "chat"], files_root=str(root)
    ) as live:
        assert sorted(c.value for c in live.granted.capabilities) == ["chat", "files", "shell"]

        # shell: a real PTY, non-ASCII output, exit status
        await live.send(Channel.SHELL, shell.encode(shell.Open(1, 100, 30, command="")))
        opened = shell.decode_from_agent(await live.receive(Channel.SHELL))
        assert isinstance(opened, shell.Opened) and opened.pid > 0
        line = b"printf 'h\\303\\251llo %s\\n' $((6*7)); exit 3\n"
        await live.send(Channel.SHELL, shell.encode(shell.Data(1, line)))
        out, end = await shell_output(live, 1, b"")
        assert "héllo 42" in out.decode("utf-8", "replace")
        assert isinstance(end, shell.Exit) and end.status == 3

        # files: list, download, verify the hash
        await live.send(Channel.FILES, files.encode(files.ListDir(1, "logs")))
        entries = files.decode_from_agent(await live.receive(Channel.FILES))
        assert isinstance(entries, files.Entries)
        assert [e.name for e in entries.entries] == ["printer é.log"]
        await live.send(Channel.FILES, files.encode(files.Download(2, "logs/printer é.log")))
        meta = files.decode_from_agent(await live.receive(Channel.FILES))
        assert isinstance(meta, files.DownloadMeta) and meta.size == len(content)
        got = hashlib.sha256()
        while True:
            message = files.decode_from_agent(await live.receive(Channel.FILES))
            if isinstance(message, files.Chunk):
                got.update(message.data)
                await live.send(Channel.FILES, files.encode(files.Credit(2, len(message.data))))
            else:
                assert isinstance(message, files.DownloadEnd), message
                break
        assert got.digest() == hashlib.sha256(content).digest() == message.sha256

        # chat both ways; the agent's window would read runner.chat
        words = "Dag, ik kijk even mee — é ç ë €"
        await live.send(
            Channel.CHAT, chat.encode(chat.Message(1, chat.Sender.TECHNICIAN, words, time.time()))
        )
        agent_chat = live.runner.chat
        assert agent_chat is not None
        # the user's window got this session's chat and the technician's name from the signed offer
        assert [(w.chat, w.technician) for w in live.ui.chats] == [
            (agent_chat, live.ui.prompts[0].technician.name)
        ]
        async with asyncio.timeout(scaled(10)):
            while not agent_chat.lines():
                await asyncio.sleep(0.02)
        assert agent_chat.lines()[0].text == words
        await agent_chat.say("Dank u")
        said = chat.decode_from_agent(await live.receive(Channel.CHAT))
        assert isinstance(said, chat.Message) and said.text == "Dank u" and said.sender is chat.Sender.USER

        await live.stop()
        await live.wait_ended()
        events = await live.audit_events()
        names = [name for name, _ in events]
        for name in ("shell.start", "shell.end", "files.download", "session.stop"):
            assert name in names, names
        # shell.end and the transfer reach the chain before the session's own stop
        assert names.index("shell.end") < names.index("session.stop")
        shell_end = next(data for name, data in events if name == "shell.end")
        assert '"status":3' in shell_end["detail"] and '"account":' in shell_end["detail"]
        download = next(data for name, data in events if name == "files.download")
        assert hashlib.sha256(content).hexdigest() in download["detail"]
        assert "shell" in download["offered"] or "files" in download["offered"]


@pytest.mark.parametrize("granted", [["view"], ["chat"]])
async def test_shell_files_chat_are_refused_unless_granted(
    server: RunningServer, tmp_path: Path, granted: list[str]
) -> None:
    (tmp_path / "secret.txt").write_text("not for you")
    async with live_session(server, tmp_path, capabilities=granted, files_root=str(tmp_path)) as live:
        attempts = {
            Channel.SHELL: shell.encode(shell.Open(1, 80, 24, command="touch owned")),
            Channel.FILES: files.encode(files.Download(1, "secret.txt")),
            Channel.CHAT: chat.encode(chat.Message(1, chat.Sender.TECHNICIAN, "hi", time.time())),
        }
        for channel, payload in attempts.items():
            if channel is Channel.CHAT and "chat" in granted:
                continue
            await live.send(channel, payload)
            refused = await live.control()
            assert isinstance(refused, Refused), refused
            assert (refused.channel, refused.reason) == (channel, "not_granted")
        assert live.runner.shell is None and live.runner.files is None
        assert live.queue(Channel.FILES).empty() and live.queue(Channel.SHELL).empty()
        assert not (tmp_path / "owned").exists()


async def test_stop_ends_a_running_shell_and_transfer_at_once(server: RunningServer, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    async with live_session(
        server, tmp_path, capabilities=["shell", "files"], files_root=str(tmp_path)
    ) as live:
        await live.send(Channel.SHELL, shell.encode(shell.Open(1, 80, 24, command="sleep 300")))
        opened = shell.decode_from_agent(await live.receive(Channel.SHELL))
        assert isinstance(opened, shell.Opened)
        sleeper = psutil.Process(opened.pid)
        # a download that waits for credit the console never gives: a transfer in flight
        await live.send(Channel.FILES, files.encode(files.Download(7, "big.bin", window=64 * 1024)))
        meta = files.decode_from_agent(await live.receive(Channel.FILES))
        assert isinstance(meta, files.DownloadMeta)
        transfers = live.runner.files.statistics().transfers
        assert [t.id for t in transfers] == [7]

        started = time.monotonic()
        await live.stop()
        async with asyncio.timeout(scaled(5)):
            while sleeper.is_running() and sleeper.status() != psutil.STATUS_ZOMBIE:
                await asyncio.sleep(0.01)
        killed_after = time.monotonic() - started
        outcome = await live.wait_ended()
        assert outcome.reason == "technician"
        assert killed_after < scaled(1.5), killed_after
        assert live.runner.files.statistics().transfers == ()
        names = [name for name, _ in await live.audit_events()]
        assert "shell.end" in names and "files.download" in names, names


async def test_a_malformed_shell_record_is_refused_and_the_session_goes_on(
    server: RunningServer, tmp_path: Path
) -> None:
    async with live_session(server, tmp_path, capabilities=["shell"]) as live:
        await live.send(Channel.SHELL, b"\xff\x00garbage")
        refused = await live.control()
        assert isinstance(refused, Refused) and (refused.channel, refused.reason) == (
            Channel.SHELL,
            "invalid",
        )
        await live.send(Channel.SHELL, shell.encode(shell.Open(2, 80, 24, command="echo still-here")))
        out, end = await shell_output(live, 2, b"")
        assert b"still-here" in out and isinstance(end, shell.Exit) and end.status == 0


@pytest.fixture
def helpdesk_account(tmp_path: Path) -> Iterator[str]:
    """A throwaway local account with a login shell (``nobody`` has none, and the agent refuses that)."""
    import secrets
    import subprocess

    name = f"steun-t{secrets.token_hex(3)}"
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", str(tmp_path), "--shell", "/bin/sh", name], check=True
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


@pytest.mark.skipif(
    os.geteuid() != 0, reason="a service agent runs as root; its non-root twin is the attended test"
)
async def test_a_service_agent_acts_as_the_policy_account_not_root(
    server: RunningServer, tmp_path: Path, helpdesk_account: str, request: pytest.FixtureRequest
) -> None:
    import pwd
    import shutil
    import tempfile

    from steun_agent.policy import Mode, Policy

    account = pwd.getpwnam(helpdesk_account)
    root = Path(tempfile.mkdtemp(prefix="steun-share-"))  # pytest's own tmp is root's alone (0700)
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    root.chmod(0o755)
    (root / "open.txt").write_text("for everyone")
    (root / "root-only.txt").write_text("secret")
    (root / "root-only.txt").chmod(0o600)
    policy = Policy(shell_account=helpdesk_account)
    async with live_session(
        server,
        tmp_path,
        capabilities=["shell", "files"],
        policy=policy,
        files_root=str(root),
        mode=Mode.SERVICE,
    ) as live:
        await live.send(Channel.SHELL, shell.encode(shell.Open(1, 80, 24, command="id -u")))
        opened = shell.decode_from_agent(await live.receive(Channel.SHELL))
        assert isinstance(opened, shell.Opened), opened
        out, end = await shell_output(live, 1, b"")
        assert out.strip().decode() == str(account.pw_uid) and isinstance(end, shell.Exit)

        # files act as that account too (a worker process), not as the root agent
        await live.send(Channel.FILES, files.encode(files.Download(1, "root-only.txt")))
        refused = files.decode_from_agent(await live.receive(Channel.FILES))
        assert isinstance(refused, files.Error) and refused.code == files.FileErrorCode.PERMISSION_DENIED
        await live.send(Channel.FILES, files.encode(files.Download(2, "open.txt")))
        meta = files.decode_from_agent(await live.receive(Channel.FILES))
        assert isinstance(meta, files.DownloadMeta) and meta.size == len("for everyone")
        await live.stop()
        await live.wait_ended()
        shell_start = next(d for n, d in await live.audit_events() if n == "shell.start")
        assert f'"account":"{helpdesk_account}"' in shell_start["detail"]


async def test_a_service_agent_without_shell_account_never_grants_shell(
    server: RunningServer, tmp_path: Path
) -> None:
    from steun_agent.policy import Mode

    async with live_session(server, tmp_path, capabilities=["shell", "chat"], mode=Mode.SERVICE) as live:
        assert [c.value for c in live.granted.capabilities] == ["chat"]
        assert [c.value for c in live.granted.denied] == ["shell"]
        await live.send(Channel.SHELL, shell.encode(shell.Open(1, 80, 24, command="id")))
        refused = await live.control()
        assert isinstance(refused, Refused) and refused.reason == "not_granted"
