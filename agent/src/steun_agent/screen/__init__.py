"""Screen sharing: capture per monitor, tile diffs, text/photo encodings, a credit-windowed streamer, cursor.

Public API for the session runtime::

    streamer = ScreenStreamer(
        send,
        lambda: Capturer(display),
        cursor_factory=lambda: X11CursorTracker(display),
        damage_factory=lambda: X11Damage(display),
    )
    task = asyncio.create_task(streamer.run())
    ...  # for each console message on the screen channel: streamer.handle(decode_from_console(payload))
    streamer.monitor  # origin of input coordinates (see steun_agent.input.InputDispatcher)
"""

from __future__ import annotations

from .capture import CaptureError, Capturer, FrameSource, Monitor
from .cursor import CursorImage, CursorSource, X11CursorTracker
from .damage import DamageSource, X11Damage
from .encoding import EncodedRegion, RegionDecoder, RegionEncoder, decode_region
from .flow import FlowControl, FlowStatistics
from .streamer import ScreenStreamer, StreamerConfig, StreamerStatistics
from .tiles import TILE, Rect, TileKind, changed_tiles, classify_tiles, merge_tiles, regions_by_kind

__all__ = [
    "TILE",
    "CaptureError",
    "Capturer",
    "CursorImage",
    "CursorSource",
    "DamageSource",
    "EncodedRegion",
    "FlowControl",
    "FlowStatistics",
    "FrameSource",
    "Monitor",
    "Rect",
    "RegionDecoder",
    "RegionEncoder",
    "ScreenStreamer",
    "StreamerConfig",
    "StreamerStatistics",
    "TileKind",
    "X11CursorTracker",
    "X11Damage",
    "changed_tiles",
    "classify_tiles",
    "decode_region",
    "merge_tiles",
    "regions_by_kind",
]
