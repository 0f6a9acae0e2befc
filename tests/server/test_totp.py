"""Unit tests for TOTP matching at the edges of the ±1 step window, replay refusal and recovery codes."""

from __future__ import annotations

import re

import pyotp
from steun_server.auth import totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def code_for(t: float) -> str:
    return pyotp.TOTP(SECRET).at(t)


def test_current_step_matches() -> None:
    now = 1_700_000_015.0
    assert totp.match_code(SECRET, code_for(now), now, None) == totp.current_step(now)


def test_window_edges() -> None:
    start = 1_700_000_010.0  # a step boundary is at ...010 (1_700_000_010 / 30 is whole)
    assert start % 30 == 0
    step = totp.current_step(start)
    # a code from the previous step is accepted up to the last second of the current step
    previous = code_for(start - 1)
    assert totp.match_code(SECRET, previous, start + 29.999, None) == step - 1
    # ...and refused one step later (two steps behind)
    assert totp.match_code(SECRET, previous, start + 30.0, None) is None
    # a code one step ahead (phone clock fast) is accepted; two ahead is not
    assert totp.match_code(SECRET, code_for(start + 30), start, None) == step + 1
    assert totp.match_code(SECRET, code_for(start + 60), start, None) is None


def test_replay_of_same_or_older_step_refused() -> None:
    now = 1_700_000_020.0
    step = totp.current_step(now)
    code = code_for(now)
    assert totp.match_code(SECRET, code, now, step) is None
    assert totp.match_code(SECRET, code, now, step - 1) == step
    assert totp.match_code(SECRET, code_for(now - 30), now, step) is None


def test_malformed_codes() -> None:
    now = 1_700_000_020.0
    for bad in ("", "12345", "1234567", "abcdef", "12 34 5x"):
        assert totp.match_code(SECRET, bad, now, None) is None
    spaced = code_for(now)[:3] + " " + code_for(now)[3:]
    assert totp.match_code(SECRET, spaced, now, None) is not None


def test_provisioning_and_qr() -> None:
    uri = totp.provisioning_uri(SECRET, "alice", "Steun")
    assert uri.startswith("otpauth://totp/Steun:alice?")
    assert f"secret={SECRET}" in uri
    svg = totp.qr_svg(uri)
    assert svg.startswith("<svg")
    assert "<script" not in svg.lower()


def test_recovery_codes() -> None:
    codes = totp.generate_recovery_codes()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", code)
        assert totp.normalise_recovery_code(code.upper().replace("-", " ")) == code
    assert totp.hash_token(codes[0]) != codes[0]
    assert len(totp.hash_token(codes[0])) == 64
