"""Diagnostics backends: the real one for this platform, and a faithful fake for tests."""

from __future__ import annotations

import sys
from typing import cast

from ..backend import DiagnosticsBackend


def default_backend() -> DiagnosticsBackend:
    """The backend for the platform this agent runs on; others report every test as not applicable."""
    if sys.platform.startswith("linux"):
        from .linux import LinuxDiagnostics

        return LinuxDiagnostics()
    from .unsupported import UnsupportedPlatform

    return cast(DiagnosticsBackend, UnsupportedPlatform(sys.platform))
