"""Change hints from the X server (DAMAGE): an unchanged screen is not captured at all, and a small change
(typing, a blinking cursor) is captured and diffed only where it happened.

The streamer still diffs what it captures against what it sent: DAMAGE only decides *where* to look. Once
a second the whole monitor is captured regardless, in case something draws without reporting damage.
"""

from __future__ import annotations

import time
from typing import Protocol

from Xlib import display
from Xlib.error import DisplayError
from Xlib.ext import damage

from .capture import CaptureError
from .tiles import Rect

#: Capture at least this often even without damage (seconds).
SAFETY_INTERVAL = 1.0


class DamageSource(Protocol):
    def changed(self) -> Rect | None:
        """The desktop area that may have changed since the last call (None: nothing). The first call, and
        one call a second, answer with the whole desktop."""
        ...

    def close(self) -> None: ...


class X11Damage:
    """A DAMAGE object on the root window (its inferiors included), reporting its bounding box."""

    def __init__(self, display_name: str | None = None) -> None:
        try:
            self._display = display.Display(display_name)
        except (DisplayError, OSError) as exc:
            raise CaptureError(f"cannot open the display for damage: {exc}") from exc
        if not self._display.has_extension("DAMAGE"):
            self._display.close()
            raise CaptureError("the X server has no DAMAGE extension")
        self._display.damage_query_version()
        screen = self._display.screen()
        self._whole = Rect(0, 0, int(screen.width_in_pixels), int(screen.height_in_pixels))
        self._damage = screen.root.damage_create(damage.DamageReportBoundingBox)
        self._display.sync()
        self._last_whole = float("-inf")

    def changed(self) -> Rect | None:
        x0 = y0 = 1 << 30
        x1 = y1 = -(1 << 30)
        while self._display.pending_events():
            event = self._display.next_event()
            area = getattr(event, "area", None)
            if area is None:
                continue
            x0, y0 = min(x0, int(area.x)), min(y0, int(area.y))
            x1, y1 = max(x1, int(area.x) + int(area.width)), max(y1, int(area.y) + int(area.height))
        now = time.monotonic()
        result: Rect | None = Rect(x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None
        if now - self._last_whole >= SAFETY_INTERVAL:
            result, self._last_whole = self._whole, now
        if result is not None:
            # Re-arm before capturing: drawing after this point raises a new event, so nothing is missed.
            self._display.damage_subtract(self._damage)
            self._display.sync()
        return result

    def close(self) -> None:
        self._display.close()
