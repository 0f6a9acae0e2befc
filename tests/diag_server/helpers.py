"""Helpers for the server's routine-test tests: a console websocket client and a scripted protocol-level agent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import aiohttp
from steun_protocol.diagnostics import (
    CheckResult,
    DiagnosticsAccepted,
    DiagnosticsDone,
    DiagnosticsResult,
    DiagnosticsRun,
    count_statuses,
)
from steun_server.diagnostics import DIAGNOSTICS, DiagnosticsService

from tests.support.agent_client import AgentClient, Identity, enroll_new, online_agent
from tests.support.api import ApiClient
from tests.support.server import RunningServer
from tests.support.waiting import scaled


class Console:
    """A console websocket speaking the {id, type} envelope; events are collected per subscription."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, client: ApiClient | None = None) -> None:
        self.ws = ws
        self.client = client
        self.next_id = 1
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, client: ApiClient) -> Console:
        return cls(await client.websocket(), client)

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if data["type"] == "event":
                self.events.setdefault(data["id"], asyncio.Queue()).put_nowait(data["event"])
            else:
                future = self.replies.pop(data["id"], None)
                if future is not None:
                    future.set_result(data)

    async def call(self, type: str, **fields: Any) -> dict[str, Any]:
        msg_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[msg_id] = future
        self.events.setdefault(msg_id, asyncio.Queue())
        await self.ws.send_str(json.dumps({"id": msg_id, "type": type, **fields}))
        async with asyncio.timeout(scaled(15)):
            reply = await future
        reply["_id"] = msg_id
        return reply

    async def result(self, type: str, **fields: Any) -> dict[str, Any]:
        reply = await self.call(type, **fields)
        assert reply["type"] == "result", reply
        result: dict[str, Any] = reply["result"]
        result["_id"] = reply["_id"]
        return result

    async def error(self, type: str, **fields: Any) -> str:
        reply = await self.call(type, **fields)
        assert reply["type"] == "error", reply
        code: str = reply["error"]["code"]
        return code

    async def next_event(self, subscription: int, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(scaled(timeout)):
            return await self.events[subscription].get()

    async def events_until_done(self, subscription: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Every event of a ``diagnostics/run`` subscription up to and including ``done``."""
        events: list[dict[str, Any]] = []
        while True:
            event = await self.next_event(subscription, timeout)
            events.append(event)
            if event["kind"] == "done":
                return events

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        if self.client is not None:
            await self.client.close()


def diagnostics(server: RunningServer) -> DiagnosticsService:
    return server.app[DIAGNOSTICS]


async def admin_console(server: RunningServer) -> Console:
    client = ApiClient(server.url)
    await client.login_ok(server.admin_username, server.admin_password)
    return await Console.open(client)


async def online_device(
    server: RunningServer, *, hostname: str = "pc-042", group: str = "default"
) -> tuple[Identity, AgentClient]:
    identity = await enroll_new(server.url, await server.create_enrollment_token(group), hostname=hostname)
    return identity, await online_agent(server.url, identity)


def result(
    check_id: str, status: str = "pass", *, value: Any = None, subject: str | None = None, **more: Any
) -> CheckResult:
    defaults: dict[str, Any] = {
        "summary_key": "common.disabled" if status == "not_applicable" else f"{check_id}.ok",
        "kb_key": f"kb.{check_id}" if status in ("warn", "fail") else None,
    }
    defaults.update(more)
    return CheckResult(check_id=check_id, status=status, value=value, subject=subject, **defaults)  # type: ignore[arg-type]


async def serve_run(
    agent: AgentClient,
    results: Iterable[CheckResult],
    *,
    accepted: list[str] | None = None,
    done: bool = True,
    cancelled: bool = False,
) -> DiagnosticsRun:
    """Answer the next ``diagnostics/run`` as a well-behaved agent: accept, send each result, then done."""
    request = await agent.next_server_request()
    assert isinstance(request, DiagnosticsRun), request
    items = list(results)
    ids = accepted if accepted is not None else sorted({r.check_id for r in items})
    await agent.reply(request.id, DiagnosticsAccepted(accepted=ids))
    for item in items:
        await agent.request(DiagnosticsResult(run_id=request.run_id, result=item))
    if done:
        counts = count_statuses(r.status for r in items)
        await agent.request(
            DiagnosticsDone(
                run_id=request.run_id,
                counts=dict(counts),
                checks=len({r.check_id for r in items}),
                results=len(items),
                wall_ms=12.5,
                cancelled=cancelled,
            )
        )
    return request


async def run_on(
    console: Console, agent: AgentClient, device_id: str, results: Iterable[CheckResult], **fields: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start a run from the console, let ``agent`` serve it, return the start result and every event."""
    serving = asyncio.create_task(serve_run(agent, results))
    started = await console.result("diagnostics/run", device_id=device_id, **fields)
    await serving
    events = await console.events_until_done(started["_id"])
    return started, events
