"""steun_server: the Steun server (REST and websocket APIs, relay, auth, audit, storage).

Entry points for other code: ``steun_server.config.load_config``, ``steun_server.app.create_app`` and
``steun_server.app.serve``; the command line is ``steun`` (``steun_server.cli``).
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("steun-server")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0"
