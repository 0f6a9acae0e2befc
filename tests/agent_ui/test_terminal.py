"""The terminal fallback: same information as the window, y/N read from a pipe, no answer is no."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from collections.abc import Iterator
from typing import IO

import pytest
from steun_agent.consent import Answer, ConsentBroker, ConsentPrompt, Status, Technician
from steun_agent.policy import Mode, Policy
from steun_agent.ui import open_ui
from steun_agent.ui.base import IndicatorInfo
from steun_agent.ui.i18n import Texts
from steun_agent.ui.terminal import TerminalUI
from steun_protocol.session import Capability

from tests.agent_ui.conftest import subject
from tests.support.waiting import scaled, wait_for

V, C = Capability.VIEW, Capability.CONTROL


class Pipe:
    """A real OS pipe as the terminal's input; the test types into it."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        self.reader: IO[str] = os.fdopen(read_fd, "r", encoding="utf-8")
        self._write_fd = write_fd

    def type(self, text: str) -> None:
        os.write(self._write_fd, text.encode())

    def close_input(self) -> None:
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    p = Pipe()
    yield p
    p.close_input()  # the reader thread sees EOF and ends


def prompt(timeout: float = 60.0, **changes: object) -> ConsentPrompt:
    values: dict[str, object] = {
        "org_name": "Helpdesk Gemeente Voorbeeld",
        "technician": Technician("u-17", "Jan de Vries"),
        "reason": "Printer",
        "sas": "048213",
        "capabilities": (V, C),
        "forbidden": (Capability.SHELL,),
        "already_granted": (),
        "timeout": timeout,
    }
    values.update(changes)
    return ConsentPrompt(**values)  # type: ignore[arg-type]


async def test_shows_everything_and_accepts_y_from_a_pipe(pipe: Pipe) -> None:
    out = io.StringIO()
    ui = TerminalUI(Texts("en"), input=pipe.reader, output=out)
    answer = asyncio.create_task(ui.ask_consent(prompt()))
    await wait_for(lambda: "[y/N]" in out.getvalue(), timeout=5, what="the question")
    pipe.type("y\n")
    assert await asyncio.wait_for(answer, scaled(5)) is Answer.ACCEPT
    shown = out.getvalue()
    for expected in (
        "Jan de Vries of Helpdesk Gemeente Voorbeeld asks for access",
        "Technician ID: u-17",
        "See your screen",
        "Use your mouse and keyboard",
        "Reason: Printer",
        "Not allowed on this computer by your administrator: commands",
        "048 213",
        "Check that the technician reads you the same digits",
        "Access granted.",
    ):
        assert expected in shown


@pytest.mark.parametrize("typed", ["\n", "n\n", "N\n", "yes please\n", "j\n"])
async def test_anything_but_yes_denies(pipe: Pipe, typed: str) -> None:
    out = io.StringIO()
    ui = TerminalUI(Texts("en"), input=pipe.reader, output=out)
    answer = asyncio.create_task(ui.ask_consent(prompt()))
    await wait_for(lambda: "[y/N]" in out.getvalue(), timeout=5, what="the question")
    pipe.type(typed)
    assert await asyncio.wait_for(answer, scaled(5)) is Answer.DENY


async def test_dutch_yes(pipe: Pipe) -> None:
    out = io.StringIO()
    ui = TerminalUI(Texts("nl"), input=pipe.reader, output=out)
    answer = asyncio.create_task(ui.ask_consent(prompt()))
    await wait_for(lambda: "[j/N]" in out.getvalue(), timeout=5, what="the Dutch question")
    pipe.type("ja\n")
    assert await asyncio.wait_for(answer, scaled(5)) is Answer.ACCEPT
    assert "Controlecode:   048 213" in out.getvalue()


async def test_end_of_input_denies(pipe: Pipe) -> None:
    ui = TerminalUI(Texts("en"), input=pipe.reader, output=io.StringIO())
    pipe.close_input()
    assert await asyncio.wait_for(ui.ask_consent(prompt()), scaled(5)) is Answer.DENY


async def test_typed_ahead_yes_does_not_answer_a_later_prompt(pipe: Pipe) -> None:
    out = io.StringIO()
    ui = TerminalUI(Texts("en"), input=pipe.reader, output=out)
    code = asyncio.create_task(ui.ask_support_code())
    await wait_for(lambda: "Support code" in out.getvalue(), timeout=5, what="the code prompt")
    pipe.type("123 456 789\ny\n")  # the "y" arrives before any consent question exists
    assert await asyncio.wait_for(code, scaled(5)) == "123456789"
    await wait_for(lambda: ui._reader is not None and ui._reader._buffer, timeout=5, what="the stray line")
    broker = ConsentBroker(
        subject(), policy=Policy(prompt_timeout=1.0), mode=Mode.ATTENDED, prompter=ui, local_log=None
    )
    result = await asyncio.wait_for(broker.start(), scaled(5))
    assert result.status is Status.EXPIRED  # not granted by the stray "y"
    assert "Access denied." in out.getvalue()


async def test_support_code_asks_again_on_a_bad_code(pipe: Pipe) -> None:
    out = io.StringIO()
    ui = TerminalUI(Texts("fr"), input=pipe.reader, output=out)
    code = asyncio.create_task(ui.ask_support_code())
    await wait_for(lambda: "Code d'assistance" in out.getvalue(), timeout=5, what="the code prompt")
    pipe.type("12345\n")
    await wait_for(lambda: "Le code comporte 9 chiffres." in out.getvalue(), timeout=5, what="the hint")
    pipe.type("987-654-321\n")
    assert await asyncio.wait_for(code, scaled(5)) == "987654321"


async def test_terminal_stop_revokes_and_calls_back(pipe: Pipe) -> None:
    out = io.StringIO()
    ui = TerminalUI(Texts("en"), input=pipe.reader, output=out)
    broker = ConsentBroker(subject((V,)), policy=Policy(), mode=Mode.ATTENDED, prompter=ui, local_log=None)
    start = asyncio.create_task(broker.start())
    await wait_for(lambda: "[y/N]" in out.getvalue(), timeout=5, what="the question")
    pipe.type("y\n")
    assert (await asyncio.wait_for(start, scaled(5))).ok
    stopped = asyncio.Event()
    info = IndicatorInfo("Org", Technician("u-17", "Jan"), (V,), time.monotonic())
    indicator = await ui.show_indicator(info, on_stop=stopped.set, revoke=broker.revoke)
    assert "Connected: Jan (Org)" in out.getvalue()
    pipe.type("what\n")
    pipe.type("stop\n")
    await asyncio.wait_for(stopped.wait(), scaled(2))
    assert indicator.stopped and not broker.grants.allows(V)


async def test_open_ui_falls_back_to_the_terminal_without_a_display(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    ui = await open_ui("nl", output=io.StringIO())
    assert isinstance(ui, TerminalUI) and ui.language == "nl"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and processes")
async def test_a_separate_process_answers_through_its_stdin() -> None:
    """The whole fallback as a user meets it: a process, a prompt on stdout, an answer on stdin."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steun_agent.ui",
        "consent",
        "--terminal",
        "--lang",
        "en",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    seen = b""
    while b"[y/N]" not in seen:
        chunk = await asyncio.wait_for(process.stdout.read(4096), scaled(20))
        assert chunk, f"the process ended early: {seen.decode()}"
        seen += chunk
    process.stdin.write(b"y\n")
    await process.stdin.drain()
    rest, _ = await asyncio.wait_for(process.communicate(), scaled(20))
    assert b"Access granted." in rest and b"accept" in rest
    assert process.returncode == 0
