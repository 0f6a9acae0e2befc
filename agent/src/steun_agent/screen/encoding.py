"""Encoding changed regions: SOLID for one colour, zstd (or deflate) on raw BGRA for text-like regions, JPEG
for photo-like ones. The choice and its numbers are in docs/design/0050-screen-encoding.md.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import simplejpeg  # type: ignore[import-untyped]  # no stubs; two calls, wrapped below
import zstandard
from steun_protocol.screen import MAX_REGION_BYTES, Encoding, Region

from .tiles import Frame, Rect, TileKind

#: A lossless encoding larger than raw/LOSSLESS_GIVE_UP means the region was photo-like after all: use JPEG.
LOSSLESS_GIVE_UP = 4
#: Smallest JPEG quality the adaptation may choose, and the default/highest.
MIN_QUALITY = 30
MAX_QUALITY = 90
DEFAULT_QUALITY = 75


#: The window of the ZSTD_STREAM_BGRA stream: 8 MiB holds a whole 1080p screen, so a line that scrolls up
#: or a window that moves is found again by long-distance matching (measured: scrolling text 14 KB → 1.7 KB
#: per frame; docs/design/0050).
ZSTD_WINDOW_LOG = 23


@dataclass(frozen=True, slots=True)
class EncodedRegion:
    rect: Rect
    encoding: Encoding
    data: bytes
    lossy: bool
    reset: bool = False  # ZSTD_STREAM_BGRA: this region starts a new zstd stream


class RegionEncoder:
    """Encodes the regions of one screen stream, in order. Not thread-safe: one per capture thread.

    ZSTD_STREAM_BGRA regions are consecutive flushed blocks of one zstd stream (the console keeps one
    decoder), so every region after the first can refer to pixels sent before. ``reset()`` starts a new
    stream (a new monitor, a refresh the console asked for). ZSTD_BGRA regions stand alone.
    """

    def __init__(self, *, zstd_level: int = 1, deflate_level: int = 1, long_distance: bool = True) -> None:
        self._zstd_params = zstandard.ZstdCompressionParameters.from_level(
            zstd_level, window_log=ZSTD_WINDOW_LOG, enable_ldm=long_distance
        )
        self._zstream: zstandard.ZstdCompressionObj | None = None
        self._zstd_frames = zstandard.ZstdCompressor(level=zstd_level)
        self._deflate_level = deflate_level

    def reset(self) -> None:
        self._zstream = None

    def _zstd_stream(self, raw: memoryview) -> tuple[bytes, bool]:
        reset = self._zstream is None
        if self._zstream is None:
            self._zstream = zstandard.ZstdCompressor(compression_params=self._zstd_params).compressobj()
        data = self._zstream.compress(raw) + self._zstream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        return data, reset

    def encode(
        self, frame: Frame, rect: Rect, kind: TileKind, *, quality: int, encodings: int
    ) -> list[EncodedRegion]:
        """Encode one rectangle; a region whose encoding would exceed a record is split into bands."""
        block = frame[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
        pixels = block.view(np.uint32).reshape(block.shape[0], block.shape[1])
        first = pixels[0, 0]
        if encodings & Encoding.SOLID.bit and bool((pixels == first).all()):
            return [EncodedRegion(rect, Encoding.SOLID, bytes(block[0, 0]), lossy=False)]
        contiguous = np.ascontiguousarray(block)
        result: EncodedRegion | None = None
        if kind is TileKind.TEXT:
            raw = contiguous.data
            reset = False
            if encodings & Encoding.ZSTD_STREAM_BGRA.bit:
                (data, reset), encoding = self._zstd_stream(raw), Encoding.ZSTD_STREAM_BGRA
            elif encodings & Encoding.ZSTD_BGRA.bit:
                data, encoding = self._zstd_frames.compress(raw), Encoding.ZSTD_BGRA
            else:
                data, encoding = zlib.compress(raw, self._deflate_level), Encoding.DEFLATE_BGRA
            if len(data) * LOSSLESS_GIVE_UP <= contiguous.nbytes and len(data) <= MAX_REGION_BYTES:
                result = EncodedRegion(rect, encoding, data, lossy=False, reset=reset)
            elif encoding is Encoding.ZSTD_STREAM_BGRA:
                self._zstream = None  # the console never sees this block: the stream starts again
        if result is None:
            quality = max(1, min(quality, 100))
            jpeg = simplejpeg.encode_jpeg(
                contiguous, quality=quality, colorspace="BGRA", colorsubsampling="420"
            )
            result = EncodedRegion(rect, Encoding.JPEG, jpeg, lossy=True)
        if len(result.data) <= MAX_REGION_BYTES:
            return [result]
        if rect.height < 2:  # cannot happen with real encoders; refuse rather than loop
            raise ValueError(f"a one-pixel row of {rect.width} px does not fit in a record")
        half = rect.height // 2
        top = Rect(rect.x, rect.y, rect.width, half)
        bottom = Rect(rect.x, rect.y + half, rect.width, rect.height - half)
        return [
            *self.encode(frame, top, kind, quality=quality, encodings=encodings),
            *self.encode(frame, bottom, kind, quality=quality, encodings=encodings),
        ]


class RegionDecoder:
    """The console's side, in Python (tests and the benchmark; the console does the same in JS)."""

    def __init__(self) -> None:
        self._zstream: zstandard.ZstdDecompressionObj | None = None

    def decode(self, region: Region) -> Frame:
        width, height = region.width, region.height
        if region.encoding is not Encoding.ZSTD_STREAM_BGRA:
            return decode_region(region.encoding, region.data, width, height)
        if region.reset or self._zstream is None:
            self._zstream = zstandard.ZstdDecompressor(max_window_size=1 << ZSTD_WINDOW_LOG).decompressobj()
        raw = self._zstream.decompress(region.data)
        if len(raw) != width * height * 4:
            raise ValueError(f"zstd stream region decodes to {len(raw)} bytes, expected {width * height * 4}")
        return np.frombuffer(raw, np.uint8).reshape(height, width, 4)


def decode_region(encoding: Encoding, data: bytes, width: int, height: int) -> Frame:
    """Decode a self-contained region (all but ZSTD_STREAM_BGRA) back to BGRA pixels."""
    if encoding is Encoding.SOLID:
        return np.broadcast_to(np.frombuffer(data, np.uint8), (height, width, 4)).copy()
    if encoding is Encoding.ZSTD_STREAM_BGRA:
        raise ValueError("ZSTD_STREAM_BGRA regions belong to a stream: use RegionDecoder")
    if encoding is Encoding.ZSTD_BGRA:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=width * height * 4)
    elif encoding is Encoding.DEFLATE_BGRA:
        raw = zlib.decompressobj().decompress(data, width * height * 4 + 1)
    else:
        pixels = simplejpeg.decode_jpeg(data, colorspace="BGRA")
        return np.asarray(pixels, dtype=np.uint8)
    if len(raw) != width * height * 4:
        raise ValueError(f"{encoding.name} region decodes to {len(raw)} bytes, expected {width * height * 4}")
    return np.frombuffer(raw, np.uint8).reshape(height, width, 4)
