"""Screen capture per monitor through mss (XShm on X11: ≈ 2 ms per 1080p frame on this project's machines)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import mss
import numpy as np
from mss.exception import ScreenShotError

from ..errors import AgentError
from .tiles import Frame, Rect


class CaptureError(AgentError):
    """The screen cannot be captured (no display, monitor gone, X server closed)."""


@dataclass(frozen=True, slots=True)
class Monitor:
    """One monitor in desktop coordinates. ``id`` is stable while the layout does not change (1 = first)."""

    id: int
    x: int
    y: int
    width: int
    height: int
    primary: bool = False
    name: str = ""


class FrameSource(Protocol):
    """What the streamer needs from a screen: mss here, a fake in tests, a DXGI/ScreenCaptureKit one later."""

    def monitors(self) -> list[Monitor]: ...

    def grab(self, monitor: Monitor, area: Rect | None = None) -> Frame:
        """The monitor's pixels (or those of ``area``, in monitor coordinates) as a (height, width, 4) BGRX
        array that the caller owns and may write to."""
        ...

    def close(self) -> None: ...


class Capturer:
    """mss on one thread (the X connection is not shared between threads): create, use and close it there."""

    def __init__(self, display: str | None = None) -> None:
        try:
            self._mss = mss.MSS(display=display) if display else mss.MSS()
        except ScreenShotError as exc:
            raise CaptureError(f"cannot open the display: {exc}") from exc

    def monitors(self) -> list[Monitor]:
        try:
            found = self._mss.monitors[1:]  # [0] is the union of all monitors
        except ScreenShotError as exc:
            raise CaptureError(f"cannot list monitors: {exc}") from exc
        return [
            Monitor(
                i,
                int(m["left"]),
                int(m["top"]),
                int(m["width"]),
                int(m["height"]),
                bool(m.get("is_primary", False)),
                str(m.get("output", ""))[:64],
            )
            for i, m in enumerate(found, start=1)
        ]

    def grab(self, monitor: Monitor, area: Rect | None = None) -> Frame:
        if area is None:
            area = Rect(0, 0, monitor.width, monitor.height)
        left, top = monitor.x + area.x, monitor.y + area.y
        box = {"left": left, "top": top, "width": area.width, "height": area.height}
        try:
            shot = self._mss.grab(box)
        except ScreenShotError as exc:
            raise CaptureError(f"capture failed: {exc}") from exc
        # mss hands over a fresh bytearray per grab: wrap it, no copy.
        return np.frombuffer(shot.raw, dtype=np.uint8).reshape(shot.height, shot.width, 4)

    def close(self) -> None:
        self._mss.close()
