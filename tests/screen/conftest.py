"""A private Xvfb per test module (1920×1080×24, on a display number the server picks itself)."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.waiting import scaled


@dataclass
class XServer:
    display: str
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def run(self, *args: str, timeout: float = 10) -> str:
        out = subprocess.run(
            args, env=self.env(), capture_output=True, text=True, timeout=scaled(timeout), check=True
        )
        return out.stdout

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def paint_root(self, rgb: int) -> None:
        """Fill the root window with one colour (what ``xsetroot -solid`` does, without x11-xserver-utils)."""
        from Xlib import display

        d = display.Display(self.display)
        try:
            root = d.screen().root
            root.change_attributes(background_pixel=rgb)
            root.clear_area()
            d.sync()
        finally:
            d.close()


def wait_until(condition, *, timeout: float = 10.0, what: str = "condition", interval: float = 0.02):
    """Synchronous twin of tests.support.waiting.wait_for, for tests that drive X clients from a thread."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {scaled(timeout):.1f}s waiting for {what} (last: {value!r})"
            )
        time.sleep(interval)


@pytest.fixture(scope="module")
def xserver() -> Iterator[XServer]:
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is not installed: run scripts/bootstrap --tests")
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1920x1080x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], scaled(20))
        number = os.read(read_fd, 16).decode().strip() if ready else ""
        if not number:
            raise RuntimeError("Xvfb did not report its display number in time")
        server = XServer(f":{number}", process)
        wait_until(
            lambda: subprocess.run(["xdpyinfo"], env=server.env(), capture_output=True).returncode == 0,
            what="Xvfb to accept clients",
        )
        yield server
    finally:
        os.close(read_fd)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
