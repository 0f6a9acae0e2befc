"""What a session uses on this machine: the X11 screen and input factories, the policy (fail closed), a UI."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from steun_protocol.session import Capability

from ..consent import Answer, ConsentPrompt
from ..policy import Policy, PolicyError, load_policy
from ..ui.base import IndicatorInfo, StopCallback
from .runner import DispatcherLike, Send, StreamerLike

log = logging.getLogger(__name__)

#: When the policy file is unsafe, every capability is forbidden (and each refusal is audited as policy).
LOCKED_POLICY = Policy(forbid=frozenset(Capability))


async def load_policy_or_lock() -> tuple[Policy, PolicyError | None]:
    """The local policy; an unsafe file locks sessions (all forbidden) instead of falling back to defaults."""
    try:
        return await asyncio.to_thread(load_policy), None
    except PolicyError as exc:
        log.error("%s", exc)
        return LOCKED_POLICY, exc


def x11_streamer_factory(display: str | None = None) -> Callable[[Send], StreamerLike]:
    display = display or os.environ.get("DISPLAY")

    def make(send: Send) -> StreamerLike:
        from ..screen import Capturer, ScreenStreamer, X11CursorTracker, X11Damage

        streamer: Any = ScreenStreamer(
            send,
            lambda: Capturer(display),
            cursor_factory=lambda: X11CursorTracker(display),
            damage_factory=lambda: X11Damage(display),
        )
        return streamer  # type: ignore[no-any-return]

    return make


def x11_dispatcher_factory(
    display: str | None = None,
) -> Callable[[Send, Callable[[], tuple[int, int]], bool, bool], DispatcherLike]:
    display = display or os.environ.get("DISPLAY")

    def make(
        send: Send, origin: Callable[[], tuple[int, int]], control: bool, clipboard: bool
    ) -> DispatcherLike:
        from ..input.backend import InputDispatcher
        from ..input.x11 import X11Clipboard, XTestBackend

        dispatcher: Any = InputDispatcher(
            lambda: XTestBackend(display),
            origin=origin,
            clipboard_factory=(lambda: X11Clipboard(display)) if clipboard else None,
            send=send,
            control=control,
            clipboard=clipboard,
        )
        return dispatcher  # type: ignore[no-any-return]

    return make


class NobodyUI:
    """For a service with no display to ask on: every prompt is a no; the indicator shows nothing."""

    async def ask_consent(self, prompt: ConsentPrompt) -> Answer:
        return Answer.DENY

    async def show_indicator(
        self, info: IndicatorInfo, *, on_stop: StopCallback, revoke: StopCallback | None = None
    ) -> _NoIndicator:
        return _NoIndicator()


class _NoIndicator:
    def update(self, capabilities: tuple[Capability, ...]) -> None:
        pass

    async def wait_stopped(self) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass
