"""``steun files ls|get|put`` end to end: the technician CLI, the real server and relay, the files service of
the real agent runtime on the other end of a sealed session; progress on stderr, hashes checked, resume after
a cut."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from steun_protocol.session import Capability

from tests.shell.native import DEVICE, RealDevice, Tech

CLI = [sys.executable, "-m", "steun_server.techcli", "files"]


async def test_files_put_get_and_ls(device: RealDevice, tech: Tech, tmp_path: Path) -> None:
    local = tmp_path / "report été.bin"
    local.write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    code, _, err = await tech.run([*CLI, "put", DEVICE, str(local), "in/report.bin"])
    assert (
        code == 1 and b"not_found" in err
    )  # no such directory on the device: a clear error, nothing written
    (device.root / "in").mkdir()
    code, _, err = await tech.run([*CLI, "put", DEVICE, str(local), "in/report.bin"])
    assert code == 0, err.decode()
    assert b"verified by the agent" in err and b"MB/s" in err and b"100.0%" in err
    assert (device.root / "in" / "report.bin").read_bytes() == local.read_bytes()
    code, _, err = await tech.run([*CLI, "put", DEVICE, str(local), "in/report.bin"])
    assert code == 1 and b"exists" in err
    code, _, err = await tech.run([*CLI, "put", "--force", DEVICE, str(local), "in/report.bin"])
    assert code == 0, err.decode()

    code, out, err = await tech.run([*CLI, "ls", DEVICE, "in"])
    assert code == 0 and b"report.bin" in out
    back = tmp_path / "back.bin"
    code, _, err = await tech.run([*CLI, "get", DEVICE, "in/report.bin", str(back)])
    assert code == 0, err.decode()
    assert hashlib.sha256(back.read_bytes()).hexdigest().encode() in err
    assert back.read_bytes() == local.read_bytes()
    assert not list(tmp_path.glob("*.steunpart"))


async def test_a_cut_download_resumes_from_its_partial(
    device: RealDevice, tech: Tech, tmp_path: Path
) -> None:
    data = os.urandom(4 * 1024 * 1024)
    (device.root / "big.bin").write_bytes(data)
    dest = tmp_path / "big.bin"
    (tmp_path / "big.bin.steunpart").write_bytes(data[: 3 * 1024 * 1024])  # what a cut run left behind
    code, _, err = await tech.run([*CLI, "get", DEVICE, "big.bin", str(dest)])
    assert code == 0, err.decode()
    assert dest.read_bytes() == data


async def test_files_needs_the_users_consent(device: RealDevice, tech: Tech, tmp_path: Path) -> None:
    device.grant = frozenset({Capability.SHELL})
    code, _, err = await tech.run([*CLI, "ls", DEVICE])
    assert code == 4 and b"did not allow: files" in err


async def test_traversal_is_refused_through_the_cli(device: RealDevice, tech: Tech, tmp_path: Path) -> None:
    code, _, err = await tech.run([*CLI, "get", DEVICE, "../../etc/passwd", str(tmp_path / "p")])
    assert code == 1 and b"path_invalid" in err
    code, _, err = await tech.run([*CLI, "get", DEVICE, "/etc/passwd", str(tmp_path / "p")])
    assert code == 1 and b"path_outside_root" in err
    assert not (tmp_path / "p").exists()


async def test_files_mkdir_mv_rm_through_steun(device: RealDevice, tech: Tech) -> None:
    # `steun files` itself (the server's command), as a technician types it
    steun = [sys.executable, "-m", "steun_server.cli", "files"]
    code, _, err = await tech.run([*steun, "mkdir", DEVICE, "logs é"])
    assert code == 0, err.decode()
    assert (device.root / "logs é").is_dir()
    (device.root / "a.txt").write_text("a")
    (device.root / "b.txt").write_text("b")
    code, _, err = await tech.run([*steun, "mv", DEVICE, "a.txt", "b.txt"])
    assert code == 1 and b"exists" in err
    assert (device.root / "b.txt").read_text() == "b"
    code, _, err = await tech.run([*steun, "mv", "--force", DEVICE, "a.txt", "logs é/b.txt"])
    assert code == 0, err.decode()
    assert (device.root / "logs é" / "b.txt").read_text() == "a" and not (device.root / "a.txt").exists()
    code, _, err = await tech.run([*steun, "rm", DEVICE, "logs é"])
    assert code == 1 and b"not_empty" in err
    code, _, err = await tech.run([*steun, "mv", DEVICE, "b.txt", "../b.txt"])
    assert code == 1 and b"path_invalid" in err
    for path in ("logs é/b.txt", "logs é", "b.txt"):
        code, _, err = await tech.run([*steun, "rm", DEVICE, path])
        assert code == 0, (path, err.decode())
    assert list(device.root.iterdir()) == []
