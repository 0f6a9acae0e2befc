"""Issue 4 in the viewer: "Ask for control" outside the first offer calls session/extend, then AskMore{offer}."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from playwright.async_api import BrowserContext, Page, expect
from steun_protocol.auth import b64encode
from steun_protocol.session import Capability, RecordType, SignedOffer
from steun_protocol.sessionplane import AskMore, decode_control

from .conftest import PageErrors
from .session_helpers import (
    HarnessServer,
    Parties,
    RelayPeer,
    harness_call,
    offer_json,
    open_harness,
    running_harness,
    started_session,
    wait_log,
)

pytestmark = pytest.mark.browser


@pytest.fixture
async def harness() -> AsyncIterator[HarnessServer]:
    async with running_harness() as server:
        yield server


@pytest.fixture
async def hpage(
    context: BrowserContext, harness: HarnessServer, page_errors: PageErrors
) -> AsyncIterator[Page]:
    tab = page_errors.watch(await context.new_page())
    await open_harness(tab, harness)
    yield tab
    await harness_call(tab, "unmountViewer")
    await tab.close()
    assert page_errors.errors == [], f"uncaught errors in the page: {page_errors.errors}"


async def next_control(peer: RelayPeer) -> bytes:
    while True:
        record = await peer.receive_record()
        if record.type == RecordType.CONTROL:
            return bytes(record.payload)


async def test_ask_for_control_sends_the_extended_offer(hpage: Page, harness: HarnessServer) -> None:
    parties = Parties()
    # the console passes the server's offer through untouched: the agent is the one that checks it
    extended = parties.offer(
        b64encode(b"\x01" * 32), b64encode(b"\x02" * 32), [Capability.VIEW, Capability.CONTROL]
    )
    peer, _, _ = await started_session(
        hpage,
        harness,
        parties,
        [Capability.VIEW],
        viewer=True,
        viewer_options={"extend_offer": offer_json(extended)},
    )
    await peer.send_control({"type": "granted", "capabilities": ["view"], "denied": []})
    await expect(hpage.locator(".session-viewport")).to_be_visible()
    await hpage.get_by_role("button", name="Ask for control").click()
    extend = await wait_log(hpage, "extend")
    assert extend["capabilities"] == ["control"]
    ask = decode_control(await next_control(peer))
    assert isinstance(ask, AskMore) and ask.capabilities == [Capability.CONTROL]
    assert ask.offer == msgspec.convert(offer_json(extended), SignedOffer)
    await expect(hpage.get_by_text("Asked — waiting for the user to answer…")).to_be_visible()
    await expect(hpage.get_by_role("button", name="Ask for control")).to_be_hidden()

    # the agent did not pass it on: the technician sees why and may ask again
    await peer.send_control({"type": "refused", "channel": 0, "reason": "offer_invalid"})
    await expect(hpage.get_by_text("The device did not pass on the request (offer_invalid).")).to_be_visible()
    await expect(hpage.get_by_role("button", name="Ask for control")).to_be_visible()

    # the user said no: shown as denied
    await hpage.get_by_role("button", name="Ask for control").click()
    await next_control(peer)
    await peer.send_control({"type": "granted", "capabilities": ["view"], "denied": ["control"]})
    await expect(hpage.get_by_text("Not allowed by the user: Control mouse and keyboard")).to_be_visible()
    await peer.close()


async def test_a_failed_extend_is_shown_and_nothing_is_sent(hpage: Page, harness: HarnessServer) -> None:
    peer, _, _ = await started_session(
        hpage,
        harness,
        Parties(),
        [Capability.VIEW],
        viewer=True,
        viewer_options={"extend_error": "forbidden: asking for control needs the technician role"},
    )
    await peer.send_control({"type": "granted", "capabilities": ["view"], "denied": []})
    await expect(hpage.locator(".session-viewport")).to_be_visible()
    await hpage.get_by_role("button", name="Ask for control").click()
    await expect(hpage.get_by_text("Could not ask for more: forbidden: asking for control")).to_be_visible()
    await expect(hpage.get_by_role("button", name="Ask for control")).to_be_visible()
    await peer.close()
