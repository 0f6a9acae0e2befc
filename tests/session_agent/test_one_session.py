"""One session at a time on an agent — and the next one is not refused just because the last is still closing
(``scp`` right after ``ssh``): real agent runtime, real server and relay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_agent.ui.base import IndicatorInfo, StopCallback
from steun_protocol import auth as proofs

from tests.session_agent.fakes import FakeIndicator, ScriptedUI
from tests.session_agent.live import open_session
from tests.sessions.helpers import Console
from tests.support.api import ApiClient
from tests.support.real_agent import real_agent
from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for


class SlowIndicator(FakeIndicator):
    """An indicator window that takes its time to go away: the session stays 'ending' meanwhile."""

    async def close(self) -> None:
        await asyncio.sleep(1.5)
        await super().close()


class SlowUI(ScriptedUI):
    async def show_indicator(
        self, info: IndicatorInfo, *, on_stop: StopCallback, revoke: StopCallback | None = None
    ) -> FakeIndicator:
        self.indicator = SlowIndicator(info, on_stop, revoke)
        return self.indicator


async def test_a_new_offer_waits_for_a_session_that_is_ending(server: RunningServer, tmp_path: Path) -> None:
    ui = SlowUI(["accept", "accept"])
    async with real_agent(server, tmp_path / "agent", ui=ui, handshake_timeout=15) as agent:
        async with open_session(server, agent, ["chat"]) as first:
            await first.stop()
            await wait_for(lambda: agent.runner.ending, what="the first session to start ending")
        assert agent.sessions.busy  # still closing: its indicator has not gone yet
        async with open_session(server, agent, ["chat"]) as second:
            assert [c.value for c in second.granted.capabilities] == ["chat"]
            assert second.session_id != first.session_id
            await second.stop()
        await wait_for(lambda: len(agent.sessions.outcomes) == 2, timeout=10, what="both sessions to end")
        refused = [r for r in await first.audit_events() if r[0] == "session.refused"]
        assert refused == []


async def test_two_offers_at_once_start_one_session(server: RunningServer, tmp_path: Path) -> None:
    async with (
        real_agent(server, tmp_path / "agent", answers=["hang"]) as agent,
        ApiClient(server.url) as api,
    ):
        await api.login_ok(server.admin_username, server.admin_password)
        console = await Console.open(api)
        try:

            async def request() -> dict[str, Any]:
                technician_key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
                return await console.call(
                    "session/request",
                    device_id=agent.device_id,
                    capabilities=["view"],
                    technician_key=proofs.b64encode(technician_key),
                    console_commitment=proofs.b64encode(bytes(32)),
                    reason="both at once",
                )

            async with asyncio.timeout(scaled(20)):
                replies = await asyncio.gather(request(), request())
            errors = [r["error"] for r in replies if "error" in r]
            assert len(errors) == 1, replies
            assert "already running" in errors[0]["message"], errors
            assert agent.sessions.busy
        finally:
            await console.close()
