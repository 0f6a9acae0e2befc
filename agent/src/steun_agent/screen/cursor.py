"""Cursor position and shape on X11, sent apart from the screen (the capture leaves the cursor out).

The shape comes from XFixes (GetCursorImage) only when XFixes says it changed (DisplayCursorNotify); without
XFixes only the position is tracked. Like the capturer, a tracker lives on one thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from steun_protocol.screen import MAX_CURSOR_SIDE
from Xlib import X, display
from Xlib.error import DisplayError, XError
from Xlib.ext import xfixes

from .capture import CaptureError


@dataclass(frozen=True, slots=True)
class CursorImage:
    serial: int
    width: int
    height: int
    hot_x: int
    hot_y: int
    rgba: bytes  # straight (not premultiplied) alpha


class CursorSource(Protocol):
    def position(self) -> tuple[int, int]:
        """The pointer in desktop coordinates."""
        ...

    def changed_shape(self) -> CursorImage | None:
        """The new shape if it changed since the last call (the first call returns the current one)."""
        ...

    def close(self) -> None: ...


class X11CursorTracker:
    def __init__(self, display_name: str | None = None) -> None:
        try:
            self._display = display.Display(display_name)
        except (DisplayError, OSError) as exc:
            raise CaptureError(f"cannot open the display for the cursor: {exc}") from exc
        self._root = self._display.screen().root
        self._xfixes = self._display.has_extension("XFIXES")
        self._dirty = True
        if self._xfixes:
            self._display.xfixes_query_version()
            self._display.xfixes_select_cursor_input(self._root, xfixes.XFixesDisplayCursorNotifyMask)

    @property
    def has_shapes(self) -> bool:
        return self._xfixes

    def position(self) -> tuple[int, int]:
        pointer = self._root.query_pointer()
        return int(pointer.root_x), int(pointer.root_y)

    def changed_shape(self) -> CursorImage | None:
        if not self._xfixes:
            return None
        while self._display.pending_events():
            event = self._display.next_event()
            if event.type != X.MappingNotify:
                self._dirty = True
        if not self._dirty:
            return None
        self._dirty = False
        try:
            reply = self._display.xfixes_get_cursor_image(self._root)
        except XError:
            return None
        width, height = int(reply.width), int(reply.height)
        if not (1 <= width <= MAX_CURSOR_SIDE and 1 <= height <= MAX_CURSOR_SIDE):
            return None
        return CursorImage(
            int(reply.cursor_serial),
            width,
            height,
            min(int(reply.xhot), width - 1),
            min(int(reply.yhot), height - 1),
            argb_to_rgba(np.asarray(reply.cursor_image, dtype=np.uint32)),
        )

    def close(self) -> None:
        self._display.close()


def argb_to_rgba(argb: np.ndarray) -> bytes:
    """XFixes gives premultiplied ARGB words; browsers paint straight RGBA bytes."""
    a = (argb >> 24) & 0xFF
    rgb = np.stack([(argb >> 16) & 0xFF, (argb >> 8) & 0xFF, argb & 0xFF], axis=-1).astype(np.uint32)
    safe = np.maximum(a, 1)[..., None]
    straight = np.where(a[..., None] > 0, np.minimum(rgb * 255 // safe, 255), 0)
    out = np.concatenate([straight, a[..., None]], axis=-1).astype(np.uint8)
    return out.tobytes()
