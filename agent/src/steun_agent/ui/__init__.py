"""The agent's local UI: support-code entry, consent prompt, session indicator, chat; Tk or a terminal.

The session runtime uses :func:`open_ui` and the :class:`~steun_agent.ui.base.AgentUI` it returns (which is
also the :class:`steun_agent.consent.Prompter` a ``ConsentBroker`` asks). See docs/agent-ui.md.
"""

from __future__ import annotations

import logging
from typing import IO

from .base import (
    AgentUI,
    ChatWindow,
    IndicatorInfo,
    SessionIndicator,
    UIUnavailable,
    display_text,
    group_digits,
)
from .i18n import LANGUAGES, Texts, pick_language
from .terminal import TerminalUI

log = logging.getLogger(__name__)

__all__ = [
    "LANGUAGES",
    "AgentUI",
    "ChatWindow",
    "IndicatorInfo",
    "SessionIndicator",
    "TerminalUI",
    "Texts",
    "UIUnavailable",
    "display_text",
    "group_digits",
    "open_ui",
    "pick_language",
]


async def open_ui(
    language: str | None = None,
    *,
    policy_language: str | None = None,
    prefer: str = "auto",
    display: str | None = None,
    accept_delay: float = 1.0,
    input: IO[str] | None = None,
    output: IO[str] | None = None,
) -> AgentUI:
    """The Tk UI when a display works, else the terminal one.

    ``language`` is the user's explicit choice (``--language``), ``policy_language`` the admin's; the locale
    decides otherwise. ``prefer`` is ``auto``, ``tk`` (fail with :class:`UIUnavailable` rather than fall
    back) or ``terminal``.
    """
    texts = Texts(pick_language(language, policy_language))
    if prefer != "terminal":
        try:
            from .tkui import TkUI  # tkinter may be missing from a minimal Python

            return await TkUI.open(texts, display=display, accept_delay=accept_delay)
        except (ImportError, UIUnavailable) as exc:
            if prefer == "tk":
                raise UIUnavailable(str(exc)) from exc
            log.info("no graphical UI (%s); using the terminal", exc)
    return TerminalUI(texts, input=input, output=output)
