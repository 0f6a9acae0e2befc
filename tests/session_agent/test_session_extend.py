"""Issue 4: asking for a capability outside the first offer, with a newer offer re-signed by the org key.

The console's first offer vouched for ``view`` only; ``session/extend`` (server) re-signs the same session with
more, and the console sends that offer in ``AskMore``. The agent trusts it only if its pinned org key signed it
and it binds the same session, device, agent key, technician key and console commitment.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_agent.input.backend import InputDispatcher
from steun_protocol.auth import b64decode, b64encode
from steun_protocol.screen import Key, encode
from steun_protocol.session import Capability, RecordType, SessionOffer, SignedOffer, sign_offer
from steun_protocol.sessionplane import AskMore, Channel, Granted, Refused

from tests.session_agent.fakes import RecordingInputBackend
from tests.session_agent.test_session_capability import World, ended, established, make_world
from tests.support.waiting import wait_for


def resign(
    console: Any, key: Ed25519PrivateKey, capabilities: list[Capability], **changes: Any
) -> SignedOffer:
    first = msgspec.json.decode(b64decode(console.signed.offer, limit=8192), type=SessionOffer)
    now = time.time()
    offer = msgspec.structs.replace(
        first, capabilities=capabilities, created_at=now, expires_at=now + 120.0, **changes
    )
    return sign_offer(key, offer)


async def _stop(w: World) -> None:
    await w.capability.stop()
    await w.relay.stop()


async def test_control_after_view_with_a_resigned_offer_prompts_again(tmp_path: Path) -> None:
    w = await make_world(tmp_path, ["accept", "accept"])
    try:
        console = await established(w, [Capability.VIEW])
        first = await console.wait_control(Granted)
        assert first.capabilities == [Capability.VIEW]
        # without a newer offer: not offered, no prompt
        before = len(console.controls)
        await console.send_control(AskMore(capabilities=[Capability.CONTROL]))
        denied = await console.wait_control(Granted, after=before)
        assert Capability.CONTROL not in denied.capabilities
        assert len(w.ui.prompts) == 1

        offer = resign(console, w.org_key, [Capability.VIEW, Capability.CONTROL])
        before = len(console.controls)
        await console.send_control(AskMore(capabilities=[Capability.CONTROL], reason="click", offer=offer))
        second = await console.wait_control(Granted, after=before)
        assert set(second.capabilities) == {Capability.VIEW, Capability.CONTROL}
        assert len(w.ui.prompts) == 2 and w.ui.prompts[1].first is False
        await console.send(Channel.INPUT, RecordType.DATA, encode(Key(0x62, True)))
        await wait_for(lambda: ("key", 0x62, True) in w.backend.calls, what="key reached the backend")
        await console.close()
        await ended(w)
    finally:
        await _stop(w)


async def _refused_offer(tmp_path: Path, make: Any) -> None:
    w = await make_world(tmp_path, ["accept", "accept"])
    try:
        console = await established(w, [Capability.VIEW])
        await console.wait_control(Granted)
        before = len(console.controls)
        await console.send_control(AskMore(capabilities=[Capability.CONTROL], offer=make(w, console)))
        refused = await console.wait_control(Refused, after=before)
        assert refused.channel == Channel.CONTROL and refused.reason == "offer_invalid"
        await wait_for(lambda: "session.refused" in w.session.names(), what="refusal audited")
        assert len(w.ui.prompts) == 1  # nothing prompted
        # the session goes on, still without control
        await console.send(Channel.INPUT, RecordType.DATA, encode(Key(0x61, True)))
        await wait_for(
            lambda: any(isinstance(c, Refused) and c.channel == Channel.INPUT for c in console.controls),
            what="input refused",
        )
        assert w.backend.calls == []
        assert w.capability.runner is not None
        await console.close()
        await ended(w)
    finally:
        await _stop(w)


async def test_offer_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    await _refused_offer(
        tmp_path,
        lambda w, c: resign(c, Ed25519PrivateKey.generate(), [Capability.VIEW, Capability.CONTROL]),
    )


async def test_offer_for_another_session_is_refused(tmp_path: Path) -> None:
    other = b64encode(b"\x01" * 16)
    await _refused_offer(
        tmp_path,
        lambda w, c: resign(c, w.org_key, [Capability.VIEW, Capability.CONTROL], session_id=other),
    )


async def test_offer_for_another_console_is_refused(tmp_path: Path) -> None:
    other = b64encode(b"\x02" * 32)
    await _refused_offer(
        tmp_path,
        lambda w, c: resign(c, w.org_key, [Capability.VIEW, Capability.CONTROL], console_commitment=other),
    )


async def test_clipboard_granted_later_gets_a_dispatcher_with_a_clipboard(tmp_path: Path) -> None:
    made: list[tuple[bool, bool]] = []
    backend = RecordingInputBackend()

    def dispatcher(send: Any, origin: Any, control: bool, clipboard: bool) -> InputDispatcher:
        made.append((control, clipboard))
        return InputDispatcher(
            lambda: backend, origin=origin, send=send, control=control, clipboard=clipboard
        )

    w = await make_world(tmp_path, ["accept", "accept"], dispatcher_factory=dispatcher)
    try:
        console = await established(w, [Capability.VIEW, Capability.CONTROL])
        await console.wait_control(Granted)
        await wait_for(lambda: made == [(True, False)], what="control-only dispatcher")
        offer = resign(console, w.org_key, [Capability.VIEW, Capability.CONTROL, Capability.CLIPBOARD])
        before = len(console.controls)
        await console.send_control(AskMore(capabilities=[Capability.CLIPBOARD], offer=offer))
        granted = await console.wait_control(Granted, after=before)
        assert Capability.CLIPBOARD in granted.capabilities
        await wait_for(lambda: made == [(True, False), (True, True)], what="dispatcher with a clipboard")
        await console.send(Channel.INPUT, RecordType.DATA, encode(Key(0x63, True)))
        await wait_for(lambda: ("key", 0x63, True) in backend.calls, what="key reached the new dispatcher")
        await console.close()
        await ended(w)
    finally:
        await _stop(w)
