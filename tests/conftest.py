"""Shared pytest setup: fixtures from tests/support and the event-loop blocking guard."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
from blockbuster import blockbuster_ctx

# Fixtures (real server on 127.0.0.1:0, SQLite and PostgreSQL) live in tests/support/fixtures.py.
pytest_plugins = [name for name in ("tests.support.fixtures",) if importlib.util.find_spec(name) is not None]

#: Code in these packages must never block a running event loop (aiohttp's blockbuster practice).
GUARDED = ["steun_protocol", "steun_server", "steun_agent"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_blocking: this test may call blocking code on the event loop (say why beside it)"
    )


@pytest.fixture(autouse=True)
def no_blocking_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test in which Steun code makes a blocking call (file, socket, sleep...) on a running loop.

    Blocking work belongs in ``asyncio.to_thread``. Calls made outside a running loop are not affected.
    """
    if request.node.get_closest_marker("allow_blocking"):
        yield
        return
    with blockbuster_ctx(GUARDED):
        yield
