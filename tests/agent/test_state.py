"""State on disk: owner-only permissions, atomic writes, and refusals with a clear message."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_agent import state as state_module
from steun_agent.config import SYSTEM_STATE_DIR, default_state_dir
from steun_agent.errors import StateError
from steun_agent.state import KEY_FILE, STATE_FILE, AgentState


def make_state() -> AgentState:
    return AgentState(
        device_id="dev-1",
        private_key=Ed25519PrivateKey.generate(),
        server_url="https://steun.example.org",
        spki_sha256=bytes(range(32)),
        org_public_key=bytes(range(32, 64)),
        group="default",
        enrolled_at=1_700_000_000.0,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_roundtrip_with_owner_only_modes(tmp_path: Path) -> None:
    state_dir = tmp_path / "deep" / "state"
    original = make_state()
    original.save(state_dir)
    assert mode(state_dir) == 0o700
    assert mode(state_dir / KEY_FILE) == 0o600
    assert mode(state_dir / STATE_FILE) == 0o600
    loaded = AgentState.load(state_dir)
    assert loaded.device_id == "dev-1"
    assert loaded.public_key == original.public_key
    assert loaded.spki_sha256 == original.spki_sha256
    assert loaded.org_public_key == original.org_public_key
    assert loaded.server_url == original.server_url
    assert loaded.group == "default"
    assert "PRIVATE" not in repr(loaded)


def test_umask_does_not_widen_modes(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        make_state().save(tmp_path / "s")
    finally:
        os.umask(old)
    assert mode(tmp_path / "s" / KEY_FILE) == 0o600
    assert mode(tmp_path / "s") == 0o700


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o660, 0o644])
@pytest.mark.parametrize("name", [KEY_FILE, STATE_FILE])
def test_loose_file_is_refused(tmp_path: Path, name: str, loose: int) -> None:
    make_state().save(tmp_path)
    os.chmod(tmp_path / name, loose)
    with pytest.raises(StateError, match=r"accessible to other users.*chmod 0600"):
        AgentState.load(tmp_path)


@pytest.mark.parametrize("loose", [0o750, 0o705, 0o755, 0o710])
def test_loose_directory_is_refused(tmp_path: Path, loose: int) -> None:
    state_dir = tmp_path / "s"
    make_state().save(state_dir)
    os.chmod(state_dir, loose)
    with pytest.raises(StateError, match=r"accessible to other users.*chmod 0700"):
        AgentState.load(state_dir)
    # saving into it is refused too: the agent never writes secrets where others can look
    with pytest.raises(StateError):
        make_state().save(state_dir)


def test_symlinked_file_is_refused(tmp_path: Path) -> None:
    state_dir = tmp_path / "s"
    make_state().save(state_dir)
    elsewhere = tmp_path / "elsewhere.pem"
    (state_dir / KEY_FILE).rename(elsewhere)
    (state_dir / KEY_FILE).symlink_to(elsewhere)
    with pytest.raises(StateError, match="symlinks are refused"):
        AgentState.load(state_dir)


def test_not_enrolled_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=r"not enrolled.*steun-agent enroll"):
        AgentState.load(tmp_path / "nothing")


def test_missing_key_is_reported(tmp_path: Path) -> None:
    make_state().save(tmp_path)
    (tmp_path / KEY_FILE).unlink()
    with pytest.raises(StateError, match="missing"):
        AgentState.load(tmp_path)


def test_damaged_state_is_reported(tmp_path: Path) -> None:
    make_state().save(tmp_path)
    state_module.write_private(tmp_path / STATE_FILE, b'{"version": 1, "device_id": 5}')
    with pytest.raises(StateError, match="damaged"):
        AgentState.load(tmp_path)


def test_atomic_write_keeps_old_content_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "file"
    state_module.write_private(target, b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(state_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        state_module.write_private(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temporary file left behind


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    state_module.write_private(target, b"a much longer first version")
    state_module.write_private(target, b"short")
    assert target.read_bytes() == b"short"
    assert mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_state_dir({"STEUN_AGENT_STATE_DIR": str(tmp_path)}) == tmp_path
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_state_dir({}) == SYSTEM_STATE_DIR
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert default_state_dir({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "steun-agent"
    assert default_state_dir({}) == Path.home() / ".local" / "share" / "steun-agent"
