"""Fixtures for the agent's consent, policy, local log and UI tests: a private Xvfb, xdotool, fake prompters."""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from steun_agent.consent import Answer, ConsentPrompt, ConsentSubject, Technician
from steun_protocol.session import Capability

from tests.support.waiting import scaled


@dataclass
class Xvfb:
    display: str
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display, "LC_ALL": "C.UTF-8"}


@pytest.fixture(scope="session")
def xvfb() -> Iterator[Xvfb]:
    """A private X server on a display number the server picks itself (-displayfd): no clash with others."""
    if not shutil.which("Xvfb") or not shutil.which("xdotool"):
        pytest.fail("Xvfb and xdotool are needed for the Tk tests: run scripts/bootstrap --tests")
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=[write_end],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    number = b""
    deadline = time.monotonic() + scaled(15)
    try:
        while not number.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([read_end], [], [], max(0.0, remaining))
            if not ready:
                raise AssertionError("Xvfb did not report its display within the timeout")
            chunk = os.read(read_end, 16)
            if not chunk:
                raise AssertionError(f"Xvfb exited (code {process.poll()}) before reporting its display")
            number += chunk
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        os.close(read_end)
    server = Xvfb(display=f":{number.decode().strip()}", process=process)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def xdotool(server: Xvfb, *args: str, timeout: float = 10.0) -> str:
    """Run xdotool against the private display (without blocking the event loop); its stdout."""
    process = await asyncio.create_subprocess_exec(
        "xdotool", *args, env=server.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), scaled(timeout))
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"xdotool {' '.join(args)} did not finish in time") from None
    if process.returncode != 0:
        raise AssertionError(f"xdotool {' '.join(args)} failed ({process.returncode}): {err.decode()}")
    return out.decode()


def subject(
    capabilities: tuple[Capability, ...] = (Capability.VIEW, Capability.CONTROL, Capability.CLIPBOARD),
    *,
    sas: str = "048213",
) -> ConsentSubject:
    return ConsentSubject(
        session_id="c2Vzc2lvbi0wMDAwMDAwMQ",
        org_name="Helpdesk Gemeente Voorbeeld",
        technician=Technician(user_id="u-17", name="Jan de Vries"),
        capabilities=frozenset(capabilities),
        reason="Printer does not print (ticket 4711)",
        sas=sas,
    )


@dataclass
class ScriptedPrompter:
    """A faithful stand-in for the UI: answers from a script; ``None`` means the user never answers."""

    answers: list[Answer | None] = field(default_factory=list)
    prompts: list[ConsentPrompt] = field(default_factory=list)
    cancelled: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def ask_consent(self, prompt: ConsentPrompt) -> Answer:
        self.prompts.append(prompt)
        self.opened.set()
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            return answer
        try:
            await asyncio.Event().wait()  # nobody at the keyboard
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")
