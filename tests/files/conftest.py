"""Files tests: a root with a few files, and a console peer on a FilesService serving it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.shell.native import device, tech  # noqa: F401 - fixtures of the technician-CLI tests

from .peer import FilesConsole


@pytest.fixture
def root(tmp_path: Path) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    return served


@pytest.fixture
async def console(root: Path) -> AsyncIterator[FilesConsole]:
    peer = FilesConsole(root)
    yield peer
    await peer.close()


def pattern_file(path: Path, size: int) -> Path:
    """A file whose every 4 KiB block is different (so misplaced chunks cannot pass)."""
    with path.open("wb") as f:
        block = 0
        while f.tell() < size:
            f.write((block.to_bytes(8, "big") * 512)[: min(4096, size - f.tell())])
            block += 1
    return path


def partials(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".steunpart"))
