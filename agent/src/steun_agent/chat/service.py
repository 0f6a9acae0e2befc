"""The chat of one session: messages both ways, canned phrases, typing and read marks, a bounded transcript.

The session runtime holds one :class:`ChatService` per session:

* ``chat.feed(payload)`` for every DATA record on ``Channel.CHAT`` (once ``chat`` is granted); synchronous,
  never blocks; undecodable payloads raise ``RemoteProtocolError``;
* ``send`` (given at construction): one encoded message → one sealed DATA record on ``Channel.CHAT``;
* ``await chat.close_all()`` on Stop: listeners hear ``closed``; nothing more is sent or accepted.
* ``chat.transcript.export()`` at the end: the transcript as JSON for the session record (see below).

The chat window (agent UI) uses, from the event loop's thread:

* ``chat.subscribe(listener)`` → an unsubscribe function. ``listener(ChatEvent)`` is called on the loop's
  thread for each incoming message, typing change, read mark, and for ``closed``; a Tk window marshals it to
  its own thread (``ui/tkbridge.py``) and must show ``event.line.shown`` as plain text;
* ``chat.lines()`` for what to show when the window opens; ``chat.phrases()`` for its canned-phrase buttons;
* ``await chat.say(text)``, ``await chat.say_phrase(phrase)``, ``await chat.set_typing(active)``,
  ``await chat.mark_read()`` — from the Tk thread through ``asyncio.run_coroutine_threadsafe``.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from steun_protocol.chat import (
    MAX_TEXT_BYTES,
    ChatMessage,
    Message,
    Phrase,
    Read,
    Sender,
    Typing,
    clean_text,
    decode_from_console,
    encode,
)

from .phrases import FALLBACK, LANGUAGES, known_phrase, phrase_text, phrases_for

log = logging.getLogger(__name__)

Send = Callable[[bytes], Awaitable[None]]

#: Most messages a transcript keeps (oldest dropped first, and counted).
MAX_TRANSCRIPT_MESSAGES = 1000
#: Most text a transcript keeps (UTF-8 bytes).
MAX_TRANSCRIPT_BYTES = 1024 * 1024
#: Incoming messages per second a technician may send on average, and in one burst.
RATE = 5.0
BURST = 20


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One message as the transcript keeps it."""

    id: int
    sender: Sender
    text: str  # what the sender wrote (for a phrase: the sender's own rendering)
    time: float  # the sender's clock
    received: float  # this agent's clock
    phrase: int = 0
    shown: str = ""  # what the user reads: a known phrase in the user's language, else ``text``


@dataclass(frozen=True, slots=True)
class ChatEvent:
    kind: Literal["message", "typing", "read", "closed"]
    line: ChatLine | None = None
    sender: Sender | None = None
    active: bool = False  # typing
    up_to: int = 0  # read


@dataclass(slots=True)
class ChatStatistics:
    received: int = 0
    sent: int = 0
    dropped_rate: int = 0
    dropped_old: int = 0


class Transcript:
    """The session's messages, bounded in count and bytes; the oldest go first and are counted."""

    def __init__(
        self, max_messages: int = MAX_TRANSCRIPT_MESSAGES, max_bytes: int = MAX_TRANSCRIPT_BYTES
    ) -> None:
        self._lines: collections.deque[ChatLine] = collections.deque()
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._bytes = 0
        self.dropped = 0

    def add(self, line: ChatLine) -> None:
        self._lines.append(line)
        self._bytes += len(line.text.encode())
        while len(self._lines) > self._max_messages or self._bytes > self._max_bytes:
            old = self._lines.popleft()
            self._bytes -= len(old.text.encode())
            self.dropped += 1

    def lines(self) -> tuple[ChatLine, ...]:
        return tuple(self._lines)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def export(self) -> bytes:
        """JSON for the session record: ``{"dropped": n, "messages": [{id, from, time, text, phrase}]}``."""
        messages = [
            {
                "id": line.id,
                "from": "technician" if line.sender is Sender.TECHNICIAN else "user",
                "time": line.time,
                "received": line.received,
                "text": line.text,
                "phrase": line.phrase,
            }
            for line in self._lines
        ]
        return json.dumps({"dropped": self.dropped, "messages": messages}, ensure_ascii=False).encode()


class ChatService:
    """The agent's end of the chat. See the module docstring for the runtime's and the UI's interface."""

    def __init__(
        self,
        send: Send,
        *,
        language: str = FALLBACK,
        transcript: Transcript | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
        self._send = send
        self.language = language
        self.transcript = transcript if transcript is not None else Transcript()
        self._clock = clock
        self._monotonic = monotonic
        self._listeners: list[Callable[[ChatEvent], None]] = []
        self._next_id = 1
        self._last_technician_id = 0
        self._tokens = float(BURST)
        self._refilled = monotonic()
        self._closed = False
        self._stats = ChatStatistics()

    def statistics(self) -> ChatStatistics:
        return ChatStatistics(
            self._stats.received, self._stats.sent, self._stats.dropped_rate, self.transcript.dropped
        )

    # ---------------------------------------------------------------- for the UI

    def subscribe(self, listener: Callable[[ChatEvent], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def lines(self) -> tuple[ChatLine, ...]:
        return self.transcript.lines()

    def phrases(self) -> Mapping[Phrase, str]:
        """The user's canned phrases in the UI's language, for buttons."""
        return phrases_for(Sender.USER, self.language)

    async def say(self, text: str) -> ChatLine | None:
        """Send what the user typed (control characters removed, cut to the wire's cap). None if nothing."""
        cleaned = clean_text(text).strip("\n")
        data = cleaned.encode()[:MAX_TEXT_BYTES].decode("utf-8", "ignore")
        if not data.strip() or self._closed:
            return None
        return await self._say(data, 0)

    async def say_phrase(self, phrase: Phrase) -> ChatLine | None:
        if phrase.sender is not Sender.USER:
            raise ValueError(f"{phrase.name} is a technician's phrase")
        if self._closed:
            return None
        return await self._say(phrase_text(phrase, self.language), phrase.value)

    async def _say(self, text: str, phrase: int) -> ChatLine:
        now = self._clock()
        line = ChatLine(self._next_id, Sender.USER, text, now, now, phrase, text)
        self._next_id += 1
        self.transcript.add(line)
        self._stats.sent += 1
        await self._send(encode(Message(line.id, Sender.USER, text, now, phrase)))
        return line

    async def set_typing(self, active: bool) -> None:
        if not self._closed:
            await self._send(encode(Typing(Sender.USER, active)))

    async def mark_read(self) -> None:
        """The user has seen every technician message so far."""
        if not self._closed and self._last_technician_id:
            await self._send(encode(Read(Sender.USER, self._last_technician_id)))

    # ---------------------------------------------------------------- from the console

    def feed(self, payload: bytes) -> None:
        """Handle one console message (one DATA record's payload on the chat channel). Never blocks."""
        message: ChatMessage = decode_from_console(payload)
        if self._closed:
            return
        match message:
            case Message(ident, sender, text, when, phrase):
                if not self._take_token():
                    self._stats.dropped_rate += 1
                    return
                known = known_phrase(phrase)
                shown = phrase_text(known, self.language) if known and known.sender is sender else text
                line = ChatLine(ident, sender, text, when, self._clock(), phrase, shown)
                self._last_technician_id = max(self._last_technician_id, ident)
                self.transcript.add(line)
                self._stats.received += 1
                self._notify(ChatEvent("message", line=line, sender=sender))
            case Typing(sender, active):
                self._notify(ChatEvent("typing", sender=sender, active=active))
            case Read(sender, up_to):
                self._notify(ChatEvent("read", sender=sender, up_to=up_to))

    def _take_token(self) -> bool:
        now = self._monotonic()
        self._tokens = min(float(BURST), self._tokens + (now - self._refilled) * RATE)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def close_all(self) -> None:
        """Stop: no more messages either way; the window hears ``closed`` (the transcript stays readable)."""
        if self._closed:
            return
        self._closed = True
        self._notify(ChatEvent("closed"))

    def _notify(self, event: ChatEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("chat listener failed")
