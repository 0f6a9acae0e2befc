"""A 1 GiB file each way through the chunk engine, with memory that does not grow with the file.

The file is sparse (a hole with a few marker blocks, so order mistakes still show) and deleted afterwards.
Memory is watched two ways: tracemalloc's peak of Python allocations during the transfer, and the
process's resident set sampled while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .peer import FilesConsole, file_sha256

GIB = 1 << 30
MIB = 1 << 20
#: Allowed peak of Python allocations during a transfer: two windows (2 MiB each) and change, never the file.
TRACED_LIMIT = 24 * MIB
#: Allowed growth of the resident set (allocator slack, thread stacks, page-table noise included).
RSS_LIMIT = 96 * MIB


def sparse_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
        for offset in range(0, size, 64 * MIB):
            f.seek(offset)
            f.write(offset.to_bytes(8, "big") * 512)
    return path


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@contextlib.asynccontextmanager
async def watched() -> AsyncIterator[dict[str, int]]:
    figures = {"rss_before": rss(), "rss_max": 0}

    async def sample() -> None:
        while True:
            figures["rss_max"] = max(figures["rss_max"], rss())
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    tracemalloc.start()
    try:
        yield figures
    finally:
        figures["traced_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        sampler.cancel()
        figures["rss_max"] = max(figures["rss_max"], rss())


@pytest.fixture
def big(root: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    made = [sparse_file(root / "big.img", GIB)]
    yield made
    for path in [*made, *root.iterdir(), *tmp_path.glob("*.img")]:
        with contextlib.suppress(OSError):
            path.unlink()


@pytest.mark.timeout(300)
async def test_one_gib_download_with_constant_memory(big: list[Path], root: Path, tmp_path: Path) -> None:
    console = FilesConsole(root)
    dest = tmp_path / "copy.img"
    big.append(dest)
    async with watched() as figures:
        got = await console.download("big.img", dest)
    await console.close()
    assert figures["traced_peak"] < TRACED_LIMIT, figures
    assert figures["rss_max"] - figures["rss_before"] < RSS_LIMIT, figures
    assert got.transferred == GIB
    assert got.sha256 == await asyncio.to_thread(file_sha256, big[0])


@pytest.mark.timeout(300)
async def test_one_gib_upload_with_constant_memory(big: list[Path], root: Path, tmp_path: Path) -> None:
    source = big[0].rename(tmp_path / "source.img")
    big.append(source)
    console = FilesConsole(root)
    async with watched() as figures:
        sent = await console.upload(source, "uploaded.img")
    await console.close()
    assert figures["traced_peak"] < TRACED_LIMIT, figures
    assert figures["rss_max"] - figures["rss_before"] < RSS_LIMIT, figures
    assert sent.transferred == GIB
    assert sent.sha256 == await asyncio.to_thread(file_sha256, root / "uploaded.img")
