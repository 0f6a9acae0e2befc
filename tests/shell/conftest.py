"""Shell tests run real programs in real PTYs: they need Linux (/proc) and bash."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator

import pytest

from .helpers import ShellConsole
from .native import device, tech  # noqa: F401 - fixtures of the native-SSH tests

if not sys.platform.startswith("linux") or not os.path.exists("/bin/bash"):
    pytest.skip("the PTY tests need Linux /proc and /bin/bash", allow_module_level=True)


@pytest.fixture
async def console() -> AsyncIterator[ShellConsole]:
    peer = ShellConsole()
    yield peer
    await peer.service.close_all()
