"""Finding what changed between two frames (64×64 tiles), telling text-like from photo-like tiles, and merging
changed tiles into rectangles. Pure numpy, no I/O.

Frames are ``(height, width, 4)`` uint8 arrays in B, G, R, X order, as mss captures them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

TILE = 64

Frame = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


class TileKind(enum.IntEnum):
    """How a tile is best encoded: lossless for text/UI (few colours, flat runs), lossy for photos/video."""

    TEXT = 1
    PHOTO = 2


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height


def grid_shape(height: int, width: int, tile: int = TILE) -> tuple[int, int]:
    return -(-height // tile), -(-width // tile)


def _pixels(frame: Frame) -> npt.NDArray[np.uint32]:
    """The frame as one uint32 per pixel (no copy)."""
    return frame.view(np.uint32).reshape(frame.shape[0], frame.shape[1])


def changed_tiles(previous: Frame, current: Frame, tile: int = TILE) -> Mask:
    """A ``(rows, cols)`` mask of the tiles in which any pixel differs. Both frames must have one shape."""
    if previous.shape != current.shape:
        raise ValueError(f"frames differ in shape: {previous.shape} vs {current.shape}")
    height, width = current.shape[:2]
    rows, cols = grid_shape(height, width, tile)
    diff = _pixels(previous) != _pixels(current)
    # Reduce the rows of whole tiles with a reshape (fast); a partial last tile row separately.
    full = (height // tile) * tile
    per_row = np.empty((rows, width), dtype=np.bool_)
    if full:
        diff[:full].reshape(height // tile, tile, width).any(axis=1, out=per_row[: height // tile])
    if full < height:
        diff[full:].any(axis=0, out=per_row[-1])
    full_w = (width // tile) * tile
    out = np.empty((rows, cols), dtype=np.bool_)
    if full_w:
        per_row[:, :full_w].reshape(rows, width // tile, tile).any(axis=2, out=out[:, : width // tile])
    if full_w < width:
        per_row[:, full_w:].any(axis=1, out=out[:, -1])
    return out


#: A tile whose pixels equal their left neighbour this often is text/UI-like (measured: docs/design/0050).
FLAT_RATIO = 0.40


def classify_tiles(frame: Frame, mask: Mask, tile: int = TILE) -> npt.NDArray[np.uint8]:
    """``TileKind`` per tile for the tiles in ``mask`` (0 elsewhere).

    The statistic is the share of pixels equal to their left neighbour: text, UI and diagrams are made of flat
    runs (most pixels repeat), photos and video are not (noise and gradients make almost every pixel new).
    Measured on this project's workloads: text tiles ≥ 0.64, photo tiles ≈ 0 (docs/design/0050).
    """
    pixels = _pixels(frame)
    width = pixels.shape[1]
    kinds = np.zeros(mask.shape, dtype=np.uint8)
    for r in np.flatnonzero(mask.any(axis=1)):
        # Only the span of changed tiles in this tile row: a typed character costs one tile, not a band.
        cols = np.flatnonzero(mask[r])
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        x0, x1 = c0 * tile, min(c1 * tile, width)
        band = pixels[r * tile : (r + 1) * tile, x0:x1]
        same = np.zeros(band.shape, dtype=np.bool_)
        np.equal(band[:, 1:], band[:, :-1], out=same[:, 1:])
        span, n = x1 - x0, c1 - c0
        whole = (span // tile) * tile
        counts = np.empty(n, dtype=np.int64)
        if whole:
            blocks = same[:, :whole].reshape(band.shape[0], span // tile, tile)
            counts[: span // tile] = blocks.sum(axis=(0, 2))
        if whole < span:
            counts[-1] = same[:, whole:].sum()
        widths = np.full(n, tile, dtype=np.int64)
        widths[-1] = span - (n - 1) * tile
        totals = band.shape[0] * np.maximum(widths - 1, 1)
        row_kinds = np.where(counts >= FLAT_RATIO * totals, TileKind.TEXT, TileKind.PHOTO).astype(np.uint8)
        kinds[r, c0:c1] = np.where(mask[r, c0:c1], row_kinds, 0)
    return kinds


def merge_tiles(mask: Mask, height: int, width: int, tile: int = TILE) -> list[Rect]:
    """Cover the marked tiles with few rectangles: runs along each tile row, equal runs stacked downwards.

    One rectangle compresses better than its tiles apart (zstd: 26 KB as one region against 75 KB as tiles).
    Rectangles are clipped to the frame.
    """
    open_runs: dict[tuple[int, int], int] = {}  # (c0, c1) -> first tile row of a run still growing downwards
    rects: list[Rect] = []

    def close(c0: int, c1: int, r0: int, r1: int) -> None:
        x, y = c0 * tile, r0 * tile
        rects.append(Rect(x, y, min(c1 * tile, width) - x, min(r1 * tile, height) - y))

    rows = mask.shape[0]
    for r in range(rows + 1):
        runs: set[tuple[int, int]] = set()
        if r < rows:
            row = mask[r]
            if row.any():
                edges = np.flatnonzero(np.diff(np.concatenate(([False], row, [False])).astype(np.int8)))
                runs = {(int(edges[i]), int(edges[i + 1])) for i in range(0, len(edges), 2)}
        for run in [k for k in open_runs if k not in runs]:
            close(run[0], run[1], open_runs.pop(run), r)
        for run in runs:
            open_runs.setdefault(run, r)
    rects.sort(key=lambda rc: (rc.y, rc.x))
    return rects


def regions_by_kind(
    kinds: npt.NDArray[np.uint8], height: int, width: int, tile: int = TILE
) -> list[tuple[Rect, TileKind]]:
    """Changed tiles merged into rectangles, one class per rectangle (a photo inside a page stays lossy)."""
    out: list[tuple[Rect, TileKind]] = []
    for kind in (TileKind.TEXT, TileKind.PHOTO):
        out += [(rect, kind) for rect in merge_tiles(kinds == kind, height, width, tile)]
    return out
