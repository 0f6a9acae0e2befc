"""The chat window: the real Tk UI under a private Xvfb, typed into and clicked with xdotool, over a real
ChatService whose transport is a list in the test; and the terminal's chat over a real pipe."""

from __future__ import annotations

import asyncio
import io
import os
import time
import tkinter as tk
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, Any

import pytest
from steun_agent.chat.phrases import phrase_text
from steun_agent.chat.service import MAX_TRANSCRIPT_MESSAGES, ChatService
from steun_agent.consent import Technician
from steun_agent.ui.base import IndicatorInfo
from steun_agent.ui.i18n import Texts
from steun_agent.ui.terminal import TerminalUI
from steun_agent.ui.tkui import TkChatWindow, TkUI
from steun_protocol.chat import ChatMessage, Message, Phrase, Read, Sender, Typing, decode_from_agent, encode
from steun_protocol.session import Capability

from tests.agent_ui.conftest import Xvfb, xdotool
from tests.support.waiting import scaled, wait_for

TECHNICIAN = "Jan de Vries"


class Wire:
    """The chat's transport: what the agent would seal and send to the console, kept in a list."""

    def __init__(self) -> None:
        self.sent: list[ChatMessage] = []

    async def send(self, data: bytes) -> None:
        self.sent.append(decode_from_agent(data))  # also proves every record is valid on the wire

    def messages(self) -> list[Message]:
        return [m for m in self.sent if isinstance(m, Message)]

    def find(self, predicate: Callable[[ChatMessage], bool]) -> ChatMessage | None:
        return next((m for m in self.sent if predicate(m)), None)


def from_technician(ident: int, text: str, phrase: int = 0) -> bytes:
    return encode(Message(ident, Sender.TECHNICIAN, text, time.time(), phrase))


@pytest.fixture
async def ui(xvfb: Xvfb) -> AsyncIterator[TkUI]:
    opened = await TkUI.open(Texts("en"), display=xvfb.display)
    try:
        yield opened
    finally:
        await opened.close()


# ------------------------------------------------------------------------------------------------ test hooks


async def transcript(ui: TkUI) -> str:
    """The transcript's text, read through Tk in its own thread."""
    return await ui.tk.run(lambda _root: str(ui.tk.registry["chat"].transcript_text()))


async def label(ui: TkUI, path: str) -> str:
    return str(await ui.tk.run(lambda root: root.nametowidget(path).cget("text")))


async def viewable(ui: TkUI, path: str) -> bool:
    return bool(await ui.tk.run(lambda root: root.nametowidget(path).winfo_viewable()))


async def exists(ui: TkUI, path: str) -> bool:
    return bool(int(await ui.tk.run(lambda root: root.tk.call("winfo", "exists", path))))


async def disabled(ui: TkUI, path: str) -> bool:
    def check(root: tk.Tk) -> bool:
        widget: Any = root.nametowidget(path)
        if isinstance(widget, tk.Text):
            return str(widget.cget("state")) == "disabled"
        return bool(widget.instate(["disabled"]))

    return await ui.tk.run(check)


async def click(xvfb: Xvfb, ui: TkUI, path: str) -> None:
    def where(root: tk.Tk) -> tuple[int, int]:
        widget = root.nametowidget(path)
        widget.update_idletasks()
        return (
            widget.winfo_rootx() + widget.winfo_width() // 2,
            widget.winfo_rooty() + widget.winfo_height() // 2,
        )

    x, y = await ui.tk.run(where)
    await xdotool(xvfb, "mousemove", str(x), str(y), "click", "1")


async def focus_chat(xvfb: Xvfb) -> str:
    """Find the chat window by its WM class and give it the keyboard, as a person clicking into it would."""
    window = (await xdotool(xvfb, "search", "--sync", "--onlyvisible", "--class", "SteunChat")).split()[0]
    await xdotool(xvfb, "windowfocus", "--sync", window)
    return window


async def open_chat(ui: TkUI, chat: ChatService) -> TkChatWindow:
    window = await ui.show_chat(chat, TECHNICIAN)
    await wait_for(lambda: viewable(ui, ".chat"), timeout=5, what="the chat window on screen")
    return window


# ------------------------------------------------------------------------------------------------ Tk


async def test_history_live_messages_and_a_typed_reply(xvfb: Xvfb, ui: TkUI) -> None:
    wire = Wire()
    chat = ChatService(wire.send, language="en")
    chat.feed(from_technician(1, "Goedemorgen, ik kijk even mee."))  # before the window: history
    window = await open_chat(ui, chat)
    x_window = await focus_chat(xvfb)
    assert (await xdotool(xvfb, "getwindowname", x_window)).strip() == f"Chat with {TECHNICIAN}"
    assert "Goedemorgen, ik kijk even mee." in await transcript(ui)
    assert f"{TECHNICIAN}  " in await transcript(ui)

    chat.feed(from_technician(2, "Can you open the printer settings?"))
    await wait_for(
        lambda: _contains(ui, "Can you open the printer settings?"), timeout=5, what="the live message"
    )
    # The window has the focus: what it shows is read, and the console hears so.
    await wait_for(lambda: wire.find(lambda m: m == Read(Sender.USER, 2)), timeout=5, what="the read mark")

    await xdotool(xvfb, "type", "--delay", "40", "Dag é ç ë €")
    await xdotool(xvfb, "key", "Return")
    sent = await wait_for(lambda: wire.messages(), timeout=5, what="the reply on the wire")
    assert sent[0].text == "Dag é ç ë €" and sent[0].sender is Sender.USER and sent[0].phrase == 0
    await wait_for(lambda: _contains(ui, "You  "), timeout=5, what="the reply in the transcript")
    assert (await transcript(ui)).rstrip().endswith("Dag é ç ë €")
    assert await ui.tk.run(lambda root: root.nametowidget(".chat.entry").get("1.0", "end-1c")) == ""
    # Typing announced itself and, once sent, stopped.
    assert wire.find(lambda m: m == Typing(Sender.USER, True))
    await wait_for(lambda: wire.find(lambda m: m == Typing(Sender.USER, False)), timeout=5, what="typing off")

    # Shift+Enter is a new line inside the message; Enter sends both lines as one.
    await xdotool(xvfb, "type", "--delay", "20", "line one")
    await xdotool(xvfb, "key", "shift+Return")
    await xdotool(xvfb, "type", "--delay", "20", "line two")
    await xdotool(xvfb, "key", "Return")
    await wait_for(lambda: len(wire.messages()) == 2, timeout=5, what="the two-line message")
    assert wire.messages()[1].text == "line one\nline two"
    await window.close()


async def _contains(ui: TkUI, text: str) -> bool:
    return text in await transcript(ui)


async def test_a_canned_phrase_is_one_click(xvfb: Xvfb, ui: TkUI) -> None:
    wire = Wire()
    chat = ChatService(wire.send, language="en")
    await open_chat(ui, chat)
    assert await label(ui, ".chat.phrases.phrase_100") == "Yes"
    await click(xvfb, ui, ".chat.phrases.phrase_105")
    sent = await wait_for(lambda: wire.messages(), timeout=5, what="the phrase on the wire")
    assert sent[0].phrase == Phrase.CALL_ME and sent[0].text == phrase_text(Phrase.CALL_ME, "en")
    await wait_for(lambda: _contains(ui, phrase_text(Phrase.CALL_ME, "en")), timeout=5, what="it shown")


async def test_technician_typing_shows_and_hides(ui: TkUI) -> None:
    chat = ChatService(Wire().send, language="en")
    await open_chat(ui, chat)
    assert await label(ui, ".chat.typing") == ""
    chat.feed(encode(Typing(Sender.TECHNICIAN, True)))
    await wait_for(
        lambda: _label_is(ui, ".chat.typing", f"{TECHNICIAN} is typing…"), timeout=5, what="typing shown"
    )
    chat.feed(encode(Typing(Sender.TECHNICIAN, False)))
    await wait_for(lambda: _label_is(ui, ".chat.typing", ""), timeout=5, what="typing hidden")
    chat.feed(encode(Typing(Sender.TECHNICIAN, True)))
    await wait_for(lambda: _label_is(ui, ".chat.typing", f"{TECHNICIAN} is typing…"), timeout=5, what="again")
    chat.feed(from_technician(1, "Done."))  # the message itself ends the typing
    await wait_for(lambda: _label_is(ui, ".chat.typing", ""), timeout=5, what="typing hidden by a message")


async def _label_is(ui: TkUI, path: str, expected: str) -> bool:
    return await label(ui, path) == expected


async def test_end_of_session_makes_it_read_only_and_keeps_the_transcript(xvfb: Xvfb, ui: TkUI) -> None:
    wire = Wire()
    chat = ChatService(wire.send, language="en")
    chat.feed(from_technician(1, "All done, goodbye."))
    await open_chat(ui, chat)
    await chat.close_all()
    closed = "The session has ended. You can still read this chat, but no longer write in it."
    await wait_for(lambda: _label_is(ui, ".chat.status", closed), timeout=5, what="the closed notice")
    for path in (".chat.entry", ".chat.send", ".chat.phrases.phrase_100"):
        assert await disabled(ui, path), path
    shown = await transcript(ui)
    assert "All done, goodbye." in shown and closed in shown
    before = list(wire.sent)
    await focus_chat(xvfb)
    await xdotool(xvfb, "type", "--delay", "20", "too late")
    await xdotool(xvfb, "key", "Return")
    await click(xvfb, ui, ".chat.phrases.phrase_100")
    # X events are handled in order: once Escape has hidden the window, the keys and the click before it
    # were handled too, and anything they had sent would be on its way.
    await focus_chat(xvfb)
    await xdotool(xvfb, "key", "Escape")
    await wait_for(lambda: _not(viewable(ui, ".chat")), timeout=5, what="the window hidden")
    for _ in range(3):
        await asyncio.sleep(0)
    assert wire.sent == before
    assert "too late" not in await transcript(ui)


async def test_hiding_counts_unread_and_the_indicator_reopens_it(xvfb: Xvfb, ui: TkUI) -> None:
    wire = Wire()
    chat = ChatService(wire.send, language="en")
    info = IndicatorInfo("Helpdesk", Technician("u-17", TECHNICIAN), (Capability.CHAT,), time.monotonic())
    stopped: list[bool] = []
    indicator = await ui.show_indicator(info, on_stop=lambda: stopped.append(True))
    assert not await exists(ui, ".indicator.chat") or not await viewable(ui, ".indicator.chat")
    window = await open_chat(ui, chat)
    await wait_for(lambda: viewable(ui, ".indicator.chat"), timeout=5, what="the Chat button")
    assert await label(ui, ".indicator.chat") == "Chat"

    # Escape hides the window, as does the window manager's close button; neither ends anything.
    await focus_chat(xvfb)
    await xdotool(xvfb, "key", "Escape")
    await wait_for(lambda: _not(viewable(ui, ".chat")), timeout=5, what="the window hidden")
    assert not stopped and not indicator.stopped

    chat.feed(from_technician(1, "Are you still there?"))
    chat.feed(from_technician(2, "Hello?"))
    await wait_for(
        lambda: _label_is(ui, ".indicator.chat", "Chat (2 new)"), timeout=5, what="the unread count"
    )
    assert not wire.find(lambda m: isinstance(m, Read))  # nobody has seen them yet

    await click(xvfb, ui, ".indicator.chat")
    await wait_for(lambda: viewable(ui, ".chat"), timeout=5, what="the window back")
    await wait_for(lambda: wire.find(lambda m: m == Read(Sender.USER, 2)), timeout=5, what="the read mark")
    await wait_for(lambda: _label_is(ui, ".indicator.chat", "Chat"), timeout=5, what="the count cleared")
    assert "Hello?" in await transcript(ui)

    # The window manager's close button (WM_DELETE_WINDOW) also only hides it; raise_() brings it back.
    await ui.tk.run(lambda root: root.tk.call(root.tk.call("wm", "protocol", ".chat", "WM_DELETE_WINDOW")))
    await wait_for(lambda: _not(viewable(ui, ".chat")), timeout=5, what="hidden by the close button")
    window.raise_()
    await wait_for(lambda: viewable(ui, ".chat"), timeout=5, what="raised by the runtime")

    await window.close()
    await window.close()  # idempotent
    assert not await exists(ui, ".chat")
    assert not await viewable(ui, ".indicator.chat")  # the button leaves with the chat
    assert not stopped
    await indicator.close()


async def _not(value: Any) -> bool:
    return not await value


async def test_text_is_only_ever_text(ui: TkUI) -> None:
    chat = ChatService(Wire().send, language="en")
    await open_chat(ui, chat)
    nasty = "[destroy .] {technician} $env(HOME) \\ <b>bold</b> \u202eevil\u202c end"
    chat.feed(from_technician(1, nasty))
    await wait_for(lambda: _contains(ui, "<b>bold</b>"), timeout=5, what="the message")
    shown = await transcript(ui)
    assert "[destroy .] {technician} $env(HOME) \\ <b>bold</b> evil end" in shown  # bidi override removed
    assert await exists(ui, ".chat")

    def tags_on_body(root: tk.Tk) -> tuple[str, ...]:
        text: Any = root.nametowidget(".chat.transcript")
        start = text.search("[destroy", "1.0")
        return tuple(str(t) for t in text.tag_names(start))

    assert await ui.tk.run(tags_on_body) == ()


async def test_the_window_keeps_only_as_many_messages_as_the_transcript(ui: TkUI) -> None:
    clock = [0.0]
    chat = ChatService(Wire().send, language="en", monotonic=lambda: clock[0])
    await open_chat(ui, chat)
    total = MAX_TRANSCRIPT_MESSAGES + 5
    for n in range(1, total + 1):
        clock[0] += 1.0  # slow enough for the flood guard
        chat.feed(from_technician(n, f"message #{n:04d}#"))
    await wait_for(lambda: _contains(ui, f"#{total:04d}#"), timeout=20, what="the last message")
    shown = await transcript(ui)
    assert "#0005#" not in shown and "#0006#" in shown
    assert shown.count("message #") == MAX_TRANSCRIPT_MESSAGES


@pytest.mark.parametrize(
    ("language", "title", "send", "you"),
    [
        ("nl", f"Chat met {TECHNICIAN}", "Verzenden", "U"),
        ("fr", f"Chat avec {TECHNICIAN}", "Envoyer", "Vous"),
    ],
)
async def test_the_window_speaks_dutch_and_french(
    xvfb: Xvfb, language: str, title: str, send: str, you: str
) -> None:
    ui = await TkUI.open(Texts(language), display=xvfb.display)
    try:
        wire = Wire()
        chat = ChatService(wire.send, language=language)
        # The console sent its phrase in English; the user reads it in their own language.
        chat.feed(from_technician(1, phrase_text(Phrase.ONE_MOMENT, "en"), Phrase.ONE_MOMENT))
        await open_chat(ui, chat)
        x_window = await focus_chat(xvfb)
        assert (await xdotool(xvfb, "getwindowname", x_window)).strip() == title
        assert await label(ui, ".chat.send") == send
        assert await label(ui, ".chat.phrases.phrase_100") == phrase_text(Phrase.YES, language)
        assert phrase_text(Phrase.ONE_MOMENT, language) in await transcript(ui)
        await click(xvfb, ui, ".chat.phrases.phrase_100")
        await wait_for(lambda: _contains(ui, f"{you}  "), timeout=5, what="the user's own line")
        assert wire.messages()[0].text == phrase_text(Phrase.YES, language)
    finally:
        await ui.close()


# ------------------------------------------------------------------------------------------------ terminal


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
    p.close_input()


async def test_terminal_prints_messages_and_sends_say_and_phrases(pipe: Pipe) -> None:
    out = io.StringIO()
    ui = TerminalUI(Texts("en"), input=pipe.reader, output=out)
    wire = Wire()
    chat = ChatService(wire.send, language="en")
    chat.feed(from_technician(1, "Hello from the helpdesk"))
    info = IndicatorInfo("Helpdesk", Technician("u-17", TECHNICIAN), (Capability.CHAT,), time.monotonic())
    stopped = asyncio.Event()
    await ui.show_indicator(info, on_stop=stopped.set)
    window = await ui.show_chat(chat, "Jan\x1b[31m de Vries")
    shown = out.getvalue()
    assert "Jan [31m de Vries: Hello from the helpdesk" in shown  # no escape reaches the terminal
    assert "/say" in shown and "/1 Yes" in shown

    # The wire refuses control characters; a bidi override passes it, but not the terminal's display.
    chat.feed(from_technician(2, "Two lines\n\u202eplease"))
    await wait_for(lambda: "please" in out.getvalue(), timeout=5, what="the live message")
    assert "Two lines\n    please" in out.getvalue()
    assert "\x1b" not in out.getvalue() and "\u202e" not in out.getvalue()
    await wait_for(lambda: wire.find(lambda m: m == Read(Sender.USER, 2)), timeout=5, what="the read mark")

    pipe.type("/say Dag é ç ë €\n")
    await wait_for(lambda: wire.messages(), timeout=5, what="the typed message")
    assert wire.messages()[0].text == "Dag é ç ë €"
    pipe.type("/2\n")
    await wait_for(lambda: len(wire.messages()) == 2, timeout=5, what="the phrase")
    assert wire.messages()[1].phrase == Phrase.NO
    pipe.type("just text\n")  # not a command: nothing sent
    pipe.type("/say\n")  # nothing to say: the help again
    await wait_for(lambda: out.getvalue().count("/say") >= 2, timeout=5, what="the help again")
    assert len(wire.messages()) == 2

    await chat.close_all()
    assert "The session has ended." in out.getvalue()
    # Lines are handled in order: once "stop" has stopped the session, the two before it were handled too.
    pipe.type("/say after the end\n/1\nstop\n")
    await asyncio.wait_for(stopped.wait(), scaled(5))
    await asyncio.sleep(0)
    assert len(wire.messages()) == 2
    await window.close()
    await window.close()


async def test_terminal_chat_and_stop_share_the_input(pipe: Pipe) -> None:
    out = io.StringIO()
    ui = TerminalUI(Texts("nl"), input=pipe.reader, output=out)
    wire = Wire()
    chat = ChatService(wire.send, language="nl")
    info = IndicatorInfo("Helpdesk", Technician("u-17", TECHNICIAN), (Capability.CHAT,), time.monotonic())
    stopped = asyncio.Event()
    indicator = await ui.show_indicator(info, on_stop=stopped.set)
    await ui.show_chat(chat, TECHNICIAN)
    assert f"Chat met {TECHNICIAN}" in out.getvalue() and "/1 Ja" in out.getvalue()
    pipe.type("/1\n")
    await wait_for(lambda: wire.messages(), timeout=5, what="the phrase")
    assert wire.messages()[0].text == "Ja" and not stopped.is_set()
    pipe.type("stop\n")
    await asyncio.wait_for(stopped.wait(), scaled(5))
    assert indicator.stopped and len(wire.messages()) == 1
