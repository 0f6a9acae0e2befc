"""Fleet benchmark: N simulated agents enroll, connect over TLS and idle with heartbeats; the server restarts.

Reports, for Steun and for a bare aiohttp websocket server holding the same N idle TLS connections (the
baseline, measured in the same run with the same certificate, clients and TLS read buffer):

* server RSS per connected agent,
* idle server CPU while the agents only heartbeat,
* time until 99 % of the agents are connected (and, for Steun, authenticated) again after a server restart.

The simulated agents are protocol-level clients (``steun_protocol`` + ``websockets``) spread over worker
processes, so the server is measured, not the clients. Everything runs on loopback and stops by itself.

    uv run python benchmarks/fleet.py                 # 2,000 agents
    uv run python benchmarks/fleet.py --agents 500 --idle 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import resource
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

HEARTBEAT_TEXT = '{"type":"ping"}'


# ------------------------------------------------------------------------------------------------ clients


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _client_ssl() -> ssl.SSLContext:
    # The simulated agents check the pin like the real agent; the CA store is not used.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _steun_agent(
    url: str, token: str, online: Any, stop: Any, heartbeat_interval: list[float], rng: random.Random
) -> None:
    """Enroll once, then stay connected: hello → auth → heartbeats; reconnect with full-jitter backoff."""
    import websockets
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from steun_protocol import Connection, ResultReceived, Side
    from steun_protocol import auth as proofs
    from steun_protocol.control import AGENT_API, Auth, AuthResult, Enroll, Heartbeat, Hello
    from steun_protocol.inventory import LiveMetrics

    key = Ed25519PrivateKey.generate()
    public = proofs.public_key_bytes(key)
    parsed = proofs.EnrollmentToken.parse(token)
    ctx = _client_ssl()
    device_id: str | None = None
    attempt = 0

    async def request(ws: Any, conn: Connection, message: Any) -> Any:
        conn.send_request(message)
        for data in conn.data_to_send():
            await ws.send(data)
        while True:
            conn.receive_text(await asyncio.wait_for(ws.recv(), 30))
            for event in conn.events_received():
                if isinstance(event, ResultReceived):
                    return event.result
                raise RuntimeError(f"refused: {event}")

    while not stop.is_set():
        counted = False
        try:
            async with websockets.connect(
                url, ssl=ctx, max_size=2**20, compression=None, ping_interval=None, open_timeout=30
            ) as ws:
                der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
                spki = proofs.spki_sha256(der)
                if not proofs.pins_equal(spki, parsed.spki_sha256):
                    raise SystemExit("pin mismatch")
                conn = Connection(AGENT_API, Side.CLIENT)
                hello = await request(ws, conn, Hello(versions=[1], software="bench/1"))
                nonce = proofs.b64decode(hello.nonce, size=32)
                if device_id is None:
                    proof = key.sign(proofs.agent_proof_payload(nonce, spki, public))
                    enrolled = await request(
                        ws,
                        conn,
                        Enroll(
                            token=proofs.b64encode(parsed.secret),
                            public_key=proofs.b64encode(public),
                            hostname=f"bench-{os.getpid()}-{id(key) % 100000}",
                            os="Linux",
                            signature=proofs.b64encode(proof),
                        ),
                    )
                    device_id = enrolled.device_id
                    continue  # log in on a fresh connection, as the real agent does after enrolling
                proof = key.sign(proofs.agent_proof_payload(nonce, spki, device_id.encode()))
                result: AuthResult = await request(
                    ws, conn, Auth(device_id=device_id, signature=proofs.b64encode(proof))
                )
                heartbeat_interval[0] = result.heartbeat_interval
                with online.get_lock():
                    online.value += 1
                counted = True
                attempt = 0
                metrics = LiveMetrics(uptime=1.0, cpu_percent=1.0, memory_percent=10.0, memory_used=1)
                # first heartbeat at a random point of the interval, so the fleet does not beat in step
                await asyncio.sleep(rng.uniform(0, result.heartbeat_interval))
                while not stop.is_set():
                    await request(ws, conn, Heartbeat(metrics=metrics))
                    await asyncio.sleep(result.heartbeat_interval)
        except SystemExit:
            raise
        except Exception:
            pass
        finally:
            if counted:
                with online.get_lock():
                    online.value -= 1
        attempt += 1
        await asyncio.sleep(rng.uniform(0, min(10.0, 0.5 * 2**attempt)))


async def _bare_client(url: str, online: Any, stop: Any, interval: float, rng: random.Random) -> None:
    """The baseline's client: connect, then send a small text message every interval; reconnect likewise."""
    import websockets

    ctx = _client_ssl()
    attempt = 0
    while not stop.is_set():
        counted = False
        try:
            async with websockets.connect(
                url, ssl=ctx, max_size=2**20, compression=None, ping_interval=None, open_timeout=30
            ) as ws:
                with online.get_lock():
                    online.value += 1
                counted = True
                attempt = 0
                await asyncio.sleep(rng.uniform(0, interval))
                while not stop.is_set():
                    await ws.send(HEARTBEAT_TEXT)
                    await asyncio.wait_for(ws.recv(), 30)
                    await asyncio.sleep(interval)
        except Exception:
            pass
        finally:
            if counted:
                with online.get_lock():
                    online.value -= 1
        attempt += 1
        await asyncio.sleep(rng.uniform(0, min(10.0, 0.5 * 2**attempt)))


def _worker(
    mode: str, url: str, tokens: list[str], count: int, online: Any, stop: Any, interval: float
) -> None:
    _raise_fd_limit()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def main() -> None:
        rng = random.Random(os.getpid())
        stopped = asyncio.Event()

        async def watch_stop() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.2)
            stopped.set()

        tasks = []
        for i in range(count):
            if mode == "steun":
                tasks.append(asyncio.create_task(_steun_agent(url, tokens[i], online, stop, [interval], rng)))
            else:
                tasks.append(asyncio.create_task(_bare_client(url, online, stop, interval, rng)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # ramp up instead of a thundering herd of handshakes
        await watch_stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


# ------------------------------------------------------------------------------------------------ servers


BARE_SERVER = r"""
import asyncio, ssl, sys, asyncio.sslproto
from aiohttp import web, WSMsgType
cert, key, port, buffer = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
asyncio.sslproto.SSLProtocol.max_size = buffer
async def ws_handler(request):
    ws = web.WebSocketResponse(heartbeat=None, compress=False, max_msg_size=2**20)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str('{"ok":1}')
    return ws
app = web.Application()
app.router.add_get("/agent/ws", ws_handler)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
web.run_app(app, host="127.0.0.1", port=port, ssl_context=ctx, print=None, handle_signals=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


@dataclass
class Result:
    name: str
    agents: int
    connected: int
    rss_idle_server_mb: float
    rss_per_agent_kb: float
    idle_cpu_percent: float
    restart_to_99_s: float | None


def _wait_online(online: Any, target: int, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if online.value >= target:
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def run_scenario(
    name: str,
    start_server: Any,
    mode: str,
    tokens: list[str],
    agents: int,
    workers: int,
    idle: float,
    interval: float,
    port: int,
) -> Result:
    server = start_server()
    _wait_port(port)
    time.sleep(1.0)
    proc = psutil.Process(server.pid)
    rss_before = proc.memory_info().rss
    online = mp.Value("i", 0)
    stop = mp.Event()
    url = f"wss://127.0.0.1:{port}/agent/ws"
    per = [agents // workers + (1 if i < agents % workers else 0) for i in range(workers)]
    procs = []
    offset = 0
    for count in per:
        chunk = tokens[offset : offset + count] if tokens else []
        offset += count
        p = mp.Process(target=_worker, args=(mode, url, chunk, count, online, stop, interval), daemon=True)
        p.start()
        procs.append(p)
    try:
        if _wait_online(online, agents, timeout=300) is None:
            print(f"  [{name}] only {online.value}/{agents} connected after 300 s", file=sys.stderr)
        time.sleep(3.0)  # let allocations settle
        connected = online.value
        rss_after = proc.memory_info().rss
        cpu_before = proc.cpu_times()
        wall_before = time.monotonic()
        time.sleep(idle)
        cpu_after = proc.cpu_times()
        cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / (
            time.monotonic() - wall_before
        )
        # restart: stop the server, start a new one on the same port, count the agents coming back
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        _wait_online_below(online, max(1, agents // 100))
        server = start_server()
        restart_started = time.monotonic()
        back = _wait_online(online, int(agents * 0.99), timeout=300)
        restart = None if back is None else time.monotonic() - restart_started
    finally:
        stop.set()
        for p in procs:
            p.join(20)
            if p.is_alive():
                p.kill()
        server.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(30)
        if server.poll() is None:
            server.kill()
    return Result(
        name=name,
        agents=agents,
        connected=connected,
        rss_idle_server_mb=rss_before / 2**20,
        rss_per_agent_kb=(rss_after - rss_before) / max(connected, 1) / 1024,
        idle_cpu_percent=cpu * 100,
        restart_to_99_s=restart,
    )


def _wait_online_below(online: Any, limit: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while online.value > limit and time.monotonic() < deadline:
        time.sleep(0.05)


async def _make_tokens(data_dir: Path, count: int) -> tuple[list[str], str, str]:
    from steun_server.bootstrap import initialise
    from steun_server.config import load_config
    from steun_server.fleet.enrollment import create_enrollment_token
    from steun_server.keys import load_keys
    from steun_server.storage import Database

    config = load_config(data_dir)
    await initialise(config, admin_username="admin", hostnames=())
    keys = await asyncio.to_thread(load_keys, config)
    db = Database.from_url(config.effective_database_url)
    try:
        await db.migrate()
        tokens = []
        for _ in range(count):
            token, _ = await create_enrollment_token(
                db, keys, group="default", ttl=3600.0, created_by=None, audit=None, actor="benchmark"
            )
            tokens.append(str(token))
    finally:
        await db.close()
    return tokens, str(config.tls_cert_file), str(config.tls_key_file)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4, help="client processes")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU measurement")
    parser.add_argument("--heartbeat", type=float, default=30.0, help="heartbeat interval (both servers)")
    parser.add_argument("--tls-buffer", type=int, default=16 * 1024, help="TLS read buffer for both servers")
    args = parser.parse_args()
    _raise_fd_limit()

    with tempfile.TemporaryDirectory(prefix="steun-fleet-") as tmp:
        data_dir = Path(tmp) / "data"
        print(f"preparing {args.agents} enrollment tokens ...", flush=True)
        tokens, cert, key = asyncio.run(_make_tokens(data_dir, args.agents))
        steun_cmd = [str(Path(sys.executable).with_name("steun")), "server", "--data-dir", str(data_dir)]

        port = _free_port()
        env = {
            **os.environ,
            "STEUN_TLS_READ_BUFFER": str(args.tls_buffer),
            "STEUN_AGENT_HEARTBEAT_INTERVAL": str(args.heartbeat),
            "STEUN_LOG_LEVEL": "WARNING",
        }

        def start_steun() -> subprocess.Popen[bytes]:
            return subprocess.Popen([*steun_cmd, "--port", str(port)], env=env)

        print("Steun server ...", flush=True)
        steun = run_scenario(
            "steun", start_steun, "steun", tokens, args.agents, args.workers, args.idle, args.heartbeat, port
        )

        bare_port = _free_port()

        def start_bare() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-c", BARE_SERVER, cert, key, str(bare_port), str(args.tls_buffer)]
            )

        print("bare aiohttp baseline ...", flush=True)
        bare = run_scenario(
            "bare aiohttp",
            start_bare,
            "bare",
            [],
            args.agents,
            args.workers,
            args.idle,
            args.heartbeat,
            bare_port,
        )

    def fmt(value: float | None, unit: str) -> str:
        return "did not reach 99 %" if value is None else f"{value:,.1f} {unit}"

    rows = [
        (
            "agents connected",
            f"{steun.connected:,} / {steun.agents:,}",
            f"{bare.connected:,} / {bare.agents:,}",
        ),
        ("server RSS before agents", fmt(steun.rss_idle_server_mb, "MB"), fmt(bare.rss_idle_server_mb, "MB")),
        ("server RSS per agent", fmt(steun.rss_per_agent_kb, "KB"), fmt(bare.rss_per_agent_kb, "KB")),
        (
            "idle server CPU",
            fmt(steun.idle_cpu_percent, "% of a core"),
            fmt(bare.idle_cpu_percent, "% of a core"),
        ),
        ("restart → 99 % back", fmt(steun.restart_to_99_s, "s"), fmt(bare.restart_to_99_s, "s")),
    ]
    print()
    print(f"Fleet: {args.agents} agents, TLS read buffer {args.tls_buffer} B, heartbeat {args.heartbeat} s")
    print(f"{'':28} {'Steun':>24} {'bare aiohttp (baseline)':>26}")
    for label, a, b in rows:
        print(f"{label:28} {a:>24} {b:>26}")
    print(
        "\nSteun's agents also enroll, authenticate (Ed25519 over a nonce) and heartbeat through the typed\n"
        "protocol; the baseline only holds sockets and echoes a small message at the same interval."
    )


if __name__ == "__main__":
    main()
