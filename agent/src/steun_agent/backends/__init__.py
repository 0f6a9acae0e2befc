"""Platform backends: the OS facts behind the capabilities, one object per platform.

A backend's methods block (psutil, files, subprocesses); capabilities call them through
``asyncio.to_thread``. Tests hand the runtime a faithful fake with the same methods.
"""

from __future__ import annotations

import sys
from typing import Protocol

from steun_protocol.inventory import Inventory, LiveMetrics

from ..errors import ConfigError


class Backend(Protocol):
    """What the inventory capability and the heartbeat need from the operating system."""

    name: str

    def inventory(self) -> Inventory:
        """Collect the machine's inventory, bounded to the protocol's limits. Blocks."""
        ...

    def live_metrics(self) -> LiveMetrics:
        """Collect the small figures sent with every heartbeat. Blocks (briefly)."""
        ...


def default_backend() -> Backend:
    """The backend for the platform this agent runs on."""
    if sys.platform.startswith("linux"):
        from .linux import LinuxBackend

        return LinuxBackend()
    # Windows (WMI/registry) and macOS (system_profiler/pkgutil) backends drop in here, each with its tests.
    raise ConfigError(f"this agent has no backend for {sys.platform} yet")
