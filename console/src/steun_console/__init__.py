"""The Steun technician console: the built web app's static files, served by steun_server."""

from __future__ import annotations

import pathlib

__all__ = ["is_built", "static_dir"]


def static_dir() -> pathlib.Path:
    """The folder holding the built console (``index.html`` and ``assets/``), written by ``npm run build``."""
    return pathlib.Path(__file__).resolve().parent / "static"


def is_built() -> bool:
    """Whether the console has been built (``npm --prefix console ci && npm --prefix console run build``)."""
    return (static_dir() / "index.html").is_file()
