"""The agent UI without a display: the same information and questions on a terminal (or a pipe).

One daemon thread reads input lines and hands them to the event loop, so a question can time out without a
blocked read left behind, and the loop never waits on the terminal. Lines typed *before* a question are
thrown away when it is asked: a "y" meant for something else must never answer a consent prompt.

While a session runs, lines that answer no question go to the indicator ("stop") and to the chat
("/say text", "/1" … for a canned phrase); the technician's chat messages are printed as they arrive.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import IO

from steun_protocol.chat import Phrase, Sender
from steun_protocol.session import Capability

from ..chat.service import ChatEvent, ChatLine, ChatService
from ..consent import Answer, ConsentPrompt
from .base import (
    NAME_LIMIT,
    REASON_LIMIT,
    IndicatorInfo,
    StopCallback,
    chat_text,
    display_text,
    group_digits,
    parse_support_code,
)
from .i18n import Texts

log = logging.getLogger(__name__)

STOP_WORDS = frozenset({"stop", "s", "stoppen", "arrêter", "arreter", "quit", "q"})
MAX_LINE = 1024


class _LineReader:
    """Reads lines in a thread and delivers each on the loop: to the question waiting for it if there is
    one, else to the idle handlers (the indicator's "stop", the chat's "/say"), else to a small buffer."""

    def __init__(self, stream: IO[str], loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop
        self._waiter: asyncio.Future[str | None] | None = None
        self._buffer: collections.deque[str] = collections.deque(maxlen=16)
        self.eof = False
        self.idle_handlers: list[Callable[[str], None]] = []
        self._thread = threading.Thread(target=self._run, name="steun-terminal-input", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                line = self._stream.readline(MAX_LINE)
            except (OSError, ValueError):
                line = ""
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening any more
                self._loop.call_soon_threadsafe(self._deliver, line.rstrip("\r\n") if line else None)
            if not line:
                return

    def _deliver(self, line: str | None) -> None:
        waiter = self._waiter
        if line is None:
            self.eof = True
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if waiter is not None and not waiter.done():
            waiter.set_result(line)
            self._waiter = None
        elif self.idle_handlers:
            for handler in list(self.idle_handlers):
                handler(line)
        else:
            self._buffer.append(line)

    def discard_typed_ahead(self) -> None:
        self._buffer.clear()
        with contextlib.suppress(Exception):
            import termios

            if self._stream.isatty():
                termios.tcflush(self._stream.fileno(), termios.TCIFLUSH)

    async def readline(self) -> str | None:
        """The next line, or None at the end of input (and every time after)."""
        if self._buffer:
            return self._buffer.popleft()
        if self.eof:
            return None
        waiter: asyncio.Future[str | None] = self._loop.create_future()
        self._waiter = waiter
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None


class TerminalUI:
    """Implements ``steun_agent.ui.base.AgentUI`` (and ``consent.Prompter``) on a text stream pair."""

    def __init__(self, texts: Texts, *, input: IO[str] | None = None, output: IO[str] | None = None) -> None:
        self.texts = texts
        self.language = texts.language
        self._input = input if input is not None else sys.stdin
        self._output = output if output is not None else sys.stdout
        self._reader: _LineReader | None = None
        self._asking = False

    def _lines(self) -> _LineReader:
        if self._reader is None:
            self._reader = _LineReader(self._input, asyncio.get_running_loop())
        return self._reader

    def _say(self, text: str = "", end: str = "\n") -> None:
        self._output.write(text + end)
        self._output.flush()

    async def ask_support_code(self, error: str | None = None) -> str | None:
        t = self.texts
        reader = self._lines()
        self._say(t("code.heading"))
        self._say(t("code.instructions"))
        if error:
            self._say(display_text(error, REASON_LIMIT))
        for _attempt in range(5):
            self._say(t("code.terminal_prompt"), end="")
            line = await reader.readline()
            if line is None or not line.strip():
                return None
            code = parse_support_code(line)
            if code is not None:
                return code
            self._say(t("code.invalid"))
        return None

    async def ask_consent(self, prompt: ConsentPrompt) -> Answer:
        if self._asking:  # one question at a time; a second one is a no
            return Answer.DENY
        self._asking = True
        try:
            return await self._ask_consent(prompt)
        finally:
            self._asking = False

    async def _ask_consent(self, prompt: ConsentPrompt) -> Answer:
        t = self.texts
        org = display_text(prompt.org_name, NAME_LIMIT)
        reader = self._lines()
        reader.discard_typed_ahead()
        lines = [
            "",
            "=" * 60,
            t("consent.heading"),
            t("consent.who", technician=display_text(prompt.technician.name, NAME_LIMIT), org=org),
            t("consent.technician_id", id=display_text(prompt.technician.user_id, NAME_LIMIT)),
            t("consent.signed", org=org),
            t("consent.asks" if prompt.first else "consent.asks_more"),
            *(f"   * {t.capability(c)}" for c in prompt.capabilities),
        ]
        if prompt.already_granted and not prompt.first:
            lines.append(t("consent.already", list=t.short(prompt.already_granted)))
        if prompt.reason.strip():
            lines.append(t("consent.reason", reason=display_text(prompt.reason, REASON_LIMIT)))
        if prompt.forbidden:
            lines.append(t("consent.forbidden", list=t.short(prompt.forbidden)))
        lines += [
            "",
            f"{t('consent.sas_label')}:   {group_digits(prompt.sas)}",
            t("consent.sas_check"),
            t("consent.countdown", seconds=int(prompt.timeout)),
            "=" * 60,
        ]
        self._say("\n".join(lines))
        self._say(t("consent.terminal_question"), end="")
        try:
            line = await reader.readline()
        except asyncio.CancelledError:  # the time ran out, or the session was stopped
            self._say("")
            self._say(t("consent.denied"))
            raise
        accepted = line is not None and line.strip().lower() in t.yes_words()
        self._say(t("consent.accepted") if accepted else t("consent.denied"))
        return Answer.ACCEPT if accepted else Answer.DENY

    async def show_indicator(
        self, info: IndicatorInfo, *, on_stop: StopCallback, revoke: StopCallback | None = None
    ) -> TerminalIndicator:
        t = self.texts
        who = t(
            "indicator.connected",
            technician=display_text(info.technician.name, NAME_LIMIT),
            org=display_text(info.org_name, NAME_LIMIT),
        )
        self._say(who)
        self._say(t("indicator.can", list=t.short(info.capabilities)))
        self._say(t("indicator.terminal"))
        indicator = TerminalIndicator(self, on_stop, revoke)
        indicator.start(self._lines())
        return indicator

    async def show_chat(self, chat: ChatService, technician: str) -> TerminalChat:
        window = TerminalChat(self, chat, display_text(technician, NAME_LIMIT))
        window.start(self._lines())
        return window

    async def notify(self, message: str) -> None:
        self._say(message)

    async def close(self) -> None:
        """Nothing to tear down: the input thread is a daemon blocked on a read; it ends with the process."""


class TerminalIndicator:
    """The terminal's Stop button: "stop" and Enter (lines that answer a question never reach it)."""

    def __init__(self, ui: TerminalUI, on_stop: StopCallback, revoke: StopCallback | None) -> None:
        self._ui = ui
        self._on_stop = on_stop
        self._revoke = revoke
        self._stopped = asyncio.Event()
        self._reader: _LineReader | None = None

    def start(self, reader: _LineReader) -> None:
        reader.discard_typed_ahead()
        reader.idle_handlers.append(self._line)
        self._reader = reader

    def _line(self, line: str) -> None:
        if self._stopped.is_set() or line.strip().lower() not in STOP_WORDS:
            return
        if self._revoke is not None:
            self._revoke()
        self._stopped.set()
        self._detach()
        self._ui._say(self._ui.texts("indicator.stopped"))
        self._on_stop()

    def _detach(self) -> None:
        if self._reader is not None and self._line in self._reader.idle_handlers:
            self._reader.idle_handlers.remove(self._line)
        self._reader = None

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def update(self, capabilities: tuple[Capability, ...]) -> None:
        self._ui._say(self._ui.texts("indicator.can", list=self._ui.texts.short(capabilities)))

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def close(self) -> None:
        self._detach()


class TerminalChat:
    """The chat on a terminal: the technician's messages printed as they arrive, ``/say text`` to answer,
    ``/1``, ``/2`` … for the canned phrases listed when the chat opens. Implements ``base.ChatWindow``."""

    def __init__(self, ui: TerminalUI, chat: ChatService, technician: str) -> None:
        self._ui = ui
        self._chat = chat
        self._technician = technician
        self._phrases: list[Phrase] = list(chat.phrases())
        self._unsubscribe: Callable[[], None] | None = None
        self._reader: _LineReader | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def start(self, reader: _LineReader) -> None:
        for line in self._chat.lines():
            self._print(line)
        self._help()
        self._unsubscribe = self._chat.subscribe(self._event)
        reader.idle_handlers.append(self._line)
        self._reader = reader

    def _help(self) -> None:
        t = self._ui.texts
        phrases = self._chat.phrases()
        listed = ", ".join(f"/{n} {phrases[p]}" for n, p in enumerate(self._phrases, start=1))
        self._ui._say(t("chat.terminal_help", technician=self._technician, phrases=listed))

    def _print(self, line: ChatLine) -> None:
        who = self._technician if line.sender is Sender.TECHNICIAN else self._ui.texts("chat.you")
        when = time.strftime("%H:%M", time.localtime(line.received))
        body = (chat_text(line.shown or line.text) or "…").replace("\n", "\n    ")
        self._ui._say(f"[{when}] {who}: {body}")

    def _event(self, event: ChatEvent) -> None:  # event loop
        if event.kind == "message" and event.line is not None:
            self._print(event.line)
            if event.line.sender is Sender.TECHNICIAN:
                self._spawn(self._chat.mark_read())  # printed on the user's terminal: shown
        elif event.kind == "closed":
            self._ui._say(self._ui.texts("chat.closed"))
            self._end()

    def _line(self, line: str) -> None:
        if self.closed or not line.startswith("/"):
            return
        command, _, rest = line[1:].partition(" ")
        if command.lower() == "say" and rest.strip():
            self._spawn(self._chat.say(rest))
        elif command.isdecimal() and 1 <= int(command) <= len(self._phrases) and not rest.strip():
            self._spawn(self._chat.say_phrase(self._phrases[int(command) - 1]))
        elif command.lower() not in ("stop", ""):
            self._help()

    def _spawn(self, action: Awaitable[object]) -> None:
        async def run() -> None:
            try:
                await action
            except Exception:
                log.exception("chat: sending failed")
                self._ui._say(self._ui.texts("chat.not_sent"))

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _end(self) -> None:
        self.closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._reader is not None and self._line in self._reader.idle_handlers:
            self._reader.idle_handlers.remove(self._line)
        self._reader = None

    def raise_(self) -> None:
        """A terminal has no front: show how to answer again."""
        if not self.closed:
            self._help()

    async def close(self) -> None:
        self._end()
