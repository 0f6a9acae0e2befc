"""Chat between technician and user inside the session: canned phrases (nl/fr/en), a bounded transcript.

Public API (see ``service.py`` for the runtime's and the chat window's interface)::

    chat = ChatService(send, language=ui_language)
    chat.feed(payload)              # each console DATA record on Channel.CHAT, once `chat` is granted
    await chat.close_all()          # Stop
    chat.transcript.export()        # JSON for the session record
"""

from __future__ import annotations

from .phrases import phrase_text, phrases_for
from .service import ChatEvent, ChatLine, ChatService, ChatStatistics, Transcript

__all__ = [
    "ChatEvent",
    "ChatLine",
    "ChatService",
    "ChatStatistics",
    "Transcript",
    "phrase_text",
    "phrases_for",
]
