"""The screen stream of one session: capture, diff and encode on a dedicated thread; send within credit.

The session runtime gives the streamer a ``send`` coroutine (one screen message → one sealed DATA record on
the screen channel) and hands it the console's screen messages (``handle``). Input goes elsewhere
(``steun_agent.input``) so it never waits behind this work.

Memory stays bounded by construction: the streamer produces one frame at a time, only when it has credit,
and diffs against the last frame it *sent* — changes made while the console is behind are coalesced into
the next frame, never queued.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from steun_protocol.screen import (
    MANDATORY_ENCODINGS,
    Ack,
    Configure,
    ConsoleMessage,
    CursorPosition,
    CursorShape,
    FrameBegin,
    FrameEnd,
    MonitorInfo,
    Monitors,
    Refresh,
    Region,
    SelectMonitor,
    encode,
)

from .capture import CaptureError, FrameSource, Monitor
from .cursor import CursorImage, CursorSource
from .damage import DamageSource
from .encoding import RegionEncoder
from .flow import FlowControl, FlowStatistics
from .tiles import TILE, Frame, Rect, changed_tiles, classify_tiles, grid_shape, regions_by_kind

log = logging.getLogger(__name__)

T = TypeVar("T")
Send = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StreamerConfig:
    max_fps: float = 30.0
    #: Capture polling rate once the screen has been still for ``idle_after`` seconds (nothing is sent then).
    idle_fps: float = 10.0
    idle_after: float = 2.0
    #: Frames in flight before an ack is needed (the console may ask for fewer or more, up to 8).
    window: int = 2
    cursor_fps: float = 30.0


@dataclass(slots=True)
class StreamerStatistics:
    flow: FlowStatistics
    monitor: int
    frames_unchanged: int
    capture_ms: float
    encode_ms: float
    last_frame_bytes: int
    max_frame_bytes: int
    cursor_updates: int
    captures_skipped: int = 0
    encodings: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Produced:
    messages: list[bytes]
    nbytes: int
    capture_ms: float
    encode_ms: float


class ScreenStreamer:
    """Streams one monitor to one console. ``run()`` until cancelled; ``handle()`` the console's messages."""

    def __init__(
        self,
        send: Send,
        source_factory: Callable[[], FrameSource],
        *,
        cursor_factory: Callable[[], CursorSource | None] | None = None,
        damage_factory: Callable[[], DamageSource] | None = None,
        config: StreamerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._source_factory = source_factory
        self._cursor_factory = cursor_factory
        self._damage_factory = damage_factory
        self._damage: DamageSource | None = None
        self.config = config or StreamerConfig()
        self._clock = clock
        self.flow = FlowControl(max_fps=self.config.max_fps, window=self.config.window)
        # One thread owns the X connections of capture and cursor (neither is thread-safe).
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="steun-screen")
        self._source: FrameSource | None = None
        self._cursor: CursorSource | None = None
        self._encoder = RegionEncoder()
        self._monitors: list[Monitor] = []
        self._monitor: Monitor | None = None
        self._wanted_monitor: int | None = None
        self._reference: Frame | None = None  # what the console shows
        self._full = True
        self._encodings = MANDATORY_ENCODINGS
        self._seq = 0
        self._wake = asyncio.Event()
        self._last_change = float("-inf")
        self._send_lock = asyncio.Lock()
        self._stats = StreamerStatistics(FlowStatistics(), 0, 0, 0.0, 0.0, 0, 0, 0)
        self._last_cursor: tuple[int, int] | None = None
        self._last_poll = float("-inf")
        self._blocked_since: float | None = None

    # ------------------------------------------------------------------ public

    @property
    def monitor(self) -> Monitor | None:
        """The monitor being streamed (input coordinates are relative to it)."""
        return self._monitor

    @property
    def monitors(self) -> list[Monitor]:
        return list(self._monitors)

    def handle(self, message: ConsoleMessage) -> None:
        """Take a console screen message (ack, configure, monitor select, refresh). Never blocks."""
        now = self._clock()
        match message:
            case Ack(seq):
                self.flow.on_ack(seq, now)
            case Configure(quality, max_fps, encodings, max_in_flight):
                self.flow.configure(
                    max_fps=max_fps or self.config.max_fps, window=max_in_flight, quality=quality
                )
                self._encodings = encodings | MANDATORY_ENCODINGS
            case SelectMonitor(monitor):
                self._wanted_monitor = monitor
            case Refresh():
                self._full = True
            case _:
                return  # input and clipboard belong to other handlers
        self._wake.set()

    def statistics(self) -> StreamerStatistics:
        self._stats.flow = self.flow.statistics(self._clock())
        self._stats.monitor = self._monitor.id if self._monitor else 0
        return self._stats

    async def run(self) -> None:
        """Stream until cancelled. Raises CaptureError when the screen cannot be captured at all."""
        try:
            await self._call(self._open)
            await self._send_monitors()
            async with asyncio.TaskGroup() as tasks:
                if self._cursor is not None:
                    tasks.create_task(self._cursor_loop(), name="steun-screen-cursor")
                await self._frame_loop()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._call(self._close))
            self._executor.shutdown(wait=False)

    # ------------------------------------------------------------------ loops

    async def _frame_loop(self) -> None:
        while True:
            if self._wanted_monitor is not None:
                await self._switch_monitor(self._wanted_monitor)
            if not self.flow.has_credit():
                if self._blocked_since is None:
                    self._blocked_since = self._clock()
                await self._wait(None)
                continue
            now = self._clock()
            idle = now - self._last_change > self.config.idle_after
            poll_interval = 1.0 / (self.config.idle_fps if idle else self.flow.fps)
            delay = max(self.flow.delay_until_next(now), self._last_poll + poll_interval - now)
            if delay > 0:
                await self._wait(delay)
                if self._wanted_monitor is not None or self._full or not self.flow.has_credit():
                    continue
            self._last_poll = self._clock()
            full, self._full = self._full, False
            produced = await self._call(
                functools.partial(self._produce, full, self.flow.quality, self._encodings, self._seq + 1)
            )
            blocked_since, self._blocked_since = self._blocked_since, None
            if produced is None:
                self._stats.frames_unchanged += 1
                continue
            self._seq += 1
            self._last_change = self._clock()
            if blocked_since is not None and self._last_change - blocked_since > 1.0 / self.flow.fps:
                self.flow.on_stall()  # changes waited for credit: the path, not the screen, set the pace
            async with self._send_lock:
                self.flow.on_sent(self._seq, produced.nbytes, self._clock())
                for data in produced.messages:
                    await self._send(data)
            self._stats.capture_ms, self._stats.encode_ms = produced.capture_ms, produced.encode_ms
            self._stats.last_frame_bytes = produced.nbytes
            self._stats.max_frame_bytes = max(self._stats.max_frame_bytes, produced.nbytes)

    async def _cursor_loop(self) -> None:
        interval = 1.0 / self.config.cursor_fps
        while True:
            position, shape = await self._call(self._poll_cursor)
            messages: list[bytes] = []
            if shape is not None:
                messages.append(
                    encode(
                        CursorShape(
                            shape.serial, shape.width, shape.height, shape.hot_x, shape.hot_y, shape.rgba
                        )
                    )
                )
            if position is not None:
                messages.append(encode(CursorPosition(*position)))
            if messages:
                self._stats.cursor_updates += 1
                async with self._send_lock:
                    for data in messages:
                        await self._send(data)
            await asyncio.sleep(interval if messages else interval * 3)

    async def _wait(self, seconds: float | None) -> None:
        """Until a console message wakes the loop, or ``seconds`` pass."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _switch_monitor(self, wanted: int) -> None:
        self._wanted_monitor = None
        if self._monitor is not None and wanted == self._monitor.id:
            self._full = True
            return
        chosen = next((m for m in self._monitors if m.id == wanted), None)
        if chosen is None:
            log.info("console asked for monitor %d, which does not exist", wanted)
            return
        self._monitor, self._reference, self._full = chosen, None, True
        self.flow.forget_in_flight()
        self._last_cursor = None
        await self._send_monitors()

    async def _send_monitors(self) -> None:
        selected = self._monitor.id if self._monitor else 0
        infos = tuple(
            MonitorInfo(m.id, m.x, m.y, m.width, m.height, m.name, m.primary, m.id == selected)
            for m in self._monitors[:16]
        )
        async with self._send_lock:
            await self._send(encode(Monitors(infos)))

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # ------------------------------------------------------------------ on the screen thread

    def _open(self) -> None:
        self._source = self._source_factory()
        self._monitors = self._source.monitors()
        if not self._monitors:
            raise CaptureError("no monitor to capture")
        self._monitor = next((m for m in self._monitors if m.primary), self._monitors[0])
        if self._cursor_factory is not None:
            try:
                self._cursor = self._cursor_factory()
            except CaptureError as exc:
                log.info("no cursor tracking: %s", exc)
        if self._damage_factory is not None:
            try:
                self._damage = self._damage_factory()
            except CaptureError as exc:
                log.info("no damage hints, polling only: %s", exc)

    def _close(self) -> None:
        for closable in (self._source, self._cursor, self._damage):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()

    def _produce(self, full: bool, quality: int, encodings: int, seq: int) -> _Produced | None:
        assert self._source is not None and self._monitor is not None
        monitor = self._monitor
        area = self._damaged_area(monitor) if self._damage is not None else None
        reference = self._reference
        if area is not None and area.area == 0 and not full and reference is not None:
            self._stats.captures_skipped += 1
            return None
        whole = Rect(0, 0, monitor.width, monitor.height)
        if full or reference is None or reference.shape[:2] != (monitor.height, monitor.width):
            area = whole
        t0 = time.perf_counter()
        if area is None or area == whole or reference is None:
            frame = self._source.grab(monitor)
            t1 = time.perf_counter()
            height, width = frame.shape[:2]
            if full or reference is None or reference.shape != frame.shape:
                mask = np.ones(grid_shape(height, width), dtype=np.bool_)
                full = True
                self._encoder.reset()  # the console may have lost its decoder state (refresh, new monitor)
            else:
                mask = changed_tiles(reference, frame)
        else:
            # Only the damaged, tile-aligned area: diff it and patch it into the reference in place.
            block = self._source.grab(monitor, area)
            t1 = time.perf_counter()
            frame = reference
            height, width = frame.shape[:2]
            old = frame[area.y : area.y + area.height, area.x : area.x + area.width]
            sub_mask = changed_tiles(old, block)
            old[...] = block
            mask = np.zeros(grid_shape(height, width), dtype=np.bool_)
            r0, c0 = area.y // TILE, area.x // TILE
            mask[r0 : r0 + sub_mask.shape[0], c0 : c0 + sub_mask.shape[1]] = sub_mask
        if not full and not mask.any():
            self._reference = frame
            return None
        kinds = classify_tiles(frame, mask)
        regions = []
        for rect, kind in regions_by_kind(kinds, height, width):
            regions += self._encoder.encode(frame, rect, kind, quality=quality, encodings=encodings)
        self._reference = frame
        messages = [encode(FrameBegin(seq, monitor.id, width, height, int(time.monotonic() * 1000), full))]
        nbytes = 0
        for r in regions:
            rect = r.rect
            messages.append(
                encode(Region(seq, rect.x, rect.y, rect.width, rect.height, r.encoding, r.data, r.reset))
            )
            nbytes += len(r.data)
            self._stats.encodings[r.encoding.name] = self._stats.encodings.get(r.encoding.name, 0) + 1
        messages.append(encode(FrameEnd(seq, len(regions), nbytes)))
        t2 = time.perf_counter()
        return _Produced(messages, nbytes, (t1 - t0) * 1000, (t2 - t1) * 1000)

    def _damaged_area(self, monitor: Monitor) -> Rect | None:
        """The damaged part of ``monitor``, grown to whole tiles (a zero-size Rect: nothing changed)."""
        assert self._damage is not None
        damaged = self._damage.changed()
        if damaged is None:
            return Rect(0, 0, 0, 0)
        x0 = max(damaged.x - monitor.x, 0) // TILE * TILE
        y0 = max(damaged.y - monitor.y, 0) // TILE * TILE
        x1 = min(damaged.x + damaged.width - monitor.x, monitor.width)
        y1 = min(damaged.y + damaged.height - monitor.y, monitor.height)
        if x1 <= x0 or y1 <= y0:
            return Rect(0, 0, 0, 0)
        # Whole tiles, except where the monitor ends inside a tile.
        x1 = min(-(-x1 // TILE) * TILE, monitor.width)
        y1 = min(-(-y1 // TILE) * TILE, monitor.height)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def _poll_cursor(self) -> tuple[tuple[int, int] | None, CursorImage | None]:
        cursor, monitor = self._cursor, self._monitor
        if cursor is None or monitor is None:
            return None, None
        x, y = cursor.position()
        position = (x - monitor.x, y - monitor.y)
        moved = position if position != self._last_cursor else None
        self._last_cursor = position
        return moved, cursor.changed_shape()
