"""The technician's verbs are verbs of ``steun`` itself: ``steun login|logout|connect|ssh|files``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from steun_server.cli import build_parser
from steun_server.techcli import cli as techcli


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        (["connect", "laptop-7.steun"], "_connect"),
        (["ssh", "laptop-7", "uname", "-a"], "_ssh"),
        (["files", "get", "laptop-7", "logs/a.log", "a.log"], "_files"),
        (["files", "put", "a.log", "--force", "laptop-7"], "_files"),
        (["logout"], "_logout"),
    ],
)
def test_technician_verbs_parse_to_the_technician_handlers(argv: list[str], handler: str) -> None:
    args = build_parser().parse_args(argv)
    chosen = getattr(args, "tech", None) or getattr(args, "tech_sync", None)
    assert chosen is getattr(techcli, handler)


def test_steun_files_without_a_login_says_so_and_exits_3(tmp_path: Path) -> None:
    env = {**os.environ, "STEUN_TECH_HOME": str(tmp_path / "tech")}
    done = subprocess.run(
        [sys.executable, "-m", "steun_server.cli", "files", "ls", "laptop-7"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == techcli.EXIT_SIGNED_OUT, done
    assert "steun login" in done.stderr
