"""Fixtures for agent unit tests: fast timings, a fake backend and a fake control-plane server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from steun_agent.config import AgentConfig

from tests.agent.fakes import FakeBackend, FakeServer


def fast_config(state_dir: Path, **overrides: object) -> AgentConfig:
    values: dict[str, object] = {
        "state_dir": state_dir,
        "backoff_base": 0.05,
        "backoff_cap": 0.2,
        "stable_after": 0.5,
        "inventory_interval": 0.2,
        "request_timeout": 5.0,
        "open_timeout": 5.0,
        "close_timeout": 1.0,
    }
    values.update(overrides)
    return AgentConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def config(state_dir: Path) -> AgentConfig:
    return fast_config(state_dir)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
async def fake_server() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
