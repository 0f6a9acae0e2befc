"""What every agent UI offers (Tk window or terminal), and the text helpers they share."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from steun_protocol.session import Capability

from ..consent import Answer, ConsentPrompt, Technician
from ..errors import AgentError
from .i18n import Texts

if TYPE_CHECKING:
    from ..chat import ChatService

SUPPORT_CODE_DIGITS = 9
#: Display limits: a name signed by the org is still no reason to let it fill the screen.
NAME_LIMIT = 80
REASON_LIMIT = 200
#: Longest chat message shown (characters); the wire already caps it at 4 KiB of UTF-8.
CHAT_TEXT_LIMIT = 4096

# Bidirectional overrides and isolates can make "Jan" read as another name; zero-width characters hide things.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


# Control, format and lone surrogate code points; unassigned ones stay (a newer emoji than this Python knows).
_HIDDEN = frozenset({"Cc", "Cf", "Cs"})


class UIUnavailable(AgentError):
    """No display, or Tk could not start on it: use the terminal fallback."""


def display_text(text: str, limit: int = NAME_LIMIT) -> str:
    """Make a string safe to show: no control characters (terminal escapes), no bidi tricks, bounded."""
    cleaned = _INVISIBLE.sub("", text)
    cleaned = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in cleaned)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned or "?"


def chat_text(text: str, limit: int = CHAT_TEXT_LIMIT) -> str:
    """A chat message made safe to show as plain text: line breaks and tabs stay, control characters
    (terminal escapes), bidi overrides and zero-width characters go, bounded. Empty if nothing is left."""
    cleaned = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    cleaned = "".join(ch for ch in cleaned if ch in "\n\t" or unicodedata.category(ch) not in _HIDDEN)
    cleaned = cleaned.strip()
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def group_digits(digits: str, size: int = 3) -> str:
    """``"123456789"`` → ``"123 456 789"``; the SAS ``"123456"`` → ``"123 456"``."""
    return " ".join(digits[i : i + size] for i in range(0, len(digits), size))


def parse_support_code(text: str) -> str | None:
    """The nine digits of a typed or pasted code ("123 456 789", "123-456-789"); None if it is not one."""
    digits = re.sub(r"[\s\-.]", "", text)
    if len(digits) == SUPPORT_CODE_DIGITS and digits.isascii() and digits.isdigit():
        return digits
    return None


def format_elapsed(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours:d}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass(frozen=True, slots=True)
class IndicatorInfo:
    """What the session indicator shows."""

    org_name: str
    technician: Technician
    capabilities: tuple[Capability, ...]
    #: ``time.monotonic()`` when the session started (for the elapsed time).
    started: float


class SessionIndicator(Protocol):
    """The visible sign that a session runs, with its Stop. Returned by :meth:`AgentUI.show_indicator`."""

    def update(self, capabilities: tuple[Capability, ...]) -> None:
        """Show a new set of capabilities (after ``request_more`` granted something)."""

    async def wait_stopped(self) -> None:
        """Return when the user pressed Stop (or closed the indicator)."""

    async def close(self) -> None:
        """Take the indicator away (the session ended for another reason)."""


StopCallback = Callable[[], None]


class ChatWindow(Protocol):
    """The chat window of one session. Returned by :meth:`AgentUI.show_chat`."""

    async def close(self) -> None:
        """Take the window away for good (the session ended); idempotent."""

    def raise_(self) -> None:
        """Show the window again and bring it to the front (it may have been hidden by the user)."""


class AgentUI(Protocol):
    """The support-code entry, the consent prompt (a ``consent.Prompter``) and the session indicator."""

    language: str
    texts: Texts

    async def ask_support_code(self, error: str | None = None) -> str | None:
        """The nine digits the user typed, or None if they cancelled. ``error`` is shown above the field."""

    async def ask_consent(self, prompt: ConsentPrompt) -> Answer:
        """See :class:`steun_agent.consent.Prompter`."""

    async def show_indicator(
        self, info: IndicatorInfo, *, on_stop: StopCallback, revoke: StopCallback | None = None
    ) -> SessionIndicator:
        """Show the indicator. On Stop, ``revoke`` runs at once in the UI's own thread (pass
        ``broker.revoke``: it is thread-safe), then ``on_stop`` runs on the event loop."""

    async def show_chat(self, chat: ChatService, technician: str) -> ChatWindow:
        """Open the chat of a session in which ``chat`` was granted: the history so far, live messages,
        the user's canned phrases and a text entry. ``technician`` is the name to show (it is sanitised).
        The user can hide the window but not end the session with it; ``close()`` when the session ends."""

    async def notify(self, message: str) -> None:
        """A short message for the user (e.g. that a policy problem refuses sessions)."""

    async def close(self) -> None: ...
