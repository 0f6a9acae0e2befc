"""Real shells in real PTYs through the shell channel: commands, exit codes, non-ASCII, resize, Ctrl-C,
signals, flow control, close and Stop. Every wait has a timeout; nothing sleeps a fixed time."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading

import pytest
from steun_agent.shell import Account, PtyProcess
from steun_protocol.shell import (
    WINDOW,
    Close,
    Data,
    Eof,
    Error,
    Exit,
    Open,
    Resize,
    SendSignal,
    ShellErrorCode,
    Signal,
)

from tests.support.waiting import scaled, wait_for

from .helpers import ShellConsole, alive, children_named

NON_ASCII = "é ç ë €"


async def test_login_shell_runs_commands_and_reports_the_exit_status(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24))
    opened = await console.wait_opened(1)
    await console.type(1, "echo hello-$((6 * 7))\n")
    await console.wait_output(1, "hello-42")
    await console.type(1, "exit 7\n")
    assert await console.wait_exit(1) == Exit(1, 7, 0)
    start, end = console.events
    assert (start.name, start.pid, start.command) == ("shell.start", opened.pid, "")
    assert (end.name, end.status, end.signal, end.reason) == ("shell.end", 7, None, "exit")
    assert start.account == end.account == Account.current().name


@pytest.mark.parametrize("status", [0, 1, 3, 255])
async def test_a_command_reports_its_exit_code(console: ShellConsole, status: int) -> None:
    await console.send(Open(1, 80, 24, command=f"echo ran; exit {status}"))
    assert await console.wait_exit(1) == Exit(1, status, 0)
    assert b"ran" in console.output[1]


async def test_non_ascii_output_and_input_travel_as_utf8(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24))
    await console.wait_opened(1)
    # typed by the technician, echoed by the terminal, printed by the program
    await console.type(1, f"printf '%s|%s\\n' '{NON_ASCII}' \"$(printf '{NON_ASCII}' | wc -c)\"\n")
    await console.wait_output(1, f"{NON_ASCII}|{len(NON_ASCII.encode())}")
    await console.type(1, "exit\n")
    await console.wait_exit(1)
    console.output[1].decode("utf-8")  # the whole stream is valid UTF-8


async def test_resize_is_seen_by_stty_and_raises_sigwinch(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24))
    await console.wait_opened(1)
    await console.type(1, "trap 'echo winch-$(stty size | tr \" \" x)' WINCH; stty size\n")
    await console.wait_output(1, "24 80")
    await console.send(Resize(1, 132, 43))
    await console.type(1, "stty size\n")
    await console.wait_output(1, "43 132")
    await console.wait_output(1, "winch-43x132")  # the trap runs when bash gets back to its prompt
    await console.type(1, "exit\n")
    await console.wait_exit(1)


async def test_ctrl_c_interrupts_sleep_and_the_shell_lives_on(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24))
    opened = await console.wait_opened(1)
    await console.type(1, "sleep 300\n")
    (sleeper,) = await wait_for(lambda: children_named(opened.pid, "sleep"), what="sleep to start")
    await console.type(1, "\x03")  # what xterm.js sends for Ctrl-C
    await wait_for(lambda: not alive(sleeper), what="sleep to be interrupted")
    await console.type(1, "echo after-$?\n")
    await console.wait_output(1, "after-130")  # 128 + SIGINT
    await console.type(1, "exit\n")
    assert await console.wait_exit(1) == Exit(1, 0, 0)


async def test_a_command_interrupted_by_ctrl_c_ends_by_that_signal(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24, command="echo ready; exec sleep 300"))
    opened = await console.wait_opened(1)
    await wait_for(lambda: children_named(opened.pid, "sleep"), what="sleep to start")
    await console.type(1, "\x03")
    assert await console.wait_exit(1) == Exit(1, 0, Signal.INT)
    assert console.events[-1].signal == Signal.INT


async def test_signals_reach_the_foreground_job(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24, command="exec sleep 300"))
    opened = await console.wait_opened(1)
    await wait_for(lambda: children_named(opened.pid, "sleep"), what="sleep to start")
    await console.send(SendSignal(1, Signal.TERM))
    assert await console.wait_exit(1) == Exit(1, 0, Signal.TERM)


async def test_close_ends_the_whole_terminal_session(console: ShellConsole) -> None:
    console.service._close_grace = 0.3  # nohup'd jobs get SIGKILL after this
    await console.send(Open(1, 80, 24))
    opened = await console.wait_opened(1)
    await console.type(1, "sleep 301 & nohup sleep 302 >/dev/null 2>&1 & echo started\n")
    await console.wait_output(1, "started")
    sleepers = await wait_for(
        lambda: len(found := children_named(opened.pid, "sleep")) == 2 and found, what="both jobs to start"
    )
    await console.send(Close(1))
    exit_message = await console.wait_exit(1)
    assert exit_message.signal in (Signal.HUP, Signal.KILL)
    for pid in [opened.pid, *sleepers]:
        await wait_for(lambda pid=pid: not alive(pid), what=f"process {pid} to end")
    assert console.events[-1].reason == "closed"


async def test_stop_kills_every_shell_at_once_and_sends_nothing_more(console: ShellConsole) -> None:
    leaders = []
    for shell in (1, 2):
        await console.send(Open(shell, 80, 24))
        leaders.append((await console.wait_opened(shell)).pid)
        await console.type(shell, "trap '' HUP INT TERM; sleep 303 & echo go\n")
        await console.wait_output(shell, "go")
    sleepers = [
        (await wait_for(lambda leader=leader: children_named(leader, "sleep"), what="sleep to start"))[0]
        for leader in leaders
    ]
    await console.close_all()  # asserts nothing is sent afterwards
    for pid in leaders + sleepers:
        await wait_for(lambda pid=pid: not alive(pid), timeout=2.0, what=f"process {pid} to be killed")
    assert [e.reason for e in console.events if e.name == "shell.end"] == ["stop", "stop"], console.events


async def test_output_stops_at_the_window_until_the_console_acknowledges() -> None:
    console = ShellConsole(auto_ack=False)
    total = 3 * WINDOW
    await console.send(Open(1, 80, 24, command=f"head -c {total} /dev/zero | tr '\\0' x; echo; echo done"))
    await wait_for(lambda: console.service.statistics().flow_stalls >= 1, what="the agent to stall")
    assert len(console.output[1]) == WINDOW, "never more than the window before an ack"
    assert not any(isinstance(m, Exit) for m in console.messages), "the program is blocked on its writes"
    console.auto_ack = True
    await console.ack_all(1)
    await console.wait_exit(1)
    assert console.output[1].count(b"x") == total and b"done" in console.output[1]
    await console.service.close_all()


async def test_input_beyond_the_window_is_a_flow_violation(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24, command="exec sleep 300"))
    await console.wait_opened(1)
    chunk = b"a" * 60_000
    for _ in range(WINDOW // len(chunk) + 1):  # no await yields to the writer in between
        await console.send(Data(1, chunk))
    error = await console.wait_error(1)
    assert error.code == ShellErrorCode.FLOW_VIOLATION
    await console.wait_exit(1)


async def test_input_is_acknowledged_once_written(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24, command="cat >/dev/null"))
    await console.wait_opened(1)
    await console.type(1, "line\n")
    await wait_for(lambda: console.service.statistics().bytes_in == 5)
    await console.send(Close(1))
    await console.wait_exit(1)


async def test_ids_and_limits_are_checked() -> None:
    console = ShellConsole(max_shells=2)
    try:
        await console.send(Data(9, b"x"))
        assert (await console.wait_error(9)).code == ShellErrorCode.NO_SUCH_SHELL
        await console.send(Open(1, 80, 24, command="exec sleep 300"))
        await console.send(Open(1, 80, 24, command="true"))
        await console.send(Open(2, 80, 24, command="exec sleep 300"))
        await console.send(Open(3, 80, 24, command="true"))
        errors = await wait_for(
            lambda: len(e := [m for m in console.messages if isinstance(m, Error)]) >= 3 and e
        )
        assert [(e.shell, e.code) for e in errors[1:]] == [
            (1, ShellErrorCode.SHELL_EXISTS),
            (3, ShellErrorCode.TOO_MANY_SHELLS),
        ]
    finally:
        await console.service.close_all()


async def test_an_account_without_a_login_shell_is_refused() -> None:
    me = Account.current()
    console = ShellConsole(account=dataclasses.replace(me, shell="/usr/sbin/nologin"))
    await console.send(Open(1, 80, 24))
    assert (await console.wait_error(1)).code == ShellErrorCode.ACCOUNT_UNAVAILABLE
    assert console.events[0].name == "shell.failed"


async def test_a_missing_shell_is_a_spawn_failure() -> None:
    console = ShellConsole(account=dataclasses.replace(Account.current(), shell="/nonexistent/shell"))
    await console.send(Open(1, 80, 24))
    assert (await console.wait_error(1)).code == ShellErrorCode.SPAWN_FAILED


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
async def test_a_service_agent_drops_to_the_policy_account() -> None:
    nobody = Account("nobody", 65534, 65534, "/nonexistent", "/bin/sh")
    console = ShellConsole(account=nobody)
    await console.send(Open(1, 80, 24, command="echo ids=$(id -u):$(id -g):$(id -G | wc -w) home=$HOME; pwd"))
    assert await console.wait_exit(1) == Exit(1, 0, 0)
    text = console.output[1].decode()
    assert "ids=65534:65534:1" in text, text  # no supplementary group of root's survives
    assert "home=/nonexistent" in text
    assert "/" in [line.strip() for line in text.splitlines()]  # a missing home: the shell starts in /


async def test_stop_during_start_leaves_no_process(console: ShellConsole) -> None:
    marker = f"sleep {os.getpid() % 1000 + 31000}"  # this test's own, whatever else runs on the machine
    await console.send(Open(1, 80, 24, command=f"exec {marker}"))
    await console.close_all()  # before the spawn thread has finished
    await wait_for(lambda: not running(marker), timeout=3.0, what=f"no {marker!r} left")
    assert console.service.statistics().running == 0


async def test_stop_while_the_program_is_starting_kills_it(monkeypatch: pytest.MonkeyPatch) -> None:
    marker = f"sleep {os.getpid() % 1000 + 32000}"
    entered, gate = threading.Event(), threading.Event()
    real = PtyProcess._start

    def held(*args: object) -> object:  # the spawn thread, held until Stop has begun
        entered.set()
        gate.wait(scaled(10))
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(PtyProcess, "_start", staticmethod(held))
    console = ShellConsole()
    await console.send(Open(1, 80, 24, command=f"exec {marker}"))
    await wait_for(entered.is_set, what="the spawn thread to start")
    closing = asyncio.ensure_future(console.close_all())
    await wait_for(lambda: console.service._closed, what="Stop to begin")
    gate.set()
    await closing
    await wait_for(lambda: not running(marker), timeout=3.0, what=f"no {marker!r} left")


def running(command_line: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b" ".join(a for a in argv if a).decode(errors="replace") == command_line and alive(int(entry)):
                found.append(int(entry))
    return found


def test_wire_signals_map_to_platform_signals() -> None:
    from steun_agent.shell import os_signal, wire_signal

    for sig in Signal:
        assert wire_signal(os_signal(sig)) == sig
    assert os_signal(Signal.INT) == signal.SIGINT


async def test_pipes_keep_bytes_and_stderr_apart_and_end_input_on_eof(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24, "dumb", "cat; printf 'oops é' >&2; exit 4", pipes=True))
    await console.wait_opened(1)
    payload = bytes(range(256)) * 64 + b"\r\n\x03\x04 no terminal discipline"
    await console.send(Data(1, payload))
    await console.send(Eof(1))
    assert await console.wait_exit(1) == Exit(1, 4, 0)
    assert bytes(console.output[1]) == payload  # no echo, no CR LF, no Ctrl-C: bytes pass unchanged
    assert bytes(console.errors[1]) == "oops é".encode()


async def test_a_signal_reaches_a_command_on_pipes(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24, "dumb", "exec sleep 305", pipes=True))
    opened = await console.wait_opened(1)
    await wait_for(lambda: children_named(opened.pid, "sleep"), what="sleep to start")
    await console.send(SendSignal(1, Signal.INT))
    assert await console.wait_exit(1) == Exit(1, 0, Signal.INT)


async def test_a_login_shell_on_pipes_reads_commands_from_stdin(console: ShellConsole) -> None:
    await console.send(Open(1, 80, 24, "dumb", "", pipes=True))  # `ssh -T host`
    await console.wait_opened(1)
    await console.type(1, "echo piped-$((1 + 1))\nexit 9\n")
    assert await console.wait_exit(1) == Exit(1, 9, 0)
    assert b"piped-2\n" in console.output[1]
