"""A bounded thread pool for blocking probes, which survives probes that hang.

Blocking calls (psutil, files in /proc and /sys, subprocesses, ``getaddrinfo``) run here, never in the event
loop and never in asyncio's default executor: a probe that hangs must not starve the agent's other work. When
the awaiting task gives up (its test timed out), a probe that is still running is *abandoned*: its thread
keeps running until the call returns, but it no longer holds one of the ``workers`` slots. The executor has
``workers + max_hung`` threads, so abandoned probes never delay new ones; once ``max_hung`` probes hang at
the same time, new probes fail at once with ``PoolExhausted`` instead of queueing behind them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import PoolExhausted

T = TypeVar("T")


class ProbePool:
    def __init__(self, workers: int = 8, max_hung: int = 8, *, name: str = "steun-diagnostics") -> None:
        if workers < 1 or max_hung < 0:
            raise ValueError("a probe pool needs at least one worker")
        self.workers = workers
        self.max_hung = max_hung
        self._executor = concurrent.futures.ThreadPoolExecutor(workers + max_hung, thread_name_prefix=name)
        self._lock = threading.Lock()  # the counters change in worker threads too
        self._hung = 0
        self._counts = {"calls": 0, "abandoned": 0, "refused": 0}
        self._busy = 0
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker thread; cancelling the caller abandons a call already running."""
        if self._closed:
            raise PoolExhausted("the probe pool is closed")
        with self._lock:
            if self._hung >= self.max_hung:
                self._counts["refused"] += 1
                raise PoolExhausted(f"{self._hung} earlier probes are still hanging")
        async with self._semaphore():
            self._busy += 1
            self._counts["calls"] += 1
            future = self._executor.submit(fn, *args)
            try:
                return await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                if not future.cancel() and not future.done():
                    self._abandon(future)
                raise
            finally:
                self._busy -= 1

    def statistics(self) -> dict[str, int]:
        with self._lock:
            return {"workers": self.workers, "busy": self._busy, "hung": self._hung, **self._counts}

    def close(self) -> None:
        """Stop taking probes; running ones finish in their threads (subprocesses have their own timeouts)."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:
            self._slots = asyncio.Semaphore(self.workers)
            self._slots_loop = loop
        return self._slots

    def _abandon(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._hung += 1
            self._counts["abandoned"] += 1
        future.add_done_callback(self._released)

    def _released(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._hung -= 1
