"""Remote input and clipboard: a backend interface per platform and a dispatcher that keeps input off the
screen's path.

Public API for the session runtime::

    dispatcher = InputDispatcher(
        lambda: XTestBackend(display),
        origin=lambda: (streamer.monitor.x, streamer.monitor.y) if streamer.monitor else (0, 0),
        clipboard_factory=lambda: X11Clipboard(display),
        send=send_on_input_channel,
        control=Capability.CONTROL in granted,
        clipboard=Capability.CLIPBOARD in granted,
    )
    task = asyncio.create_task(dispatcher.run())
    ...  # for each console input/clipboard message: dispatcher.handle(decode_from_console(payload))
"""

from __future__ import annotations

from .backend import (
    ClipboardBackend,
    InputBackend,
    InputDispatcher,
    InputError,
    InputStatistics,
)
from .x11 import X11Clipboard, XTestBackend, char_to_keysym

__all__ = [
    "ClipboardBackend",
    "InputBackend",
    "InputDispatcher",
    "InputError",
    "InputStatistics",
    "X11Clipboard",
    "XTestBackend",
    "char_to_keysym",
]
