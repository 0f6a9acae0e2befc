"""The Chat tab in real Chromium against the real server, relay and agent runtime.

The technician asks to chat from the tab, the agent's user (a scripted consent UI) allows it; what the
technician types and the canned phrases reach the agent's ``ChatService``; what the user says appears in the
console as text (never markup) with typing and read marks and an unread badge; at the end the console hands the
transcript to the server and the chat becomes read-only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Locator, Page, Request, expect
from steun_agent.chat.phrases import phrase_text
from steun_agent.chat.service import ChatEvent, ChatLine, ChatService
from steun_protocol import chat as chat_wire
from steun_protocol.chat import Phrase, Sender
from steun_protocol.session import Capability, RecordType
from steun_protocol.sessionplane import Channel

from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for

from .conftest import PageErrors
from .session_helpers import (
    HarnessServer,
    Parties,
    RealAgent,
    RelayPeer,
    harness_call,
    open_harness,
    real_agent,
    running_harness,
    start_console_session,
    started_session,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CHAT_TIMEOUT_MS = scaled(20) * 1000


@pytest.fixture
async def agent(server: RunningServer, tmp_path: Path) -> AsyncIterator[RealAgent]:
    # the first answer is for the session, the second for "Ask to chat"
    async with real_agent(server, tmp_path, ["accept", "accept"], hostname="pc-chat") as running:
        yield running


async def open_chat(page: Page, server: RunningServer, agent: RealAgent) -> tuple[Locator, ChatService]:
    await start_console_session(page, server, agent, "the printer prints blank pages")
    await page.get_by_role("tab", name="Chat").click()
    panel = page.get_by_role("tabpanel", name="Chat")
    await expect(panel.get_by_text("The user has not allowed this yet: Chat.")).to_be_visible()
    await panel.get_by_role("button", name="Ask to chat").click()
    await expect(panel.get_by_label("Message to the user")).to_be_enabled(timeout=CHAT_TIMEOUT_MS)
    chat: ChatService = await wait_for(lambda: agent.runner.chat, what="the agent's chat service")
    return panel, chat


def technician_lines(chat: ChatService) -> list[ChatLine]:
    return [line for line in chat.lines() if line.sender is Sender.TECHNICIAN]


async def test_chat_both_ways(page: Page, server: RunningServer, agent: RealAgent) -> None:
    panel, chat = await open_chat(page, server, agent)
    events: list[ChatEvent] = []
    chat.subscribe(events.append)
    box = panel.get_by_label("Message to the user")
    log = panel.get_by_test_id("chat-log")

    # Enter sends; Shift+Enter is a new line; the technician's typing is announced to the user
    await box.click()
    await page.keyboard.type("Goedemorgen, één moment ✓")
    await wait_for(
        lambda: any(e.kind == "typing" and e.active for e in events), what="the technician's typing"
    )
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("<b>tweede</b> regel")
    await page.keyboard.press("Enter")
    first = await wait_for(lambda: technician_lines(chat), what="the technician's message on the agent")
    assert first[0].text == "Goedemorgen, één moment ✓\n<b>tweede</b> regel"
    assert first[0].id == 1 and first[0].phrase == 0
    await expect(box).to_have_value("")
    await expect(log.locator(".chat-from-technician")).to_contain_text("<b>tweede</b> regel")

    # a canned phrase travels with its id: the agent shows it in its user's language
    await panel.get_by_role("button", name="One moment, please.").click()
    lines = await wait_for(lambda: technician_lines(chat)[1:], what="the phrase on the agent")
    assert lines[0].phrase == Phrase.ONE_MOMENT
    assert lines[0].text == "One moment, please."
    assert lines[0].shown == phrase_text(Phrase.ONE_MOMENT, chat.language)

    # the user answers: shown as text on the left, and marked read back to the agent
    await chat.set_typing(True)
    await expect(panel.get_by_text("The user is typing…")).to_be_visible()
    said = await chat.say("Dank u! <script>alert(1)</script> & tot zo")
    assert said is not None
    user_line = log.locator(".chat-from-user")
    await expect(user_line).to_have_count(1)
    await expect(user_line.locator(".chat-bubble")).to_have_text("Dank u! <script>alert(1)</script> & tot zo")
    await expect(panel.get_by_text("The user is typing…")).to_be_hidden()
    assert await log.locator("script").count() == 0
    await wait_for(
        lambda: any(e.kind == "read" and e.up_to == said.id for e in events),
        what="the console's read mark on the agent",
    )

    # a user's phrase is shown in the technician's language; the user's read mark is shown too
    await chat.say_phrase(Phrase.THANKS)
    await expect(user_line.nth(1).locator(".chat-bubble")).to_have_text("Thank you!")
    await chat.mark_read()
    await expect(log.locator(".chat-from-technician .chat-read").first).to_have_text(" · Read")

    # what arrives while another tab is shown counts on the Chat tab
    await page.get_by_role("tab", name="Screen").click()
    await chat.say("Nog één vraag")
    badge = page.get_by_test_id("chat-unread")
    await expect(badge).to_have_text("1")
    await chat.say("En nog een")
    await expect(badge).to_have_text("2")
    await page.get_by_role("tab", name="Chat").click()
    await expect(badge).to_be_hidden()
    await expect(user_line).to_have_count(4)

    # the end: the transcript goes to the server, the chat stays readable but takes no more input
    async with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/transcript"), timeout=CHAT_TIMEOUT_MS
    ) as posted:
        await page.get_by_role("button", name="Stop session").click()
    request: Request = await posted.value
    body = json.loads(request.post_data or "{}")
    assert body["dropped"] == 0
    messages = body["messages"]
    assert [(m["from"], m["id"], m["phrase"]) for m in messages] == [
        ("technician", 1, 0),
        ("technician", 2, Phrase.ONE_MOMENT),
        ("user", 1, 0),
        ("user", 2, Phrase.THANKS),
        ("user", 3, 0),
        ("user", 4, 0),
    ]
    assert messages[0]["text"] == "Goedemorgen, één moment ✓\n<b>tweede</b> regel"
    assert messages[2]["text"] == "Dank u! <script>alert(1)</script> & tot zo"
    assert all(isinstance(m["time"], float | int) and m["time"] > 1e9 for m in messages)
    assert "/api/sessions/" in request.url
    response = await request.response()
    assert response is not None and response.status == 201, response and await response.text()
    await expect(panel.get_by_text("The session has ended: the chat is read-only.")).to_be_visible()
    await expect(box).to_be_disabled()
    await expect(panel.get_by_role("button", name="One moment, please.")).to_be_disabled()
    await expect(user_line).to_have_count(4)


async def test_chat_in_dutch(page: Page, server: RunningServer, agent: RealAgent) -> None:
    """The console's chrome and the phrase buttons follow the technician's language."""
    panel, chat = await open_chat(page, server, agent)
    await page.get_by_label("Language").first.select_option("nl")
    panel = page.get_by_role("tabpanel", name="Chat")
    await expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true")
    await expect(panel.get_by_role("button", name="Een ogenblik, alstublieft.")).to_be_visible()
    await panel.get_by_role("button", name="Een ogenblik, alstublieft.").click()
    line = (await wait_for(lambda: technician_lines(chat), what="the phrase on the agent"))[0]
    assert (line.phrase, line.text) == (Phrase.ONE_MOMENT, "Een ogenblik, alstublieft.")
    await chat.say_phrase(Phrase.YES)
    await expect(panel.get_by_test_id("chat-log").locator(".chat-from-user .chat-bubble")).to_have_text("Ja")
    await expect(panel.get_by_label("Bericht aan de gebruiker")).to_be_enabled()


# --------------------------------------------------------------------------------------------- the wire


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


async def next_chat(peer: RelayPeer) -> chat_wire.ChatMessage:
    while True:
        record = await peer.receive_record()
        if record.type == RecordType.DATA and record.channel == Channel.CHAT:
            return chat_wire.decode_from_console(record.payload)


async def test_the_console_speaks_the_chat_wire_format(hpage: Page, harness: HarnessServer) -> None:
    """The Python encoder against the console's decoder and back, byte for byte; a phrase id the console
    does not know shows the sender's text; a message claiming to be the technician's ends the session."""
    peer, _, _ = await started_session(
        hpage, harness, Parties(), [Capability.VIEW, Capability.CHAT], viewer=True
    )
    await peer.send_control({"type": "granted", "capabilities": ["view", "chat"], "denied": []})
    await hpage.get_by_role("tab", name="Chat").click()
    panel = hpage.get_by_role("tabpanel", name="Chat")
    await panel.get_by_label("Message to the user").fill("x" * 5000)
    await panel.get_by_label("Message to the user").press("Enter")
    sent = await next_chat(peer)
    while isinstance(sent, chat_wire.Typing):
        sent = await next_chat(peer)
    # cut to the wire's cap, as the agent's own say() does
    assert isinstance(sent, chat_wire.Message) and sent.text == "x" * chat_wire.MAX_TEXT_BYTES
    assert (sent.id, sent.sender, sent.phrase) == (1, chat_wire.Sender.TECHNICIAN, 0)

    async def send(message: chat_wire.ChatMessage) -> None:
        await peer.send_record(Channel.CHAT, RecordType.DATA, chat_wire.encode(message))

    await send(chat_wire.Message(1, chat_wire.Sender.USER, "Nieuwe zin van een nieuwere agent", 1.7e9, 999))
    await send(chat_wire.Message(2, chat_wire.Sender.USER, "tab\tand\nnew line", 1.7e9, 0))
    bubbles = panel.locator(".chat-from-user .chat-bubble")
    await expect(bubbles.first).to_have_text("Nieuwe zin van een nieuwere agent")
    await expect(bubbles.nth(1)).to_have_text("tab\tand\nnew line")
    read = await next_chat(peer)
    while not isinstance(read, chat_wire.Read) or read.up_to != 2:
        read = await next_chat(peer)
    assert read.sender is chat_wire.Sender.TECHNICIAN
    await send(chat_wire.Read(chat_wire.Sender.USER, 1))
    await expect(panel.locator(".chat-from-technician .chat-read")).to_have_text(" · Read")

    forged = chat_wire.encode(chat_wire.Message(3, chat_wire.Sender.TECHNICIAN, "I am the technician", 1.7e9))
    await peer.send_record(Channel.CHAT, RecordType.DATA, forged)
    await expect(
        hpage.get_by_text(
            "The session was stopped because the device sent something invalid (invalid_message)."
        )
    ).to_be_visible()
    await expect(panel.get_by_text("The session has ended: the chat is read-only.")).to_be_visible()
    await peer.close()
