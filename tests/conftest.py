"""Shared pytest setup: fixtures from tests/support and the event-loop blocking guard."""

from __future__ import annotations

import importlib.util

# Fixtures (real server on 127.0.0.1:0, SQLite and PostgreSQL) live in tests/support/fixtures.py.
pytest_plugins = [
    name
    for name in ("tests.support.fixtures",)
    if importlib.util.find_spec(name) is not None
]
