"""Screen sharing benchmark: Steun's streamer beside x11vnc, on one scripted 1920×1080 workload, one run.

    uv run python benchmarks/screen.py                   # all systems, 6 s per phase
    uv run python benchmarks/screen.py --phase-seconds 10 --only steun-stream
    uv run --with pillow python benchmarks/screen.py encoders   # the encoder table of docs/design/0050

What runs (everything on one private Xvfb, loopback only):

* **Workload** (the same script for every system): typing into an xterm (xdotool, 16 chars/s); a
  second xterm scrolling text (≈ 30 lines/s); an xterm window dragged around (30 moves/s); full-screen
  changes (a full-screen window alternating a photo-like and a text-like image once a second); idle.
* **Steun**: the agent's ``ScreenStreamer`` + ``InputDispatcher`` in a subprocess (its CPU is measured),
  sending screen messages over a loopback TCP socket, length-prefixed, to a consumer in this process that
  decodes every region onto a canvas and acks each frame. Twice: offering stand-alone zstd frames (what a
  browser decodes fastest) and the zstd stream. Not included: the session record layer (AES-GCM,
  ≈ 8 GB/s here) and the relay.
* **x11vnc** (Debian, defaults, ``-nopw -localhost``): a minimal RFB 3.8 client in this process asking
  for Tight (JPEG quality level 7, compression level 1), CopyRect, RichCursor and PointerPos, and for the
  next incremental update as soon as one is painted, as noVNC does.
* **fps** = frame updates painted per second; **KB/s** = screen bytes received; **CPU** = the serving
  process's CPU time over wall time (100 % = one core); **match** = share of the viewer's canvas within
  ±8 per channel of the real screen, captured once the screen has been still for 1 s after the phase;
  **input latency** = a pointer move sent by the consumer until the X server reports the pointer there
  (probed every 150 ms while the workload runs); **pixel→canvas** = a 32×32 marker window changes colour
  every 250 ms (timestamp taken before the X request) until the consumer's canvas shows the new colour.

It prints figures; it never fails a build.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import simplejpeg
from steun_agent.screen import RegionDecoder
from steun_protocol.screen import (
    ALL_ENCODINGS,
    MANDATORY_ENCODINGS,
    Ack,
    Configure,
    Encoding,
    FrameEnd,
    PointerMove,
    Region,
    decode_from_agent,
    decode_from_console,
    encode,
)
from Xlib import X, display

WIDTH, HEIGHT = 1920, 1080
PHASES = ("typing", "scrolling", "window move", "full-screen change", "idle")
MARKER = (1880, 1040, 32, 32)
MARKER_COLOURS = (0xFF00FF, 0x00FFFF)
LENGTH = struct.Struct("!I")

# ============================================================================================= X server


@contextlib.contextmanager
def xvfb() -> Iterator[str]:
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{WIDTH}x{HEIGHT}x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 20)
        number = os.read(read_fd, 16).decode().strip() if ready else ""
        if not number:
            raise SystemExit("Xvfb did not start")
        name = f":{number}"
        deadline = time.monotonic() + 20
        while subprocess.run(["xdpyinfo", "-display", name], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("Xvfb does not accept clients")
            time.sleep(0.05)
        yield name
    finally:
        os.close(read_fd)
        proc.terminate()
        proc.wait(10)


def x_env(name: str) -> dict[str, str]:
    return {**os.environ, "DISPLAY": name, "LC_ALL": "C.UTF-8"}


def wait_window(name: str, pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--pid", str(pid)],
            env=x_env(name),
            capture_output=True,
            text=True,
        ).stdout.split()
        if out:
            return int(out[0])
        time.sleep(0.05)
    raise RuntimeError("window did not appear")


# ============================================================================================= consumers


@dataclass
class Counters:
    frames: int = 0
    bytes: int = 0
    regions: dict[str, int] = field(default_factory=dict)


class Consumer:
    """A viewer: paints a canvas, counts frames and bytes, watches the marker's colour, moves the pointer."""

    name = "?"

    def __init__(self) -> None:
        self.canvas = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
        self.counters = Counters()
        self.marker_expect: tuple[tuple[int, int, int], float] | None = None
        self.marker_latencies: list[float] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.writer: asyncio.StreamWriter | None = None

    def painted(self) -> None:
        self.counters.frames += 1
        expect = self.marker_expect
        if expect is not None:
            x, y = MARKER[0] + 16, MARKER[1] + 16
            if tuple(int(v) for v in self.canvas[y, x, :3]) == expect[0]:
                self.marker_latencies.append(time.monotonic() - expect[1])
                self.marker_expect = None

    def move_pointer(self, x: int, y: int) -> None:
        raise NotImplementedError


class SteunConsumer(Consumer):
    name = "Steun"

    def __init__(self, encodings: int) -> None:
        super().__init__()
        self.decoder = RegionDecoder()
        self.encodings = encodings

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The agent connected to us (as the relay would hand the console a session)."""
        self.writer, self.loop = writer, asyncio.get_running_loop()
        self._send(Configure(encodings=self.encodings, max_in_flight=2))
        while True:
            (length,) = LENGTH.unpack(await reader.readexactly(4))
            data = await reader.readexactly(length)
            self.counters.bytes += length + 4
            message = decode_from_agent(data)
            if isinstance(message, Region):
                self.counters.regions[message.encoding.name] = (
                    self.counters.regions.get(message.encoding.name, 0) + 1
                )
                pixels = self.decoder.decode(message)
                self.canvas[message.y : message.y + message.height, message.x : message.x + message.width] = (
                    pixels
                )
            elif isinstance(message, FrameEnd):
                self.painted()
                self._send(Ack(message.seq))

    def _send(self, message: object) -> None:
        assert self.writer is not None
        data = encode(message)  # type: ignore[arg-type]
        self.writer.write(LENGTH.pack(len(data)) + data)

    def move_pointer(self, x: int, y: int) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._send, PointerMove(x, y))


class RfbConsumer(Consumer):
    """A minimal RFB 3.8 client: Tight, CopyRect, Raw, RichCursor, PointerPos, LastRect."""

    name = "x11vnc"

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer, self.loop = writer, asyncio.get_running_loop()
        self._reader = reader
        await reader.readexactly(12)
        writer.write(b"RFB 003.008\n")
        count = (await reader.readexactly(1))[0]
        types = await reader.readexactly(count)
        if 1 not in types:
            raise RuntimeError(f"x11vnc offers no 'None' security: {list(types)}")
        writer.write(b"\x01")
        if struct.unpack("!I", await reader.readexactly(4))[0] != 0:
            raise RuntimeError("RFB security failed")
        writer.write(b"\x01")  # shared
        w, h = struct.unpack("!HH", await reader.readexactly(4))
        await reader.readexactly(16)
        (name_len,) = struct.unpack("!I", await reader.readexactly(4))
        await reader.readexactly(name_len)
        assert (w, h) == (WIDTH, HEIGHT)
        # 32 bpp, depth 24, little endian, true colour, 0x00RRGGBB → bytes B, G, R, X like our canvas
        writer.write(struct.pack("!B3xBBBBHHHBBB3x", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        encodings = [7, 1, 0, -239, -232, -224, -25, -255]  # Tight, CopyRect, Raw, cursors, LastRect, q7, c1
        writer.write(struct.pack(f"!BxH{len(encodings)}i", 2, len(encodings), *encodings))
        self._zlib = [zlib.decompressobj() for _ in range(4)]
        self._request(incremental=False)
        while True:
            kind = (await reader.readexactly(1))[0]
            if kind == 0:
                await self._update()
                self._request(incremental=True)
            elif kind == 1:
                _, _, n = struct.unpack("!xHH", await reader.readexactly(5))
                await reader.readexactly(n * 6)
            elif kind == 2:
                pass
            elif kind == 3:
                (n,) = struct.unpack("!3xI", await reader.readexactly(7))
                await reader.readexactly(n)
            else:
                raise RuntimeError(f"unknown RFB message {kind}")

    def _request(self, *, incremental: bool) -> None:
        assert self.writer is not None
        self.writer.write(struct.pack("!BBHHHH", 3, int(incremental), 0, 0, WIDTH, HEIGHT))

    async def _read(self, n: int) -> bytes:
        data = await self._reader.readexactly(n)
        self.counters.bytes += n
        return data

    async def _compact(self) -> int:
        value, shift = 0, 0
        for _ in range(3):
            b = (await self._read(1))[0]
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return value

    async def _update(self) -> None:
        (n,) = struct.unpack("!xH", await self._read(3))
        pixels = 0
        for _ in range(n):
            x, y, w, h, enc = struct.unpack("!HHHHi", await self._read(12))
            name = {0: "Raw", 1: "CopyRect", 7: "Tight", -239: "RichCursor", -232: "PointerPos"}.get(
                enc, str(enc)
            )
            if enc == -224:
                break
            self.counters.regions[name] = self.counters.regions.get(name, 0) + 1
            if enc == 0:
                raw = await self._read(w * h * 4)
                self.canvas[y : y + h, x : x + w] = np.frombuffer(raw, np.uint8).reshape(h, w, 4)
                pixels += 1
            elif enc == 1:
                sx, sy = struct.unpack("!HH", await self._read(4))
                self.canvas[y : y + h, x : x + w] = self.canvas[sy : sy + h, sx : sx + w].copy()
                pixels += 1
            elif enc == 7:
                await self._tight(x, y, w, h)
                pixels += 1
            elif enc == -239:
                await self._read(w * h * 4 + (w + 7) // 8 * h)
            elif enc == -232:
                pass
            else:
                raise RuntimeError(f"unexpected RFB encoding {enc}")
        if pixels:
            self.painted()

    async def _tight(self, x: int, y: int, w: int, h: int) -> None:
        ctl = (await self._read(1))[0]
        for i in range(4):
            if ctl & (1 << i):
                self._zlib[i] = zlib.decompressobj()
        kind = ctl >> 4
        region = self.canvas[y : y + h, x : x + w]
        if kind == 8:  # fill
            r, g, b = await self._read(3)
            region[...] = (b, g, r, 0)
            return
        if kind == 9:  # JPEG
            data = await self._read(await self._compact())
            region[...] = simplejpeg.decode_jpeg(data, colorspace="BGRA")
            return
        stream = kind & 3
        flt = (await self._read(1))[0] if kind & 4 else 0
        palette = None
        if flt == 1:
            count = (await self._read(1))[0] + 1
            palette = np.frombuffer(await self._read(count * 3), np.uint8).reshape(count, 3)
            size = (w + 7) // 8 * h if count == 2 else w * h
        else:
            size = w * h * 3
        if size < 12:
            data = await self._read(size)
        else:
            data = self._zlib[stream].decompress(await self._read(await self._compact()))
        if palette is not None:
            if len(palette) == 2:
                bits = np.unpackbits(np.frombuffer(data, np.uint8).reshape(h, (w + 7) // 8), axis=1)[:, :w]
                index = bits
            else:
                index = np.frombuffer(data, np.uint8).reshape(h, w)
            rgb = palette[index]
        else:
            rgb = np.frombuffer(data, np.uint8).reshape(h, w, 3).astype(np.int16)
            if flt == 2:  # gradient: prediction left + up - upleft, row by row
                out = np.zeros((h + 1, w + 1, 3), np.int16)
                for row in range(h):
                    for col in range(w):
                        pred = np.clip(out[row + 1, col] + out[row, col + 1] - out[row, col], 0, 255)
                        out[row + 1, col + 1] = (pred + rgb[row, col]) & 0xFF
                rgb = out[1:, 1:]
            rgb = rgb.astype(np.uint8)
        region[..., 0], region[..., 1], region[..., 2] = rgb[..., 2], rgb[..., 1], rgb[..., 0]

    def move_pointer(self, x: int, y: int) -> None:
        assert self.loop is not None and self.writer is not None
        writer = self.writer
        self.loop.call_soon_threadsafe(writer.write, struct.pack("!BBHH", 5, 0, x, y))


# ============================================================================================= probes


class Probes:
    """The marker (pixel→canvas) and the pointer probe (input latency), each on a thread of its own."""

    def __init__(self, name: str, consumer: Consumer) -> None:
        self.display_name, self.consumer = name, consumer
        self.input_latencies: list[float] = []
        self.input_timeouts = 0
        self.active = threading.Event()
        self.stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._marker, daemon=True),
            threading.Thread(target=self._pointer, daemon=True),
        ]

    def __enter__(self) -> Probes:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(5)

    def _marker(self) -> None:
        d = display.Display(self.display_name)
        root = d.screen().root
        x, y, w, h = MARKER
        window = root.create_window(
            x, y, w, h, 0, X.CopyFromParent, background_pixel=0, override_redirect=True
        )
        window.map()
        d.sync()
        i = 0
        while not self.stop.wait(0.25):
            if not self.active.is_set():
                continue
            i += 1
            colour = MARKER_COLOURS[i % 2]
            self.consumer.marker_expect = (
                ((colour >> 16) & 255, (colour >> 8) & 255, colour & 255)[::-1],
                time.monotonic(),
            )
            window.change_attributes(background_pixel=colour)
            window.clear_area()
            window.configure(stack_mode=X.Above)
            d.sync()
        d.close()

    def _pointer(self) -> None:
        d = display.Display(self.display_name)
        root = d.screen().root
        rng = random.Random(7)
        while not self.stop.wait(0.15):
            if not self.active.is_set():
                continue
            tx, ty = rng.randrange(100, 1800), rng.randrange(800, 1000)
            start = time.monotonic()
            self.consumer.move_pointer(tx, ty)
            while True:
                p = root.query_pointer()
                if (p.root_x, p.root_y) == (tx, ty):
                    self.input_latencies.append(time.monotonic() - start)
                    break
                if time.monotonic() - start > 2:
                    self.input_timeouts += 1
                    break
                time.sleep(0.0005)
        d.close()


# ============================================================================================= workload


def photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    out = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    for c in range(3):
        for _ in range(5):
            out[..., c] += (
                np.sin(xx * rng.uniform(0.002, 0.02) + yy * rng.uniform(0.002, 0.02) + rng.uniform(0, 6)) * 35
            )
        out[..., c] += 128 + rng.normal(0, 6, (HEIGHT, WIDTH))
    return np.clip(out, 0, 255).astype(np.uint8)


def document(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.full((HEIGHT, WIDTH, 3), 245, np.uint8)
    out[:60] = (40, 70, 120)
    for top in range(90, HEIGHT - 20, 20):
        for left in range(60, WIDTH - 400 * rng.random().__ceil__(), 9):
            if rng.random() < 0.75:
                out[top : top + 12, left : left + 6][rng.random((12, 6)) < 0.35] = (20, 20, 20)
    return out


SLIDESHOW = """
import sys, tkinter
paths = sys.argv[1:]
root = tkinter.Tk()
root.overrideredirect(True)
root.geometry("%dx%d+0+0")
images = [tkinter.PhotoImage(file=p) for p in paths]
label = tkinter.Label(root, image=images[0], borderwidth=0)
label.pack()
state = [0]
def flip():
    state[0] += 1
    label.configure(image=images[state[0] % len(images)])
    root.after(1000, flip)
root.after(1000, flip)
root.mainloop()
""".replace("%dx%d", f"{WIDTH}x{HEIGHT}")


class Workload:
    """The scripted desktop activity; identical for both systems."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name, self.workdir = name, workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.images = []
        for i, img in enumerate((photo(1), document(2))):
            path = workdir / f"slide{i}.ppm"
            if not path.exists():
                path.write_bytes(b"P6 %d %d 255\n" % (WIDTH, HEIGHT) + img.tobytes())
            self.images.append(str(path))

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args, env=x_env(self.name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.procs.append(proc)
        return proc

    def setup(self) -> None:
        d = display.Display(self.name)  # xsetroot -solid, without needing x11-xserver-utils
        d.screen().root.change_attributes(background_pixel=0x2D5A88)
        d.screen().root.clear_area()
        d.sync()
        d.close()
        for attempt in range(3):  # a loaded machine occasionally loses the first X client: try again
            self.editor = self.spawn(
                "xterm", "-geometry", "110x32+60+60", "-bg", "white", "-fg", "black", "-e", "cat"
            )
            try:
                self.editor_window = wait_window(self.name, self.editor.pid, timeout=15)
                break
            except RuntimeError:
                self.editor.kill()
                if attempt == 2:
                    raise
        subprocess.run(
            ["xdotool", "windowfocus", "--sync", str(self.editor_window)], env=x_env(self.name), check=True
        )

    def teardown(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.procs.clear()

    def phase(self, which: str, seconds: float) -> None:
        end = time.monotonic() + seconds
        if which == "typing":
            text = (
                "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. " * 20
            )[: int(seconds * 16)]
            typist = self.spawn("xdotool", "type", "--delay", "60", text)
            while time.monotonic() < end and typist.poll() is None:
                time.sleep(0.05)
            typist.terminate()
        elif which == "scrolling":
            script = (
                'i=0; while :; do i=$((i+1)); echo "$i  the quick brown fox jumps over the lazy dog; '
                'pack my box with five dozen liquor jugs"; sleep 0.03; done'
            )
            scroller = self.spawn("xterm", "-geometry", "120x40+700+250", "-e", "sh", "-c", script)
            time.sleep(max(0.0, end - time.monotonic()))
            scroller.terminate()
        elif which == "window move":
            d = display.Display(self.name)
            window = d.create_resource_object("window", self.editor_window)
            t0 = time.monotonic()
            while (now := time.monotonic()) < end:
                angle = (now - t0) * 1.5
                window.configure(x=int(500 + 350 * np.cos(angle)), y=int(300 + 200 * np.sin(angle)))
                d.sync()
                time.sleep(1 / 30)
            window.configure(x=60, y=60)
            d.sync()
            d.close()
        elif which == "full-screen change":
            show = self.spawn(sys.executable, "-c", SLIDESHOW, *self.images)
            time.sleep(max(0.0, end - time.monotonic()))
            show.terminate()
            show.wait(5)
        else:
            time.sleep(seconds)


# ============================================================================================= systems


def agent_main(display_name: str, port: int) -> None:
    """The Steun side: streamer + input dispatcher in their own process, as the agent runs them."""
    from steun_agent.input import InputDispatcher, XTestBackend
    from steun_agent.screen import Capturer, ScreenStreamer, StreamerConfig, X11CursorTracker, X11Damage
    from steun_protocol.screen import INPUT_TYPES

    async def main() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send(data: bytes) -> None:
            writer.write(LENGTH.pack(len(data)) + data)
            await writer.drain()

        streamer = ScreenStreamer(
            send,
            lambda: Capturer(display_name),
            cursor_factory=lambda: X11CursorTracker(display_name),
            damage_factory=lambda: X11Damage(display_name),
            config=StreamerConfig(max_fps=30),
        )
        dispatcher = InputDispatcher(lambda: XTestBackend(display_name), control=True)
        tasks = [asyncio.create_task(streamer.run()), asyncio.create_task(dispatcher.run())]
        try:
            while True:
                (length,) = LENGTH.unpack(await reader.readexactly(4))
                message = decode_from_console(await reader.readexactly(length))
                if message.type in INPUT_TYPES:
                    dispatcher.handle(message)
                else:
                    streamer.handle(message)
        except asyncio.IncompleteReadError:
            pass
        finally:
            stats = streamer.statistics()
            print(
                json.dumps(
                    {"quality": stats.flow.quality, "fps": stats.flow.fps, "encode_ms": stats.encode_ms}
                )
            )
            for t in tasks:
                t.cancel()

    asyncio.run(main())


@dataclass
class PhaseResult:
    fps: float
    kbps: float
    cpu: float
    match: float = 0.0  # % of pixels on the canvas within ±8 of the screen, 1 s after the phase


@dataclass
class SystemResult:
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    input_ms: list[float] = field(default_factory=list)
    input_timeouts: int = 0
    marker_ms: list[float] = field(default_factory=list)
    regions: dict[str, int] = field(default_factory=dict)
    note: str = ""


async def run_system(system: str, name: str, workdir: Path, seconds: float) -> SystemResult:
    workload = Workload(name, workdir)
    await asyncio.to_thread(workload.setup)
    consumer: Consumer
    if system.startswith("steun"):
        offered = ALL_ENCODINGS if system == "steun-stream" else MANDATORY_ENCODINGS | Encoding.ZSTD_BGRA.bit
        steun = consumer = SteunConsumer(offered)
        accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )
        # The consumer listens; the agent connects (as the relay would hand it a session).
        listener = await asyncio.start_server(lambda r, w: accepted.set_result((r, w)), "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        agent = subprocess.Popen(
            [sys.executable, __file__, "agent", "--display", name, "--port", str(port)],
            env=x_env(name),
            stdout=subprocess.PIPE,
        )
        reader, writer = await asyncio.wait_for(accepted, 30)
        listener.close()

        served = psutil.Process(agent.pid)
        task = asyncio.create_task(steun.serve(reader, writer))
    else:
        consumer = RfbConsumer()
        port = free_port()
        agent = subprocess.Popen(
            [
                "x11vnc",
                "-display",
                name,
                "-rfbport",
                str(port),
                "-localhost",
                "-nopw",
                "-forever",
                "-shared",
                "-quiet",
                "-noipv6",
            ],
            env=x_env(name),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        served = psutil.Process(agent.pid)
        for _ in range(200):
            with contextlib.suppress(OSError):
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            await asyncio.sleep(0.05)
        task = asyncio.create_task(consumer.run(port))
    result = SystemResult()
    try:
        await wait_until_async(lambda: consumer.counters.frames > 0, 30)
        await asyncio.sleep(1)
        with Probes(name, consumer) as probes:
            probes.active.set()
            for phase in PHASES:
                consumer.counters = Counters()
                cpu0, t0 = served.cpu_times(), time.monotonic()
                await asyncio.to_thread(workload.phase, phase, seconds)
                cpu1, t1 = served.cpu_times(), time.monotonic()
                if task.done():
                    raise RuntimeError(f"{system} consumer stopped: {task.exception()!r}")
                used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
                result.phases[phase] = PhaseResult(
                    consumer.counters.frames / (t1 - t0),
                    consumer.counters.bytes / 1024 / (t1 - t0),
                    100 * used / (t1 - t0),
                    await fidelity(name, consumer),
                )
                for k, v in consumer.counters.regions.items():
                    result.regions[k] = result.regions.get(k, 0) + v
            probes.active.clear()
        result.input_ms = [v * 1000 for v in probes.input_latencies]
        result.input_timeouts = probes.input_timeouts
        result.marker_ms = [v * 1000 for v in consumer.marker_latencies]
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if consumer.writer is not None:
            consumer.writer.close()
        agent.terminate()
        try:
            out, _ = agent.communicate(timeout=10)
            if out:
                result.note = out.decode().strip().splitlines()[-1]
        except subprocess.TimeoutExpired:
            agent.kill()  # x11vnc sometimes hangs in its exit handler once the display is going away
            agent.wait()
        await asyncio.to_thread(workload.teardown)
    return result


async def fidelity(name: str, consumer: Consumer) -> float:
    """How much of the viewer's canvas shows the screen, once the screen has been still for a second."""
    await asyncio.sleep(1.0)

    def grab() -> np.ndarray:
        import mss

        with mss.MSS(display=name) as sct:
            shot = sct.grab({"left": 0, "top": 0, "width": WIDTH, "height": HEIGHT})
        return np.frombuffer(shot.raw, np.uint8).reshape(HEIGHT, WIDTH, 4)

    screen = await asyncio.to_thread(grab)
    diff = np.abs(screen[..., :3].astype(np.int16) - consumer.canvas[..., :3].astype(np.int16)).max(axis=2)
    return 100.0 * float(np.count_nonzero(diff <= 8)) / diff.size


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until_async(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("no first frame")
        await asyncio.sleep(0.05)


def pct(values: list[float], q: float) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]:.1f}"


def report(results: dict[str, SystemResult], seconds: float) -> None:
    names = list(results)
    print(f"\nScreen benchmark — Xvfb {WIDTH}×{HEIGHT}×24, {seconds:g} s per phase, loopback, one run\n")
    head = f"{'phase':<20}" + "".join(f"| {n:^38}" for n in names)
    print(head)
    print(f"{'':<20}" + "".join(f"| {'fps':>7} {'KB/s':>8} {'CPU %':>7} {'match %':>8}    " for _ in names))
    print("-" * len(head))
    for phase in PHASES:
        row = f"{phase:<20}"
        for n in names:
            p = results[n].phases.get(phase)
            row += (
                f"| {p.fps:7.1f} {p.kbps:8.0f} {p.cpu:7.1f} {p.match:8.2f}    " if p else f"| {'failed':^38}"
            )
        print(row)
    print("-" * len(head))
    for label, attr in (("input latency ms", "input_ms"), ("pixel→canvas ms", "marker_ms")):
        row = f"{label:<20}"
        for n in names:
            values = getattr(results[n], attr)
            p50, p90, p99 = pct(values, 50), pct(values, 90), pct(values, 99)
            row += f"| p50 {p50:>6} p90 {p90:>6} p99 {p99:>6} n={len(values):<4}"
        print(row)
    for n in names:
        r = results[n]
        extra = f"; input probes timed out: {r.input_timeouts}" if r.input_timeouts else ""
        print(f"{n}: rectangles by encoding {dict(sorted(r.regions.items()))}{extra} {r.note}")


LABELS = {"steun": "Steun (zstd frames)", "steun-stream": "Steun (zstd stream)", "x11vnc": "x11vnc (Tight)"}


async def bench(seconds: float, systems: list[str]) -> None:
    with xvfb() as name, tempfile.TemporaryDirectory() as tmp:
        results: dict[str, SystemResult] = {}
        for system in systems:
            if system == "x11vnc" and shutil.which("x11vnc") is None:
                print("x11vnc is not installed (apt-get install x11vnc): baseline skipped")
                continue
            try:
                results[LABELS[system]] = await run_system(system, name, Path(tmp), seconds)
            except Exception as exc:  # a benchmark reports, it does not fail the build
                print(f"{system}: run failed: {exc!r}")
        if results:
            report(results, seconds)


# ============================================================================================= encoders


def encoders() -> None:
    """The candidate table of docs/design/0050 on a captured terminal screen and a synthetic photo."""
    import io

    import zstandard

    try:
        from PIL import Image
    except ImportError:
        Image = None
        print("(Pillow not installed: PNG and WebP rows skipped; uv run --with pillow ... to include them)")
    with xvfb() as name, tempfile.TemporaryDirectory() as tmp:
        workload = Workload(name, Path(tmp))
        workload.setup()
        subprocess.run(
            ["xdotool", "type", "--delay", "1", "ls -la /usr/lib; cat /etc/services | head -40\n"],
            env=x_env(name),
            check=True,
        )
        viewer = workload.spawn(
            "xterm",
            "-geometry",
            "120x40+700+250",
            "-e",
            "sh",
            "-c",
            "ls -laR /usr/share | head -300; sleep 60",
        )
        time.sleep(1.5)
        del viewer
        from steun_agent.screen import Capturer

        cap = Capturer(name)
        text = cap.grab(cap.monitors()[0]).copy()
        cap.close()
        workload.teardown()
    pic = np.dstack([photo(1)[..., ::-1], np.zeros((HEIGHT, WIDTH, 1), np.uint8)])
    zc = zstandard.ZstdCompressor(level=1)

    def pil(arr: np.ndarray, **kw: object) -> bytes:
        buf = io.BytesIO()
        Image.frombuffer("RGBA", (arr.shape[1], arr.shape[0]), arr, "raw", "BGRA", 0, 1).convert("RGB").save(
            buf, **kw
        )
        return buf.getvalue()

    candidates: dict[str, Callable[[np.ndarray], bytes]] = {
        "zstd-1 BGRA": lambda a: zc.compress(a.data),
        "deflate-1 BGRA": lambda a: zlib.compress(a.data, 1),
        "JPEG q75 4:2:0": lambda a: simplejpeg.encode_jpeg(
            a, quality=75, colorspace="BGRA", colorsubsampling="420"
        ),
    }
    if Image is not None:
        candidates["PNG level 1"] = lambda a: pil(a, format="PNG", compress_level=1)
        candidates["WebP lossless m0"] = lambda a: pil(a, format="WEBP", lossless=True, method=0, quality=0)
        candidates["WebP q75 m0"] = lambda a: pil(a, format="WEBP", quality=75, method=0)
    cases = {
        "text 1080p": text,
        "text 640×384": np.ascontiguousarray(text[64:448, 0:640]),
        "photo 1080p": pic,
        "photo 640×384": np.ascontiguousarray(pic[64:448, 0:640]),
    }
    print(f"{'candidate':<18}" + "".join(f"| {c:^22}" for c in cases))
    for label, fn in candidates.items():
        row = f"{label:<18}"
        for arr in cases.values():
            times = []
            for _ in range(5):
                t = time.perf_counter()
                out = fn(arr)
                times.append((time.perf_counter() - t) * 1000)
            row += f"| {statistics.median(times):7.1f} ms {len(out) / 1024:8.1f} KB "
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    agent = sub.add_parser("agent")
    agent.add_argument("--display", required=True)
    agent.add_argument("--port", type=int, required=True)
    sub.add_parser("encoders")
    parser.add_argument("--phase-seconds", type=float, default=6.0)
    parser.add_argument("--only", choices=list(LABELS))
    args = parser.parse_args()
    if args.command == "agent":
        agent_main(args.display, args.port)
    elif args.command == "encoders":
        encoders()
    else:
        systems = [args.only] if args.only else list(LABELS)
        asyncio.run(bench(args.phase_seconds, systems))


if __name__ == "__main__":
    main()
