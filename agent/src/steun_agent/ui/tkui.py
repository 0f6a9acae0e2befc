"""The graphical agent UI: async methods on the event loop, windows in the Tk thread (see ``tkbridge``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tkinter as tk
from typing import Any

from steun_protocol.session import Capability

from ..consent import Answer, ConsentPrompt
from .base import IndicatorInfo, StopCallback, UIUnavailable
from .i18n import Texts
from .tkbridge import TkThread, call_soon_threadsafe, display_available
from .tkwindows import ConsentWindow, IndicatorWindow, NoticeWindow, SupportCodeWindow

log = logging.getLogger(__name__)


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
            self._replace(IndicatorWindow.NAME, IndicatorWindow(root, info, self.texts, stopped))

        await self.tk.run(open_window)
        return indicator

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
