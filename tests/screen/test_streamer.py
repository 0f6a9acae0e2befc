"""The streamer and its flow control, against a fake screen and a scripted console (no X)."""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc

import numpy as np
import pytest
from steun_agent.screen import FlowControl, Monitor, Rect, RegionDecoder, ScreenStreamer, StreamerConfig
from steun_protocol.screen import (
    ALL_ENCODINGS,
    Ack,
    Configure,
    FrameBegin,
    FrameEnd,
    Monitors,
    Refresh,
    Region,
    SelectMonitor,
    decode_from_agent,
)

from tests.support.waiting import wait_for

from .helpers import FakeSource, text_screen

# ------------------------------------------------------------------------------------------ flow control


def test_flow_control_respects_the_window_and_ignores_stray_acks() -> None:
    flow = FlowControl(max_fps=30, window=2)
    flow.on_sent(1, 1000, 0.0)
    flow.on_sent(2, 1000, 0.01)
    assert not flow.has_credit()
    with pytest.raises(RuntimeError):
        flow.on_sent(3, 1000, 0.02)
    flow.on_ack(99, 0.03)  # never sent: counted, ignored
    assert not flow.has_credit()
    flow.on_ack(2, 0.05)  # cumulative: acknowledges 1 too
    assert flow.has_credit() and flow.statistics(0.05).in_flight == 0
    assert flow.statistics(0.05).stray_acks == 1


def test_pacing_spaces_frames_by_the_frame_rate() -> None:
    flow = FlowControl(max_fps=10, window=4)
    flow.on_sent(1, 10, 1.0)
    assert flow.delay_until_next(1.0) == pytest.approx(0.1)
    assert flow.delay_until_next(1.2) == 0


def _run(flow: FlowControl, frames: int, rtt: float, state: list[float], *, stalls: bool = False) -> None:
    """Send ``frames`` frames one after the other, each acknowledged ``rtt`` later."""
    for _ in range(frames):
        state[1] += 1
        flow.on_sent(int(state[1]), 50_000, state[0])
        if stalls:
            flow.on_stall()
        state[0] += rtt
        flow.on_ack(int(state[1]), state[0])


def test_rising_delay_lowers_quality_then_fps_and_recovery_brings_them_back() -> None:
    flow = FlowControl(max_fps=30, window=2)
    state = [0.0, 0.0]  # clock, sequence
    start_quality = flow.quality
    _run(flow, 5, 0.010, state)  # base latency 10 ms
    _run(flow, 20, 0.400, state)  # then 390 ms of queueing
    assert flow.quality == 30 < start_quality
    assert flow.fps < 30
    _run(flow, 1500, 0.010, state)  # 15 s of a clear path
    assert flow.fps == 30 and flow.quality == start_quality


def test_a_link_that_limits_the_frame_rate_keeps_quality_down() -> None:
    # A steady 400 ms round trip soon looks like base latency; waiting for credit still says "link-limited".
    flow = FlowControl(max_fps=30, window=2)
    state = [0.0, 0.0]
    _run(flow, 100, 0.400, state, stalls=True)
    assert flow.quality == 30


def test_a_fixed_quality_is_never_adapted() -> None:
    flow = FlowControl(max_fps=30, window=2, fixed_quality=55)
    for seq in range(1, 50):
        flow.on_sent(seq, 10, seq * 1.0)
        flow.on_ack(seq, seq * 1.0 + (0.01 if seq < 5 else 0.5))
    assert flow.quality == 55


# ------------------------------------------------------------------------------------------ the streamer


class Console:
    """Decodes what the streamer sends, repaints a canvas, acks FRAME_END after ``delay``."""

    def __init__(self, height: int, width: int, *, delay: float = 0.0, ack: bool = True) -> None:
        self.canvas = np.zeros((height, width, 4), np.uint8)
        self.decoder = RegionDecoder()
        self.messages: list[object] = []
        self.frames = 0
        self.delay = delay
        self.ack = ack
        self.streamer: ScreenStreamer | None = None
        self.max_outstanding = 0
        self._outstanding: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, data: bytes) -> None:
        message = decode_from_agent(data)
        self.messages.append(message)
        if isinstance(message, FrameBegin):
            self._outstanding.add(message.seq)
            self.max_outstanding = max(self.max_outstanding, len(self._outstanding))
        elif isinstance(message, Region):
            pixels = self.decoder.decode(message)
            self.canvas[message.y : message.y + message.height, message.x : message.x + message.width] = (
                pixels
            )
        elif isinstance(message, FrameEnd):
            self.frames += 1
            if self.ack:
                task = asyncio.create_task(self._ack(message.seq))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _ack(self, seq: int) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self._outstanding.discard(seq)
        assert self.streamer is not None
        self.streamer.handle(Ack(seq))

    def count(self, kind: type) -> int:
        return sum(isinstance(m, kind) for m in self.messages)


@contextlib.asynccontextmanager
async def streaming(source: FakeSource, console: Console, **config: float):
    streamer = ScreenStreamer(console.send, lambda: source, config=StreamerConfig(**config))
    console.streamer = streamer
    streamer.handle(Configure(encodings=ALL_ENCODINGS, max_in_flight=2))
    task = asyncio.create_task(streamer.run())
    try:
        yield streamer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_first_frame_is_complete_and_an_idle_screen_sends_nothing() -> None:
    source = FakeSource(text_screen(480, 640))
    console = Console(480, 640)
    async with streaming(source, console, max_fps=60, idle_after=0.1, idle_fps=50) as streamer:
        await wait_for(lambda: console.frames == 1, what="the first frame")
        assert isinstance(console.messages[0], Monitors)
        assert np.array_equal(console.canvas[..., :3], source.frame[..., :3])
        grabs = source.grabs
        await wait_for(lambda: source.grabs >= grabs + 20, what="idle polls")
        assert console.frames == 1, "an unchanged screen must cost no bandwidth"
        assert streamer.statistics().frames_unchanged >= 20


async def test_only_changed_tiles_travel_and_the_canvas_follows() -> None:
    source = FakeSource(text_screen(480, 640))
    console = Console(480, 640)
    async with streaming(source, console, max_fps=60):
        await wait_for(lambda: console.frames == 1, what="the first frame")
        before = len(console.messages)
        source.frame = source.frame.copy()
        source.frame[100:110, 200:260] = (0, 0, 255, 0)
        await wait_for(lambda: console.frames == 2, what="the change")
        regions = [m for m in console.messages[before:] if isinstance(m, Region)]
        assert [(r.x, r.y, r.width, r.height) for r in regions] == [(192, 64, 128, 64)]
        assert np.array_equal(console.canvas[..., :3], source.frame[..., :3])


async def test_a_slow_console_gets_at_most_the_window_and_memory_stays_bounded() -> None:
    source = FakeSource(text_screen(480, 640))
    changes = 0

    class Busy(FakeSource):
        def grab(self, monitor: Monitor, area: Rect | None = None) -> np.ndarray:
            nonlocal changes
            changes += 1
            self.frame[(changes * 7) % 480, :, 0] ^= 0xFF  # the screen changes all the time
            return super().grab(monitor, area)

    busy = Busy(source.frame.copy())
    console = Console(480, 640, delay=0.15)
    tracemalloc.start()
    try:
        async with streaming(busy, console, max_fps=60) as streamer:
            await wait_for(lambda: console.frames >= 12, timeout=20, what="frames through a slow console")
            _, peak = tracemalloc.get_traced_memory()
            stats = streamer.statistics()
    finally:
        tracemalloc.stop()
    assert console.max_outstanding <= 2
    assert stats.flow.in_flight <= 2
    assert stats.flow.credit_stalls > 0, "the streamer should have waited for credit"
    # Frames waiting for credit are never queued: memory is a few frames, not the whole backlog.
    assert peak < 40 * 480 * 640 * 4 // 10, peak
    assert busy.grabs <= console.frames + 3, "nothing is captured while there is no credit"


async def test_a_console_that_never_acks_stops_the_stream_after_the_window() -> None:
    source = FakeSource(text_screen(240, 320))
    console = Console(240, 320, ack=False)
    async with streaming(source, console, max_fps=60):
        await wait_for(lambda: console.frames == 1, what="the first frame")
        for i in range(5):
            source.frame = source.frame.copy()
            source.frame[i * 10, :, 1] ^= 0xFF
            await asyncio.sleep(0.05)
        await wait_for(lambda: console.frames == 2, what="the second frame")
        await asyncio.sleep(0.2)  # give a faulty streamer the chance to overrun the window
        assert console.frames == 2


async def test_refresh_and_monitor_selection_send_the_whole_monitor() -> None:
    frame = text_screen(480, 1280)
    monitors = [Monitor(1, 0, 0, 640, 480, primary=True), Monitor(2, 640, 0, 640, 480)]
    source = FakeSource(frame, monitors)
    console = Console(480, 640)
    async with streaming(source, console, max_fps=60) as streamer:
        await wait_for(lambda: console.frames == 1, what="the first frame")
        streamer.handle(Refresh())
        await wait_for(lambda: console.frames == 2, what="the refresh")
        begin = [m for m in console.messages if isinstance(m, FrameBegin)][-1]
        assert begin.full and begin.monitor == 1
        streamer.handle(SelectMonitor(2))
        await wait_for(lambda: console.frames == 3, what="the other monitor")
        begin = [m for m in console.messages if isinstance(m, FrameBegin)][-1]
        assert begin.full and begin.monitor == 2
        assert streamer.monitor == monitors[1]
        assert np.array_equal(console.canvas[..., :3], frame[:, 640:, :3])
        listing = [m for m in console.messages if isinstance(m, Monitors)][-1]
        assert [m.selected for m in listing.monitors] == [False, True]


def test_large_frames_in_flight_use_up_the_byte_budget() -> None:
    flow = FlowControl(max_fps=30, window=4)
    flow.on_sent(1, 10_000_000, 0.0)  # one huge frame: the next waits for its ack
    assert not flow.has_credit()
    flow.on_ack(1, 0.5)
    flow.on_sent(2, 1000, 0.6)
    assert flow.has_credit()  # small frames may still share the window


class FakeDamage:
    def __init__(self, whole: Rect) -> None:
        self.dirty: Rect | None = whole
        self.closed = False

    def changed(self) -> Rect | None:
        dirty, self.dirty = self.dirty, None
        return dirty

    def close(self) -> None:
        self.closed = True


async def test_without_damage_the_screen_is_not_even_captured() -> None:
    source = FakeSource(text_screen(240, 320))
    console = Console(240, 320)
    damage = FakeDamage(Rect(0, 0, 320, 240))
    streamer = ScreenStreamer(
        console.send, lambda: source, damage_factory=lambda: damage, config=StreamerConfig(max_fps=60)
    )
    console.streamer = streamer
    task = asyncio.create_task(streamer.run())
    try:
        await wait_for(lambda: streamer.statistics().captures_skipped >= 1, what="a skipped capture")
        grabs = source.grabs
        await wait_for(lambda: streamer.statistics().captures_skipped >= 10, what="skipped captures")
        assert source.grabs == grabs
        source.frame = source.frame.copy()
        source.frame[70, 150] = (1, 2, 3, 0)
        source.frame[200, 10] = (1, 2, 3, 0)  # changed but not reported: stays until a whole capture
        damage.dirty = Rect(140, 66, 5, 5)
        await wait_for(lambda: console.frames == 2, what="the damaged frame")
        assert source.areas[-1] == Rect(128, 64, 64, 64), "only the damaged tile is captured"
        regions = [m for m in console.messages if isinstance(m, Region)]
        assert (regions[-1].x, regions[-1].y, regions[-1].width, regions[-1].height) == (128, 64, 64, 64)
        assert tuple(console.canvas[70, 150, :3]) == (1, 2, 3)
        assert tuple(console.canvas[200, 10, :3]) != (1, 2, 3)
        damage.dirty = Rect(0, 0, 320, 240)  # the once-a-second whole capture
        await wait_for(lambda: console.frames == 3, what="the safety capture")
        assert np.array_equal(console.canvas[..., :3], source.frame[..., :3])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert damage.closed and source.closed


async def test_a_slow_path_lowers_jpeg_quality_on_its_own() -> None:
    from .helpers import photo_screen

    class Video(FakeSource):
        def grab(self, monitor: Monitor, area: Rect | None = None) -> np.ndarray:
            self.frame = np.roll(self.frame, 8, axis=1)  # a moving photo: every tile changes
            return super().grab(monitor, area)

    console = Console(240, 320, delay=0.3)
    async with streaming(Video(photo_screen(240, 320)), console, max_fps=30) as streamer:
        await wait_for(lambda: streamer.statistics().flow.quality < 75, timeout=20, what="a lower quality")
        assert console.max_outstanding <= 2
