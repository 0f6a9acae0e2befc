"""Enrollment tokens as typed by a person, and server URLs as typed by an admin."""

from __future__ import annotations

import os

import pytest
from steun_agent.cli import main
from steun_agent.config import AgentConfig, agent_ws_url, server_base_url
from steun_agent.enrollment import parse_token
from steun_agent.errors import EXIT_REFUSED, EXIT_USAGE, ConfigError, ServerRefused, TokenError
from steun_protocol.auth import EnrollmentToken, b64encode

GOOD = str(EnrollmentToken(secret=os.urandom(24), spki_sha256=os.urandom(32), org_public_key=os.urandom(32)))


def test_good_token_parses_with_surrounding_whitespace() -> None:
    token = parse_token(f"  {GOOD}\n")
    assert str(token) == GOOD


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "st1.<secret>.<pin>.<org key>"),
        ("st2" + GOOD[3:], "st1.<secret>.<pin>.<org key>"),
        (GOOD.rsplit(".", 1)[0], "copied whole"),  # a part missing
        (GOOD[:-5], "damaged"),  # truncated org key
        (GOOD.replace(".", ".!", 1), "damaged"),  # not base64url
        ("st1." + b64encode(b"x" * 23) + GOOD[GOOD.index(".", 4) :], "damaged"),  # short secret
        (GOOD + "=", "damaged"),  # padding is not canonical
    ],
)
def test_damaged_tokens_are_explained(text: str, hint: str) -> None:
    with pytest.raises(TokenError, match="token is not usable") as info:
        parse_token(text)
    assert hint in str(info.value)


def test_cli_reports_a_damaged_token(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    code = main(
        ["enroll", "--server", "https://127.0.0.1:1", "--token", GOOD[:-3], "--state-dir", str(tmp_path)]
    )
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "token is not usable" in err
    assert "Traceback" not in err


def test_cli_needs_a_token(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEUN_AGENT_TOKEN", raising=False)
    assert main(["enroll", "--server", "https://127.0.0.1:1"]) == EXIT_USAGE
    assert "no enrollment token" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("typed", "base"),
    [
        ("https://steun.example.org", "https://steun.example.org"),
        ("https://steun.example.org/", "https://steun.example.org"),
        ("https://steun.example.org:443", "https://steun.example.org"),
        ("wss://steun.example.org:8443/agent/ws", "https://steun.example.org:8443"),
        ("https://127.0.0.1:9000", "https://127.0.0.1:9000"),
        ("https://[::1]:9000/steun", "https://[::1]:9000/steun"),
    ],
)
def test_server_url_normalised(typed: str, base: str) -> None:
    assert server_base_url(typed) == base


def test_agent_ws_url() -> None:
    assert agent_ws_url("https://h:1") == "wss://h:1/agent/ws"
    assert agent_ws_url("https://h/steun") == "wss://h/steun/agent/ws"


@pytest.mark.parametrize(
    "bad",
    [
        "http://steun.example.org",
        "ws://h/agent/ws",
        "steun.example.org",
        "https://",
        "https://u:p@h",
        "https://h:x",
    ],
)
def test_plaintext_or_odd_urls_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        server_base_url(bad)


def test_config_from_env() -> None:
    config = AgentConfig.from_env(
        {
            "STEUN_AGENT_STATE_DIR": "/tmp/x",
            "STEUN_AGENT_BACKOFF_BASE": "0.1",
            "STEUN_AGENT_BACKOFF_CAP": "2",
        },
        inventory_interval=5.0,
        backoff_cap=None,
    )
    assert (config.backoff_base, config.backoff_cap, config.inventory_interval) == (0.1, 2.0, 5.0)
    assert str(config.state_dir) == "/tmp/x"
    with pytest.raises(ConfigError, match="must be a number"):
        AgentConfig.from_env({"STEUN_AGENT_BACKOFF_CAP": "soon"})
    with pytest.raises(ConfigError, match="backoff_cap"):
        AgentConfig.from_env({"STEUN_AGENT_BACKOFF_BASE": "10", "STEUN_AGENT_BACKOFF_CAP": "1"})


@pytest.mark.parametrize(
    ("code", "sentence"),
    [
        ("token_used", "already been used"),
        ("token_expired", "has expired"),
        ("token_invalid", "does not know this enrollment token"),
        ("device_revoked", "revoked by an administrator"),
        ("something_new", "The server refused the enroll."),
    ],
)
def test_server_refusals_read_as_sentences(code: str, sentence: str) -> None:
    refused = ServerRefused(code, "detail from the server", what="enroll")
    assert sentence in str(refused)
    assert f"server error {code}: detail from the server" in str(refused)
    assert refused.exit_code == EXIT_REFUSED
    assert refused.fatal == (code == "device_revoked")
