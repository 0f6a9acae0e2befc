"""The agent's own log: hash chain, owner-only files, bounded size, rotation that keeps the chain verifiable."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from steun_agent.locallog import GENESIS_HASH, LocalLog, LocalLogError, record_hash


def fill(log: LocalLog, count: int, size: int = 0) -> None:
    for i in range(count):
        log.append("consent.granted", {"i": i, "pad": "x" * size}, actor="user")


def test_records_chain_from_genesis(tmp_path: Path) -> None:
    log = LocalLog(tmp_path / "log")
    first = log.append("consent.requested", {"capabilities": ["view"]}, actor="technician:u-1")
    second = log.append("consent.granted", {"capabilities": ["view"]}, actor="user")
    assert first.prev_hash == GENESIS_HASH and first.seq == 1
    assert second.prev_hash == first.hash and second.seq == 2
    lines = log.path.read_text().splitlines()
    assert len(lines) == 2
    stored = json.loads(lines[1])
    assert stored["hash"] == record_hash(stored) == second.hash
    assert stored["source"] == "agent"
    assert log.verify() is None
    assert [r.event for r in log.records()] == ["consent.requested", "consent.granted"]


def test_files_are_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    directory.mkdir(mode=0o755)
    log = LocalLog(directory)
    log.append("session.start", {})
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    with pytest.raises(LocalLogError, match="belongs to uid 65534"):
        LocalLog(directory).append("session.start", {})


def test_verify_finds_the_tampered_line(tmp_path: Path) -> None:
    log = LocalLog(tmp_path / "log")
    fill(log, 5)
    lines = log.path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"actor":"user"', '"actor":"someone else"')
    log.path.write_text("".join(lines))
    broken = log.verify()
    assert broken is not None
    assert (broken.path, broken.line) == (log.path, 3)
    assert "does not match its hash" in broken.reason


def test_verify_finds_a_removed_line(tmp_path: Path) -> None:
    log = LocalLog(tmp_path / "log")
    fill(log, 5)
    lines = log.path.read_text().splitlines(keepends=True)
    del lines[1]
    log.path.write_text("".join(lines))
    broken = log.verify()
    assert broken is not None and broken.line == 2 and "prev_hash" in broken.reason


def test_verify_finds_a_rehashed_but_reordered_record(tmp_path: Path) -> None:
    log = LocalLog(tmp_path / "log")
    fill(log, 3)
    lines = [json.loads(x) for x in log.path.read_text().splitlines()]
    forged = dict(lines[1], data={"i": 99, "pad": ""})
    forged["hash"] = record_hash(forged)  # a consistent hash, but the next record still points at the old one
    log.path.write_text("".join(json.dumps(r) + "\n" for r in [lines[0], forged, lines[2]]))
    broken = log.verify()
    assert broken is not None and broken.line == 3


def test_garbage_and_cut_lines_are_reported(tmp_path: Path) -> None:
    log = LocalLog(tmp_path / "log")
    fill(log, 2)
    with log.path.open("a") as f:
        f.write('{"v":1,"seq":3')  # an interrupted write
    broken = log.verify()
    assert broken is not None and broken.line == 3 and "incomplete" in broken.reason


def test_a_damaged_tail_does_not_stop_new_records_but_stays_visible(tmp_path: Path) -> None:
    log = LocalLog(tmp_path / "log")
    fill(log, 2)
    with log.path.open("a") as f:
        f.write("not json\n")
    record = log.append("session.stop", {"by": "user"})
    assert record.seq == 1 and record.prev_hash == GENESIS_HASH  # a fresh chain in a fresh file
    broken = log.verify()
    assert broken is not None and broken.line == 3 and "not JSON" in broken.reason


def test_rotation_bounds_the_size_and_keeps_the_chain(tmp_path: Path) -> None:
    log = LocalLog(tmp_path / "log", max_bytes=16 * 1024, keep=3)
    fill(log, 200, size=300)
    files = log.files()
    assert [p.name for p in files] == ["consent.jsonl.2", "consent.jsonl.1", "consent.jsonl"]
    assert all(p.stat().st_size <= 16 * 1024 for p in files)
    assert log.verify() is None  # the oldest retained record anchors the chain
    records = list(log.records())
    assert records[-1].seq == 200
    assert [r.seq for r in records] == list(range(records[0].seq, 201))
    # The chain continues across the file boundary.
    first_of_current = json.loads(log.path.read_text().splitlines()[0])
    last_of_previous = json.loads(files[1].read_text().splitlines()[-1])
    assert first_of_current["prev_hash"] == last_of_previous["hash"]


def test_tampering_in_a_rotated_file_is_found(tmp_path: Path) -> None:
    log = LocalLog(tmp_path / "log", max_bytes=16 * 1024, keep=3)
    fill(log, 120, size=300)
    older = log.files()[1]
    lines = older.read_text().splitlines(keepends=True)
    lines[-1] = lines[-1].replace('"consent.granted"', '"consent.denied"')
    older.write_text("".join(lines))
    broken = log.verify()
    assert broken is not None and broken.path == older and broken.line == len(lines)


def test_data_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exceeds"):
        LocalLog(tmp_path / "log").append("x.y", {"pad": "x" * 10_000})
