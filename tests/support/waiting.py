"""Waiting for conditions in tests: never sleep a fixed time, always with a timeout that scales by one factor."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: Multiply every test timeout by this (e.g. STEUN_TEST_TIMEOUT_FACTOR=3 on a slow or loaded machine).
TIMEOUT_FACTOR = float(os.environ.get("STEUN_TEST_TIMEOUT_FACTOR", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_FACTOR


async def wait_for(
    condition: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``condition`` (sync or async) until it returns something truthy; return that value.

    Raises AssertionError naming ``what`` when ``timeout`` (scaled) passes first.
    """
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {scaled(timeout):.1f}s waiting for {what} (last: {value!r})"
            )
        await asyncio.sleep(interval)
