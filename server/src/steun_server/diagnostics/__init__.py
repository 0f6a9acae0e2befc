"""Routine tests on the server: runs on connected agents, results, schedules, group policy, console commands.

Hooked into ``create_app`` like the fleet: ``setup(app)`` (state, agent request handlers, background work),
``COMMANDS`` (console websocket) and ``ROUTES`` (none yet). See ``docs/diagnostics.md``.
"""

from __future__ import annotations

from .commands import COMMANDS
from .service import DIAGNOSTICS, DiagnosticsService, setup

ROUTES: tuple[()] = ()

__all__ = ["COMMANDS", "DIAGNOSTICS", "ROUTES", "DiagnosticsService", "setup"]
