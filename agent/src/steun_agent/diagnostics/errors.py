"""Why a probe could not gather its data; the runner turns each kind into a documented status."""

from __future__ import annotations

from steun_protocol.diagnostics import Scalar


class ProbeError(Exception):
    """Root of the diagnostics probes' errors."""


class Unavailable(ProbeError):
    """There is nothing to test here (no battery, no such tool, not this platform): ``not_applicable``.

    ``summary`` is a summary name of the test (``none``) or a shared one (``common.missing_tool``).
    """

    def __init__(self, summary: str, detail: str = "", **params: Scalar) -> None:
        super().__init__(detail or summary)
        self.summary = summary
        self.params = params
        self.detail = detail


class ToolMissing(Unavailable):
    def __init__(self, tool: str) -> None:
        super().__init__("common.missing_tool", tool=tool)
        self.tool = tool


class PermissionDenied(ProbeError):
    """The data exists but this process may not read it: ``error``, naming what needs more rights."""

    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(detail or f"permission denied: {what}")
        self.what = what
        self.detail = detail


class ProbeFailed(ProbeError):
    """Reading the data went wrong in a way worth showing the technician: ``error``."""


class ProbeTimeout(ProbeFailed):
    """A command or call did not finish within its own timeout."""


class PoolExhausted(ProbeError):
    """Too many earlier probes are still hanging in the diagnostics thread pool."""
