"""Routine tests ("what is wrong with this machine?"): the catalogue's checks, run by the agent.

``Runner`` runs checks concurrently with a timeout each; ``DiagnosticsCapability`` serves ``diagnostics/run``
from the server; ``cli.check_main`` is ``steun-agent check``. Checks separate a probe (gathers data through a
platform backend, in a bounded thread pool) from ``evaluate`` (pure grading against thresholds).
"""

from __future__ import annotations

from .capability import DiagnosticsCapability
from .pool import ProbePool
from .runner import Runner
from .sampler import Sampler

__all__ = ["DiagnosticsCapability", "ProbePool", "Runner", "Sampler"]
