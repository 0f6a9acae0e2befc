"""The console's WebCrypto half of the session, in real Chromium, against the Python protocol.

Three layers: the shared vectors (every value of ``tests/vectors/session-v1.json`` reproduced byte for byte),
tamper cases (each gives the same error code as ``steun_protocol.session``), and a live handshake with a
Python ``AgentHandshake`` over a websocket relay, with records flowing both ways.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from playwright.async_api import BrowserContext, Page
from steun_protocol.auth import b64decode, b64encode, public_key_bytes
from steun_protocol.frames import Frame, FrameType
from steun_protocol.session import (
    OFFER_CONTEXT,
    RECORD_HEADER,
    SESSION_VERSION,
    AgentHandshake,
    Capability,
    ConsoleHandshake,
    Direction,
    RecordType,
    SessionError,
    SessionOffer,
    SignedOffer,
    sign_offer,
)
from steun_protocol.sessionplane import Channel

from tests.vectors import session_vectors

from .conftest import PageErrors
from .session_helpers import (
    HarnessServer,
    Parties,
    harness_call,
    open_harness,
    running_harness,
    started_session,
    wait_log,
)

pytestmark = pytest.mark.browser

VECTORS: dict[str, Any] = json.loads(session_vectors.PATH.read_text())
INPUTS = VECTORS["inputs"]
EXPECTED = VECTORS["expected"]
A2C = [r["record"] for r in VECTORS["records"] if r["direction"] == "agent_to_console"]
C2A = [r["record"] for r in VECTORS["records"] if r["direction"] == "console_to_agent"]


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
    await tab.close()
    assert page_errors.errors == [], f"uncaught errors in the page: {page_errors.errors}"


def console_keys(side: str = "console") -> dict[str, str]:
    return {
        "console_to_agent": EXPECTED["console_to_agent_key"],
        "agent_to_console": EXPECTED["agent_to_console_key"],
        "session_id": INPUTS["session_id"],
        "side": side,
    }


def python_open(
    records: list[bytes], *, direction: Direction = Direction.AGENT_TO_CONSOLE
) -> list[str | None]:
    """What steun_protocol's opener says about each record, in order: None when it opens, else the code."""
    from steun_protocol.session import RecordOpener

    key = (
        EXPECTED["agent_to_console_key"]
        if direction is Direction.AGENT_TO_CONSOLE
        else EXPECTED["console_to_agent_key"]
    )
    opener = RecordOpener(b64decode(key, size=32), direction, b64decode(INPUTS["session_id"], size=16))
    out: list[str | None] = []
    for record in records:
        try:
            opener.open(record)
            out.append(None)
        except SessionError as exc:
            out.append(exc.code)
    return out


def browser_codes(results: list[dict[str, Any]]) -> list[str | None]:
    return [None if r["ok"] else r["code"] for r in results]


# --------------------------------------------------------------------------------------------- vectors


async def test_browser_reproduces_every_vector(hpage: Page) -> None:
    got = await harness_call(hpage, "runVectors", VECTORS)
    assert got["console_commitment"] == EXPECTED["console_commitment"]
    assert got["transcript"] == EXPECTED["transcript"]
    assert got["console_to_agent_key"] == EXPECTED["console_to_agent_key"]
    assert got["agent_to_console_key"] == EXPECTED["agent_to_console_key"]
    assert got["sas"] == EXPECTED["sas"] == got["handshake_sas"]
    assert got["handshake_transcript"] == EXPECTED["transcript"]
    # Ed25519 is deterministic: the browser's reveal is the vector's, signature included.
    assert got["reveal"] == {"type": "reveal", **VECTORS["reveal"]}
    offer = msgspec.json.decode(b64decode(VECTORS["signed_offer"]["offer"], limit=4096), type=SessionOffer)
    assert got["technician_key"] == offer.technician.key
    assert got["sealed"] == C2A
    expected_opened = [
        {"channel": r["channel"], "type": r["type"], "sequence": i + 1, "plaintext": r["plaintext"]}
        for i, r in enumerate(r for r in VECTORS["records"] if r["direction"] == "agent_to_console")
    ]
    assert got["opened"] == expected_opened


async def test_python_opens_what_the_browser_seals(hpage: Page) -> None:
    items: list[dict[str, Any]] = [
        {"channel": 2, "type": 2, "plaintext": b64encode(b"\x53\x00\x00\x00\x61\x01")},
        {"channel": 0, "type": 1, "plaintext": b64encode(b'{"type":"stop","reason":""}')},
        {"channel": 1, "type": 2, "plaintext": b64encode(bytes(range(256)) * 64)},
        {"channel": 0, "type": 3, "plaintext": ""},
        {"channel": 0, "type": 2, "plaintext": ""},
    ]
    results = await harness_call(hpage, "sealRecords", console_keys(), items)
    # Sealed in call order even though all calls were made at once; nothing after CLOSE.
    assert [r["ok"] for r in results] == [True, True, True, True, False]
    assert results[4]["code"] == "session_closed"
    from steun_protocol.session import RecordOpener

    opener = RecordOpener(
        b64decode(EXPECTED["console_to_agent_key"], size=32),
        Direction.CONSOLE_TO_AGENT,
        b64decode(INPUTS["session_id"], size=16),
    )
    for item, result in zip(items[:4], results, strict=False):
        record = opener.open(b64decode(result["record"], limit=1 << 21))
        assert (record.channel, int(record.type)) == (item["channel"], item["type"])
        assert record.payload == b64decode(item["plaintext"], limit=1 << 21)


async def test_oversized_record_is_refused_before_sealing(hpage: Page) -> None:
    from steun_protocol.session import MAX_RECORD_PLAINTEXT

    results = await harness_call(
        hpage,
        "sealRecords",
        console_keys(),
        [
            {"channel": 1, "type": 2, "size": MAX_RECORD_PLAINTEXT + 1},
            {"channel": 1, "type": 2, "size": MAX_RECORD_PLAINTEXT},
        ],
    )
    assert browser_codes(results) == ["record_too_large", None]


# --------------------------------------------------------------------------------------------- tampering


async def test_flipped_bit_anywhere_gives_the_same_code_as_python(hpage: Page) -> None:
    record = b64decode(A2C[0], limit=4096)
    tampered = []
    for position in range(len(record)):
        for bit in (0, 7):
            damaged = bytearray(record)
            damaged[position] ^= 1 << bit
            tampered.append(bytes(damaged))
    results = await open_each(hpage, tampered)
    expected = [python_open([t])[0] for t in tampered]
    assert browser_codes(results) == expected
    assert set(expected) == {"record_forged", "record_invalid"}
    # version, direction and the reserved byte are checked before authentication
    assert expected[0] == expected[2] == expected[10] == "record_invalid"


async def open_each(page: Page, records: list[bytes]) -> list[dict[str, Any]]:
    """Each record through its own fresh opener (one harness call per record, all awaited together)."""
    out = []
    for record in records:
        out.extend(await harness_call(page, "openRecords", console_keys(), [b64encode(record)]))
    return out


def agent_records(count: int, *, close_last: bool = False) -> list[bytes]:
    """Records sealed by the agent side with the vector keys: sequences 1..count."""
    from steun_protocol.session import RecordSealer

    sealer = RecordSealer(
        b64decode(EXPECTED["agent_to_console_key"], size=32),
        Direction.AGENT_TO_CONSOLE,
        b64decode(INPUTS["session_id"], size=16),
    )
    out = []
    for n in range(count):
        kind = RecordType.CLOSE if close_last and n == count - 1 else RecordType.DATA
        out.append(sealer.seal(Channel.SCREEN, kind, f"record {n + 1}".encode()))
    return out


@pytest.mark.parametrize(
    ("order", "close_last", "expected"),
    [
        pytest.param([0, 0], False, [None, "record_replayed"], id="replay"),
        pytest.param([1, 0], False, [None, "record_replayed"], id="reorder"),
        pytest.param([0, 2, 1], False, [None, None, "record_replayed"], id="late"),
        pytest.param([0, 2], False, [None, None], id="gap-is-allowed"),
        pytest.param([0, 2, 1], True, [None, None, "session_closed"], id="after-close"),
        pytest.param([0, 2, 2], True, [None, None, "session_closed"], id="close-replayed"),
    ],
)
async def test_replay_reorder_and_after_close(
    hpage: Page, order: list[int], close_last: bool, expected: list[str | None]
) -> None:
    sealed = agent_records(3, close_last=close_last)
    records = [sealed[i] for i in order]
    assert python_open(records) == expected
    results = await harness_call(hpage, "openRecords", console_keys(), [b64encode(r) for r in records])
    assert browser_codes(results) == expected


async def test_truncated_records_give_the_same_codes_as_python(hpage: Page) -> None:
    record = b64decode(A2C[1], limit=4096)
    cuts = list(range(len(record)))
    results = await open_each(hpage, [record[:cut] for cut in cuts])
    expected = [python_open([record[:cut]])[0] for cut in cuts]
    assert browser_codes(results) == expected
    assert expected[: RECORD_HEADER.size + 16] == ["record_truncated"] * (RECORD_HEADER.size + 16)
    assert set(expected[RECORD_HEADER.size + 16 :]) == {"record_forged"}


async def test_reflected_record_is_refused(hpage: Page) -> None:
    """A console→agent record sent back to the console (the relay reflecting it) is not for this side."""
    results = await harness_call(hpage, "openRecords", console_keys(), [C2A[0]])
    assert browser_codes(results) == python_open([b64decode(C2A[0], limit=4096)]) == ["record_invalid"]


async def test_authentic_record_of_unknown_type_is_invalid(hpage: Page) -> None:
    key = b64decode(EXPECTED["agent_to_console_key"], size=32)
    session_id = b64decode(INPUTS["session_id"], size=16)
    header = RECORD_HEADER.pack(SESSION_VERSION, Direction.AGENT_TO_CONSOLE, 1, 9, 0, 1)
    nonce = struct.pack("!IQ", Direction.AGENT_TO_CONSOLE, 1)
    record = header + AESGCM(key).encrypt(nonce, b"x", session_id + header)
    assert python_open([record]) == ["record_invalid"]
    results = await harness_call(hpage, "openRecords", console_keys(), [b64encode(record)])
    assert browser_codes(results) == ["record_invalid"]


# --------------------------------------------------------------------------------------------- handshake


def handshake_case(**changes: Any) -> dict[str, Any]:
    case = {
        "technician_private": INPUTS["technician_private"],
        "console_ephemeral_private": INPUTS["console_ephemeral_private"],
        "signed_offer": VECTORS["signed_offer"],
        "accept": VECTORS["accept"],
        "confirm": VECTORS["confirm"],
    }
    case.update(changes)
    return case


def reoffer(**changes: Any) -> dict[str, str]:
    """The vector offer with some fields changed, signed again by the vector's org key."""
    org = Ed25519PrivateKey.from_private_bytes(b64decode(INPUTS["org_private"], size=32))
    offer = msgspec.json.decode(b64decode(VECTORS["signed_offer"]["offer"], limit=4096), type=SessionOffer)
    signed = sign_offer(org, msgspec.structs.replace(offer, **changes))
    return {"offer": signed.offer, "signature": signed.signature}


async def test_complete_handshake_from_the_vectors(hpage: Page) -> None:
    result = await harness_call(hpage, "handshakeCase", handshake_case())
    assert result == {
        "stage": "established",
        "reveal": {"type": "reveal", **VECTORS["reveal"]},
        "sas": EXPECTED["sas"],
    }


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        pytest.param(
            {"accept": {**VECTORS["accept"], "agent_key": b64encode(bytes(32))}},
            "handshake_failed",
            id="other-agent",
        ),
        pytest.param(
            {"accept": {**VECTORS["accept"], "agent_ephemeral": b64encode(bytes(32))}},
            "handshake_failed",
            id="low-order",
        ),
        pytest.param(
            {"accept": {**VECTORS["accept"], "agent_ephemeral": b64encode(b"\x01" + bytes(31))}},
            "handshake_failed",
            id="low-order-one",
        ),
        pytest.param(
            {"accept": {**VECTORS["accept"], "agent_ephemeral": "short"}},
            "handshake_failed",
            id="bad-ephemeral",
        ),
        pytest.param(
            {"accept": {**VECTORS["accept"], "extra": 1}}, "handshake_failed", id="accept-unknown-field"
        ),
        pytest.param(
            {"confirm": {"signature": b64encode(bytes(64))}}, "handshake_failed", id="forged-confirm"
        ),
        pytest.param({"confirm": VECTORS["reveal"]}, "handshake_failed", id="confirm-malformed"),
        pytest.param({"confirm_first": True}, "handshake_failed", id="confirm-before-accept"),
        pytest.param(
            {"signed_offer": {"offer": "bm90IGpzb24", "signature": VECTORS["signed_offer"]["signature"]}},
            "offer_invalid",
            id="offer-not-json",
        ),
        pytest.param(
            {"signed_offer": {"offer": VECTORS["signed_offer"]["offer"] + "A", "signature": "x"}},
            "offer_invalid",
            id="offer-bad-base64",
        ),
    ],
)
async def test_handshake_refusals(hpage: Page, changes: dict[str, Any], code: str) -> None:
    result = await harness_call(hpage, "handshakeCase", handshake_case(**changes))
    assert result == {"stage": "failed", "code": code}


async def test_offer_without_this_consoles_commitment_is_refused(hpage: Page) -> None:
    offer = reoffer(console_commitment=b64encode(b"\x07" * 32))
    result = await harness_call(hpage, "handshakeCase", handshake_case(signed_offer=offer))
    assert result == {"stage": "failed", "code": "handshake_failed"}


async def test_offer_with_unknown_field_or_capability_is_refused(hpage: Page) -> None:
    data = json.loads(b64decode(VECTORS["signed_offer"]["offer"], limit=4096))
    for bad in (
        {**data, "admin": True},
        {**data, "capabilities": ["view", "root"]},
        {**data, "capabilities": []},
    ):
        signed = {
            "offer": b64encode(json.dumps(bad).encode()),
            "signature": VECTORS["signed_offer"]["signature"],
        }
        result = await harness_call(hpage, "handshakeCase", handshake_case(signed_offer=signed))
        assert result == {"stage": "failed", "code": "offer_invalid"}, bad


async def test_offer_bytes_are_hashed_as_received(hpage: Page) -> None:
    """Same offer content, other bytes: both sides hash the bytes they received, never a re-encoding."""
    content = json.loads(b64decode(VECTORS["signed_offer"]["offer"], limit=4096))
    respaced = json.dumps(content, indent=1).encode()  # other spacing, "é" escaped: same JSON value
    org = Ed25519PrivateKey.from_private_bytes(b64decode(INPUTS["org_private"], size=32))
    signed = SignedOffer(offer=b64encode(respaced), signature=b64encode(org.sign(OFFER_CONTEXT + respaced)))
    console = ConsoleHandshake(
        Ed25519PrivateKey.from_private_bytes(b64decode(INPUTS["technician_private"], size=32)),
        X25519PrivateKey.from_private_bytes(b64decode(INPUTS["console_ephemeral_private"], size=32)),
    )
    agent = AgentHandshake(
        public_key_bytes(org),
        Ed25519PrivateKey.from_private_bytes(b64decode(INPUTS["agent_private"], size=32)),
        device_id="dev-42",
        ephemeral=X25519PrivateKey.from_private_bytes(b64decode(INPUTS["agent_ephemeral_private"], size=32)),
    )
    accept = agent.receive_offer(signed, now=INPUTS["now"])
    reveal = console.receive_accept(signed, accept)
    confirm, keys = agent.receive_reveal(reveal)
    assert b64encode(keys.transcript) != EXPECTED["transcript"]

    result = await harness_call(
        hpage,
        "handshakeCase",
        handshake_case(
            signed_offer={"offer": signed.offer, "signature": signed.signature},
            accept={"agent_ephemeral": accept.agent_ephemeral, "agent_key": accept.agent_key},
            confirm={"signature": confirm.signature},
        ),
    )
    expected_reveal = {
        "type": "reveal",
        "console_ephemeral": reveal.console_ephemeral,
        "signature": reveal.signature,
    }
    assert result == {"stage": "established", "reveal": expected_reveal, "sas": keys.sas}


# --------------------------------------------------------------------------------------------- live, across implementations


async def test_live_handshake_with_a_python_agent(hpage: Page, harness: HarnessServer) -> None:
    parties = Parties()
    peer, agent, keys = await started_session(hpage, harness, parties, [Capability.VIEW, Capability.CONTROL])
    established = await wait_log(hpage, "established")
    # The six digits the technician reads out are the ones the agent shows.
    assert established["sas"] == keys.sas
    assert established["capabilities"] == ["view", "control"]
    assert agent.offer is not None

    # agent → console: control and data records, opened in order by the browser
    await peer.send_control({"type": "granted", "capabilities": ["view", "control"], "denied": []})
    await peer.send_record(Channel.CLIPBOARD, RecordType.DATA, "é ç ë €".encode())
    control = await wait_log(hpage, "control")
    assert control["message"] == {"type": "granted", "capabilities": ["view", "control"], "denied": []}
    data = await wait_log(hpage, "data")
    assert data == {"kind": "data", "channel": Channel.CLIPBOARD, "payload": b64encode("é ç ë €".encode())}

    # console → agent: the Python opener reads what WebCrypto sealed
    await harness_call(hpage, "relaySend", 2, 2, b64encode(b"\x55"))
    await harness_call(hpage, "relayControl", {"type": "ask", "capabilities": ["clipboard"], "reason": ""})
    first = await peer.receive_record()
    second = await peer.receive_record()
    assert (first.channel, first.type, first.sequence, first.payload) == (2, RecordType.DATA, 1, b"\x55")
    assert (second.channel, second.type, second.sequence) == (0, RecordType.CONTROL, 2)
    assert json.loads(second.payload) == {"type": "ask", "capabilities": ["clipboard"], "reason": ""}

    # the technician stops: a stop control message, then a sealed CLOSE record, then the socket closes
    await harness_call(hpage, "relayStop", "done")
    stop = await peer.receive_record()
    close = await peer.receive_record()
    assert json.loads(stop.payload) == {"type": "stop", "reason": "done"}
    assert close.type == RecordType.CLOSE
    closed = await wait_log(hpage, "closed")
    assert closed["code"] == "stopped"
    await peer.close()


async def test_relay_in_the_middle_is_caught(hpage: Page, harness: HarnessServer) -> None:
    """A relay that swaps in its own ephemeral key must also sign the transcript as the device: it cannot."""
    parties = Parties()
    fields = await harness_call(hpage, "newHandshake")
    signed = parties.offer(fields["technician_key"], fields["console_commitment"], [Capability.VIEW])
    await harness_call(
        hpage,
        "connectRelay",
        {
            "relay_path": "/relay/ws",
            "ticket": "t" * 43,
            "offer": {"offer": signed.offer, "signature": signed.signature},
        },
    )
    peer = await harness.next_peer()
    relay_ephemeral = X25519PrivateKey.generate()
    await peer.send_json(
        {
            "type": "accept",
            "agent_ephemeral": b64encode(x25519_public(relay_ephemeral)),
            "agent_key": b64encode(
                public_key_bytes(parties.agent_identity)
            ),  # the device's key, as in the offer
        }
    )
    reveal = json.loads((await peer.receive_frame()).payload)
    assert reveal["type"] == "reveal"
    # The relay now knows a shared key with the console, but can only sign with a key of its own.
    await peer.send_json({"type": "confirm", "signature": b64encode(Ed25519PrivateKey.generate().sign(b"T"))})
    closed = await wait_log(hpage, "closed")
    assert closed["code"] == "handshake_failed"
    established = [e for e in await harness_call(hpage, "log") if e["kind"] == "established"]
    assert established == []
    await peer.close()


def x25519_public(key: X25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


async def test_forged_record_on_the_relay_ends_the_session(hpage: Page, harness: HarnessServer) -> None:
    peer, _, _ = await started_session(hpage, harness, Parties(), [Capability.VIEW])
    await wait_log(hpage, "established")
    assert peer.sealer is not None
    sealed = bytearray(peer.sealer.seal(Channel.SCREEN, RecordType.DATA, b"\x04" + bytes(10)))
    sealed[-1] ^= 1
    await peer.send_frame(Frame(FrameType.SEALED, Channel.SCREEN, bytes(sealed)))
    closed = await wait_log(hpage, "closed")
    assert closed["code"] == "record_forged"
    await peer.close()


async def test_plaintext_after_the_handshake_ends_the_session(hpage: Page, harness: HarnessServer) -> None:
    """No plaintext mode: a DATA frame once records have started is refused, whatever it says."""
    peer, _, _ = await started_session(hpage, harness, Parties(), [Capability.VIEW])
    await wait_log(hpage, "established")
    await peer.send_json({"type": "granted", "capabilities": ["view"], "denied": []})
    closed = await wait_log(hpage, "closed")
    assert closed["code"] == "record_invalid"
    await peer.close()


def test_test_only_key_import_is_not_shipped() -> None:
    """Fixed-seed keys exist only in the harness; the console the server serves cannot import private keys."""
    import steun_console

    bundles = [path.read_text() for path in (steun_console.static_dir() / "assets").glob("*.js")]
    assert bundles
    assert not any("pkcs8" in code or "steunHarness" in code for code in bundles)
    # …while the production path that generates non-extractable keys is there.
    assert any("generateKey" in code and "Ed25519" in code for code in bundles)
