"""Sessions in the real console against the real server: request control, quick support, the viewer route.

The end-to-end tests (a Python agent answering the server's ``session/offer`` and joining the relay) run only
when the server has its session orchestration (``steun_server.sessions``); until then they are skipped, and
the pages themselves are still checked.
"""

from __future__ import annotations

import re
import time

import pytest
import websockets
from playwright.async_api import Page, expect
from steun_protocol import auth as proofs
from steun_protocol.screen import Encoding, FrameBegin, FrameEnd, Region
from steun_protocol.session import AgentHandshake, RecordType, SignedOffer
from steun_protocol.sessionplane import OfferDelivered, SessionOfferRequest, SupportRedeem

from tests.support.agent_client import (
    AgentClient,
    Identity,
    client_context,
    connect_agent,
    enroll_new,
    online_agent,
    sample_inventory,
)
from tests.support.api import ApiClient, create_user
from tests.support.server import RunningServer
from tests.support.waiting import scaled

from .helpers import sign_in, sign_in_as_admin
from .session_helpers import ClientSideSocket, RelayPeer

pytestmark = pytest.mark.browser


async def device_page(
    page: Page, server: RunningServer, hostname: str = "pc-boekhouding"
) -> tuple[AgentClient, Identity]:
    await sign_in_as_admin(page, server)
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname=hostname)
    agent = await online_agent(server.url, identity)
    await agent.send_inventory(sample_inventory(hostname))
    await page.get_by_role("link", name=hostname, exact=True).click()
    await expect(page.get_by_role("heading", name=hostname)).to_be_visible()
    return agent, identity


async def test_device_page_offers_request_control(page: Page, server: RunningServer) -> None:
    agent, _ = await device_page(page, server)
    card = page.locator("section").filter(has=page.get_by_role("heading", name="Remote support"))
    await expect(card).to_be_visible()
    await expect(card.get_by_label("View the screen")).to_be_checked()
    await expect(card.get_by_label("View the screen")).to_be_disabled()
    await expect(card.get_by_label("Control mouse and keyboard")).to_be_checked()
    await expect(card.get_by_label("Clipboard")).not_to_be_checked()
    for more in ("Chat", "Command line", "Files"):  # an admin may ask for all of them; none is preselected
        await expect(card.get_by_label(more, exact=True)).not_to_be_checked()
    await expect(card.get_by_label("Reason")).to_be_visible()
    submit = card.get_by_role("button", name="Request control")
    await expect(submit).to_be_enabled()
    # An offline device cannot be asked: its agent must be connected.
    await agent.close()
    await expect(submit).to_be_disabled()
    await expect(card.get_by_text("The device is offline")).to_be_visible()


async def test_quick_support_page(page: Page, server: RunningServer) -> None:
    await sign_in_as_admin(page, server)
    await page.get_by_role("link", name="Quick support").click()
    await expect(page.get_by_role("heading", name="Quick support")).to_be_visible()
    await expect(page.get_by_role("button", name="Create a support code")).to_be_visible()
    # Dutch and French too.
    await page.get_by_label("Language").first.select_option("nl")
    await expect(page.get_by_role("heading", name="Snelle hulp")).to_be_visible()
    await page.get_by_label("Taal").first.select_option("fr")
    await expect(page.get_by_role("button", name="Créer un code d’assistance")).to_be_visible()


async def test_session_route_without_keys_explains(page: Page, server: RunningServer) -> None:
    """A reloaded viewer has lost its keys: it says so and offers nothing that would weaken the session."""
    await sign_in_as_admin(page, server)
    await page.goto(server.url + "/#/sessions/AAECAwQFBgcICQoLDA0ODw")
    await expect(page.get_by_role("heading", name="Session not available")).to_be_visible()
    await expect(page.locator("canvas")).to_have_count(0)


# --------------------------------------------------------------------------------------------- end to end


async def join_relay(server: RunningServer, request: SessionOfferRequest) -> RelayPeer:
    url = server.url.replace("https://", "wss://") + f"{request.relay_path}?ticket={request.ticket}"
    ws = await websockets.connect(
        url,
        ssl=client_context(),
        compression=None,
        max_size=2 * 1024 * 1024,
        open_timeout=scaled(10),
        proxy=None,
    )
    return RelayPeer(ClientSideSocket(ws), request.ticket)


async def answer_offer(
    server: RunningServer, agent: AgentClient, identity: Identity
) -> tuple[RelayPeer, AgentHandshake, str]:
    """What the agent runtime does with session/offer: acknowledge, join the relay, run the handshake."""
    request = await agent.next_server_request()
    assert isinstance(request, SessionOfferRequest), request
    await agent.reply(request.id, OfferDelivered())
    assert identity.device_id is not None
    handshake = AgentHandshake(server.org_public_key, identity.key, device_id=identity.device_id)
    peer = await join_relay(server, request)
    keys = await peer.handshake(
        handshake, SignedOffer(offer=request.offer.offer, signature=request.offer.signature), now=time.time()
    )
    return peer, handshake, keys.sas


async def show_a_frame(peer: RelayPeer, page: Page) -> None:
    await peer.send_control({"type": "granted", "capabilities": ["view", "control"], "denied": []})
    await peer.send_screen(FrameBegin(1, 0, 320, 200, 0, full=True))
    await peer.send_screen(Region(1, 0, 0, 320, 200, Encoding.SOLID, bytes((0, 128, 255, 0))))
    await peer.send_screen(FrameEnd(1, 1, 4))
    await expect(page.locator(".session-viewport")).to_be_visible()
    await expect(page.get_by_test_id("stats")).to_contain_text("320 × 200")


async def test_request_control_end_to_end(page: Page, server: RunningServer) -> None:
    agent, identity = await device_page(page, server)
    card = page.locator("section").filter(has=page.get_by_role("heading", name="Remote support"))
    await card.get_by_label("Reason").fill("Printer prints blank pages")
    await card.get_by_role("button", name="Request control").click()
    # The server answers session/request once the agent has taken the offer.
    peer, handshake, sas = await answer_offer(server, agent, identity)
    await expect(page).to_have_url(re.compile(r"#/sessions/[A-Za-z0-9_-]+$"))
    assert handshake.offer is not None
    assert handshake.offer.reason == "Printer prints blank pages"
    assert sorted(handshake.offer.capabilities) == ["control", "view"]
    await expect(page.get_by_test_id("sas")).to_have_text(f"{sas[:3]} {sas[3:]}")
    await show_a_frame(peer, page)
    await page.get_by_role("button", name="Stop session").click()
    stop = await peer.receive_record()
    while stop.type == RecordType.DATA:  # the frame's ACK may come first
        stop = await peer.receive_record()
    assert stop.type == RecordType.CONTROL and b'"type":"stop"' in stop.payload
    await expect(page.get_by_text("You ended the session.")).to_be_visible()
    await peer.close()
    await agent.close()


async def test_quick_support_end_to_end(page: Page, server: RunningServer) -> None:
    await sign_in_as_admin(page, server)
    await page.get_by_role("link", name="Quick support").click()
    await page.get_by_role("button", name="Create a support code").click()
    shown = page.get_by_test_id("support-code")
    await expect(shown).to_have_text(re.compile(r"^\d{3} \d{3} \d{3}$"))
    await expect(page.get_by_text(re.compile(r"Valid for \d+:\d\d"))).to_be_visible()
    code = (await shown.inner_text()).replace(" ", "")

    # The user's quick-support agent redeems the code (a fresh identity, proven over the hello nonce).
    identity = Identity()
    agent = await connect_agent(server.url)
    await agent.hello()
    assert agent.nonce is not None
    proof = proofs.agent_proof_payload(agent.nonce, agent.spki, identity.public_key)
    redeemed = await agent.request(
        SupportRedeem(
            code=code,
            public_key=proofs.b64encode(identity.public_key),
            hostname="pc-thuis",
            os="Linux",
            signature=proofs.b64encode(identity.key.sign(proof)),
        )
    )
    identity.device_id = redeemed.device_id
    await expect(page.get_by_text("pc-thuis has entered the code.")).to_be_visible()
    await page.get_by_role("button", name="Request control").click()
    peer, _, sas = await answer_offer(server, agent, identity)
    await expect(page.get_by_test_id("sas")).to_have_text(f"{sas[:3]} {sas[3:]}")
    await show_a_frame(peer, page)
    await peer.close()
    await agent.close()


async def test_a_technician_is_not_offered_what_their_role_may_not_ask(
    page: Page, server: RunningServer, admin_api: ApiClient
) -> None:
    # shell and files need a specialist (the server refuses them to a technician anyway)
    password = await create_user(admin_api, "tess", "technician")
    await sign_in(page, "tess", password)
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="pc-receptie")
    agent = await online_agent(server.url, identity)
    try:
        await agent.send_inventory(sample_inventory("pc-receptie"))
        await page.get_by_role("link", name="pc-receptie", exact=True).click()
        card = page.locator("section").filter(has=page.get_by_role("heading", name="Remote support"))
        await expect(card.get_by_label("Chat", exact=True)).to_be_visible()
        await expect(card.get_by_label("Command line", exact=True)).to_have_count(0)
        await expect(card.get_by_label("Files", exact=True)).to_have_count(0)
    finally:
        await agent.close()
