"""Agent capabilities: one module each, behind one small interface (a name, its handlers, start/stop).

A capability is started once per authenticated connection with a ``Session`` and stopped when that
connection ends. It may send requests through the session and answer server requests through ``handlers``.
Everything that blocks (psutil, file reads, subprocesses) goes through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol, TypeVar

from steun_protocol.messages import Payload, Request

from ..channel import Handler
from ..errors import ConnectionLost

P = TypeVar("P", bound=Payload)

log = logging.getLogger(__name__)


class Session(Protocol):
    """What a capability may do with the current authenticated connection."""

    @property
    def heartbeat_interval(self) -> float: ...

    async def request(
        self,
        request: Request,
        result_type: type[P],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a reply deadline, enforced inside
    ) -> P: ...


class Capability(Protocol):
    name: str

    @property
    def handlers(self) -> Mapping[type[Request], Handler]: ...

    async def start(self, session: Session) -> None:
        """Begin work for a new connection; must return promptly (spawn background tasks)."""

    async def stop(self) -> None:
        """End the work of the current connection; must not raise."""


class TaskCapability:
    """A base for capabilities that run background tasks per connection."""

    name = "unnamed"

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def handlers(self) -> Mapping[type[Request], Handler]:
        return {}

    async def start(self, session: Session) -> None:
        raise NotImplementedError

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(self._guard(coro, what), name=f"steun-agent-{self.name}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _guard(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await coro
        except ConnectionLost:
            pass  # the runtime sees the same failure and reconnects
        except Exception:
            log.exception("capability %s: %s failed", self.name, what)
