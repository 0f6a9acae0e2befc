"""The full session against a real X server: the real streamer sends the real screen, a key typed by the
console lands in a real xterm — through relay, handshake, consent and sealed records."""

from __future__ import annotations

from pathlib import Path

from steun_agent.session.local import x11_dispatcher_factory, x11_streamer_factory
from steun_protocol.screen import Key, MessageType, Monitors, PointerMove, Text, encode
from steun_protocol.session import Capability, RecordType
from steun_protocol.sessionplane import Channel, Granted, Stop

from tests.screen.conftest import XServer, xserver  # noqa: F401 - the module-scoped Xvfb fixture
from tests.screen.test_x11 import mouse_location, xterm
from tests.session_agent.test_session_capability import ended, established, make_world
from tests.support.waiting import wait_for

XK_Return = 0xFF0D


async def test_screen_and_a_key_through_the_whole_session(xserver: XServer, tmp_path: Path) -> None:  # noqa: F811
    w = await make_world(
        tmp_path,
        ["accept"],
        streamer_factory=x11_streamer_factory(xserver.display),
        dispatcher_factory=x11_dispatcher_factory(xserver.display),
    )
    out = tmp_path / "typed.txt"
    try:
        with xterm(xserver, f"stty -echo; cat > {out}", geometry="80x24+100+100"):
            console = await established(w, [Capability.VIEW, Capability.CONTROL])
            granted = await console.wait_control(Granted)
            assert set(granted.capabilities) == {Capability.VIEW, Capability.CONTROL}
            monitors = await console.wait_data(Channel.SCREEN, MessageType.MONITORS, timeout=20)
            assert isinstance(monitors, Monitors) and monitors.monitors[0].width == 1920
            await console.wait_data(Channel.SCREEN, MessageType.REGION, timeout=20)
            await console.send(Channel.INPUT, RecordType.DATA, encode(PointerMove(300, 200)))
            await wait_for(lambda: mouse_location(xserver) == (300, 200), what="the pointer over the xterm")
            await console.send(Channel.INPUT, RecordType.DATA, encode(Text("steun")))
            await console.send(Channel.INPUT, RecordType.DATA, encode(Key(XK_Return, True)))
            await console.send(Channel.INPUT, RecordType.DATA, encode(Key(XK_Return, False)))
            text = await wait_for(
                lambda: out.exists() and out.read_bytes().endswith(b"\n") and out.read_text("utf-8"),
                what="the typed line",
            )
            assert text == "steun\n"
            await console.send_control(Stop(reason="done"))
            outcome = await ended(w)
            assert outcome.reason == "technician"
            await console.close()
    finally:
        await w.capability.stop()
        await w.relay.stop()
