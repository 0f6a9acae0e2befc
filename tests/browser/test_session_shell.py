"""The Terminal tab in real Chromium against the real server, relay and agent runtime, with a real PTY.

The technician asks for command-line access from the tab, the agent's user (a scripted consent UI) allows it,
and xterm.js shows what the device's shell prints: UTF-8 output, the PTY's size after the panel is resized,
Ctrl-C and the interrupt button ending ``sleep 100``, an ``exit 3`` shown as such, then a new shell. Without the
user's consent the tab only offers to ask, and a SHELL record sent anyway is refused by the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Locator, Page, expect
from steun_protocol import shell
from steun_protocol.auth import b64encode
from steun_protocol.session import Capability, RecordType
from steun_protocol.sessionplane import Channel

from tests.sessions.helpers import Console, RelayEnd, console_end
from tests.support.api import ApiClient
from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for

from .conftest import PageErrors
from .session_helpers import (
    RELAY_PATH,
    HarnessServer,
    Parties,
    RealAgent,
    RelayPeer,
    harness_call,
    open_harness,
    real_agent,
    running_harness,
    start_console_session,
    started_session,
    wait_log,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

#: The real agent's shell and the browser share two cores with other tests: be generous, scaled.
SHELL_TIMEOUT_MS = scaled(30) * 1000


@pytest.fixture
async def agent(server: RunningServer, tmp_path: Path) -> AsyncIterator[RealAgent]:
    # the first answer is for the session, the second for "Ask for command-line access"
    async with real_agent(server, tmp_path, ["accept", "accept"], hostname="pc-terminal") as running:
        yield running


def screen(page: Page) -> Locator:
    """What xterm shows: its DOM renderer's rows, as text."""
    return page.get_by_role("tabpanel", name="Terminal").locator(".xterm-rows")


async def run(page: Page, command: str) -> None:
    """Type a command into the terminal as a person does, and press Enter."""
    await page.locator(".xterm-helper-textarea").focus()
    await page.keyboard.type(command)
    await page.keyboard.press("Enter")


async def open_terminal(page: Page, server: RunningServer, agent: RealAgent) -> Locator:
    await start_console_session(page, server, agent, "the disk is full")
    await page.get_by_role("tab", name="Terminal").click()
    panel = page.get_by_role("tabpanel", name="Terminal")
    await expect(panel.get_by_text("The user has not allowed this yet: Command line.")).to_be_visible()
    await expect(panel.get_by_test_id("terminal")).to_be_hidden()
    await panel.get_by_role("button", name="Ask for command-line access").click()
    status = page.get_by_test_id("terminal-status")
    await expect(status).to_contain_text("Shell running on the device", timeout=SHELL_TIMEOUT_MS)
    return status


async def test_terminal_runs_a_real_shell(page: Page, server: RunningServer, agent: RealAgent) -> None:
    status = await open_terminal(page, server, agent)
    assert agent.ui.prompts[1].capabilities[-1].value == "shell"
    rows = screen(page)

    # UTF-8 made by the shell, shown by xterm (the typed line itself reads h\xc3\xa9llo)
    await run(page, r"printf 'h\xc3\xa9llo %s\n' $((6*7))")
    await expect(rows).to_contain_text("héllo 42", timeout=SHELL_TIMEOUT_MS)
    await run(page, "echo ça-va-$((1+1)) €")
    await expect(rows).to_contain_text("ça-va-2 €", timeout=SHELL_TIMEOUT_MS)

    # the PTY has the panel's size, and follows it
    host = page.get_by_test_id("terminal")
    before = (await host.get_attribute("data-rows"), await host.get_attribute("data-cols"))
    await run(page, "echo size=$(stty size)")
    await expect(rows).to_contain_text(f"size={before[0]} {before[1]}", timeout=SHELL_TIMEOUT_MS)
    await page.set_viewport_size({"width": 960, "height": 720})
    await expect(host).not_to_have_attribute("data-rows", before[0] or "")
    after = (await host.get_attribute("data-rows"), await host.get_attribute("data-cols"))
    assert after != before
    await run(page, "echo resized=$(stty size)")
    await expect(rows).to_contain_text(f"resized={after[0]} {after[1]}", timeout=SHELL_TIMEOUT_MS)

    # Ctrl-C is the byte 0x03 through the PTY: the line discipline interrupts the foreground job
    await run(page, "echo sleeping-$((40+2)); sleep 100")
    await expect(rows).to_contain_text("sleeping-42", timeout=SHELL_TIMEOUT_MS)
    await page.keyboard.press("Control+C")
    await expect(rows).to_contain_text("^C", timeout=SHELL_TIMEOUT_MS)
    await run(page, "echo rc=$?")
    await expect(rows).to_contain_text("rc=130", timeout=SHELL_TIMEOUT_MS)

    # the interrupt button sends SIGINT to the terminal's foreground group (SendSignal)
    await run(page, "echo sleeping-$((50+5)); sleep 100")
    await expect(rows).to_contain_text("sleeping-55", timeout=SHELL_TIMEOUT_MS)
    await page.get_by_role("button", name="Interrupt (Ctrl-C)").click()
    await run(page, "echo rc2=$?")
    await expect(rows).to_contain_text("rc2=130", timeout=SHELL_TIMEOUT_MS)

    # the shell's end is shown with its status; a new shell works
    await run(page, "exit 3")
    await expect(status).to_have_text("The shell ended with exit status 3.", timeout=SHELL_TIMEOUT_MS)
    await page.get_by_role("button", name="New shell").click()
    await expect(status).to_contain_text("Shell running on the device", timeout=SHELL_TIMEOUT_MS)
    await run(page, "echo new-$((3*3))")
    await expect(rows).to_contain_text("new-9", timeout=SHELL_TIMEOUT_MS)
    assert agent.runner.shell.statistics().opened == 2

    # the session ends: the terminal says so and takes no more input
    await page.get_by_role("button", name="Stop session").click()
    await expect(status).to_have_text("Session ended")
    await expect(rows).to_contain_text("Session ended")
    await expect(page.get_by_role("button", name="New shell")).to_be_hidden()


# --------------------------------------------------------------------------------------------- consent


async def test_terminal_is_not_usable_without_consent(
    page: Page, server: RunningServer, tmp_path: Path
) -> None:
    async with real_agent(server, tmp_path, ["accept", "deny"], hostname="pc-no-shell") as agent:
        await start_console_session(page, server, agent, "look only")
        await page.get_by_role("tab", name="Terminal").click()
        panel = page.get_by_role("tabpanel", name="Terminal")
        await panel.get_by_role("button", name="Ask for command-line access").click()
        await expect(panel.get_by_text("The user did not allow this: Command line.")).to_be_visible(
            timeout=SHELL_TIMEOUT_MS
        )
        await expect(panel.get_by_test_id("terminal")).to_be_hidden()
        await expect(panel.locator(".xterm")).to_have_count(0)
        assert agent.runner.shell is None
        await page.get_by_role("button", name="Stop session").click()
        await expect(page.get_by_text("You ended the session.")).to_be_visible()


@contextlib.asynccontextmanager
async def bridged(peer: RelayPeer, end: RelayEnd) -> AsyncIterator[None]:
    """Forwards the harness page's relay websocket to the real relay, byte for byte (as a relay does)."""

    async def to_relay() -> None:
        while True:
            await end.send_bytes(await peer.transport.receive())

    async def to_page() -> None:
        while True:
            await peer.transport.send(await end.receive_bytes(timeout=3600))

    tasks = [asyncio.create_task(to_relay()), asyncio.create_task(to_page())]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_shell_record_without_consent_is_refused_by_the_agent(
    context: BrowserContext,
    server: RunningServer,
    admin_api: ApiClient,
    page_errors: PageErrors,
    tmp_path: Path,
) -> None:
    """The console's own session code (WebCrypto, record layer) sends an OPEN on the shell channel although
    only viewing was allowed: the real agent refuses it (``not_granted``) and runs nothing."""
    harness: HarnessServer
    async with (
        running_harness() as harness,
        real_agent(server, tmp_path, ["accept"], hostname="pc-refuse") as agent,
    ):
        tab = page_errors.watch(await context.new_page())
        await open_harness(tab, harness)
        fields = await harness_call(tab, "newHandshake")
        console = await Console.open(admin_api)
        try:
            _, session = await console.result(
                "session/request",
                device_id=agent.device_id,
                capabilities=["view"],
                reason="only looking",
                **fields,
            )
            await harness_call(
                tab,
                "connectRelay",
                {"relay_path": RELAY_PATH, "ticket": secrets.token_urlsafe(32), "offer": session["offer"]},
            )
            peer = await harness.next_peer()
            end = await console_end(admin_api, server, session["relay_path"], session["ticket"])
            async with bridged(peer, end):
                granted = await wait_log(tab, "control", timeout=30)
                assert granted["message"] == {"type": "granted", "capabilities": ["view"], "denied": []}
                payload = shell.encode(shell.Open(1, 80, 24))
                await harness_call(tab, "relaySend", Channel.SHELL, RecordType.DATA, b64encode(payload))

                async def refused() -> dict[str, object] | None:
                    entries = await harness_call(tab, "log")
                    return next(
                        (
                            e["message"]
                            for e in entries
                            if e.get("kind") == "control" and e["message"].get("type") == "refused"
                        ),
                        None,
                    )

                message = await wait_for(refused, timeout=15, what="the agent's Refused")
                assert message == {"type": "refused", "channel": Channel.SHELL, "reason": "not_granted"}
                assert agent.runner.shell is None
                await harness_call(tab, "relayStop", "done")
            await end.close()
        finally:
            await console.close()
            await tab.close()
    assert page_errors.errors == [], page_errors.errors


# --------------------------------------------------------------------------------------------- the wire


@pytest.fixture
async def harness() -> AsyncIterator[HarnessServer]:
    async with running_harness() as server:
        yield server


@pytest.fixture
async def hpage(
    context: BrowserContext, harness: HarnessServer, page_errors: PageErrors
) -> AsyncIterator[Page]:
    tab = page_errors.watch(await context.new_page())
    await open_harness(tab, harness)
    yield tab
    await harness_call(tab, "unmountViewer")
    await tab.close()
    assert page_errors.errors == [], f"uncaught errors in the page: {page_errors.errors}"


async def next_shell(peer: RelayPeer, skip: tuple[type, ...] = (shell.Resize,)) -> shell.ConsoleMessage:
    """The console's next message on the shell channel (other channels' records and ``skip`` types skipped:
    by default RESIZE, which the page sends whenever its layout settles)."""
    while True:
        record = await peer.receive_record()
        if record.type == RecordType.DATA and record.channel == Channel.SHELL:
            message = shell.decode_from_console(record.payload)
            if not isinstance(message, skip):
                return message


async def test_the_console_speaks_the_shell_wire_format(hpage: Page, harness: HarnessServer) -> None:
    """The Python agent's encoder against the console's decoder and back, byte for byte: OPEN, UTF-8 split
    across DATA messages, STDERR, ACK for what xterm consumed, RESIZE, SIGNAL, ERROR; then a malformed
    message ends the session."""
    peer, _, _ = await started_session(
        hpage, harness, Parties(), [Capability.VIEW, Capability.SHELL], viewer=True
    )
    await peer.send_control({"type": "granted", "capabilities": ["view", "shell"], "denied": []})
    await hpage.get_by_role("tab", name="Terminal").click()
    opened = await next_shell(peer)
    assert isinstance(opened, shell.Open)
    assert (opened.shell, opened.term, opened.command, opened.pipes) == (1, "xterm-256color", "", False)
    assert 20 <= opened.cols <= 400 and 5 <= opened.rows <= 200
    host = hpage.get_by_test_id("terminal")
    await expect(host).to_have_attribute("data-cols", str(opened.cols))

    async def send(message: shell.ShellMessage) -> None:
        await peer.send_record(Channel.SHELL, RecordType.DATA, shell.encode(message))

    await send(shell.Opened(1, 4242))
    status = hpage.get_by_test_id("terminal-status")
    await expect(status).to_have_text("Shell running on the device (process 4242).")
    # "é" split over two messages: xterm decodes UTF-8 across them; each is acknowledged once consumed
    await send(shell.Data(1, b"h\xc3"))
    await send(shell.Data(1, b"\xa9llo \xe2\x82\xac\r\n"))
    await send(shell.Stderr(1, b"\x1b[31mwarning\x1b[0m\r\n"))
    acks = [await next_shell(peer) for _ in range(3)]
    assert acks == [shell.Ack(1, 2), shell.Ack(1, 10), shell.Ack(1, 18)]
    rows = hpage.locator(".xterm-rows")
    await expect(rows).to_contain_text("héllo €")
    await expect(rows).to_contain_text("warning")

    # keys go out as DATA; the interrupt button as SIGNAL INT
    await hpage.locator(".xterm-helper-textarea").focus()
    await hpage.keyboard.type("ö")
    assert await next_shell(peer) == shell.Data(1, "ö".encode())
    await hpage.get_by_role("button", name="Interrupt (Ctrl-C)").click()
    assert await next_shell(peer) == shell.SendSignal(1, shell.Signal.INT)
    await hpage.get_by_label("Send a signal…").select_option(label="Terminate (TERM)")
    assert await next_shell(peer) == shell.SendSignal(1, shell.Signal.TERM)

    # copy: a double-click selects a word, the button puts it on the clipboard
    await hpage.context.grant_permissions(["clipboard-read", "clipboard-write"])
    box = await rows.get_by_text("warning").bounding_box()
    assert box is not None
    await hpage.mouse.dblclick(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await hpage.get_by_role("button", name="Copy selection").click()
    assert await hpage.evaluate("navigator.clipboard.readText()") == "warning"
    # paste: bracketed once the program asked for it (xterm's job), by button and by Ctrl+Shift+V
    await send(shell.Data(1, b"\x1b[?2004h"))
    assert await next_shell(peer) == shell.Ack(1, 8)
    await hpage.evaluate("navigator.clipboard.writeText('echo één\\nls')")
    await hpage.get_by_role("button", name="Paste").click()
    pasted = "\x1b[200~echo één\rls\x1b[201~".encode()
    assert await next_shell(peer) == shell.Data(1, pasted)
    await hpage.locator(".xterm-helper-textarea").focus()
    await hpage.keyboard.press("Control+Shift+V")
    assert await next_shell(peer) == shell.Data(1, pasted)

    # the panel's size follows the page; the PTY is told
    before = (await host.get_attribute("data-cols"), await host.get_attribute("data-rows"))
    await hpage.set_viewport_size({"width": 900, "height": 700})
    resize = await next_shell(peer, skip=())
    while not isinstance(resize, shell.Resize) or (str(resize.cols), str(resize.rows)) == before:
        resize = await next_shell(peer, skip=())
    assert resize.shell == 1
    await expect(host).to_have_attribute("data-cols", str(resize.cols))

    # an ERROR ends the shell; its message is text
    await send(shell.Error(1, "spawn_failed", "no <b>shell</b> here"))
    await expect(status).to_have_text(
        "The device could not run the shell (spawn_failed): no <b>shell</b> here"
    )
    await expect(hpage.get_by_role("button", name="New shell")).to_be_visible()

    # a new shell takes a new id; then a message with trailing bytes ends the session
    await hpage.get_by_role("button", name="New shell").click()
    again = await next_shell(peer)
    assert isinstance(again, shell.Open) and again.shell == 2
    await peer.send_record(Channel.SHELL, RecordType.DATA, shell.encode(shell.Opened(2, 7)) + b"\x00")
    await expect(
        hpage.get_by_text("The session was stopped because the device sent something invalid (malformed).")
    ).to_be_visible()
    await expect(status).to_have_text("Session ended")
    await peer.close()
