"""The attended quick-support session as two people do it, with nothing faked in between.

The technician: real Chromium signs in to the real server (in-process, TLS), opens Quick support, creates a
code, downloads the agent configuration. The user: the real ``steun-agent support --config FILE`` (a
subprocess) on a private Xvfb that also shows an xterm running ``cat > OUTFILE`` on a green background; its Tk
windows are driven with xdotool (type the code, Accept or Deny, Stop) and read through Tk's own ``send``.

Accept: the console paints the xterm's green, the text typed in the console (é ç ë € and Return) arrives in
OUTFILE, Stop in the agent's indicator ends the console's session within a second and the agent exits.
Deny: the console says the user did not allow it and nothing is painted.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.helpers import sign_in_as_admin
from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for

TOOLS = ("Xvfb", "xdotool", "xterm")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.display,
    pytest.mark.timeout(240),
]

SCREEN = (1280, 1024)
GREEN = "#00ff00"
#: The xterm: bottom left, clear of the consent window (centred) and of the indicator (top right).
XTERM_GEOMETRY = "60x20+20+560"
#: Remote pixels inside the xterm but below its first lines (where the typed text is echoed).
GREEN_AREA = (120, 720, 340, 800)
XTERM_CLICK = (200, 760)
TYPED = "Hallo é ç ë € 42"


# ----------------------------------------------------------------------------------------- the X display


@dataclass
class Display:
    name: str
    process: subprocess.Popen[bytes]
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.name, "LC_ALL": "C.UTF-8"}


def start_xvfb() -> Display:
    """A private X server on a display number it picks itself (-displayfd), so nothing else can clash."""
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write_end),
            "-screen",
            "0",
            f"{SCREEN[0]}x{SCREEN[1]}x24",
            "-nolisten",
            "tcp",
        ],
        pass_fds=[write_end],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    number = b""
    deadline = time.monotonic() + scaled(15)
    try:
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError("Xvfb did not report its display in time")
            chunk = os.read(read_end, 16)
            if not chunk:
                raise AssertionError(f"Xvfb exited ({process.poll()}) before reporting its display")
            number += chunk
    except BaseException:
        kill(process)
        raise
    finally:
        os.close(read_end)
    display = Display(f":{number.decode().strip()}", process)
    # Ask the server itself, as every X client will, before handing the display out.
    deadline = time.monotonic() + scaled(15)
    while subprocess.run(
        ["xdotool", "getdisplaygeometry"], env=display.env(), capture_output=True, check=False
    ).returncode:
        if process.poll() is not None or time.monotonic() > deadline:
            kill(process)
            raise AssertionError(f"Xvfb on {display.name} does not answer (exit code {process.poll()})")
        time.sleep(0.05)  # polling the X server's readiness, bounded by the deadline above
    return display


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM first (Xvfb then removes its lock and socket), SIGKILL when it does not go."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout=10)


@pytest.fixture
def display() -> Iterator[Display]:
    if MISSING:
        pytest.fail(
            f"missing on this machine: {', '.join(MISSING)} (scripts/bootstrap --tests installs them)"
        )
    server = start_xvfb()
    try:
        yield server
    finally:
        for child in reversed(server.children):
            kill(child)
        kill(server.process)


async def xdotool(display: Display, *args: str, timeout: float = 10.0) -> str:
    process = await asyncio.create_subprocess_exec(
        "xdotool", *args, env=display.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
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


async def find_window(display: Display, wm_class: str) -> str | None:
    process = await asyncio.create_subprocess_exec(
        "xdotool", "search", "--onlyvisible", "--class", wm_class,
        env=display.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await process.communicate()
    return out.split()[0].decode() if out.split() else None


async def window_of_class(display: Display, wm_class: str, timeout: float = 20.0) -> str:
    return await wait_for(
        lambda: find_window(display, wm_class),
        timeout=timeout,
        interval=0.1,
        what=f"a visible {wm_class} window",
    )


def start_xterm(display: Display, outfile: Path) -> subprocess.Popen[bytes]:
    log = outfile.with_suffix(".xterm.log")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["xterm", "-geometry", XTERM_GEOMETRY, "-bg", GREEN, "-fg", "black", "-u8",
             "-e", "sh", "-c", f"cat > '{outfile}'"],
            env=display.env(),
            stdout=sink,
            stderr=sink,
        )  # fmt: skip
    display.children.append(process)
    return process


async def xterm_window(display: Display, outfile: Path) -> str:
    """Start the xterm and wait for its window. Now and then xterm fails "Can't open display" on a display
    number that a torn-down Xvfb had just used, although the new server answers xdotool: that start is
    retried (at most twice more); any other exit fails the test at once."""
    log = outfile.with_suffix(".xterm.log")
    for _attempt in range(3):
        process = start_xterm(display, outfile)
        kind, window = await wait_for(
            lambda process=process: xterm_settled(display, process),
            timeout=30,
            interval=0.1,
            what="the xterm's window",
        )
        if kind == "window":
            return window
        text = log.read_text("utf-8", errors="replace")
        if "Can't open display" not in text:
            raise AssertionError(f"xterm exited ({process.returncode}): {text}")
        print(f"xterm could not open {display.name}; starting it again")
    raise AssertionError(f"xterm could not open {display.name} three times: {log.read_text('utf-8')}")


async def xterm_settled(display: Display, process: subprocess.Popen[bytes]) -> tuple[str, str] | None:
    """("window", id) once it is mapped, ("exited", "") if it ended first, None while neither."""
    if process.poll() is not None:
        return ("exited", "")
    window = await find_window(display, "XTerm")
    return ("window", window) if window else None


# --------------------------------------------------------------- reading the agent's Tk windows from outside

#: Asks the agent's Tk interpreter through Tk's ``send`` (X properties on the same display): what an
#: accessibility tool would read, without any hook inside the agent.
PROBE = r"""
import sys, tkinter
root = tkinter.Tk()
root.withdraw()
me = root.tk.call("tk", "appname")
for name in root.tk.splitlist(root.tk.call("winfo", "interps")):
    if name == me:
        continue
    try:
        print(root.tk.call("send", name, sys.argv[1]))
    except tkinter.TclError:
        continue
    sys.exit(0)
sys.exit(1)
"""


async def tk_send(display: Display, script: str) -> str | None:
    """The agent's answer to a Tcl command, or None when it has no Tk window (yet) or the command failed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, script,
        env=display.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), scaled(10))
    except TimeoutError:
        process.kill()
        await process.wait()
        return None
    return out.decode("utf-8").rstrip("\n") if process.returncode == 0 else None


async def widget_text(display: Display, path: str) -> str:
    text = await tk_send(display, f"{path} cget -text")
    assert text is not None, f"no widget {path} in the agent"
    return text


async def widget_shown(display: Display, path: str) -> bool:
    return await tk_send(display, f"expr {{[winfo exists {path}] && [winfo ismapped {path}]}}") == "1"


async def click_widget(display: Display, path: str) -> None:
    """Move the real pointer onto the widget and press button 1 (XTEST, the same events a mouse makes)."""
    geometry = await tk_send(
        display, f"list [winfo rootx {path}] [winfo rooty {path}] [winfo width {path}] [winfo height {path}]"
    )
    assert geometry is not None, f"no widget {path} in the agent"
    x, y, width, height = (int(v) for v in geometry.split())
    await xdotool(display, "mousemove", str(x + width // 2), str(y + height // 2), "click", "1")


# ------------------------------------------------------------------------------------ the user's agent


@dataclass
class Agent:
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""


StartAgent = Callable[["Display", Path], Awaitable[Agent]]


def agent_command() -> list[str]:
    script = Path(sys.executable).with_name("steun-agent")
    return [str(script)] if script.exists() else [sys.executable, "-m", "steun_agent"]


@pytest.fixture
async def start_agent(tmp_path: Path) -> AsyncIterator[StartAgent]:
    started: list[Agent] = []

    async def start(display: Display, config: Path) -> Agent:
        env = {k: v for k, v in display.env().items() if not k.startswith("STEUN_AGENT_")}
        env["STEUN_AGENT_STATE_DIR"] = str(tmp_path / "agent-state")
        log = tmp_path / "agent.log"
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                *agent_command(), "support", "--config", str(config), "--language", "en",
                stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=sink, env=env,
            )  # fmt: skip
        agent = Agent(process, log)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.process.returncode is None:
            agent.process.kill()
        await agent.process.wait()


# ---------------------------------------------------------------------------------------- the technician


async def technician_name(page: Page, server: RunningServer) -> str:
    """Who the console says is signed in (the name the signed offer carries)."""
    response = await page.request.get(server.url + "/api/auth/me")
    assert response.ok, await response.text()
    user = (await response.json())["user"]
    return str(user["display_name"] or user["username"])


async def create_code_and_download_config(
    page: Page, server: RunningServer, tmp_path: Path
) -> tuple[str, Path]:
    await sign_in_as_admin(page, server)
    await page.get_by_role("link", name="Quick support").click()
    await expect(page.get_by_role("heading", name="Quick support")).to_be_visible()
    link = page.get_by_role("link", name="Download agent configuration")
    async with page.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    assert download.suggested_filename == "steun-support.json"
    config = tmp_path / "steun-support.json"
    await download.save_as(config)
    await page.get_by_role("button", name="Create a support code").click()
    shown = page.get_by_test_id("support-code")
    await expect(shown).to_have_text(re.compile(r"^\d{3} \d{3} \d{3}$"))
    return (await shown.inner_text()).replace(" ", ""), config


async def user_types_the_code(display: Display, code: str) -> None:
    window = await window_of_class(display, "SteunSupportCode")
    await xdotool(display, "windowfocus", "--sync", window)
    await xdotool(display, "type", "--delay", "30", code)

    async def entered() -> bool:
        return (await tk_send(display, ".support_code.code get") or "").replace(" ", "") == code

    await wait_for(entered, timeout=10, what="all nine digits in the code entry")
    await xdotool(display, "key", "Return")


async def technician_requests_control(page: Page) -> str:
    """After the user entered the code: Request control; the six digits the console shows."""
    await expect(page.get_by_text(re.compile(r"has entered the code\."))).to_be_visible(
        timeout=scaled(30) * 1000
    )
    await page.get_by_role("button", name="Request control").click()
    await expect(page).to_have_url(re.compile(r"#/sessions/[A-Za-z0-9_-]+$"))
    sas = page.get_by_test_id("sas")
    await expect(sas).to_have_text(re.compile(r"^\d{3} \d{3}$"), timeout=scaled(30) * 1000)
    return await sas.inner_text()


async def consent_window_as_shown(display: Display, technician: str, sas: str) -> None:
    await window_of_class(display, "SteunConsent")
    await wait_for(lambda: widget_shown(display, ".consent.accept"), timeout=10, what="the consent buttons")
    assert technician in await widget_text(display, ".consent.who")
    assert await widget_text(display, ".consent.sas") == sas


async def accept_enabled(display: Display) -> bool:
    return await tk_send(display, ".consent.accept instate !disabled") == "1"


async def canvas_green_share(page: Page) -> float:
    """The share of sampled pixels in the xterm's area of the console's screen canvas that are green."""
    share: float = await page.evaluate(
        """([x0, y0, x1, y1]) => {
          const canvas = document.querySelector(".session-screen");
          if (!canvas || canvas.width < x1 || canvas.height < y1) return 0;
          const data = canvas.getContext("2d").getImageData(x0, y0, x1 - x0, y1 - y0).data;
          let green = 0, total = 0;
          for (let i = 0; i < data.length; i += 4 * 37) {
            total += 1;
            if (data[i] < 60 && data[i + 1] > 200 && data[i + 2] < 60) green += 1;
          }
          return total ? green / total : 0;
        }""",
        list(GREEN_AREA),
    )
    return share


async def click_remote(page: Page, x: int, y: int) -> None:
    """Click the console's view of the remote screen at remote pixel (x, y), whatever the fit scaling."""
    canvas = page.locator(".session-screen")
    box = await canvas.bounding_box()
    width = await canvas.evaluate("c => c.width")
    assert box is not None and width > 1
    scale = box["width"] / width
    await canvas.click(position={"x": x * scale, "y": y * scale})


async def type_in_console(page: Page, text: str) -> None:
    """ASCII through Playwright's keyboard; é ç ë € the way a Belgian/French keyboard sends them (CDP)."""
    cdp = await page.context.new_cdp_session(page)
    codes = {"é": "Digit2", "ç": "Digit9", "ë": "KeyE", "€": "KeyE"}
    try:
        for char in text:
            if char in codes:
                for kind in ("keyDown", "keyUp"):
                    event = {"type": kind, "key": char, "code": codes[char]}
                    if kind == "keyDown":
                        event |= {"text": char, "unmodifiedText": char}
                    await cdp.send("Input.dispatchKeyEvent", event)
            elif char == " ":
                await page.keyboard.press("Space")
            else:
                await page.keyboard.press(char)
        await page.keyboard.press("Enter")
    finally:
        await cdp.detach()


# ------------------------------------------------------------------------------------------------ tests


async def test_attended_session_accept_type_and_stop(
    page: Page, server: RunningServer, display: Display, start_agent: StartAgent, tmp_path: Path
) -> None:
    outfile = tmp_path / "typed.txt"
    await xterm_window(display, outfile)
    code, config = await create_code_and_download_config(page, server, tmp_path)
    technician = await technician_name(page, server)

    agent = await start_agent(display, config)
    await user_types_the_code(display, code)
    sas = await technician_requests_control(page)
    await expect(page.get_by_text("Waiting for the user to allow the session…")).to_be_visible()
    await consent_window_as_shown(display, technician, sas)

    await wait_for(
        lambda: accept_enabled(display),
        timeout=10,
        what="Accept to become clickable",
    )
    await click_widget(display, ".consent.accept")
    await expect(page.get_by_text("Live — end-to-end encrypted")).to_be_visible()

    # The console paints the user's real screen: the xterm's green.
    async def painted_green() -> bool:
        return await canvas_green_share(page) >= 0.9

    await wait_for(painted_green, timeout=20, interval=0.1, what="the xterm's green on the console's canvas")

    # Click into the xterm through the viewer (the pointer moves there: X gives it the keyboard), then type.
    await click_remote(page, *XTERM_CLICK)
    await expect(page.get_by_text("Press Ctrl+Alt+Shift to release it")).to_be_visible()
    await type_in_console(page, TYPED)
    arrived = await wait_for(
        lambda: outfile.exists() and outfile.read_bytes().endswith(b"\n") and outfile.read_text("utf-8"),
        timeout=20,
        what=f"the typed line in {outfile.name}",
    )
    assert arrived == TYPED + "\n"

    # The user presses Stop in the indicator: the console shows the end within a second.
    await window_of_class(display, "SteunIndicator")
    assert technician in await widget_text(display, ".indicator.connected")
    geometry = await tk_send(
        display, "list [winfo rootx .indicator.stop] [winfo rooty .indicator.stop] "
        "[winfo width .indicator.stop] [winfo height .indicator.stop]"
    )  # fmt: skip
    assert geometry is not None
    x, y, w, h = (int(v) for v in geometry.split())
    await xdotool(display, "mousemove", str(x + w // 2), str(y + h // 2))
    clicked = time.monotonic()
    await xdotool(display, "click", "1")
    await expect(page.get_by_text("The user ended the session.")).to_be_visible(timeout=scaled(5) * 1000)
    elapsed = time.monotonic() - clicked
    print(f"Stop in the indicator → console shows the end: {elapsed * 1000:.0f} ms")
    assert elapsed < scaled(1.0), f"the console showed the end {elapsed:.2f}s after Stop"
    async with asyncio.timeout(scaled(15)):
        code_exit = await agent.process.wait()
    assert code_exit == 0, agent.output()


async def test_attended_session_deny(
    page: Page, server: RunningServer, display: Display, start_agent: StartAgent, tmp_path: Path
) -> None:
    outfile = tmp_path / "typed.txt"
    await xterm_window(display, outfile)
    code, config = await create_code_and_download_config(page, server, tmp_path)
    technician = await technician_name(page, server)

    agent = await start_agent(display, config)
    await user_types_the_code(display, code)
    sas = await technician_requests_control(page)
    await consent_window_as_shown(display, technician, sas)
    await click_widget(display, ".consent.deny")
    await expect(
        page.get_by_text("Not allowed by the user: View the screen, Control mouse and keyboard")
    ).to_be_visible()
    ended = page.get_by_role("alert")
    await expect(ended).to_contain_text("The user ended the session.")
    await expect(ended).to_contain_text("Message from the device: denied")
    # Nothing of the user's screen reached the console.
    await expect(page.locator(".session-viewport")).to_be_hidden()
    assert await page.locator(".session-screen").evaluate("c => [c.width, c.height]") == [1, 1]
    assert await canvas_green_share(page) == 0
    async with asyncio.timeout(scaled(15)):
        code_exit = await agent.process.wait()
    assert code_exit == 0, agent.output()
