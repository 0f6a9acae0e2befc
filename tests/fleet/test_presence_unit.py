"""Presence and its change feed, without a server: bounds, coalescing, replacement."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from steun_server.fleet.presence import SUMMARY_CHANGES, Change, Presence
from steun_server.fleet.service import AuditThrottle

from tests.support.agent_client import sample_metrics


@dataclasses.dataclass(eq=False)
class FakeLink:
    """A faithful stand-in for an agent socket: it records how it was closed."""

    device_id: str
    closed_with: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


def test_online_offline_and_metrics() -> None:
    presence = Presence()
    link = FakeLink("d1")
    assert presence.set_online(link, now=100.0) is None
    assert presence.online("d1")
    assert presence.last_seen("d1") == 100.0
    presence.update_metrics(link, sample_metrics(cpu=5.0), now=130.0)
    assert presence.last_seen("d1") == 130.0
    assert presence.metrics("d1") is not None
    assert presence.set_offline(link)
    assert not presence.online("d1")
    assert presence.metrics("d1") is None
    assert not presence.set_offline(link)


def test_a_replaced_link_cannot_take_the_device_offline() -> None:
    presence = Presence()
    old, new = FakeLink("d1"), FakeLink("d1")
    presence.set_online(old)
    assert presence.set_online(new) is old
    assert not presence.set_offline(old)
    presence.update_metrics(old, sample_metrics())  # ignored: not the current link
    assert presence.metrics("d1") is None
    assert presence.online("d1")
    assert presence.set_offline(new)
    assert presence.statistics()["replaced"] == 1


async def test_subscription_coalesces_changes_per_device() -> None:
    presence = Presence()
    with presence.subscribe() as feed:
        link = FakeLink("d1")
        presence.set_online(link)
        for _ in range(100):
            presence.update_metrics(link, sample_metrics())
        presence.publish("d2", Change.INVENTORY)
        batch = await asyncio.wait_for(feed.wait_batch(), 1)
        assert batch.changes == {
            "d1": frozenset({Change.ONLINE, Change.METRICS}),
            "d2": frozenset({Change.INVENTORY}),
        }
        assert not batch.resync
        assert feed.take() is None
        assert feed.coalesced == 100


async def test_subscription_filters_by_device_and_kind() -> None:
    presence = Presence()
    only_d1 = presence.subscribe(device_id="d1")
    summaries = presence.subscribe(kinds=SUMMARY_CHANGES)
    presence.publish("d2", Change.METRICS)
    presence.publish("d1", Change.METRICS)
    assert only_d1.take() is not None
    assert summaries.take() is None
    only_d1.close()
    summaries.close()
    assert presence.statistics()["subscribers"] == 0


async def test_a_slow_subscriber_is_bounded_and_told_to_resync() -> None:
    presence = Presence(max_pending=10)
    feed = presence.subscribe()
    for i in range(10_000):
        presence.publish(f"device-{i}", Change.ONLINE)
    assert feed.pending() <= 10
    batch = feed.take()
    assert batch is not None
    assert batch.resync
    assert len(batch.changes) <= 10
    assert feed.overflows == 1
    # after a resync it starts collecting again
    presence.publish("device-x", Change.OFFLINE)
    batch = feed.take()
    assert batch is not None and not batch.resync
    assert set(batch.changes) == {"device-x"}


async def test_closing_a_subscription_ends_its_iterator() -> None:
    presence = Presence()
    feed = presence.subscribe()

    async def consume() -> int:
        count = 0
        async for _batch in feed:
            count += 1
        return count

    task = asyncio.create_task(consume())
    presence.publish("d1", Change.ONLINE)
    await asyncio.sleep(0)  # let the consumer take the first batch
    feed.close()
    assert await asyncio.wait_for(task, 1) >= 0


async def test_close_all_closes_links_and_feeds() -> None:
    presence = Presence()
    links = [FakeLink(f"d{i}") for i in range(3)]
    for link in links:
        presence.set_online(link)
    feed = presence.subscribe()
    await presence.close_all(1001, "bye")
    assert all(link.closed_with == (1001, "bye") for link in links)
    with pytest.raises(StopAsyncIteration):
        await feed.wait_batch()


def test_audit_throttle_lets_one_through_per_period_and_counts_the_rest() -> None:
    throttle = AuditThrottle(period=60.0, max_keys=2)
    assert throttle.admit("a", now=0.0) == 0
    assert throttle.admit("a", now=1.0) is None
    assert throttle.admit("a", now=2.0) is None
    assert throttle.admit("a", now=61.0) == 2
    assert throttle.admit("b", now=61.0) == 0
    assert throttle.admit("c", now=61.0) == 0  # evicts the oldest key: memory stays bounded
    assert throttle.admit("a", now=62.0) == 0
