"""Capture, cursor, input and clipboard against a real X server (Xvfb) and real X clients (xterm)."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import shutil
import subprocess

import numpy as np
from steun_agent.input import InputDispatcher, X11Clipboard, XTestBackend
from steun_agent.screen import (
    Capturer,
    RegionDecoder,
    ScreenStreamer,
    StreamerConfig,
    X11CursorTracker,
    X11Damage,
)
from steun_protocol.screen import (
    ALL_ENCODINGS,
    Ack,
    Clipboard,
    Configure,
    CursorPosition,
    CursorShape,
    FrameEnd,
    Key,
    PointerButton,
    PointerButtonEvent,
    PointerMove,
    Region,
    Text,
    decode_from_agent,
)

from tests.support.waiting import wait_for

from .conftest import XServer, wait_until

XK_Return, XK_Tab, XK_Up, XK_F1 = 0xFF0D, 0xFF09, 0xFF52, 0xFFBE
XK_Shift_L, XK_Control_L = 0xFFE1, 0xFFE3


def mouse_location(x: XServer) -> tuple[int, int]:
    fields = dict(part.split(":") for part in x.run("xdotool", "getmouselocation").split())
    return int(fields["x"]), int(fields["y"])


@contextlib.contextmanager
def xterm(x: XServer, command: str, *, geometry: str = "80x24+100+100", background: str = "black"):
    env = {**x.env(), "LC_ALL": "C.UTF-8"}
    process = subprocess.Popen(
        ["xterm", "-geometry", geometry, "-bg", background, "-fg", "white", "-e", "sh", "-c", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        window = wait_until(
            lambda: subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--pid", str(process.pid)],
                env=x.env(),
                capture_output=True,
                text=True,
            ).stdout.split(),
            what="the xterm window",
        )
        yield process, window[0]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_capture_sees_what_an_x_client_draws(xserver: XServer) -> None:
    xserver.paint_root(0x3366CC)
    capturer = Capturer(xserver.display)
    try:
        [monitor] = capturer.monitors()
        assert (monitor.width, monitor.height) == (1920, 1080)
        frame = wait_until(
            lambda: [f for f in [capturer.grab(monitor)] if tuple(f[5, 5, :3]) == (0xCC, 0x66, 0x33)],
            what="the root colour",
        )[0]
        assert frame.shape == (1080, 1920, 4)
        with xterm(xserver, "sleep 60", geometry="40x10+300+200", background="#ff0000"):
            red = wait_until(
                lambda: [f for f in [capturer.grab(monitor)] if tuple(f[260, 340, :3]) == (0, 0, 0xFF)],
                what="the xterm's red background",
            )[0]
            assert tuple(red[5, 5, :3]) == (0xCC, 0x66, 0x33)
    finally:
        capturer.close()


def test_cursor_tracker_reports_position_and_shape(xserver: XServer) -> None:
    xserver.run("xdotool", "mousemove", "640", "360")
    tracker = X11CursorTracker(xserver.display)
    try:
        assert tracker.position() == (640, 360)
        if tracker.has_shapes:
            shape = tracker.changed_shape()
            assert shape is not None and len(shape.rgba) == shape.width * shape.height * 4
            assert shape.hot_x < shape.width and shape.hot_y < shape.height
            assert tracker.changed_shape() is None  # unchanged since
    finally:
        tracker.close()


async def test_the_streamer_paints_a_real_screen_onto_a_console_canvas(xserver: XServer) -> None:
    await asyncio.to_thread(xserver.paint_root, 0x224466)
    canvas = np.zeros((1080, 1920, 4), np.uint8)
    decoder = RegionDecoder()
    cursor: list[object] = []
    frames = 0
    streamer: ScreenStreamer

    async def send(data: bytes) -> None:
        nonlocal frames
        message = decode_from_agent(data)
        if isinstance(message, Region):
            canvas[message.y : message.y + message.height, message.x : message.x + message.width] = (
                decoder.decode(message)
            )
        elif isinstance(message, FrameEnd):
            frames += 1
            streamer.handle(Ack(message.seq))
        elif isinstance(message, CursorPosition | CursorShape):
            cursor.append(message)

    display = xserver.display
    streamer = ScreenStreamer(
        send,
        lambda: Capturer(display),
        cursor_factory=lambda: X11CursorTracker(display),
        damage_factory=lambda: X11Damage(display),
        config=StreamerConfig(max_fps=30),
    )
    streamer.handle(Configure(encodings=ALL_ENCODINGS))
    task = asyncio.create_task(streamer.run())
    try:
        await wait_for(lambda: frames >= 1, what="the first frame")
        assert tuple(canvas[540, 960, :3]) == (0x66, 0x44, 0x22)
        await asyncio.to_thread(xserver.paint_root, 0x10A020)
        await wait_for(
            lambda: tuple(canvas[540, 960, :3]) == (0x20, 0xA0, 0x10), what="the new colour on the canvas"
        )
        await wait_for(lambda: any(isinstance(c, CursorPosition) for c in cursor), what="a cursor position")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_keystrokes_with_accents_modifiers_and_special_keys_reach_an_xterm(
    xserver: XServer, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "typed.txt"
    with xterm(xserver, f"stty -echo; cat > {out}", geometry="80x24+100+100"):
        dispatcher = InputDispatcher(lambda: XTestBackend(xserver.display), control=True)
        task = asyncio.create_task(dispatcher.run())
        try:
            dispatcher.handle(PointerMove(300, 200))  # focus follows the pointer (no window manager)
            await wait_for(lambda: mouse_location(xserver) == (300, 200), what="the pointer over the xterm")
            # Ctrl+U kills the line in the terminal: proves Control is held while "u" is pressed.
            dispatcher.handle(Text("wrong"))
            for keysym, down in (
                (XK_Control_L, True),
                (ord("u"), True),
                (ord("u"), False),
                (XK_Control_L, False),
            ):
                dispatcher.handle(Key(keysym, down))
            dispatcher.handle(Text("héllo çë € ÉÇ"))
            dispatcher.handle(Key(XK_Tab, True))
            dispatcher.handle(Key(XK_Tab, False))
            for keysym, down in (
                (XK_Shift_L, True),
                (ord("A"), True),
                (ord("A"), False),
                (XK_Shift_L, False),
            ):
                dispatcher.handle(Key(keysym, down))
            dispatcher.handle(Key(ord("!"), True))  # shifted on a US layout: the backend holds Shift itself
            dispatcher.handle(Key(ord("!"), False))
            for keysym in (XK_Up, XK_F1, XK_Return):
                dispatcher.handle(Key(keysym, True))
                dispatcher.handle(Key(keysym, False))
            text = await wait_for(
                lambda: out.exists() and out.read_bytes().endswith(b"\n") and out.read_text("utf-8"),
                what="the typed line in the file",
            )
            assert text == "héllo çë € ÉÇ\tA!\x1b[A\x1bOP\n"
            assert dispatcher.statistics().applied > 0
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_pointer_moves_and_clicks_land(xserver: XServer) -> None:
    dispatcher = InputDispatcher(lambda: XTestBackend(xserver.display), origin=lambda: (100, 50))
    task = asyncio.create_task(dispatcher.run())
    try:
        for x, y in ((0, 0), (500, 400), (1819, 1029)):
            dispatcher.handle(PointerMove(x, y))
            await wait_for(
                lambda x=x, y=y: mouse_location(xserver) == (x + 100, y + 50), what=f"pointer at {x},{y}"
            )
        dispatcher.handle(PointerButtonEvent(PointerButton.LEFT, True, 10, 10))
        dispatcher.handle(PointerButtonEvent(PointerButton.LEFT, False, 10, 10))
        await wait_for(lambda: mouse_location(xserver) == (110, 60), what="the click position")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_clipboard_round_trip_between_two_x_clients(xserver: XServer) -> None:
    ours = X11Clipboard(xserver.display)
    other = X11Clipboard(xserver.display)
    changes: list[int] = []
    ours.watch(lambda: changes.append(1))
    try:
        ours.set_text("copié: ç ë € 🙂")
        assert other.get_text() == "copié: ç ë € 🙂"
        big = "x" * 200_000 + "é"
        other.set_text(big)
        assert wait_until(lambda: ours.get_text() == big, what="the other program's text")
        wait_until(lambda: changes, what="our watcher to see another owner")
        if shutil.which("xclip"):
            env = {**xserver.env(), "LC_ALL": "C.UTF-8"}
            subprocess.run(
                ["xclip", "-selection", "clipboard", "-i"],
                input="from xclip ë".encode(),
                env=env,
                check=True,
                timeout=10,
            )
            assert wait_until(lambda: ours.get_text() == "from xclip ë", what="xclip's text")
            ours.set_text("to xclip €")
            got = subprocess.run(
                ["xclip", "-selection", "clipboard", "-o"], env=env, capture_output=True, timeout=10
            )
            assert got.stdout.decode() == "to xclip €"
    finally:
        ours.close()
        other.close()


async def test_clipboard_flows_both_ways_through_the_dispatcher(xserver: XServer) -> None:
    sent: list[object] = []

    async def send(data: bytes) -> None:
        sent.append(decode_from_agent(data))

    dispatcher = InputDispatcher(
        lambda: XTestBackend(xserver.display),
        clipboard_factory=lambda: X11Clipboard(xserver.display),
        send=send,
        clipboard=True,
    )
    task = asyncio.create_task(dispatcher.run())
    local = await asyncio.to_thread(X11Clipboard, xserver.display)

    async def local_text() -> str | None:
        return await asyncio.to_thread(local.get_text)

    try:
        dispatcher.handle(Clipboard("from the technician €"))
        await wait_for(
            lambda: _equals(local_text(), "from the technician €"), what="console text on the desktop"
        )
        await asyncio.to_thread(local.set_text, "from the user ç")
        await wait_for(lambda: Clipboard("from the user ç") in sent, what="desktop text sent to the console")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(local.close)


async def _equals(value, expected) -> bool:
    return await value == expected


def test_control_not_granted_means_no_input(xserver: XServer) -> None:
    dispatcher = InputDispatcher(lambda: XTestBackend(xserver.display), control=False)
    dispatcher.handle(PointerMove(1, 1))
    dispatcher.handle(Clipboard("x"))
    assert dispatcher.statistics().refused == 2 and dispatcher.statistics().queued == 0
