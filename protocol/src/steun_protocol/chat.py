"""Wire format of the chat channel (``Channel.CHAT``): text messages, canned phrases, typing and read marks.

Each ``RecordType.DATA`` record on the chat channel carries exactly one message, laid out like ``screen.py``:
``type u8`` first, fixed-width big-endian fields, the text last behind a length checked before allocation,
no trailing bytes.

====  ========  ========================================================================================
type  name      fields after the type byte (both directions)
====  ========  ========================================================================================
0x01  MESSAGE   id u32 (the sender's counter, from 1, increasing), time f64 (sender's clock, Unix
                seconds), sender u8 (``Sender``), phrase u16 (0: free text; else a ``Phrase``),
                text_len u16 (1..MAX_TEXT_BYTES), text UTF-8
0x02  TYPING    sender u8, active u8 (0/1)
0x03  READ      sender u8 (who read), up_to u32: every message of the peer up to this id was shown
====  ========  ========================================================================================

``sender`` must match the direction: a console sends only ``TECHNICIAN``, an agent only ``USER``.

A canned phrase travels with its ``phrase`` id *and* the sender's own rendering in ``text``: a receiver that
knows the id shows the phrase in its reader's language (``Phrase.TECHNICIAN`` phrases have ids below 100,
``USER`` phrases from 100), one that does not shows ``text``. The texts themselves live with each UI
(agent: ``steun_agent/chat/phrases.json``; console: its i18n catalogues); the ids are the protocol.

Text is shown as text, never as markup; the decoder also refuses control characters other than tab and
newline, so a message cannot carry terminal escapes or NULs into a transcript.

Errors are ``RemoteProtocolError`` with the codes of ``screen.py``: ``malformed``, ``message_too_large``,
``unknown_type``, ``invalid_message``.
"""

from __future__ import annotations

import enum
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from .binary import Reader, invalid
from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError

#: Longest message text (UTF-8 bytes).
MAX_TEXT_BYTES = 4096

# C0 controls except tab and newline, DEL and the C1 range.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class MessageType(enum.IntEnum):
    MESSAGE = 0x01
    TYPING = 0x02
    READ = 0x03


class Sender(enum.IntEnum):
    TECHNICIAN = 1
    USER = 2


class Phrase(enum.IntEnum):
    """Canned phrases. Ids are part of the protocol; the texts are each UI's (nl/fr/en)."""

    # the technician's
    HELLO = 1
    ONE_MOMENT = 2
    DONT_TOUCH = 3
    SAVE_WORK = 4
    RESTART = 5
    CAN_YOU_SEE = 6
    ALL_DONE = 7
    THANKS_BYE = 8
    # the user's
    YES = 100
    NO = 101
    OK = 102
    WAIT = 103
    NOT_UNDERSTOOD = 104
    CALL_ME = 105
    THANKS = 106

    @property
    def sender(self) -> Sender:
        return Sender.TECHNICIAN if self.value < 100 else Sender.USER


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    sender: Sender
    text: str
    time: float
    phrase: int = 0  # 0 or a Phrase value (unknown values are kept: newer peers may know more)
    type: ClassVar[MessageType] = MessageType.MESSAGE


@dataclass(frozen=True, slots=True)
class Typing:
    sender: Sender
    active: bool
    type: ClassVar[MessageType] = MessageType.TYPING


@dataclass(frozen=True, slots=True)
class Read:
    sender: Sender
    up_to: int
    type: ClassVar[MessageType] = MessageType.READ


ChatMessage: TypeAlias = Message | Typing | Read

_MESSAGE = struct.Struct("!IdBHH")
_TYPING = struct.Struct("!BB")
_READ = struct.Struct("!BI")


def clean_text(text: str) -> str:
    """``text`` with the characters the wire refuses removed (for senders taking text from a person)."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise LocalProtocolError(ErrorCode.INVALID_MESSAGE, what)


def encode(message: ChatMessage) -> bytes:
    """Serialise one message; raise LocalProtocolError for values outside the layout or its caps."""
    t = bytes((message.type,))
    try:
        match message:
            case Message(ident, sender, text, when, phrase):
                data = text.encode()
                if len(data) > MAX_TEXT_BYTES:
                    raise LocalProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"chat text of {len(data)} bytes")
                _check(len(data) > 0 and not _CONTROL.search(text), "empty text or control characters")
                _check(ident >= 1 and math.isfinite(when), "id or time")
                return t + _MESSAGE.pack(ident, when, Sender(sender), phrase, len(data)) + data
            case Typing(sender, active):
                return t + _TYPING.pack(Sender(sender), int(active))
            case Read(sender, up_to):
                return t + _READ.pack(Sender(sender), up_to)
    except (struct.error, ValueError) as exc:
        raise LocalProtocolError(ErrorCode.INVALID_MESSAGE, f"{type(message).__name__}: {exc}") from None
    raise LocalProtocolError(ErrorCode.UNKNOWN_TYPE, f"not a chat message: {message!r}")


def decode(data: bytes | bytearray | memoryview, *, sender: Sender | None = None) -> ChatMessage:
    """Parse one message; ``sender`` is who may have sent it (see ``decode_from_agent``/``_console``)."""
    view = memoryview(data)
    if len(view) == 0:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "empty message")
    try:
        kind = MessageType(view[0])
    except ValueError:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown chat message 0x{view[0]:02x}") from None
    r = Reader(view)
    message = _DECODERS[kind](r)
    r.end()
    if sender is not None and message.sender != sender:
        raise RemoteProtocolError(
            ErrorCode.INVALID_MESSAGE, f"a {message.sender.name} message from {sender.name}"
        )
    return message


def decode_from_agent(data: bytes | bytearray | memoryview) -> ChatMessage:
    """What a console accepts."""
    return decode(data, sender=Sender.USER)


def decode_from_console(data: bytes | bytearray | memoryview) -> ChatMessage:
    """What an agent accepts."""
    return decode(data, sender=Sender.TECHNICIAN)


def _sender(value: int) -> Sender:
    try:
        return Sender(value)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.INVALID_MESSAGE, f"unknown sender {value}") from None


def _message(r: Reader) -> Message:
    ident, when, sender, phrase, length = r.fields(_MESSAGE)
    who = _sender(sender)
    invalid(ident >= 1, "message id 0")
    invalid(math.isfinite(when), "time is not a number")
    invalid(length > 0, "empty text")
    text = r.text(length, MAX_TEXT_BYTES, "chat text")
    invalid(not _CONTROL.search(text), "control characters in chat text")
    return Message(ident, who, text, when, phrase)


def _typing(r: Reader) -> Typing:
    sender, active = r.fields(_TYPING)
    invalid(active in (0, 1), "active must be 0 or 1")
    return Typing(_sender(sender), bool(active))


def _read(r: Reader) -> Read:
    sender, up_to = r.fields(_READ)
    return Read(_sender(sender), up_to)


_DECODERS: dict[MessageType, Callable[[Reader], ChatMessage]] = {
    MessageType.MESSAGE: _message,
    MessageType.TYPING: _typing,
    MessageType.READ: _read,
}
