"""The runner: concurrency, per-test timeouts, a bounded run, hung probes that do not starve the others."""

from __future__ import annotations

import asyncio
import time

import pytest
from steun_agent.diagnostics.errors import PoolExhausted
from steun_agent.diagnostics.fake import NOW, FakeDiagnostics
from steun_agent.diagnostics.pool import ProbePool
from steun_agent.diagnostics.runner import Runner
from steun_protocol.diagnostics import RUN_GRACE, Policy

from tests.support.waiting import scaled

from .helpers import run


def test_selection_by_group_id_and_prefix_in_catalogue_order() -> None:
    runner = Runner(FakeDiagnostics())
    everything, unknown = runner.select()
    assert len(everything) >= 34 and unknown == []
    chosen, unknown = runner.select(["security"], ["disk", "net.dns", "no.such", "bogus"])
    assert chosen[:2] == ["disk.free", "disk.fill_time"] and "net.dns" in chosen
    assert all(c.startswith(("disk.", "net.dns", "security.")) for c in chosen)
    assert unknown == ["no.such", "bogus"]
    chosen, unknown = runner.select(["nonsense"], [])
    assert chosen == [] and unknown == ["nonsense"]


async def test_a_hanging_test_times_out_without_delaying_the_others() -> None:
    fake = FakeDiagnostics()
    fake.hang.add("volumes")  # disk.free, os.inodes and the fill-time test's sampler never answer
    fake.delays["memory"] = 0.05
    timeout = 1.0
    runner = Runner(fake, pool=ProbePool(workers=4, max_hung=8), clock=lambda: NOW)
    started = time.perf_counter()
    arrivals: dict[str, float] = {}
    results = []
    try:
        async for result in runner.run(
            ["disk.free", "os.inodes", "memory.usage", "os.uptime", "time.zone"],
            Policy(check_timeout=timeout),
        ):
            arrivals.setdefault(result.check_id, time.perf_counter() - started)
            results.append(result)
    finally:
        fake.release()
        runner.pool.close()
    by_id = {r.check_id: r for r in results}
    for hung in ("disk.free", "os.inodes"):
        assert (by_id[hung].status, by_id[hung].summary_key) == ("error", "common.timeout")
        assert timeout <= arrivals[hung] < timeout + scaled(0.5)
    # The others finished near their own time, long before the hung ones gave up.
    assert arrivals["os.uptime"] < scaled(0.3) and arrivals["time.zone"] < scaled(0.3)
    assert arrivals["memory.usage"] < scaled(0.9)  # three samples 0.25 s apart, each 0.05 s
    assert sorted(runner.timed_out) == ["disk.free", "os.inodes"]


async def test_hung_probes_are_abandoned_and_then_refused_not_queued() -> None:
    fake = FakeDiagnostics()
    fake.hang.update({"volumes", "swap", "batteries"})
    pool = ProbePool(workers=2, max_hung=2)
    runner = Runner(fake, pool=pool, clock=lambda: NOW)
    try:
        first = await runner.run_all(["disk.free", "memory.swap"], Policy(check_timeout=0.3))
        assert {r.summary_key for r in first} == {"common.timeout"}
        assert pool.statistics()["hung"] == 2
        # Both spare threads are taken by hung probes: new probes fail at once instead of waiting.
        started = time.perf_counter()
        (r,) = await runner.run_all(["os.uptime"], Policy(check_timeout=2.0))
        assert (r.status, r.summary_key) == ("error", "common.pool_busy")
        assert time.perf_counter() - started < scaled(0.5)
        fake.release()
        for _ in range(100):
            if pool.statistics()["hung"] == 0:
                break
            await asyncio.sleep(0.01)
        (r,) = await runner.run_all(["os.uptime"], Policy(check_timeout=2.0))
        assert r.status == "pass"
    finally:
        fake.release()
        pool.close()


async def test_the_whole_run_is_bounded_even_when_everything_hangs() -> None:
    fake = FakeDiagnostics()
    for method in list(fake.data):
        fake.hang.add(method)
    timeout = 0.5
    started = time.perf_counter()
    results = await run(fake, policy=Policy(check_timeout=timeout))
    elapsed = time.perf_counter() - started
    assert elapsed < timeout + RUN_GRACE + scaled(0.5)
    # A resolver that never answers is a finding of its own (net.dns fails "no answer"); the rest time out.
    assert {(r.status, r.summary_key) for r in results if r.status not in ("error", "not_applicable")} == {
        ("fail", "net.dns.no_answer")
    }
    assert any(r.summary_key == "common.timeout" for r in results)


async def test_results_stream_in_the_order_tests_finish() -> None:
    fake = FakeDiagnostics()
    fake.delays["swap"] = 0.3
    runner = Runner(fake, pool=ProbePool(), clock=lambda: NOW)
    order = [r.check_id async for r in runner.run(["memory.swap", "os.uptime"])]
    runner.pool.close()
    assert order == ["os.uptime", "memory.swap"]


async def test_a_crashing_probe_is_an_error_never_a_crash() -> None:
    fake = FakeDiagnostics()
    fake.errors["volumes"] = RuntimeError("boom <b>")
    (r,) = await run(fake, "disk.free")
    assert (r.status, r.summary_key) == ("error", "common.failed")
    assert "boom" in str(r.summary_params["error"])


async def test_an_abandoned_consumer_cancels_the_remaining_tests() -> None:
    fake = FakeDiagnostics()
    fake.hang.add("swap")
    runner = Runner(fake, pool=ProbePool(), clock=lambda: NOW)
    stream = runner.run(["os.uptime", "memory.swap"], Policy(check_timeout=5))
    first = await anext(stream)
    assert first.check_id == "os.uptime"
    await stream.aclose()  # memory.swap's task is cancelled; no task is left running
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("steun-diagnostics-")]
    fake.release()
    runner.pool.close()


def test_pool_refuses_bad_sizes() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        ProbePool(workers=0)
    pool = ProbePool()
    pool.close()
    with pytest.raises(PoolExhausted):
        asyncio.run(pool.run(time.time))
