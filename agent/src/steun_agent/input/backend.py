"""What an input platform offers (pointer, keys, text, clipboard), and the dispatcher that feeds it.

A backend is blocking (X round trips, Win32 SendInput, CGEvent...) and single-threaded: the dispatcher calls
it from one dedicated thread of its own, so input never waits behind screen capture or encoding, which run
on another thread. The queue in front of it is small and coalesces pointer moves.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from steun_protocol.screen import (
    Clipboard,
    ConsoleMessage,
    Key,
    PointerButtonEvent,
    PointerMove,
    ReleaseAll,
    Text,
    Wheel,
    encode,
)

from ..errors import AgentError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: One wheel notch, in the units of the WHEEL message (Windows' WHEEL_DELTA).
WHEEL_NOTCH = 120
#: Input events waiting for the backend; beyond this new events are dropped (the backend is stuck).
MAX_QUEUED = 256
#: Temporary key bindings (for characters not on the keymap) are undone after this much quiet.
RESTORE_AFTER = 1.0


class InputError(AgentError):
    """Input cannot be injected here (no display, no XTest, ...)."""


class InputBackend(Protocol):
    """Injects input on one desktop. Coordinates are desktop (not monitor) pixels. Calls block briefly."""

    def pointer_move(self, x: int, y: int) -> None: ...

    def pointer_button(self, button: int, down: bool) -> None:
        """X numbering: 1 left, 2 middle, 3 right, 8 back, 9 forward."""

    def wheel(self, steps_x: int, steps_y: int) -> None:
        """Whole notches; positive is right/down."""

    def key(self, keysym: int, down: bool) -> None:
        """A key by X11 keysym (also on other platforms: it is the wire's key naming)."""

    def type_text(self, text: str) -> None:
        """Characters, whatever the keyboard layout (é, ç, ë, € included)."""

    def release_all(self) -> None:
        """Release every key and button this backend holds down."""

    def restore_keymap(self) -> None:
        """Undo temporary changes made to type characters (called when input is quiet)."""

    def close(self) -> None: ...


class ClipboardBackend(Protocol):
    def get_text(self) -> str | None:
        """The clipboard's text, or None if it holds none (or no answer came in time)."""
        ...

    def set_text(self, text: str) -> None: ...

    def watch(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` (from any thread) when another program takes the clipboard."""

    def close(self) -> None: ...


@dataclass(slots=True)
class InputStatistics:
    queued: int = 0
    applied: int = 0
    coalesced: int = 0
    dropped: int = 0
    refused: int = 0
    clipboard_in: int = 0
    clipboard_out: int = 0


Send = Callable[[bytes], Awaitable[None]]


class InputDispatcher:
    """Applies the console's input and clipboard messages on a thread of its own, in order.

    ``origin()`` gives the desktop position of the streamed monitor (input coordinates are relative to it).
    ``control`` and ``clipboard`` are what the user granted: other messages are counted as refused.
    """

    def __init__(
        self,
        backend_factory: Callable[[], InputBackend],
        *,
        origin: Callable[[], tuple[int, int]] = lambda: (0, 0),
        clipboard_factory: Callable[[], ClipboardBackend] | None = None,
        send: Send | None = None,
        control: bool = True,
        clipboard: bool = False,
    ) -> None:
        self._backend_factory = backend_factory
        self._clipboard_factory = clipboard_factory
        self._origin = origin
        self._send = send
        self.control = control
        self.clipboard = clipboard
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="steun-input")
        # The clipboard waits on other programs (up to a timeout): never on the input thread.
        self._clip_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="steun-clipboard")
        self._backend: InputBackend | None = None
        self._clip: ClipboardBackend | None = None
        self._queue: collections.deque[ConsoleMessage] = collections.deque()
        self._ready = asyncio.Event()
        self._clipboard_changed = asyncio.Event()
        self._wheel = [0, 0]
        self._stats = InputStatistics()
        self._last_sent_clipboard: str | None = None

    def handle(self, message: ConsoleMessage) -> None:
        """Queue one input or clipboard message. Never blocks; coalesces moves; drops when full."""
        match message:
            case Clipboard() if not self.clipboard:
                self._stats.refused += 1
                return
            case Clipboard():
                pass
            case PointerMove() | PointerButtonEvent() | Wheel() | Key() | Text() | ReleaseAll():
                if not self.control:
                    self._stats.refused += 1
                    return
            case _:
                return
        if isinstance(message, PointerMove) and self._queue and isinstance(self._queue[-1], PointerMove):
            self._queue[-1] = message
            self._stats.coalesced += 1
        elif len(self._queue) >= MAX_QUEUED:
            self._stats.dropped += 1
            return
        else:
            self._queue.append(message)
        self._stats.queued += 1
        self._ready.set()

    def statistics(self) -> InputStatistics:
        return InputStatistics(**{k: getattr(self._stats, k) for k in self._stats.__slots__})

    async def run(self) -> None:
        """Apply input until cancelled; on the way out release everything and restore the keymap."""
        loop = asyncio.get_running_loop()
        try:
            self._backend = await self._call(self._backend_factory)
            if self._clipboard_factory is not None:
                self._clip = await self._clip_call(self._clipboard_factory)
                clip = self._clip

                def changed() -> None:
                    loop.call_soon_threadsafe(self._clipboard_changed.set)

                await self._clip_call(functools.partial(clip.watch, changed))
            async with asyncio.TaskGroup() as tasks:
                if self._clip is not None and self._send is not None:
                    tasks.create_task(self._clipboard_loop(), name="steun-input-clipboard")
                await self._input_loop()
        finally:
            backend, clip_backend = self._backend, self._clip

            def close_backend() -> None:
                if backend is not None:
                    with contextlib.suppress(Exception):
                        backend.release_all()
                        backend.restore_keymap()
                    backend.close()

            def close_clipboard() -> None:
                if clip_backend is not None:
                    clip_backend.close()

            with contextlib.suppress(Exception):
                await asyncio.shield(self._call(close_backend))
            with contextlib.suppress(Exception):
                await asyncio.shield(self._clip_call(close_clipboard))
            self._executor.shutdown(wait=False)
            self._clip_executor.shutdown(wait=False)

    async def _input_loop(self) -> None:
        backend = self._backend
        assert backend is not None
        dirty_keymap = False
        while True:
            if not self._queue:
                self._ready.clear()
                try:
                    async with asyncio.timeout(RESTORE_AFTER if dirty_keymap else None):
                        await self._ready.wait()
                except TimeoutError:
                    await self._call(backend.restore_keymap)
                    dirty_keymap = False
                    continue
            batch = list(self._queue)
            self._queue.clear()
            dirty_keymap |= any(isinstance(m, Key | Text) for m in batch)
            await self._call(functools.partial(self._apply, batch))

    def _apply(self, batch: list[ConsoleMessage]) -> None:
        backend = self._backend
        assert backend is not None
        ox, oy = self._origin()
        for message in batch:
            try:
                match message:
                    case PointerMove(x, y):
                        backend.pointer_move(ox + x, oy + y)
                    case PointerButtonEvent(button, down, x, y):
                        backend.pointer_move(ox + x, oy + y)
                        backend.pointer_button(int(button), down)
                    case Wheel(dx, dy):
                        self._wheel[0] += dx
                        self._wheel[1] += dy
                        steps = [int(v / WHEEL_NOTCH) for v in self._wheel]
                        self._wheel = [v - s * WHEEL_NOTCH for v, s in zip(self._wheel, steps, strict=True)]
                        if steps[0] or steps[1]:
                            backend.wheel(steps[0], steps[1])
                    case Key(keysym, down):
                        backend.key(keysym, down)
                    case Text(text):
                        backend.type_text(text)
                    case ReleaseAll():
                        backend.release_all()
                    case Clipboard(text) if self._clip is not None:
                        self._last_sent_clipboard = text
                        self._clip_executor.submit(self._clip.set_text, text)
                        self._stats.clipboard_in += 1
                self._stats.applied += 1
            except InputError as exc:
                log.warning("input dropped: %s", exc)

    async def _clipboard_loop(self) -> None:
        clip, send = self._clip, self._send
        assert clip is not None and send is not None
        while True:
            await self._clipboard_changed.wait()
            self._clipboard_changed.clear()
            text = await self._clip_call(clip.get_text)
            if text is None or text == self._last_sent_clipboard:
                continue
            self._last_sent_clipboard = text
            if len(text.encode()) <= 512 * 1024:
                await send(encode(Clipboard(text)))
                self._stats.clipboard_out += 1

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _clip_call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._clip_executor, fn)
