"""Change detection, classification, merging and encoders, on synthetic screens (pure, no X)."""

from __future__ import annotations

import numpy as np
import pytest
from steun_agent.screen import (
    Rect,
    RegionDecoder,
    RegionEncoder,
    TileKind,
    changed_tiles,
    classify_tiles,
    decode_region,
    merge_tiles,
    regions_by_kind,
)
from steun_agent.screen import encoding as encoding_module
from steun_protocol.screen import ALL_ENCODINGS, MANDATORY_ENCODINGS, Encoding, Region

from .helpers import photo_screen, psnr, text_screen


@pytest.mark.parametrize(("height", "width"), [(1080, 1920), (768, 1366), (100, 70)])
def test_change_detection_finds_exactly_the_changed_tiles(height: int, width: int) -> None:
    before = text_screen(height, width)
    assert not changed_tiles(before, before.copy()).any()
    after = before.copy()
    touched = {(0, 0), (height - 1, width - 1), (height // 2, width // 3), (65, 64)}
    touched = {(y, x) for y, x in touched if y < height and x < width}
    for y, x in touched:
        after[y, x, 1] ^= 0x40
    mask = changed_tiles(before, after)
    assert mask.shape == (-(-height // 64), -(-width // 64))
    assert {(int(r), int(c)) for r, c in zip(*np.nonzero(mask), strict=True)} == {
        (y // 64, x // 64) for y, x in touched
    }


def test_a_change_in_the_padding_byte_counts_too() -> None:
    # X leaves the 4th byte alone in practice, but a diff that ignored bytes would hide real changes elsewhere.
    before = text_screen(128, 128)
    after = before.copy()
    after[70, 70, 3] = 1
    assert changed_tiles(before, after).sum() == 1


def test_merging_covers_the_changed_tiles_and_nothing_else() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        mask = rng.random((17, 30)) < 0.2
        rects = merge_tiles(mask, 1080, 1920)
        covered = np.zeros((1080, 1920), dtype=np.int32)
        for r in rects:
            covered[r.y : r.y + r.height, r.x : r.x + r.width] += 1
        assert covered.max() <= 1, "rectangles overlap"
        expected = np.kron(mask, np.ones((64, 64), dtype=np.int32))[:1080, :1920]
        assert np.array_equal(covered, expected)
    full = merge_tiles(np.ones((17, 30), dtype=bool), 1080, 1920)
    assert full == [Rect(0, 0, 1920, 1080)]


def test_text_and_photo_tiles_are_told_apart() -> None:
    frame = text_screen()
    frame[256:768, 512:1280] = photo_screen()[256:768, 512:1280]
    mask = np.ones((17, 30), dtype=bool)
    kinds = classify_tiles(frame, mask)
    assert (kinds[4:12, 8:20] == TileKind.PHOTO).all()
    kinds[4:12, 8:20] = TileKind.TEXT
    assert (kinds == TileKind.TEXT).all()
    regions = regions_by_kind(classify_tiles(frame, mask), 1080, 1920)
    assert (Rect(512, 256, 768, 512), TileKind.PHOTO) in regions
    assert sum(r.area for r, _ in regions) == 1920 * 1080


@pytest.mark.parametrize(
    ("encodings", "expected"),
    [
        (ALL_ENCODINGS, Encoding.ZSTD_STREAM_BGRA),
        (MANDATORY_ENCODINGS | Encoding.ZSTD_BGRA.bit, Encoding.ZSTD_BGRA),
        (MANDATORY_ENCODINGS, Encoding.DEFLATE_BGRA),
    ],
)
def test_lossless_regions_round_trip_exactly(encodings: int, expected: Encoding) -> None:
    frame = text_screen(400, 700)
    rect = Rect(13, 7, 600, 333)
    [out] = RegionEncoder().encode(frame, rect, TileKind.TEXT, quality=75, encodings=encodings)
    assert out.encoding is expected
    assert not out.lossy
    assert np.array_equal(RegionDecoder().decode(as_message(out)), frame[7:340, 13:613])
    assert len(out.data) < rect.area * 4 / 10


def as_message(out) -> Region:
    r = out.rect
    return Region(1, r.x, r.y, r.width, r.height, out.encoding, out.data, out.reset)


def test_zstd_regions_form_one_stream_that_remembers_earlier_pixels() -> None:
    page = text_screen(1080, 800, seed=5)
    encoder, decoder = RegionEncoder(), RegionDecoder()
    first = encoder.encode(page, Rect(0, 0, 800, 600), TileKind.TEXT, quality=75, encodings=ALL_ENCODINGS)[0]
    scrolled = page.copy()
    scrolled[0:600] = page[40:640]  # the page scrolled up by two lines
    second = encoder.encode(
        scrolled, Rect(0, 0, 800, 600), TileKind.TEXT, quality=75, encodings=ALL_ENCODINGS
    )[0]
    assert first.reset and not second.reset
    assert len(second.data) * 5 < len(first.data), (len(first.data), len(second.data))
    assert np.array_equal(decoder.decode(as_message(first)), page[0:600])
    assert np.array_equal(decoder.decode(as_message(second)), scrolled[0:600])
    # After a reset the stream starts over, and a fresh decoder can follow.
    encoder.reset()
    third = encoder.encode(page, Rect(0, 0, 800, 600), TileKind.TEXT, quality=75, encodings=ALL_ENCODINGS)[0]
    assert third.reset
    assert np.array_equal(RegionDecoder().decode(as_message(third)), page[0:600])


def test_photo_regions_are_jpeg_within_a_psnr_bound() -> None:
    frame = photo_screen(512, 768)
    rect = Rect(0, 0, 768, 512)
    for quality, bound in ((90, 33), (75, 32), (30, 30)):
        [out] = RegionEncoder().encode(frame, rect, TileKind.PHOTO, quality=quality, encodings=ALL_ENCODINGS)
        assert out.encoding is Encoding.JPEG and out.lossy
        decoded = decode_region(out.encoding, out.data, rect.width, rect.height)
        assert psnr(decoded, frame) > bound, quality
        assert len(out.data) < rect.area * 4 / 8


def test_a_photo_misread_as_text_falls_back_to_jpeg_and_restarts_the_stream() -> None:
    frame = photo_screen(256, 256)
    text = text_screen(256, 256)
    encoder, decoder = RegionEncoder(), RegionDecoder()
    first = encoder.encode(text, Rect(0, 0, 256, 256), TileKind.TEXT, quality=75, encodings=ALL_ENCODINGS)[0]
    decoder.decode(as_message(first))
    [out] = encoder.encode(frame, Rect(0, 0, 256, 256), TileKind.TEXT, quality=75, encodings=ALL_ENCODINGS)
    assert out.encoding is Encoding.JPEG
    # The zstd block of the photo was never sent: the next lossless region must not depend on it.
    after = encoder.encode(text, Rect(0, 0, 128, 128), TileKind.TEXT, quality=75, encodings=ALL_ENCODINGS)[0]
    assert after.reset
    assert np.array_equal(decoder.decode(as_message(after)), text[:128, :128])


def test_one_colour_is_solid() -> None:
    frame = np.zeros((300, 300, 4), np.uint8)
    frame[..., :3] = (10, 20, 30)
    [out] = RegionEncoder().encode(
        frame, Rect(5, 5, 200, 100), TileKind.TEXT, quality=75, encodings=ALL_ENCODINGS
    )
    assert out.encoding is Encoding.SOLID and out.data == bytes((10, 20, 30, 0))
    assert np.array_equal(decode_region(out.encoding, out.data, 200, 100), frame[5:105, 5:205])


def test_a_region_too_large_for_a_record_is_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoding_module, "MAX_REGION_BYTES", 20_000)
    frame = photo_screen(512, 512)
    parts = RegionEncoder().encode(
        frame, Rect(0, 0, 512, 512), TileKind.PHOTO, quality=90, encodings=ALL_ENCODINGS
    )
    assert len(parts) > 1
    assert all(len(p.data) <= 20_000 for p in parts)
    assert sum(p.rect.area for p in parts) == 512 * 512


def test_classification_of_scattered_and_edge_tiles() -> None:
    frame = text_screen(768, 1366)
    frame[:, 1344:] = photo_screen(768, 22)  # the partial last tile column is photo-like
    frame[128:192, 640:704] = photo_screen(64, 64)
    mask = np.zeros((12, 22), dtype=bool)
    mask[2, [3, 10, 21]] = True
    mask[11, 21] = True
    kinds = classify_tiles(frame, mask)
    assert kinds[2, 3] == TileKind.TEXT and kinds[2, 10] == TileKind.PHOTO and kinds[2, 21] == TileKind.PHOTO
    assert kinds[11, 21] == TileKind.PHOTO
    assert np.count_nonzero(kinds) == 4
