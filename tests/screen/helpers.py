"""Faithful fakes for the screen pipeline: a frame source and synthetic screens."""

from __future__ import annotations

import numpy as np
from steun_agent.screen import Monitor, Rect


def text_screen(height: int = 1080, width: int = 1920, seed: int = 0) -> np.ndarray:
    """A light page with dark 'glyphs' in lines: flat runs, few colours, like a terminal or document."""
    rng = np.random.default_rng(seed)
    frame = np.full((height, width, 4), 250, dtype=np.uint8)
    frame[..., 3] = 0
    for top in range(8, height - 16, 18):
        for left in range(8, width - 8, 9):
            if rng.random() < 0.7:
                glyph = rng.random((12, 6)) < 0.35
                frame[top : top + 12, left : left + 6][glyph] = (30, 30, 30, 0)
    return frame


def photo_screen(height: int = 1080, width: int = 1920, seed: int = 1) -> np.ndarray:
    """Smooth colour fields plus sensor-like noise: almost every pixel differs from its neighbour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.zeros((height, width, 4), np.float32)
    for c in range(3):
        field = sum(
            np.sin(x * rng.uniform(0.002, 0.03) + y * rng.uniform(0.002, 0.03) + rng.uniform(0, 6.3)) * 40
            for _ in range(4)
        )
        frame[..., c] = 128 + field + rng.normal(0, 5, (height, width))
    return np.clip(frame, 0, 255).astype(np.uint8)


class FakeSource:
    """A FrameSource whose screen the test edits; ``grab`` returns a copy, as mss does."""

    def __init__(self, frame: np.ndarray, monitors: list[Monitor] | None = None) -> None:
        self.frame = frame
        self.grabs = 0
        self.areas: list[Rect | None] = []
        self.closed = False
        h, w = frame.shape[:2]
        self._monitors = monitors or [Monitor(1, 0, 0, w, h, primary=True, name="fake")]

    def monitors(self) -> list[Monitor]:
        return self._monitors

    def grab(self, monitor: Monitor, area: Rect | None = None) -> np.ndarray:
        self.grabs += 1
        self.areas.append(area)
        area = area or Rect(0, 0, monitor.width, monitor.height)
        x, y = monitor.x + area.x, monitor.y + area.y
        return self.frame[y : y + area.height, x : x + area.width].copy()

    def close(self) -> None:
        self.closed = True


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    diff = a[..., :3].astype(np.float64) - b[..., :3].astype(np.float64)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10 * np.log10(255 * 255 / mse)
