"""The agent runtime: connect, authenticate, run the capabilities and the heartbeat, reconnect with backoff.

It gives up only when going on cannot help: the server's key no longer matches the pin (``PinMismatch``),
or the device was revoked. Everything else (server restarts, network loss, timeouts, refusals) leads to a
new attempt after a jittered, capped delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from typing import Any

from steun_protocol import ProtocolError
from steun_protocol.auth import agent_proof_payload, b64encode
from steun_protocol.control import Auth, AuthResult, Heartbeat
from steun_protocol.inventory import LiveMetrics
from steun_protocol.messages import Empty, Request

from .backends import Backend
from .backoff import Backoff
from .capabilities import Capability, P
from .capabilities.inventory import InventoryCapability
from .channel import ControlChannel, Handler
from .config import AgentConfig
from .errors import AgentError, ConnectionLost, ServerRefused, TrustError
from .state import AgentState

log = logging.getLogger(__name__)

#: Websocket close code with which the server ends a connection that a newer one of the same device replaced.
CLOSE_REPLACED = 4409


class _Session:
    """The authenticated connection as capabilities see it."""

    def __init__(self, channel: ControlChannel, heartbeat_interval: float) -> None:
        self._channel = channel
        self._heartbeat_interval = heartbeat_interval

    @property
    def heartbeat_interval(self) -> float:
        return self._heartbeat_interval

    async def request(
        self,
        request: Request,
        result_type: type[P],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a reply deadline, enforced inside
    ) -> P:
        return await self._channel.request(request, result_type, timeout=timeout)


class Runtime:
    """Keeps one authenticated control connection alive for as long as the agent runs."""

    def __init__(
        self,
        state: AgentState,
        config: AgentConfig,
        backend: Backend,
        capabilities: Sequence[Capability] | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.state = state
        self.config = config
        self.backend = backend
        self.capabilities: list[Capability] = (
            list(capabilities)
            if capabilities is not None
            else [InventoryCapability(backend, config.inventory_interval)]
        )
        self.backoff = Backoff(config.backoff_base, config.backoff_cap, rng=rng)
        self._stop = asyncio.Event()
        self._online = asyncio.Event()
        self._counts = {"connects": 0, "disconnects": 0, "heartbeats": 0, "failed_attempts": 0}
        self.last_error: AgentError | None = None
        self._last_metrics: LiveMetrics | None = None
        self._authenticated_at: float | None = None
        handlers: dict[type[Request], Handler] = {}
        for capability in self.capabilities:
            handlers.update(capability.handlers)
        self._handlers = handlers

    # ---------------------------------------------------------------- public

    async def run(self) -> None:
        """Run until ``stop()``; raises ``TrustError`` or a fatal ``ServerRefused`` when it must give up."""
        loop = asyncio.get_running_loop()
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            while not self._stop.is_set():
                self._authenticated_at = None
                attempt = asyncio.create_task(self._connection(), name="steun-agent-connection")
                await asyncio.wait({attempt, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not attempt.done():
                    attempt.cancel()
                error: AgentError | None = None
                with contextlib.suppress(asyncio.CancelledError):
                    error = await self._settle(attempt)
                if self._stop.is_set():
                    break
                up_since = self._authenticated_at
                if up_since is not None and loop.time() - up_since >= self.config.stable_after:
                    self.backoff.reset()
                if isinstance(error, ConnectionLost) and error.close_code == CLOSE_REPLACED:
                    log.warning(
                        "another agent with this device's identity connected and replaced this one "
                        "(a cloned machine or a second agent with the same state?); backing off"
                    )
                    self.backoff.saturate()
                delay = self.backoff.next_delay()
                log.info("reconnecting in %.1f s", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stop_wait), delay)
        finally:
            stop_wait.cancel()
            self._online.clear()

    def stop(self) -> None:
        """Ask ``run()`` to close the connection and return. Safe to call from a signal handler."""
        self._stop.set()

    @property
    def online(self) -> bool:
        return self._online.is_set()

    async def wait_online(self) -> None:
        await self._online.wait()

    def statistics(self) -> dict[str, Any]:
        return {
            **self._counts,
            "online": self.online,
            "backoff_attempt": self.backoff.attempt,
            "last_error": str(self.last_error) if self.last_error else None,
        }

    # ---------------------------------------------------------------- one connection

    async def _settle(self, attempt: asyncio.Task[None]) -> AgentError | None:
        """Wait for a finished or cancelled attempt; re-raise what is fatal, return the rest."""
        try:
            await attempt
        except TrustError:
            raise
        except ServerRefused as exc:
            if exc.fatal:
                raise
            return self._note_failure(exc)
        except AgentError as exc:
            return self._note_failure(exc)
        except ProtocolError as exc:  # the server's reply broke the protocol
            return self._note_failure(AgentError(str(exc)))
        return None

    def _note_failure(self, exc: AgentError) -> AgentError:
        self.last_error = exc
        self._counts["failed_attempts"] += 1
        log.warning("%s", exc)
        return exc

    async def _connection(self) -> None:
        """Connect, authenticate and serve until the connection ends (always by raising)."""
        state = self.state
        loop = asyncio.get_running_loop()
        async with ControlChannel.connect(
            state.server_url, state.spki_sha256, self.config, self._handlers
        ) as channel:
            nonce = await channel.hello()
            proof = agent_proof_payload(nonce, channel.spki, state.device_id.encode("ascii"))
            auth = await channel.request(
                Auth(device_id=state.device_id, signature=b64encode(state.private_key.sign(proof))),
                AuthResult,
            )
            self._authenticated_at = loop.time()
            self._counts["connects"] += 1
            self._online.set()
            log.info("online at %s as device %s", state.server_url, state.device_id)
            session = _Session(channel, auth.heartbeat_interval)
            started: list[Capability] = []
            heartbeat = asyncio.create_task(self._heartbeats(session), name="steun-agent-heartbeat")
            closed = asyncio.create_task(channel.wait_closed())
            try:
                for capability in self.capabilities:
                    await capability.start(session)
                    started.append(capability)
                await asyncio.wait({heartbeat, closed}, return_when=asyncio.FIRST_COMPLETED)
                if heartbeat.done():
                    heartbeat.result()  # raises why it stopped
                raise closed.result()
            finally:
                self._online.clear()
                self._counts["disconnects"] += 1
                heartbeat.cancel()
                closed.cancel()
                for capability in reversed(started):
                    await capability.stop()

    async def _heartbeats(self, session: _Session) -> None:
        while True:
            metrics = await self._metrics()
            if metrics is not None:
                try:
                    await session.request(Heartbeat(metrics=metrics), Empty)
                    self._counts["heartbeats"] += 1
                except ServerRefused as exc:
                    if exc.fatal:
                        raise
                    log.warning("heartbeat refused: %s", exc)
            await asyncio.sleep(session.heartbeat_interval)

    async def _metrics(self) -> LiveMetrics | None:
        try:
            self._last_metrics = await asyncio.to_thread(self.backend.live_metrics)
        except Exception:
            log.exception("collecting live metrics failed; sending the previous figures")
        return self._last_metrics
