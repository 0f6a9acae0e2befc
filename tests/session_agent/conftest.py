"""Fixtures for the agent session runtime tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "answers(list, prompt_timeout=60): the scripted consent answers")
