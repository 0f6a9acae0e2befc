"""Encoding changed regions: SOLID for one colour, zstd (or deflate) on raw BGRA for text-like regions, JPEG
for photo-like ones. The choice and its numbers are in docs/design/0050-screen-encoding.md.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import simplejpeg  # type: ignore[import-untyped]  # no stubs; two calls, wrapped below
import zstandard
from steun_protocol.screen import MAX_REGION_BYTES, Encoding

from .tiles import Frame, Rect, TileKind

#: A lossless encoding larger than raw/LOSSLESS_GIVE_UP means the region was photo-like after all: use JPEG.
LOSSLESS_GIVE_UP = 4
#: Smallest JPEG quality the adaptation may choose, and the default/highest.
MIN_QUALITY = 30
MAX_QUALITY = 90
DEFAULT_QUALITY = 75


@dataclass(frozen=True, slots=True)
class EncodedRegion:
    rect: Rect
    encoding: Encoding
    data: bytes
    lossy: bool


class RegionEncoder:
    """Encodes regions of one frame. Not thread-safe: one per capture thread (it reuses its compressor)."""

    def __init__(self, *, zstd_level: int = 1, deflate_level: int = 1) -> None:
        self._zstd = zstandard.ZstdCompressor(level=zstd_level)
        self._deflate_level = deflate_level

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
            if encodings & Encoding.ZSTD_BGRA.bit:
                data, encoding = self._zstd.compress(raw), Encoding.ZSTD_BGRA
            else:
                data, encoding = zlib.compress(raw, self._deflate_level), Encoding.DEFLATE_BGRA
            if len(data) * LOSSLESS_GIVE_UP <= contiguous.nbytes:
                result = EncodedRegion(rect, encoding, data, lossy=False)
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


def decode_region(encoding: Encoding, data: bytes, width: int, height: int) -> Frame:
    """Decode a region back to BGRA pixels (for tests and the benchmark; the console does this in JS)."""
    if encoding is Encoding.SOLID:
        return np.broadcast_to(np.frombuffer(data, np.uint8), (height, width, 4)).copy()
    if encoding is Encoding.ZSTD_BGRA:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=width * height * 4)
    elif encoding is Encoding.DEFLATE_BGRA:
        raw = zlib.decompressobj().decompress(data, width * height * 4 + 1)
    else:
        rgb = simplejpeg.decode_jpeg(data, colorspace="BGRA")
        return np.asarray(rgb, dtype=np.uint8)
    if len(raw) != width * height * 4:
        raise ValueError(f"{encoding.name} region decodes to {len(raw)} bytes, expected {width * height * 4}")
    return np.frombuffer(raw, np.uint8).reshape(height, width, 4)
