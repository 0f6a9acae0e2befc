"""The session viewer in real Chromium, fed by a Python agent over a websocket relay.

Screen messages are made by ``steun_protocol.screen.encode`` and sealed by ``steun_protocol.session``; the
test reads the canvas pixels back, and reads what the console sends (CONFIGURE, ACK, input, clipboard) with
the Python opener and decoder. Nothing in the console is mocked; the agent is the test.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator

import numpy as np
import pytest
import simplejpeg  # type: ignore[import-untyped]
from playwright.async_api import Browser, BrowserContext, Page, expect
from steun_protocol import screen
from steun_protocol.screen import (
    MANDATORY_ENCODINGS,
    Ack,
    Clipboard,
    Configure,
    CursorPosition,
    CursorShape,
    Encoding,
    FrameBegin,
    FrameEnd,
    Key,
    MonitorInfo,
    Monitors,
    PointerButton,
    PointerButtonEvent,
    PointerMove,
    Region,
    ReleaseAll,
    SelectMonitor,
    Text,
    Wheel,
)
from steun_protocol.session import Capability, RecordType
from steun_protocol.sessionplane import Channel

from tests.support.waiting import wait_for

from .conftest import PageErrors, new_context
from .session_helpers import (
    HarnessServer,
    Parties,
    RelayPeer,
    harness_call,
    open_harness,
    running_harness,
    started_session,
    wait_log,
)

pytestmark = pytest.mark.browser

W, H = 640, 360
HOSTILE = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture
async def harness() -> AsyncIterator[HarnessServer]:
    async with running_harness() as server:
        yield server


@pytest.fixture
async def hpage(
    context: BrowserContext, harness: HarnessServer, page_errors: PageErrors
) -> AsyncIterator[Page]:
    tab = page_errors.watch(await context.new_page())
    await open_harness(tab, harness)
    yield tab
    await harness_call(tab, "unmountViewer")
    await tab.close()
    assert page_errors.errors == [], f"uncaught errors in the page: {page_errors.errors}"


def bgrx(width: int, height: int) -> bytes:
    """A pattern where every pixel differs: B = x, G = y, R = x ^ y (all mod 256)."""
    x = np.arange(width, dtype=np.uint32)[None, :]
    y = np.arange(height, dtype=np.uint32)[:, None]
    img = np.zeros((height, width, 4), np.uint8)
    img[..., 0] = x % 256
    img[..., 1] = y % 256
    img[..., 2] = (x ^ y) % 256
    img[..., 3] = 7  # X: ignored, painted opaque
    return img.tobytes()


def jpeg(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = rgb
    return bytes(simplejpeg.encode_jpeg(img, quality=95, colorspace="RGB"))


async def pixel(page: Page, x: int, y: int, canvas: str = ".session-screen") -> list[int]:
    result: list[int] = await harness_call(page, "pixel", canvas, x, y)
    return result


async def live_viewer(
    page: Page, harness: HarnessServer, capabilities: list[Capability], granted: list[str] | None = None
) -> RelayPeer:
    """A viewer after the handshake; with ``granted``, also after the user's decision (CONFIGURE consumed)."""
    peer, _, keys = await started_session(page, harness, Parties(), capabilities, viewer=True)
    await expect(page.get_by_test_id("sas")).to_have_text(f"{keys.sas[:3]} {keys.sas[3:]}")
    if granted is not None:
        await peer.send_control({"type": "granted", "capabilities": granted, "denied": []})
        configure = await peer.receive_screen(channel=Channel.SCREEN)
        assert isinstance(configure, Configure)
    return peer


async def send_frame(peer: RelayPeer, seq: int, *regions: Region, width: int = W, height: int = H) -> None:
    await peer.send_screen(FrameBegin(seq, 0, width, height, capture_ms=1234, full=seq == 1))
    await peer.send_screen(*regions)
    await peer.send_screen(FrameEnd(seq, len(regions), sum(len(r.data) for r in regions)))


async def receive_ack(peer: RelayPeer) -> Ack:
    """The next ACK (its timings are the console's own clock: tests look at the sequence)."""
    message = await peer.receive_screen(channel=Channel.SCREEN)
    assert isinstance(message, Ack), message
    return message


def solid(seq: int, x: int, y: int, w: int, h: int, rgb: tuple[int, int, int]) -> Region:
    r, g, b = rgb
    return Region(seq, x, y, w, h, Encoding.SOLID, bytes((b, g, r, 0)))


# --------------------------------------------------------------------------------------------- consent and SAS


async def test_sas_first_screen_only_after_granted(hpage: Page, harness: HarnessServer) -> None:
    peer, _, keys = await started_session(
        hpage, harness, Parties(), [Capability.VIEW, Capability.CONTROL], viewer=True
    )
    sas = hpage.get_by_test_id("sas")
    await expect(sas).to_have_text(f"{keys.sas[:3]} {keys.sas[3:]}")
    await expect(hpage.get_by_text("Read these six digits to the user")).to_be_visible()
    await expect(hpage.get_by_text("Waiting for the user to allow the session")).to_be_visible()
    await expect(hpage.locator(".session-viewport")).to_be_hidden()

    # A frame before the user decided is not painted and not acknowledged.
    await send_frame(peer, 1, solid(1, 0, 0, W, H, (255, 0, 0)))
    await peer.send_control({"type": "granted", "capabilities": ["view"], "denied": ["control"]})
    first = await peer.receive_screen(channel=Channel.SCREEN)
    assert first == Configure(quality=0, max_fps=0, encodings=MANDATORY_ENCODINGS, max_in_flight=3)
    await expect(hpage.locator(".session-viewport")).to_be_visible()
    await expect(sas).to_be_hidden()
    await expect(hpage.get_by_text("Not allowed by the user: Control mouse and keyboard")).to_be_visible()
    await expect(hpage.get_by_text("View only: the user did not allow control.")).to_be_visible()
    await expect(hpage.get_by_role("button", name="Ask for control")).to_be_visible()
    # The code stays in the toolbar for the rest of the session.
    await expect(hpage.locator(".sas-badge")).to_have_text(f"Code {keys.sas[:3]} {keys.sas[3:]}")

    await send_frame(peer, 2, solid(2, 0, 0, W, H, (0, 0, 255)))
    assert (await receive_ack(peer)).seq == 2
    assert await pixel(hpage, 5, 5) == [0, 0, 255, 255]

    await hpage.get_by_role("button", name="Ask for control").click()
    ask = await peer.receive_record()
    assert ask.type == RecordType.CONTROL
    assert ask.payload == b'{"type":"ask","capabilities":["control"],"reason":""}'
    await peer.close()


# --------------------------------------------------------------------------------------------- painting


async def test_regions_are_painted_pixel_exact(hpage: Page, harness: HarnessServer) -> None:
    peer = await live_viewer(hpage, harness, [Capability.VIEW], granted=["view"])
    pattern = bgrx(64, 32)
    await send_frame(
        peer,
        1,
        solid(1, 0, 0, W, H, (10, 20, 30)),
        Region(1, 100, 50, 64, 32, Encoding.DEFLATE_BGRA, zlib.compress(pattern)),
        Region(1, 300, 200, 64, 64, Encoding.JPEG, jpeg(64, 64, (30, 160, 90))),
    )
    assert (await receive_ack(peer)).seq == 1
    await expect(hpage.locator(".session-screen")).to_have_attribute("width", str(W))
    assert await pixel(hpage, 0, 0) == [10, 20, 30, 255]
    assert await pixel(hpage, W - 1, H - 1) == [10, 20, 30, 255]
    for x, y in [(0, 0), (63, 0), (0, 31), (63, 31), (17, 9)]:
        assert await pixel(hpage, 100 + x, 50 + y) == [x ^ y, y, x, 255], (x, y)
    assert await pixel(hpage, 99, 50) == [10, 20, 30, 255]
    r, g, b, a = await pixel(hpage, 330, 230)
    assert abs(r - 30) <= 4 and abs(g - 160) <= 4 and abs(b - 90) <= 4 and a == 255

    # A later frame changes only its regions; the ACK follows each painted frame.
    await send_frame(peer, 2, solid(2, 0, 0, 10, 10, (255, 255, 255)))
    assert (await receive_ack(peer)).seq == 2
    assert await pixel(hpage, 9, 9) == [255, 255, 255, 255]
    assert await pixel(hpage, 10, 10) == [10, 20, 30, 255]
    assert await pixel(hpage, 101, 50) == [1, 0, 1, 255]

    # A new size resizes the canvas (the agent sends a full refresh with it).
    await send_frame(peer, 3, solid(3, 0, 0, 320, 200, (1, 2, 3)), width=320, height=200)
    assert (await receive_ack(peer)).seq == 3
    await expect(hpage.locator(".session-screen")).to_have_attribute("width", "320")
    assert await pixel(hpage, 319, 199) == [1, 2, 3, 255]
    await expect(hpage.get_by_test_id("stats")).to_contain_text("fps")
    await expect(hpage.get_by_test_id("stats")).to_contain_text("320 × 200")
    await peer.close()


async def test_fit_and_actual_size(hpage: Page, harness: HarnessServer) -> None:
    peer = await live_viewer(hpage, harness, [Capability.VIEW], granted=["view"])
    await send_frame(peer, 1, solid(1, 0, 0, 1920, 1080, (9, 9, 9)), width=1920, height=1080)
    await receive_ack(peer)
    screen_box = hpage.locator(".session-screen")
    fitted = await screen_box.bounding_box()
    viewport = await hpage.locator(".session-viewport").bounding_box()
    assert fitted is not None and viewport is not None
    assert fitted["width"] <= viewport["width"] + 1  # scaled down to fit, aspect ratio kept
    assert abs(fitted["width"] / fitted["height"] - 1920 / 1080) < 0.01
    await hpage.get_by_role("button", name="Actual size (1:1)").click()
    actual = await screen_box.bounding_box()
    assert actual is not None and (round(actual["width"]), round(actual["height"])) == (1920, 1080)
    await hpage.get_by_role("button", name="Fit to window").click()
    again = await screen_box.bounding_box()
    assert again is not None and round(again["width"]) == round(fitted["width"])
    await peer.close()


async def test_round_trip_is_measured_from_acks(hpage: Page, harness: HarnessServer) -> None:
    """With max_in_flight 3, the ACK of frame n lets the agent send frame n + 3: that gap is the round trip."""
    peer = await live_viewer(hpage, harness, [Capability.VIEW], granted=["view"])
    stats = hpage.get_by_test_id("stats")
    for seq in (1, 2, 3):
        await send_frame(peer, seq, solid(seq, 0, 0, 8, 8, (seq, 0, 0)))
    assert (await receive_ack(peer)).seq == 1
    await expect(stats).to_contain_text("— ms")
    await send_frame(peer, 4, solid(4, 0, 0, 8, 8, (4, 0, 0)))  # released by ACK 1
    await expect(stats).to_contain_text(re.compile(r"· \d+ ms ·"))
    await peer.close()


async def test_cursor_is_drawn_at_its_hotspot(hpage: Page, harness: HarnessServer) -> None:
    peer = await live_viewer(hpage, harness, [Capability.VIEW], granted=["view"])
    await send_frame(peer, 1, solid(1, 0, 0, W, H, (0, 0, 0)))
    await receive_ack(peer)
    red = bytes((255, 0, 0, 255)) * 16
    await peer.send_screen(CursorShape(7, 4, 4, 1, 2, red), CursorPosition(300, 200, True))

    async def cursor_at(x: int, y: int) -> list[int]:
        return await pixel(hpage, x, y, ".session-cursor")

    async def cursor_becomes(x: int, y: int, rgba: list[int]) -> None:
        async def check() -> list[int] | None:
            found = await cursor_at(x, y)
            return found if found == rgba else None

        found: list[int] = await wait_for(check, what=f"cursor pixel ({x}, {y}) = {rgba}")
        assert found == rgba

    await cursor_becomes(299, 198, [255, 0, 0, 255])
    assert await cursor_at(302, 201) == [255, 0, 0, 255]
    assert await cursor_at(303, 201) == [0, 0, 0, 0]
    assert await cursor_at(298, 198) == [0, 0, 0, 0]
    # Moving clears the old place; hiding clears everything.
    await peer.send_screen(CursorPosition(10, 10, True))
    await cursor_becomes(9, 8, [255, 0, 0, 255])
    assert await cursor_at(300, 200) == [0, 0, 0, 0]
    await peer.send_screen(CursorPosition(10, 10, False))
    await cursor_becomes(9, 8, [0, 0, 0, 0])
    # The screen canvas itself was never touched by the cursor.
    assert await pixel(hpage, 9, 8) == [0, 0, 0, 255]
    await peer.close()


async def test_monitor_names_are_text_and_selectable(hpage: Page, harness: HarnessServer) -> None:
    peer = await live_viewer(hpage, harness, [Capability.VIEW], granted=["view"])
    await peer.send_screen(
        Monitors(
            (
                MonitorInfo(0, 0, 0, 1920, 1080, name=HOSTILE, primary=True, selected=True),
                MonitorInfo(1, 1920, 0, 1280, 1024, name="DELL U2412M"),
            )
        )
    )
    select = hpage.get_by_label("Screen", exact=True)
    await expect(select.locator("option")).to_have_text([f"{HOSTILE} (1920×1080)", "DELL U2412M (1280×1024)"])
    await select.select_option("1")
    assert await peer.receive_screen(channel=Channel.SCREEN) == SelectMonitor(1)
    await hpage.get_by_label("Quality", exact=True).select_option(label="Low (slow connections)")
    configure = await peer.receive_screen(channel=Channel.SCREEN)
    assert isinstance(configure, Configure) and configure.quality == 40
    assert await hpage.evaluate("window.__pwned") is None
    assert await hpage.locator("img").count() == 0
    await peer.close()


@pytest.mark.parametrize(
    ("region", "why"),
    [
        pytest.param(Region(1, 600, 0, 64, 64, Encoding.SOLID, b"\0\0\0\0"), "outside", id="outside-frame"),
        pytest.param(
            Region(1, 0, 0, 8, 8, Encoding.DEFLATE_BGRA, zlib.compress(bytes(8 * 8 * 4 + 4))),
            "more",
            id="inflates-more",
        ),
        pytest.param(
            Region(1, 0, 0, 8, 8, Encoding.DEFLATE_BGRA, zlib.compress(bytes(8 * 8 * 4 - 4))),
            "less",
            id="inflates-less",
        ),
        pytest.param(Region(1, 0, 0, 8, 8, Encoding.DEFLATE_BGRA, b"not zlib"), "zlib", id="not-zlib"),
        pytest.param(
            Region(1, 0, 0, 64, 64, Encoding.JPEG, jpeg(32, 32, (1, 2, 3))), "jpeg", id="jpeg-wrong-size"
        ),
        pytest.param(
            Region(1, 0, 0, 64, 64, Encoding.JPEG, b"\xff\xd8" + bytes(200)), "jpeg", id="jpeg-garbage"
        ),
        pytest.param(
            Region(1, 0, 0, 8, 8, Encoding.ZSTD_BGRA, b"\x28\xb5\x2f\xfd"), "zstd", id="not-announced"
        ),
    ],
)
async def test_hostile_regions_end_the_session(
    hpage: Page, harness: HarnessServer, region: Region, why: str
) -> None:
    peer = await live_viewer(hpage, harness, [Capability.VIEW], granted=["view"])
    await send_frame(peer, 1, region)
    ended = await wait_log(hpage, "ended")
    assert ended["code"] == "invalid_message", why
    await expect(hpage.get_by_text("the device sent something invalid (invalid_message)")).to_be_visible()
    await peer.close()


async def test_huge_jpeg_header_is_refused_before_decoding(hpage: Page, harness: HarnessServer) -> None:
    """A few bytes must not make the browser allocate a 65535 × 65535 image."""
    peer = await live_viewer(hpage, harness, [Capability.VIEW], granted=["view"])
    bomb = bytearray(jpeg(16, 16, (0, 0, 0)))
    sof = bomb.index(b"\xff\xc0")
    bomb[sof + 5 : sof + 9] = b"\xff\xff\xff\xff"
    await send_frame(peer, 1, Region(1, 0, 0, 16, 16, Encoding.JPEG, bytes(bomb)))
    assert (await wait_log(hpage, "ended"))["code"] == "invalid_message"
    await peer.close()


# --------------------------------------------------------------------------------------------- input


async def input_viewer(page: Page, harness: HarnessServer) -> RelayPeer:
    peer = await live_viewer(
        page, harness, [Capability.VIEW, Capability.CONTROL], granted=["view", "control"]
    )
    await send_frame(peer, 1, solid(1, 0, 0, W, H, (0, 0, 0)))
    await receive_ack(peer)
    return peer


async def next_input(peer: RelayPeer) -> screen.ConsoleMessage:
    return await peer.receive_screen(channel=Channel.INPUT, skip=(PointerMove,))


async def test_pointer_and_wheel_map_to_remote_pixels(hpage: Page, harness: HarnessServer) -> None:
    peer = await input_viewer(hpage, harness)
    box = await hpage.locator(".session-screen").bounding_box()
    assert box is not None
    # Whatever the scale, a point at a quarter of the width is remote x = W / 4.
    x, y = box["x"] + box["width"] * 0.25 + 0.1, box["y"] + box["height"] * 0.5 + 0.1
    await hpage.mouse.click(x, y)
    expected_x, expected_y = W // 4, H // 2
    assert await next_input(peer) == PointerButtonEvent(PointerButton.LEFT, True, expected_x, expected_y)
    assert await next_input(peer) == PointerButtonEvent(PointerButton.LEFT, False, expected_x, expected_y)
    await hpage.mouse.click(box["x"] + box["width"] - 1, box["y"] + box["height"] - 1, button="right")
    down = await next_input(peer)
    assert isinstance(down, PointerButtonEvent) and down.button == PointerButton.RIGHT and down.down
    assert (down.x, down.y) == (W - 1, H - 1)
    assert await next_input(peer) == PointerButtonEvent(PointerButton.RIGHT, False, W - 1, H - 1)
    await hpage.mouse.move(box["x"] + 1, box["y"] + 1)
    move = await peer.receive_screen(channel=Channel.INPUT)
    assert move == PointerMove(int(W / box["width"]), int(H / box["height"]))
    await hpage.mouse.wheel(0, 100)
    wheel = await next_input(peer)
    assert wheel == Wheel(0, 120)
    await peer.close()


async def test_keys_become_keysyms_and_text(hpage: Page, harness: HarnessServer) -> None:
    peer = await input_viewer(hpage, harness)
    await hpage.locator(".session-screen").click()
    await next_input(peer)
    await next_input(peer)  # the click's press and release
    await expect(hpage.get_by_text("Press Ctrl+Alt+Shift to release it")).to_be_visible()

    await hpage.keyboard.press("a")
    assert [await next_input(peer), await next_input(peer)] == [Key(0x61, True), Key(0x61, False)]
    await hpage.keyboard.press("Enter")
    assert [await next_input(peer), await next_input(peer)] == [Key(0xFF0D, True), Key(0xFF0D, False)]
    await hpage.keyboard.press("Escape")  # goes to the device, not to the browser
    assert [await next_input(peer), await next_input(peer)] == [Key(0xFF1B, True), Key(0xFF1B, False)]
    await hpage.keyboard.press("F5")
    assert [await next_input(peer), await next_input(peer)] == [Key(0xFFC2, True), Key(0xFFC2, False)]
    await hpage.keyboard.press("Shift+KeyA")
    assert [await next_input(peer) for _ in range(4)] == [
        Key(0xFFE1, True),
        Key(0x41, True),
        Key(0x41, False),
        Key(0xFFE1, False),
    ]
    await hpage.keyboard.press("Control+c")  # a shortcut: keys, not text
    assert [await next_input(peer) for _ in range(4)] == [
        Key(0xFFE3, True),
        Key(0x63, True),
        Key(0x63, False),
        Key(0xFFE3, False),
    ]
    # Characters a Belgian or French keyboard types directly (Playwright only knows the US layout, so the
    # key events come through the DevTools protocol, as a real keyboard's would).
    cdp = await hpage.context.new_cdp_session(hpage)
    for char, code in [("é", "Digit2"), ("ç", "Digit9"), ("ë", "KeyE"), ("€", "KeyE")]:
        for kind in ("keyDown", "keyUp"):
            event = {"type": kind, "key": char, "code": code}
            if kind == "keyDown":
                event |= {"text": char, "unmodifiedText": char}
            await cdp.send("Input.dispatchKeyEvent", event)
        assert await next_input(peer) == Text(char)
    await cdp.detach()

    # The release combination: the modifiers that went down are released on the device, the keyboard is free.
    await hpage.keyboard.down("Control")
    await hpage.keyboard.down("Alt")
    await hpage.keyboard.down("Shift")
    assert [await next_input(peer) for _ in range(3)] == [Key(0xFFE3, True), Key(0xFFE9, True), ReleaseAll()]
    await hpage.keyboard.up("Shift")
    await hpage.keyboard.up("Alt")
    await hpage.keyboard.up("Control")
    await expect(hpage.get_by_role("button", name="Capture keyboard")).to_be_visible()
    await hpage.keyboard.press("b")  # not captured any more: nothing is sent
    await hpage.get_by_role("button", name="Capture keyboard").click()
    await hpage.keyboard.press("b")
    assert [await next_input(peer), await next_input(peer)] == [Key(0x62, True), Key(0x62, False)]

    # Leaving the screen with a key held: RELEASE_ALL, so nothing stays pressed on the device.
    await hpage.keyboard.down("x")
    assert await next_input(peer) == Key(0x78, True)
    await hpage.get_by_role("button", name="Release keyboard").click()
    assert await next_input(peer) == ReleaseAll()
    await hpage.keyboard.up("x")
    await peer.close()


KEY_TABLE: list[tuple[dict[str, object], dict[str, object]]] = [
    (
        {"key": "€", "code": "KeyE", "ctrlKey": True, "altKey": True, "altGraph": True},
        {"kind": "text", "text": "€"},
    ),
    ({"key": "AltGraph", "code": "AltRight"}, {"kind": "key", "keysym": 0xFE03}),
    ({"key": "Control", "code": "ControlRight", "ctrlKey": True}, {"kind": "key", "keysym": 0xFFE4}),
    ({"key": "Enter", "code": "NumpadEnter"}, {"kind": "key", "keysym": 0xFF8D}),
    ({"key": "F12", "code": "F12"}, {"kind": "key", "keysym": 0xFFC9}),
    ({"key": "Dead", "code": "BracketLeft"}, {"kind": "ignore"}),
    ({"key": "ß", "code": "Minus"}, {"kind": "text", "text": "ß"}),
    ({"key": "é", "code": "Digit2", "ctrlKey": True}, {"kind": "key", "keysym": 0xE9}),
    ({"key": "Ω", "code": "KeyZ", "altKey": True}, {"kind": "key", "keysym": 0x010003A9}),
    ({"key": "😀", "code": ""}, {"kind": "text", "text": "😀"}),
    (
        {"key": "Shift", "code": "ShiftLeft", "ctrlKey": True, "altKey": True, "shiftKey": True},
        {"kind": "release"},
    ),
    ({"key": "constructor", "code": "toString"}, {"kind": "ignore"}),
]


async def test_key_mapping_table(hpage: Page) -> None:
    """One keydown each, through the console's own mapping (one page for the whole table)."""
    for event, action in KEY_TABLE:
        full = {"ctrlKey": False, "altKey": False, "shiftKey": False, "metaKey": False, **event}
        assert await harness_call(hpage, "keyDownAction", full) == action, event


async def test_no_input_without_control(hpage: Page, harness: HarnessServer) -> None:
    peer = await live_viewer(hpage, harness, [Capability.VIEW, Capability.CONTROL], granted=["view"])
    await send_frame(peer, 1, solid(1, 0, 0, W, H, (0, 0, 0)))
    await receive_ack(peer)
    await hpage.locator(".session-screen").click()
    await hpage.keyboard.press("a")
    await expect(hpage.get_by_role("button", name="Capture keyboard")).to_be_hidden()
    # Nothing reached the agent on the input channel: the next record is the ACK of the next frame.
    await send_frame(peer, 2, solid(2, 0, 0, 1, 1, (0, 0, 0)))
    record = await peer.receive_record()
    assert record.channel == Channel.SCREEN
    ack = screen.decode_from_console(record.payload)
    assert isinstance(ack, Ack) and ack.seq == 2
    await peer.close()


# --------------------------------------------------------------------------------------------- clipboard


async def test_clipboard_both_ways_only_when_granted(hpage: Page, harness: HarnessServer) -> None:
    peer = await live_viewer(hpage, harness, [Capability.VIEW, Capability.CLIPBOARD], granted=["view"])
    panel = hpage.locator(".session-clipboard")
    await expect(panel).to_be_hidden()
    # Not granted: clipboard text from the device is not shown.
    await peer.send_screen(Clipboard("secret"), channel=Channel.CLIPBOARD)
    await peer.send_control({"type": "granted", "capabilities": ["view", "clipboard"], "denied": []})
    await expect(panel).to_be_visible()
    received = hpage.get_by_label("From the device")
    await expect(received).to_have_value("")

    text = f"{HOSTILE}\nRéférence: 4711 — €12"
    await peer.send_screen(Clipboard(text), channel=Channel.CLIPBOARD)
    await expect(received).to_have_value(text)
    assert await hpage.evaluate("window.__pwned") is None

    await hpage.get_by_label("To the device").fill("Wachtwoord: hünd€")
    await hpage.get_by_role("button", name="Send to the device").click()
    assert await peer.receive_screen(channel=Channel.CLIPBOARD) == Clipboard("Wachtwoord: hünd€")
    await peer.close()


# --------------------------------------------------------------------------------------------- ending


async def test_stop_button_ends_the_session_for_both(hpage: Page, harness: HarnessServer) -> None:
    peer = await live_viewer(hpage, harness, [Capability.VIEW], granted=["view"])
    await hpage.get_by_role("button", name="Stop session").click()
    stop = await peer.receive_record()
    close = await peer.receive_record()
    assert stop.type == RecordType.CONTROL and b'"type":"stop"' in stop.payload
    assert close.type == RecordType.CLOSE
    await expect(hpage.get_by_text("You ended the session.")).to_be_visible()
    assert (await wait_log(hpage, "ended"))["code"] == "stopped"
    await peer.close()


async def test_user_stopping_is_shown_with_their_reason_as_text(hpage: Page, harness: HarnessServer) -> None:
    peer = await live_viewer(hpage, harness, [Capability.VIEW], granted=["view"])
    await peer.send_control({"type": "stop", "reason": HOSTILE})
    await expect(hpage.get_by_text("The user ended the session.")).to_be_visible()
    await expect(hpage.get_by_text(f"Message from the device: {HOSTILE}")).to_be_visible()
    await expect(hpage.locator(".session-viewport")).to_be_hidden()
    assert await hpage.evaluate("window.__pwned") is None
    await peer.close()


async def test_relay_loss_is_shown(hpage: Page, harness: HarnessServer) -> None:
    peer = await live_viewer(hpage, harness, [Capability.VIEW], granted=["view"])
    await peer.close()
    await expect(hpage.get_by_text("The connection to the relay was lost.")).to_be_visible()


# --------------------------------------------------------------------------------------------- languages


@pytest.mark.parametrize(
    ("locale", "instruction", "waiting"),
    [
        (
            "nl-NL",
            "Lees deze zes cijfers voor aan de gebruiker",
            "Wachten tot de gebruiker de sessie toestaat",
        ),
        ("fr-BE", "Lisez ces six chiffres à l’utilisateur", "En attente de l’accord de l’utilisateur"),
    ],
)
async def test_viewer_speaks_dutch_and_french(
    browser: Browser, harness: HarnessServer, locale: str, instruction: str, waiting: str
) -> None:
    context = await new_context(browser, locale=locale)
    try:
        page = await context.new_page()
        await open_harness(page, harness)
        peer, _, keys = await started_session(page, harness, Parties(), [Capability.VIEW], viewer=True)
        await expect(page.get_by_test_id("sas")).to_have_text(f"{keys.sas[:3]} {keys.sas[3:]}")
        await expect(page.get_by_text(instruction)).to_be_visible()
        await expect(page.get_by_text(waiting)).to_be_visible()
        await harness_call(page, "unmountViewer")
        await peer.close()
    finally:
        await context.close()
