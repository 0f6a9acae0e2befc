"""Tk in a thread of its own, and a thread-safe bridge to it from asyncio.

Tk is touched only from its thread: other threads hand it functions through a queue that the Tk thread drains
every ``poll_interval`` (``after``-driven; no Tcl call is ever made from another thread). Answers travel back
as ``concurrent.futures.Future`` objects, which asyncio awaits with ``wrap_future``; callbacks into the event
loop go through ``loop.call_soon_threadsafe``. The event loop never waits on Tk, and every Tk object is
created, used and released in the Tk thread (releasing a Tcl interpreter elsewhere crashes the process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import os
import queue
import sys
import threading
import tkinter as tk
from collections.abc import Callable
from typing import Any, TypeVar

from .base import UIUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

_Job = tuple[Callable[[tk.Tk], Any], "concurrent.futures.Future[Any]"]


def display_available(environ: dict[str, str] | None = None) -> bool:
    """True when a graphical session is there to show windows in (X11, or Wayland through XWayland)."""
    env = os.environ if environ is None else environ
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


class TkThread:
    """Owns the Tk root and its mainloop. Start with ``await start()``, end with ``await close()``."""

    def __init__(self, *, display: str | None = None, poll_interval: float = 0.02) -> None:
        self.display = display
        self._poll_ms = max(1, int(poll_interval * 1000))
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread: threading.Thread | None = None
        self._root: tk.Tk | None = None
        #: Window objects by name; lives and dies in the Tk thread only.
        self.registry: dict[str, Any] = {}

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.done()

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a start-up bound
        """Start the thread and wait until Tk is up; :class:`UIUnavailable` if it cannot start."""
        if self._thread is not None:
            raise RuntimeError("TkThread.start() is called once")
        self._thread = threading.Thread(target=self._main, name="steun-tk", daemon=True)
        self._thread.start()
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._ready), timeout)
        except TimeoutError:
            self._jobs.put(None)
            raise UIUnavailable(f"Tk did not start within {timeout:g} s") from None

    def submit(self, fn: Callable[[tk.Tk], T]) -> concurrent.futures.Future[T]:
        """Run ``fn(root)`` in the Tk thread; from any thread. The future fails if Tk has ended."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._done.done():
            future.set_exception(UIUnavailable("the Tk thread has ended"))
            return future
        self._jobs.put((fn, future))
        if self._done.done():  # the thread ended between the check and the put
            self._fail_pending()
        return future

    async def run(self, fn: Callable[[tk.Tk], T]) -> T:
        """Run ``fn(root)`` in the Tk thread and await its result without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(fn))

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a shutdown bound
        """Destroy every window and end the thread (waits for it, off the event loop)."""
        if self._thread is None or self._done.done():
            return
        self._jobs.put(None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.wrap_future(self._done), timeout)

    # ----------------------------------------------------------------------------------------- Tk thread

    def _main(self) -> None:
        try:
            root = tk.Tk(screenName=self.display, className="Steun")
        except tk.TclError as exc:
            self._ready.set_exception(UIUnavailable(f"no usable display: {exc}"))
            self._done.set_result(None)
            return
        try:
            root.withdraw()
            root.report_callback_exception = self._report
            self._root = root
            root.after(self._poll_ms, self._drain)
            self._ready.set_result(None)
            root.mainloop()
        finally:
            self._shutdown(root)

    def _drain(self) -> None:
        root = self._root
        if root is None:
            return
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                root.quit()
                return
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(root))
            except BaseException as exc:  # handed to the waiting side, which decides
                future.set_exception(exc)
        root.after(self._poll_ms, self._drain)

    def _report(self, exc: type[BaseException], value: BaseException, tb: Any) -> None:
        log.error("error in a Tk callback", exc_info=(exc, value, tb))

    def _shutdown(self, root: tk.Tk) -> None:
        for window in list(self.registry.values()):
            with contextlib.suppress(Exception):
                window.destroy()
        self.registry.clear()
        with contextlib.suppress(tk.TclError):
            root.destroy()
        self._root = None
        # Drop every Tk reference here, in the thread that made them; then fail whatever is still queued.
        del root
        gc.collect()
        self._done.set_result(None)
        self._fail_pending()

    def _fail_pending(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None and job[1].set_running_or_notify_cancel():
                job[1].set_exception(UIUnavailable("the Tk thread has ended"))


def call_soon_threadsafe(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: object) -> None:
    """Schedule ``fn`` on ``loop`` from the Tk thread; quietly nothing if the loop has already closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)
