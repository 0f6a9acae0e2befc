"""Flow control and adaptation for the screen stream, free of I/O: feed it sends, acks and the clock;
ask it when the next frame may go and at what JPEG quality.

* **Credit window.** At most ``window`` frames are unacknowledged. The console acknowledges a frame after
  painting it, so a slow console or link stops the agent after ``window`` frames instead of building a
  queue; what changes meanwhile is coalesced into the next frame (the agent diffs against what it *sent*).
* **Byte budget.** A second frame may join the first in flight only while the bytes in flight stay under
  what the path delivered in ``BUDGET_SECONDS`` (at least ``MIN_BUDGET``): on a slow link two large frames
  would otherwise mean seconds of latency for the frame after them.
* **Pacing.** Frames are at least ``1 / fps`` apart; ``fps`` starts at ``max_fps``.
* **Adaptation, delay-based.** A frame's round trip (send → ack) minus the lowest recent round trip is the
  time it waited in buffers or on the wire. While that queueing delay stays above ``TARGET_DELAY`` the
  JPEG quality steps down, then the frame rate; when it stays low they come back. Lossless stays lossless.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from .encoding import DEFAULT_QUALITY, MAX_QUALITY, MIN_QUALITY

#: Queueing delay above which the stream backs off (seconds).
TARGET_DELAY = 0.080
#: Below this, it may grow again.
LOW_DELAY = 0.030
#: How long the minimum round trip is remembered (the base latency of the path).
MIN_RTT_WINDOW = 10.0
#: Throughput is measured over this window (seconds).
RATE_WINDOW = 2.0
MIN_FPS = 2.0
#: Bytes in flight beyond the first frame: what the path delivers in this long...
BUDGET_SECONDS = 0.25
#: ...but never less than this.
MIN_BUDGET = 256 * 1024


@dataclass(slots=True)
class _InFlight:
    seq: int
    sent_at: float
    nbytes: int


@dataclass(slots=True)
class FlowStatistics:
    in_flight: int = 0
    window: int = 0
    fps: float = 0.0
    quality: int = 0
    rtt_ms: float = 0.0
    min_rtt_ms: float = 0.0
    queue_delay_ms: float = 0.0
    throughput_bps: float = 0.0
    frames_sent: int = 0
    frames_acked: int = 0
    bytes_sent: int = 0
    stray_acks: int = 0
    credit_stalls: int = 0


@dataclass(slots=True)
class FlowControl:
    max_fps: float = 30.0
    window: int = 2
    fixed_quality: int = 0  # 0 = adaptive
    now: float = 0.0
    _quality: float = DEFAULT_QUALITY
    _fps: float = 0.0
    _in_flight: collections.deque[_InFlight] = field(default_factory=collections.deque)
    _last_sent_at: float = float("-inf")
    _srtt: float | None = None
    _rtts: collections.deque[tuple[float, float]] = field(default_factory=collections.deque)
    _acked: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    _last_change: float = float("-inf")
    _stalled: bool = False
    _last_ack_at: float = 0.0
    _stats: FlowStatistics = field(default_factory=FlowStatistics)

    def __post_init__(self) -> None:
        self._fps = self.max_fps

    # ------------------------------------------------------------------ decisions

    @property
    def quality(self) -> int:
        return self.fixed_quality or round(self._quality)

    @property
    def fps(self) -> float:
        return self._fps

    def has_credit(self) -> bool:
        if not self._in_flight:
            return True
        if len(self._in_flight) >= self.window:
            return False
        in_flight_bytes = sum(f.nbytes for f in self._in_flight)
        return in_flight_bytes < max(MIN_BUDGET, self.throughput(self._last_ack_at) * BUDGET_SECONDS)

    def delay_until_next(self, now: float) -> float:
        """Seconds until the next frame may be captured (0 = now); only meaningful with credit."""
        return max(0.0, self._last_sent_at + 1.0 / self._fps - now)

    # ------------------------------------------------------------------ events

    def configure(
        self, *, max_fps: float | None = None, window: int | None = None, quality: int | None = None
    ) -> None:
        if max_fps:
            self.max_fps = max_fps
            self._fps = min(self._fps, max_fps) if self._fps else max_fps
        if window:
            self.window = window
        if quality is not None:
            self.fixed_quality = quality

    def on_sent(self, seq: int, nbytes: int, now: float) -> None:
        if not self.has_credit():
            raise RuntimeError("frame sent without credit")  # a bug in the caller, never the peer
        self._in_flight.append(_InFlight(seq, now, nbytes))
        self._last_sent_at = now
        self._stats.frames_sent += 1
        self._stats.bytes_sent += nbytes

    def on_stall(self) -> None:
        """Changes waited for credit longer than a frame interval before they could be sent."""
        self._stats.credit_stalls += 1
        self._stalled = True

    def on_ack(self, seq: int, now: float) -> None:
        """The console painted frame ``seq`` (and, acks being cumulative, every earlier one)."""
        if not self._in_flight or seq < self._in_flight[0].seq or seq > self._in_flight[-1].seq:
            self._stats.stray_acks += 1
            return
        self._last_ack_at = now
        while self._in_flight and self._in_flight[0].seq <= seq:
            frame = self._in_flight.popleft()
            self._stats.frames_acked += 1
            self._acked.append((now, frame.nbytes))
            if frame.seq == seq:
                self._rtt_sample(now - frame.sent_at, now)
        self._adapt(now)

    def forget_in_flight(self) -> None:
        """A new stream (monitor switch, reconnect of the console view): old acks will not come."""
        self._in_flight.clear()

    # ------------------------------------------------------------------ measurement

    def _rtt_sample(self, rtt: float, now: float) -> None:
        self._srtt = rtt if self._srtt is None else 0.8 * self._srtt + 0.2 * rtt
        # Monotone deque: the windowed minimum in O(1) amortised.
        while self._rtts and self._rtts[-1][1] >= rtt:
            self._rtts.pop()
        self._rtts.append((now, rtt))
        while self._rtts[0][0] < now - MIN_RTT_WINDOW:
            self._rtts.popleft()

    @property
    def min_rtt(self) -> float:
        return self._rtts[0][1] if self._rtts else 0.0

    @property
    def queue_delay(self) -> float:
        return max(0.0, (self._srtt or 0.0) - self.min_rtt)

    def throughput(self, now: float) -> float:
        """Bytes per second acknowledged over the last RATE_WINDOW."""
        while self._acked and self._acked[0][0] < now - RATE_WINDOW:
            self._acked.popleft()
        return sum(n for _, n in self._acked) / RATE_WINDOW

    def _adapt(self, now: float) -> None:
        delay = self.queue_delay
        srtt = self._srtt or 0.0
        stalled, self._stalled = self._stalled, False
        # Link-limited: frames wait for credit and fewer than half the wanted frame rate get through. Smaller
        # frames (lower JPEG quality) buy frame rate; this holds even when the queue looks like base latency.
        delivered_fps = len(self._acked) / RATE_WINDOW
        link_limited = stalled and delivered_fps < self._fps / 2 and now >= RATE_WINDOW
        if delay > TARGET_DELAY and now - self._last_change >= max(srtt, 0.1):
            # Back off: quality first (cheap to see), then frame rate.
            if not self.fixed_quality and self._quality > MIN_QUALITY:
                self._quality = max(MIN_QUALITY, self._quality - 10)
            else:
                self._fps = max(MIN_FPS, self._fps * 0.7)
            self._last_change = now
        elif link_limited and not self.fixed_quality and now - self._last_change >= max(srtt, 0.25):
            if self._quality > MIN_QUALITY:
                self._quality = max(MIN_QUALITY, self._quality - 5)
                self._last_change = now
        elif delay < LOW_DELAY and not stalled and now - self._last_change >= max(2 * srtt, 0.5):
            if self._fps < self.max_fps:
                self._fps = min(self.max_fps, self._fps * 1.5)
            elif not self.fixed_quality and self._quality < min(MAX_QUALITY, DEFAULT_QUALITY):
                self._quality = min(DEFAULT_QUALITY, self._quality + 5)
            self._last_change = now

    def statistics(self, now: float) -> FlowStatistics:
        s = self._stats
        s.in_flight, s.window, s.fps, s.quality = len(self._in_flight), self.window, self._fps, self.quality
        s.rtt_ms = (self._srtt or 0.0) * 1000
        s.min_rtt_ms = self.min_rtt * 1000
        s.queue_delay_ms = self.queue_delay * 1000
        s.throughput_bps = self.throughput(now)
        return FlowStatistics(**{k: getattr(s, k) for k in s.__slots__})
