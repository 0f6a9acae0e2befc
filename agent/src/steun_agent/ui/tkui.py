"""The graphical agent UI: async methods on the event loop, windows in the Tk thread (see ``tkbridge``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import tkinter as tk
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from steun_protocol.chat import Phrase
from steun_protocol.session import Capability

from ..chat.service import ChatEvent, ChatLine, ChatService
from ..consent import Answer, ConsentPrompt
from .base import NAME_LIMIT, IndicatorInfo, StopCallback, UIUnavailable, display_text
from .i18n import Texts
from .tkbridge import TkThread, call_soon_threadsafe, display_available
from .tkchat import ChatWindowTk
from .tkwindows import ConsentWindow, IndicatorWindow, NoticeWindow, SupportCodeWindow

log = logging.getLogger(__name__)

T = TypeVar("T")
_chat_ids = itertools.count(1)


def _set(future: asyncio.Future[Any], value: object) -> None:
    if not future.done():
        future.set_result(value)


class TkUI:
    """Implements ``steun_agent.ui.base.AgentUI`` (and so ``consent.Prompter``) with Tk windows."""

    def __init__(self, texts: Texts, tk_thread: TkThread, *, accept_delay: float = 1.0) -> None:
        self.texts = texts
        self.language = texts.language
        self.tk = tk_thread
        self.accept_delay = accept_delay
        self._asking = False

    @classmethod
    async def open(
        cls,
        texts: Texts,
        *,
        display: str | None = None,
        accept_delay: float = 1.0,
        start_timeout: float = 10.0,
    ) -> TkUI:
        """Start Tk on ``display`` (default: ``$DISPLAY``); :class:`UIUnavailable` when there is none."""
        if display is None and not display_available():
            raise UIUnavailable("no graphical display (DISPLAY and WAYLAND_DISPLAY are not set)")
        thread = TkThread(display=display)
        await thread.start(start_timeout)
        return cls(texts, thread, accept_delay=accept_delay)

    # ----------------------------------------------------------------------------------------- support code

    async def ask_support_code(self, error: str | None = None) -> str | None:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[str | None] = loop.create_future()

        def done(code: str | None) -> None:  # Tk thread
            self.tk.registry.pop(SupportCodeWindow.NAME, None)
            call_soon_threadsafe(loop, _set, result, code)

        def open_window(root: tk.Tk) -> None:
            self._replace(SupportCodeWindow.NAME, SupportCodeWindow(root, self.texts, done, error=error))

        await self.tk.run(open_window)
        try:
            return await result
        finally:
            self._close_window(SupportCodeWindow.NAME)

    # ----------------------------------------------------------------------------------------- consent

    async def ask_consent(self, prompt: ConsentPrompt) -> Answer:
        if self._asking:
            # One question on screen at a time: a second one must never replace the first under the
            # user's cursor (a click meant for one request would answer another).
            return Answer.DENY
        self._asking = True
        try:
            return await self._ask_consent(prompt)
        finally:
            self._asking = False

    async def _ask_consent(self, prompt: ConsentPrompt) -> Answer:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Answer] = loop.create_future()

        def answered(answer: Answer) -> None:  # Tk thread
            self.tk.registry.pop(ConsentWindow.NAME, None)
            call_soon_threadsafe(loop, _set, result, answer)

        def open_window(root: tk.Tk) -> None:
            window = ConsentWindow(root, prompt, self.texts, answered, accept_delay=self.accept_delay)
            self._replace(ConsentWindow.NAME, window)

        try:
            await self.tk.run(open_window)
            return await result
        finally:
            # Cancelled (timeout, Stop) or answered: the question leaves the screen either way.
            self._close_window(ConsentWindow.NAME)

    # ----------------------------------------------------------------------------------------- indicator

    async def show_indicator(
        self, info: IndicatorInfo, *, on_stop: StopCallback, revoke: StopCallback | None = None
    ) -> TkIndicator:
        loop = asyncio.get_running_loop()
        indicator = TkIndicator(self.tk, loop)

        def stopped() -> None:  # Tk thread: revoke first, right here, then tell the loop
            self.tk.registry.pop(IndicatorWindow.NAME, None)
            if revoke is not None:
                try:
                    revoke()
                except Exception:
                    log.exception("revoking the grants from the Stop button failed")
            call_soon_threadsafe(loop, indicator._stopped_by_user, on_stop)

        def open_window(root: tk.Tk) -> None:
            window = IndicatorWindow(root, info, self.texts, stopped)
            self._replace(IndicatorWindow.NAME, window)
            chat = self.tk.registry.get(ChatWindowTk.NAME)
            if chat is not None:
                window.show_chat_button(self._open_chat, chat.unread)

        await self.tk.run(open_window)
        return indicator

    # ----------------------------------------------------------------------------------------- chat

    async def show_chat(self, chat: ChatService, technician: str) -> TkChatWindow:
        handle = TkChatWindow(self, chat, asyncio.get_running_loop())
        name = display_text(technician, NAME_LIMIT)
        lines, phrases = chat.lines(), dict(chat.phrases())

        def open_window(root: tk.Tk) -> None:
            window = ChatWindowTk(
                root, self.texts, name, lines, phrases, handle, self._chat_unread, owner=handle.ident
            )
            self._replace(ChatWindowTk.NAME, window)
            indicator = self.tk.registry.get(IndicatorWindow.NAME)
            if indicator is not None:
                indicator.show_chat_button(self._open_chat, window.unread)

        opened = self.tk.submit(open_window)
        # Subscribed in the same turn as the history was read and the window queued: no message is lost
        # between the two or shown twice, and the Tk thread handles every event after the window exists.
        handle._subscribe()
        try:
            await asyncio.wrap_future(opened)
        except BaseException:
            await handle.close()
            raise
        return handle

    def _chat_unread(self, count: int) -> None:  # Tk thread
        indicator = self.tk.registry.get(IndicatorWindow.NAME)
        if indicator is not None:
            indicator.set_chat_unread(count)

    def _open_chat(self) -> None:  # Tk thread: the indicator's Chat button
        window = self.tk.registry.get(ChatWindowTk.NAME)
        if window is not None:
            window.show()

    def _close_chat(self, owner: int) -> None:  # Tk thread
        window = self.tk.registry.get(ChatWindowTk.NAME)
        if window is None or window.owner != owner:
            return
        del self.tk.registry[ChatWindowTk.NAME]
        window.destroy()
        indicator = self.tk.registry.get(IndicatorWindow.NAME)
        if indicator is not None:
            indicator.hide_chat_button()

    async def notify(self, message: str) -> None:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            self.tk.registry.pop(NoticeWindow.NAME, None)
            call_soon_threadsafe(loop, _set, result, None)

        def open_window(root: tk.Tk) -> None:
            self._replace(NoticeWindow.NAME, NoticeWindow(root, "Steun", message, done))

        await self.tk.run(open_window)
        try:
            await result
        finally:
            self._close_window(NoticeWindow.NAME)

    async def close(self) -> None:
        await self.tk.close()

    # ----------------------------------------------------------------------------------------- helpers

    def _replace(self, name: str, window: Any) -> None:  # Tk thread
        old = self.tk.registry.get(name)
        if old is not None and old is not window:
            old.destroy()
        self.tk.registry[name] = window

    def _close_window(self, name: str) -> None:
        """From the loop, without waiting: the Tk thread destroys the window on its next turn."""

        def close(_root: tk.Tk) -> None:
            window = self.tk.registry.pop(name, None)
            if window is not None:
                window.destroy()

        self.tk.submit(close)


class TkIndicator:
    """The loop's handle on the indicator window (it holds no Tk object)."""

    def __init__(self, tk_thread: TkThread, loop: asyncio.AbstractEventLoop) -> None:
        self._tk = tk_thread
        self._loop = loop
        self._stopped = asyncio.Event()
        self.stopped_at: float | None = None

    def _stopped_by_user(self, on_stop: StopCallback) -> None:  # event loop
        self.stopped_at = self._loop.time()
        self._stopped.set()
        on_stop()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def update(self, capabilities: tuple[Capability, ...]) -> None:
        def change(_root: tk.Tk) -> None:
            window = self._tk.registry.get(IndicatorWindow.NAME)
            if window is not None:
                window.update(capabilities)

        self._tk.submit(change)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def close(self) -> None:
        def close(_root: tk.Tk) -> None:
            window = self._tk.registry.pop(IndicatorWindow.NAME, None)
            if window is not None:
                window.destroy()

        with contextlib.suppress(UIUnavailable):
            await self._tk.run(close)


class TkChatWindow:
    """The loop's handle on the chat window (``base.ChatWindow``); it holds no Tk object.

    Chat events arrive on the loop and are handed to the Tk thread in order; what the user does in the
    window (send, a phrase, typing, having read) comes back through ``call_soon_threadsafe`` and runs as a
    task on the loop (the ``ChatActions`` methods below are called in the Tk thread).
    """

    def __init__(self, ui: TkUI, chat: ChatService, loop: asyncio.AbstractEventLoop) -> None:
        self.ident = next(_chat_ids)
        self._ui = ui
        self._tk = ui.tk
        self._chat = chat
        self._loop = loop
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def _subscribe(self) -> None:
        self._unsubscribe = self._chat.subscribe(self._event)

    def _event(self, event: ChatEvent) -> None:  # event loop
        self._in_window(lambda window: window.on_event(event))

    def _in_window(self, fn: Callable[[ChatWindowTk], None]) -> None:
        """Run ``fn`` in the Tk thread on this handle's window, if it is still there. From any thread."""

        def run(_root: tk.Tk) -> None:
            window = self._tk.registry.get(ChatWindowTk.NAME)
            if window is not None and window.owner == self.ident:
                fn(window)

        self._tk.submit(run)

    # ----------------------------------------------------------------------------------------- ChatActions

    def say(self, text: str) -> None:
        self._post(lambda: self._chat.say(text), self._said)

    def say_phrase(self, phrase: Phrase) -> None:
        self._post(lambda: self._chat.say_phrase(phrase), self._said)

    def typing(self, active: bool) -> None:
        self._post(lambda: self._chat.set_typing(active))

    def read(self) -> None:
        self._post(self._chat.mark_read)

    def _post(self, action: Callable[[], Awaitable[T]], then: Callable[[T], None] | None = None) -> None:
        call_soon_threadsafe(self._loop, self._spawn, action, then)

    def _spawn(self, action: Callable[[], Awaitable[T]], then: Callable[[T], None] | None) -> None:  # loop
        if self._closed:
            return
        task = self._loop.create_task(self._run(action, then))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, action: Callable[[], Awaitable[T]], then: Callable[[T], None] | None) -> None:
        try:
            result = await action()
        except Exception:
            log.exception("chat: sending failed")
            if then is not None:
                notice = self._ui.texts("chat.not_sent")
                self._in_window(lambda window: window.add_notice(notice))
            return
        if then is not None:
            then(result)

    def _said(self, line: ChatLine | None) -> None:
        if line is not None:  # None: nothing left to send after cleaning, or the chat has ended
            self._in_window(lambda window: window.add_line(line))

    # ----------------------------------------------------------------------------------------- ChatWindow

    def raise_(self) -> None:
        self._in_window(lambda window: window.show())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        owner = self.ident
        with contextlib.suppress(UIUnavailable):
            await self._tk.run(lambda _root: self._ui._close_chat(owner))
