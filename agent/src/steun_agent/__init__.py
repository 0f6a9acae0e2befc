"""steun_agent: the Steun endpoint agent (control plane, capabilities, platform backends)."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("steun-agent")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
