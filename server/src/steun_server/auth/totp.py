"""TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of drift either way) and recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import urllib.parse

import pyotp
import segno

STEP = 30
DIGITS = 6
#: Steps of clock drift accepted on either side of "now".
WINDOW = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_secret() -> str:
    return pyotp.random_base32(length=32)


def current_step(now: float) -> int:
    return int(now // STEP)


def code_at_step(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).at(step * STEP)


def match_code(secret: str, code: str, now: float, last_step: int | None) -> int | None:
    """The step ``code`` is valid for, or None.

    Accepts the steps now-1, now and now+1, but never a step at or before ``last_step`` (the last step a
    code was accepted for): a code that was seen once, on the wire or over a shoulder, cannot be replayed.
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    step_now = current_step(now)
    matched: int | None = None
    for step in range(step_now - WINDOW, step_now + WINDOW + 1):
        fresh = last_step is None or step > last_step
        # compare every candidate: the time taken does not tell which step matched
        if hmac.compare_digest(code_at_step(secret, step), code) and fresh and matched is None:
            matched = step
    return matched


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The otpauth URI as an SVG QR code (no script, no external references)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, border=2, xmldecl=False, svgns=True)
    return buffer.getvalue().decode("utf-8")


def generate_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Codes like ``k7fq-3mzp-x9dh-2nwa`` (16 characters, 78 bits each): random enough to store as SHA-256."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalise_recovery_code(code: str) -> str:
    cleaned = "".join(c for c in code.lower() if c.isalnum())
    return "-".join(cleaned[i : i + 4] for i in range(0, len(cleaned), 4))


def hash_token(token: str) -> str:
    """SHA-256 hex of a random token (session token, recovery code, enrollment secret)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def label(account: str, issuer: str) -> str:
    return urllib.parse.quote(f"{issuer}:{account}")
