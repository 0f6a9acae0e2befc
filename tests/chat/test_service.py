"""The agent's chat: messages both ways, canned phrases in the user's language, typing and read marks, the
transcript's bounds, the rate limit, and Stop."""

from __future__ import annotations

import json

import pytest
from steun_agent.chat import ChatEvent, ChatService, Transcript, phrase_text, phrases_for
from steun_agent.chat.service import BURST, ChatLine
from steun_protocol.chat import (
    MAX_TEXT_BYTES,
    ChatMessage,
    Message,
    Phrase,
    Read,
    Sender,
    Typing,
    decode_from_agent,
    encode,
)
from steun_protocol.errors import RemoteProtocolError


class Console:
    def __init__(self, **options: object) -> None:
        self.received: list[ChatMessage] = []
        self.events: list[ChatEvent] = []
        self.now = 1000.0
        self.chat = ChatService(
            self._receive, clock=lambda: 1_700_000_000.0, monotonic=lambda: self.now, **options
        )  # type: ignore[arg-type]
        self.chat.subscribe(self.events.append)
        self._id = 0

    async def _receive(self, data: bytes) -> None:
        self.received.append(decode_from_agent(data))

    async def say(self, text: str, phrase: int = 0) -> None:
        self._id += 1
        self.chat.feed(encode(Message(self._id, Sender.TECHNICIAN, text, 5.0, phrase)))


async def test_messages_both_ways_land_in_the_transcript() -> None:
    console = Console(language="nl")
    await console.say("Goedemiddag! Ziet u het venster?")
    assert console.events[0].kind == "message" and console.events[0].line is not None
    assert console.events[0].line.shown == "Goedemiddag! Ziet u het venster?"
    line = await console.chat.say("Ja, ik zie het. €")
    assert line is not None
    assert console.received == [Message(1, Sender.USER, "Ja, ik zie het. €", 1_700_000_000.0)]
    assert [(entry.sender, entry.text) for entry in console.chat.lines()] == [
        (Sender.TECHNICIAN, "Goedemiddag! Ziet u het venster?"),
        (Sender.USER, "Ja, ik zie het. €"),
    ]


async def test_canned_phrases_are_shown_in_the_users_language() -> None:
    console = Console(language="fr")
    await console.say("One moment, please.", Phrase.ONE_MOMENT)  # the technician works in English
    line = console.events[-1].line
    assert (
        line is not None
        and line.shown == "Un instant, s'il vous plaît."
        and line.text == "One moment, please."
    )
    await console.say("something new", 77)  # an id this agent does not know: the sender's text
    assert console.events[-1].line is not None and console.events[-1].line.shown == "something new"
    await console.say("Yes", Phrase.YES)  # a user's phrase from the technician: shown as sent
    assert console.events[-1].line is not None and console.events[-1].line.shown == "Yes"
    answer = await console.chat.say_phrase(Phrase.THANKS)
    assert answer is not None and console.received[-1] == Message(
        1, Sender.USER, "Merci !", 1_700_000_000.0, Phrase.THANKS
    )
    with pytest.raises(ValueError, match="technician"):
        await console.chat.say_phrase(Phrase.HELLO)


def test_every_phrase_has_every_language() -> None:
    for language in ("en", "nl", "fr"):
        users = phrases_for(Sender.USER, language)
        technicians = phrases_for(Sender.TECHNICIAN, language)
        assert set(users) | set(technicians) == set(Phrase)
        assert all(text.strip() for text in [*users.values(), *technicians.values()])
    assert phrase_text(Phrase.YES, "nl") == "Ja"
    assert phrase_text(Phrase.YES, "de") == "Yes"  # falls back to English


async def test_typing_and_read_marks() -> None:
    console = Console()
    console.chat.feed(encode(Typing(Sender.TECHNICIAN, True)))
    assert console.events[-1] == ChatEvent("typing", sender=Sender.TECHNICIAN, active=True)
    await console.say("a")
    await console.say("b")
    await console.chat.mark_read()
    await console.chat.set_typing(True)
    assert console.received == [Read(Sender.USER, 2), Typing(Sender.USER, True)]
    console.chat.feed(encode(Read(Sender.TECHNICIAN, 1)))
    assert console.events[-1] == ChatEvent("read", sender=Sender.TECHNICIAN, up_to=1)


async def test_what_the_user_types_is_cleaned_and_capped() -> None:
    console = Console()
    assert await console.chat.say("   \n\x07") is None
    line = await console.chat.say("a\x1b[31mb\r\nc" + "é" * MAX_TEXT_BYTES)
    assert line is not None and line.text.startswith("a[31mb\nc")
    assert len(line.text.encode()) <= MAX_TEXT_BYTES


async def test_the_console_cannot_speak_for_the_user() -> None:
    console = Console()
    with pytest.raises(RemoteProtocolError):
        console.chat.feed(encode(Message(1, Sender.USER, "I agree to everything", 1.0)))
    assert console.chat.lines() == ()


def test_transcript_is_bounded_in_count_and_bytes() -> None:
    transcript = Transcript(max_messages=5, max_bytes=100)
    for i in range(8):
        transcript.add(ChatLine(i + 1, Sender.USER, f"m{i}", 0.0, 0.0))
    assert [line.text for line in transcript.lines()] == ["m3", "m4", "m5", "m6", "m7"]
    transcript.add(ChatLine(9, Sender.TECHNICIAN, "x" * 95, 0.0, 0.0))
    assert transcript.nbytes <= 100 and transcript.lines()[-1].id == 9
    assert transcript.dropped == 3 + 3  # one for the count, two more for the bytes
    exported = json.loads(transcript.export())
    assert exported["dropped"] == 6 and exported["messages"][-1]["from"] == "technician"


async def test_the_default_transcript_holds_a_long_session_within_its_caps() -> None:
    console = Console()
    for i in range(3000):
        console.now += 1.0  # within the rate
        await console.say(f"message {i} " + "x" * 1000)
    lines = console.chat.lines()
    assert len(lines) <= 1000 and console.chat.transcript.nbytes <= 1024 * 1024
    assert lines[-1].text.startswith("message 2999 ")
    assert len(console.chat.transcript.export()) < 2 * 1024 * 1024


async def test_a_flood_is_dropped_beyond_the_burst() -> None:
    console = Console()
    for _ in range(BURST + 30):
        await console.say("spam")
    assert len(console.chat.lines()) == BURST
    assert console.chat.statistics().dropped_rate == 30
    console.now += 10.0
    await console.say("after a pause")
    assert console.chat.lines()[-1].text == "after a pause"


async def test_stop_closes_the_chat() -> None:
    console = Console()
    await console.say("hi")
    await console.chat.close_all()
    assert console.events[-1].kind == "closed"
    assert await console.chat.say("too late") is None
    await console.say("also too late")
    assert [line.text for line in console.chat.lines()] == ["hi"]
    assert console.received == []
