"""The real Tk windows under a private Xvfb, read through Tk and driven with xdotool like a person would."""

from __future__ import annotations

import asyncio
import time
import tkinter as tk
from collections.abc import AsyncIterator

import pytest
from steun_agent.consent import ConsentBroker, Status, Technician
from steun_agent.policy import Mode, Policy
from steun_agent.ui.base import IndicatorInfo
from steun_agent.ui.i18n import Texts
from steun_agent.ui.tkui import TkUI
from steun_protocol.session import Capability

from tests.agent_ui.conftest import Xvfb, subject, xdotool
from tests.support.waiting import scaled, wait_for

V, C, CB = Capability.VIEW, Capability.CONTROL, Capability.CLIPBOARD


@pytest.fixture
async def ui(xvfb: Xvfb) -> AsyncIterator[TkUI]:
    opened = await TkUI.open(Texts("en"), display=xvfb.display, accept_delay=0.3)
    try:
        yield opened
    finally:
        await opened.close()


async def text(ui: TkUI, path: str) -> str:
    return str(await ui.tk.run(lambda root: root.nametowidget(path).cget("text")))


async def exists(ui: TkUI, path: str) -> bool:
    return bool(int(await ui.tk.run(lambda root: root.tk.call("winfo", "exists", path))))


async def gone(ui: TkUI, path: str) -> bool:
    return not await exists(ui, path)


async def has_text(ui: TkUI, path: str, expected: str) -> bool:
    return await text(ui, path) == expected


async def enabled(ui: TkUI, path: str) -> bool:
    def check(root: tk.Tk) -> bool:
        widget = root.nametowidget(path)
        return bool(widget.winfo_viewable()) and not widget.instate(["disabled"])

    return await ui.tk.run(check)


async def center(ui: TkUI, path: str) -> tuple[int, int]:
    def where(root: tk.Tk) -> tuple[int, int]:
        widget = root.nametowidget(path)
        widget.update_idletasks()
        return (
            widget.winfo_rootx() + widget.winfo_width() // 2,
            widget.winfo_rooty() + widget.winfo_height() // 2,
        )

    return await ui.tk.run(where)


async def click(xvfb: Xvfb, ui: TkUI, path: str) -> None:
    """Move the real pointer onto the widget and press button 1 (XTEST: the same events a mouse makes)."""
    x, y = await center(ui, path)
    await xdotool(xvfb, "mousemove", str(x), str(y), "click", "1")


async def window_named(xvfb: Xvfb, wm_class: str) -> str:
    """The X window id of our toplevel, found by its stable WM class, the way a test robot would."""
    out = await xdotool(xvfb, "search", "--sync", "--class", wm_class)
    return out.split()[0]


def broker(ui: TkUI, *, timeout: float = 60.0, caps: tuple[Capability, ...] = (V, C, CB)) -> ConsentBroker:
    return ConsentBroker(
        subject(caps), policy=Policy(prompt_timeout=timeout), mode=Mode.ATTENDED, prompter=ui, local_log=None
    )


async def wait_prompt(ui: TkUI) -> None:
    await wait_for(lambda: exists(ui, ".consent"), timeout=10, what="the consent window")


# ------------------------------------------------------------------------------------------------ consent


async def test_consent_window_shows_who_what_and_the_sas(xvfb: Xvfb, ui: TkUI) -> None:
    b = broker(ui)
    start = asyncio.create_task(b.start())
    await wait_prompt(ui)
    window = await window_named(xvfb, "SteunConsent")
    assert (await xdotool(xvfb, "getwindowname", window)).strip() == "Steun — consent"
    assert await text(ui, ".consent.who") == (
        "Jan de Vries of Helpdesk Gemeente Voorbeeld asks for access to this computer."
    )
    assert await text(ui, ".consent.technician_id") == "Technician ID: u-17"
    assert await text(ui, ".consent.cap_view") == "   •  See your screen"
    assert await text(ui, ".consent.cap_control") == "   •  Use your mouse and keyboard"
    assert "clipboard" in await text(ui, ".consent.cap_clipboard")
    assert await text(ui, ".consent.reason") == "Reason: Printer does not print (ticket 4711)"
    assert await text(ui, ".consent.sas") == "048 213"
    assert "reads you the same digits" in await text(ui, ".consent.sas_check")
    assert (await text(ui, ".consent.countdown")).startswith("Denied automatically in ")
    assert await ui.tk.run(lambda root: str(root.nametowidget(".consent.deny").cget("default"))) == "active"
    await click(xvfb, ui, ".consent.deny")
    result = await asyncio.wait_for(start, scaled(10))
    assert result.status is Status.DENIED and result.reason == "user"
    await wait_for(lambda: gone(ui, ".consent"), timeout=5, what="the window to close")


async def test_clicking_accept_grants(xvfb: Xvfb, ui: TkUI) -> None:
    b = broker(ui)
    start = asyncio.create_task(b.start())
    await wait_prompt(ui)
    await wait_for(lambda: enabled(ui, ".consent.accept"), timeout=5, what="Accept to become clickable")
    await click(xvfb, ui, ".consent.accept")
    result = await asyncio.wait_for(start, scaled(10))
    assert result.status is Status.GRANTED and result.granted == {V, C, CB}
    assert b.grants.allows(C)
    await wait_for(lambda: gone(ui, ".consent"), timeout=5, what="the window to close")


async def test_accept_cannot_be_clicked_the_moment_the_prompt_appears(xvfb: Xvfb) -> None:
    slow = await TkUI.open(Texts("en"), display=xvfb.display, accept_delay=60)
    try:
        start = asyncio.create_task(broker(slow).start())
        await wait_prompt(slow)
        await click(xvfb, slow, ".consent.accept")  # a click meant for something else
        await click(xvfb, slow, ".consent.deny")
        # X delivers events in order: the Accept click was handled before Deny and did nothing.
        result = await asyncio.wait_for(start, scaled(10))
        assert result.status is Status.DENIED
    finally:
        await slow.close()


async def test_return_key_denies_because_deny_is_the_default(xvfb: Xvfb, ui: TkUI) -> None:
    start = asyncio.create_task(broker(ui).start())
    await wait_prompt(ui)
    await wait_for(lambda: enabled(ui, ".consent.accept"), timeout=5, what="Accept to become clickable")
    window = await window_named(xvfb, "SteunConsent")
    await xdotool(xvfb, "windowfocus", "--sync", window)
    await xdotool(xvfb, "key", "Return")
    result = await asyncio.wait_for(start, scaled(10))
    assert result.status is Status.DENIED and result.reason == "user"


async def test_no_click_denies_after_the_policy_timeout(ui: TkUI) -> None:
    b = broker(ui, timeout=2.0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    start = asyncio.create_task(b.start())
    await wait_prompt(ui)
    result = await asyncio.wait_for(start, scaled(10))
    assert result.status is Status.EXPIRED and not b.grants.granted
    assert 1.9 <= loop.time() - began < scaled(5)
    await wait_for(lambda: gone(ui, ".consent"), timeout=5, what="the window to close")


async def test_window_speaks_dutch(xvfb: Xvfb) -> None:
    dutch = await TkUI.open(Texts("nl"), display=xvfb.display, accept_delay=0.3)
    try:
        start = asyncio.create_task(broker(dutch, caps=(V,)).start())
        await wait_prompt(dutch)
        window = await window_named(xvfb, "SteunConsent")
        assert (await xdotool(xvfb, "getwindowname", window)).strip() == "Steun — toestemming"
        assert await text(dutch, ".consent.cap_view") == "   •  Uw scherm bekijken"
        assert await text(dutch, ".consent.accept") == "Toestaan"
        await click(xvfb, dutch, ".consent.deny")
        assert (await asyncio.wait_for(start, scaled(10))).status is Status.DENIED
    finally:
        await dutch.close()


# ------------------------------------------------------------------------------------------------ indicator


async def test_indicator_stop_reaches_the_runtime_within_a_second(xvfb: Xvfb, ui: TkUI) -> None:
    b = broker(ui, caps=(V, C))
    start = asyncio.create_task(b.start())
    await wait_prompt(ui)
    await wait_for(lambda: enabled(ui, ".consent.accept"), timeout=5, what="Accept to become clickable")
    await click(xvfb, ui, ".consent.accept")
    assert (await asyncio.wait_for(start, scaled(10))).ok

    loop = asyncio.get_running_loop()
    stopped_at: list[float] = []
    info = IndicatorInfo(b.subject.org_name, b.subject.technician, (V, C), time.monotonic())
    indicator = await ui.show_indicator(info, on_stop=lambda: stopped_at.append(loop.time()), revoke=b.revoke)
    await window_named(xvfb, "SteunIndicator")
    assert await text(ui, ".indicator.connected") == "Connected: Jan de Vries (Helpdesk Gemeente Voorbeeld)"
    assert await text(ui, ".indicator.capabilities") == "Allowed: screen, mouse and keyboard"
    assert (await text(ui, ".indicator.elapsed")).startswith("Time: 0:00:0")
    indicator.update((V,))
    await wait_for(
        lambda: has_text(ui, ".indicator.capabilities", "Allowed: screen"),
        timeout=5,
        what="the indicator update",
    )
    x, y = await center(ui, ".indicator.stop")
    clicked = loop.time()
    await xdotool(xvfb, "mousemove", str(x), str(y), "click", "1")
    await asyncio.wait_for(indicator.wait_stopped(), scaled(1))
    assert stopped_at and stopped_at[0] - clicked < 1.0
    assert not b.grants.allows(V) and not b.grants.allows(C)  # revoked in the Tk thread, at the click
    events = await b.stop(by="user")
    assert [e.event for e in events] == ["session.stop"]
    await wait_for(lambda: gone(ui, ".indicator"), timeout=5, what="the indicator to go")


async def test_indicator_close_from_the_runtime(ui: TkUI) -> None:
    info = IndicatorInfo("Org", Technician("u", "T"), (V,), time.monotonic())
    indicator = await ui.show_indicator(info, on_stop=lambda: None)
    assert await exists(ui, ".indicator")
    await indicator.close()
    assert not await exists(ui, ".indicator") and not indicator.stopped


# ------------------------------------------------------------------------------------------------ code


async def test_support_code_is_typed_grouped_and_returned(xvfb: Xvfb, ui: TkUI) -> None:
    entry = asyncio.create_task(ui.ask_support_code())
    window = await window_named(xvfb, "SteunSupportCode")
    assert (await xdotool(xvfb, "getwindowname", window)).strip() == "Steun — support code"
    assert not await enabled(ui, ".support_code.connect")
    await xdotool(xvfb, "windowfocus", "--sync", window)
    await xdotool(xvfb, "type", "--delay", "20", "12345x6789")
    await wait_for(
        lambda: ui.tk.run(lambda root: root.nametowidget(".support_code.code").get() == "123 456 789"),
        timeout=5,
        what="the grouped code",
    )
    assert await enabled(ui, ".support_code.connect")
    await click(xvfb, ui, ".support_code.connect")
    assert await asyncio.wait_for(entry, scaled(10)) == "123456789"


async def test_support_code_cancel(xvfb: Xvfb, ui: TkUI) -> None:
    entry = asyncio.create_task(ui.ask_support_code(error="This code has expired."))
    await window_named(xvfb, "SteunSupportCode")
    assert await text(ui, ".support_code.error") == "This code has expired."
    await click(xvfb, ui, ".support_code.cancel")
    assert await asyncio.wait_for(entry, scaled(10)) is None


async def test_a_second_request_never_replaces_the_open_prompt(xvfb: Xvfb, ui: TkUI) -> None:
    first = broker(ui)
    start = asyncio.create_task(first.start())
    await wait_prompt(ui)
    other = ConsentBroker(
        subject((V,), sas="111111"), policy=Policy(), mode=Mode.ATTENDED, prompter=ui, local_log=None
    )
    result = await asyncio.wait_for(other.start(), scaled(5))
    assert result.status is Status.DENIED
    assert await text(ui, ".consent.sas") == "048 213"  # still the first request on screen
    await click(xvfb, ui, ".consent.deny")
    assert (await asyncio.wait_for(start, scaled(10))).status is Status.DENIED
