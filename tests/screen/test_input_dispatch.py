"""The input dispatcher against a recording backend: order, coalescing, bounds, grants, wheel notches."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import numpy as np
from steun_agent.input import InputDispatcher, char_to_keysym
from steun_agent.input.backend import MAX_QUEUED
from steun_agent.screen.cursor import argb_to_rgba
from steun_protocol.screen import Key, PointerButton, PointerButtonEvent, PointerMove, ReleaseAll, Text, Wheel

from tests.support.waiting import wait_for


class RecordingBackend:
    """A faithful stand-in for XTestBackend: records calls; ``gate`` can hold the input thread."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.gate = threading.Event()
        self.gate.set()
        self.closed = False

    def pointer_move(self, x: int, y: int) -> None:
        self.gate.wait(10)
        self.calls.append(("move", x, y))

    def pointer_button(self, button: int, down: bool) -> None:
        self.calls.append(("button", button, down))

    def wheel(self, steps_x: int, steps_y: int) -> None:
        self.calls.append(("wheel", steps_x, steps_y))

    def key(self, keysym: int, down: bool) -> None:
        self.calls.append(("key", keysym, down))

    def type_text(self, text: str) -> None:
        self.calls.append(("text", text))

    def release_all(self) -> None:
        self.calls.append(("release_all",))

    def restore_keymap(self) -> None:
        self.calls.append(("restore",))

    def close(self) -> None:
        self.closed = True


@contextlib.asynccontextmanager
async def running(dispatcher: InputDispatcher):
    task = asyncio.create_task(dispatcher.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_events_apply_in_order_relative_to_the_monitor() -> None:
    backend = RecordingBackend()
    dispatcher = InputDispatcher(lambda: backend, origin=lambda: (1920, 0))
    async with running(dispatcher):
        dispatcher.handle(PointerMove(10, 20))
        dispatcher.handle(PointerButtonEvent(PointerButton.LEFT, True, 11, 21))
        dispatcher.handle(PointerButtonEvent(PointerButton.LEFT, False, 11, 21))
        dispatcher.handle(Key(0xFFE3, True))
        dispatcher.handle(Text("é€"))
        dispatcher.handle(ReleaseAll())
        await wait_for(lambda: ("release_all",) in backend.calls, what="the last event")
    assert backend.calls[:8] == [
        ("move", 1930, 20),
        ("move", 1931, 21),
        ("button", 1, True),
        ("move", 1931, 21),
        ("button", 1, False),
        ("key", 0xFFE3, True),
        ("text", "é€"),
        ("release_all",),
    ]
    assert backend.closed
    assert ("restore",) in backend.calls  # temporary key bindings undone on the way out


async def test_moves_coalesce_and_the_queue_is_bounded_while_the_backend_is_stuck() -> None:
    backend = RecordingBackend()
    dispatcher = InputDispatcher(lambda: backend)
    async with running(dispatcher):
        backend.gate.clear()
        dispatcher.handle(PointerMove(1, 1))
        await wait_for(
            lambda: dispatcher.statistics().applied == 0 and not dispatcher._queue, what="the stuck move"
        )
        for i in range(1000):
            dispatcher.handle(PointerMove(i, i))  # all but the last collapse into one
        for i in range(MAX_QUEUED + 50):
            dispatcher.handle(Key(0x61, i % 2 == 0))
        stats = dispatcher.statistics()
        assert stats.coalesced == 999
        assert stats.dropped > 0
        assert len(dispatcher._queue) <= MAX_QUEUED
        backend.gate.set()
        await wait_for(lambda: ("move", 999, 999) in backend.calls, what="the latest position")
    assert ("move", 500, 500) not in backend.calls


async def test_wheel_deltas_add_up_to_whole_notches() -> None:
    backend = RecordingBackend()
    dispatcher = InputDispatcher(lambda: backend)
    async with running(dispatcher):
        for _ in range(5):
            dispatcher.handle(Wheel(0, 60))  # half notches: 2.5 notches down
        dispatcher.handle(Wheel(-240, 0))
        await wait_for(lambda: ("wheel", -2, 0) in backend.calls, what="the horizontal notches")
    assert sum(c[2] for c in backend.calls if c[0] == "wheel") == 2


def test_characters_map_to_keysyms() -> None:
    assert char_to_keysym("a") == 0x61
    assert char_to_keysym("é") == 0xE9  # Latin-1 keysyms are the code point
    assert char_to_keysym("€") == 0x010020AC
    assert char_to_keysym("\n") == 0xFF0D


def test_cursor_pixels_become_straight_rgba() -> None:
    argb = np.array(
        [0xFF102030, 0x80400000, 0x00000000], dtype=np.uint32
    )  # opaque, half red (premultiplied), clear
    rgba = np.frombuffer(argb_to_rgba(argb), np.uint8).reshape(3, 4)
    assert rgba[0].tolist() == [0x10, 0x20, 0x30, 0xFF]
    assert rgba[1].tolist() == [0x7F, 0, 0, 0x80]
    assert rgba[2].tolist() == [0, 0, 0, 0]
