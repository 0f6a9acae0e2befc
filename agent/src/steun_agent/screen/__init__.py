"""Screen sharing: capture per monitor, tile diffs, text/photo encodings, a credit-windowed streamer, cursor.

Public API for the session runtime::

    streamer = ScreenStreamer(send, lambda: Capturer(display), cursor_factory=lambda: X11CursorTracker(display))
    task = asyncio.create_task(streamer.run())
    ...  # for each console message on the screen channel: streamer.handle(decode_from_console(payload))
    streamer.monitor  # origin of input coordinates (see steun_agent.input.InputDispatcher)
"""

from __future__ import annotations

from .capture import Capturer, CaptureError, FrameSource, Monitor
from .cursor import CursorImage, CursorSource, X11CursorTracker
from .encoding import EncodedRegion, RegionEncoder, decode_region
from .flow import FlowControl, FlowStatistics
from .streamer import ScreenStreamer, StreamerConfig, StreamerStatistics
from .tiles import TILE, Rect, TileKind, changed_tiles, classify_tiles, merge_tiles, regions_by_kind

__all__ = [
    "TILE",
    "CaptureError",
    "Capturer",
    "CursorImage",
    "CursorSource",
    "EncodedRegion",
    "FlowControl",
    "FlowStatistics",
    "FrameSource",
    "Monitor",
    "Rect",
    "RegionEncoder",
    "ScreenStreamer",
    "StreamerConfig",
    "StreamerStatistics",
    "TileKind",
    "X11CursorTracker",
    "changed_tiles",
    "classify_tiles",
    "decode_region",
    "merge_tiles",
    "regions_by_kind",
]
