"""DiagnosticsCapability: accept a run at once, stream results, finish with done; refuse overload."""

from __future__ import annotations

import asyncio

import pytest
from steun_agent.diagnostics.capability import MAX_RUNS, DiagnosticsCapability
from steun_agent.diagnostics.fake import FakeDiagnostics
from steun_agent.errors import ServerRefused
from steun_protocol.codec import encode
from steun_protocol.control import AGENT_API
from steun_protocol.diagnostics import DiagnosticsDone, DiagnosticsResult, DiagnosticsRun, Policy
from steun_protocol.messages import Empty, Payload, Request

from tests.support.waiting import wait_for


class Recorder:
    """A faithful stand-in for the runtime's session: encodes what would go on the wire and decodes it back."""

    def __init__(self) -> None:
        self.sent: list[Request] = []
        self.next_id = 1

    async def request(
        self, request: Request, result_type: type[Payload], *, timeout: float | None = None
    ) -> Payload:
        wire = encode(
            type(request)(
                **{**{f: getattr(request, f) for f in request.__struct_fields__}, "id": self.next_id}
            )
        )
        self.next_id += 1
        assert len(wire) <= request.max_size
        self.sent.append(AGENT_API.decode(wire))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        return Empty()


async def test_a_run_is_accepted_at_once_and_streams_results_then_done() -> None:
    capability = DiagnosticsCapability(FakeDiagnostics(), sample_interval=None)
    session = Recorder()
    await capability.start(session)
    try:
        handler = capability.handlers[DiagnosticsRun]
        accepted = await handler(
            DiagnosticsRun(
                id=5,
                run_id="r1",
                groups=["os"],
                checks=["disk.free", "x.y"],
                policy=Policy(required_services=["cups"]),
            )
        )
        assert accepted.accepted[0] == "disk.free" and "os.uptime" in accepted.accepted  # type: ignore[attr-defined]
        assert accepted.unknown == ["x.y"]  # type: ignore[attr-defined]
        await capability.wait_runs()
    finally:
        await capability.close()
    results = [m for m in session.sent if isinstance(m, DiagnosticsResult)]
    done = session.sent[-1]
    assert isinstance(done, DiagnosticsDone) and done.run_id == "r1" and not done.cancelled
    assert {r.result.check_id for r in results} == set(accepted.accepted)  # type: ignore[attr-defined]
    assert done.results == len(results) and sum(done.counts.values()) == len(results)
    assert done.checks == len(accepted.accepted)  # type: ignore[attr-defined]


async def test_more_runs_than_allowed_are_refused_and_duplicates_too() -> None:
    fake = FakeDiagnostics()
    fake.hang.add("boot_time")
    capability = DiagnosticsCapability(fake, sample_interval=None)
    session = Recorder()

    async def send(message: Request) -> object:
        return await session.request(message, Empty)

    await capability.start(session)
    try:
        for i in range(MAX_RUNS):
            await capability.handle_run(DiagnosticsRun(run_id=f"r{i}", checks=["os.uptime"]), send)
        with pytest.raises(ServerRefused) as refused:
            await capability.handle_run(DiagnosticsRun(run_id="r9", checks=["os.uptime"]), send)
        assert refused.value.code == "overloaded"
        with pytest.raises(ServerRefused):
            await capability.handle_run(DiagnosticsRun(run_id="r0", checks=["os.uptime"]), send)
        await wait_for(lambda: fake.calls.count("boot_time") == MAX_RUNS, timeout=5, what="both runs probing")
    finally:
        await capability.stop()  # cancels both runs; each says so if it still can
        fake.release()
        await capability.close()
    dones = [m for m in session.sent if isinstance(m, DiagnosticsDone)]
    assert len(dones) == MAX_RUNS and all(d.cancelled for d in dones)


async def test_the_sampler_runs_between_start_and_stop() -> None:
    capability = DiagnosticsCapability(FakeDiagnostics(), sample_interval=0.01)
    await capability.start(Recorder())
    assert capability.sampler is not None
    await wait_for(lambda: len(capability.sampler.samples) >= 3, timeout=5, what="three samples")  # type: ignore[union-attr]
    await capability.stop()
    kept = len(capability.sampler.samples)
    assert not capability.sampler.running and kept >= 3
    assert capability.statistics()["sampler"]["samples"] == kept
    await capability.close()


async def test_a_send_failure_stops_the_run_quietly() -> None:
    capability = DiagnosticsCapability(FakeDiagnostics(), sample_interval=None)

    async def broken(request: Request) -> object:
        raise ConnectionError("gone")

    await capability.handle_run(DiagnosticsRun(run_id="r1"), broken)
    await capability.wait_runs()
    await capability.close()
