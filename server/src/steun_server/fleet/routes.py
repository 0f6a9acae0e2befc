"""The fleet's hook-up for ``create_app``: ``ROUTES`` (HTTP, ``/agent/ws``), ``COMMANDS`` and ``setup``."""

from __future__ import annotations

from .commands import COMMANDS
from .rest import routes as ROUTES
from .service import setup

__all__ = ["COMMANDS", "ROUTES", "setup"]
