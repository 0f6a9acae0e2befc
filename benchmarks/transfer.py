"""File transfer benchmark: one large file through Steun's relay, end to end encrypted, beside plain scp.

    uv run python benchmarks/transfer.py                  # 1 GiB, 3 runs of each
    uv run python benchmarks/transfer.py --size 256M --runs 5 --json /tmp/transfer.json

What runs, in one process tree, loopback only, everything started here and stopped at the end:

* **Steun**: a real server (``steun init``, ``steun user add``, ``steun token create``, ``steun server``, TLS
  on a free port) and an agent end in its own process, enrolled with a real token. The technician's side
  is the real CLI, signed in with ``python -m steun_server.techcli login``:
  ``files get`` / ``files put`` (session, consent, handshake, AES-256-GCM records through the relay, the
  agent's ``FilesService``, sha256 checked by both ends), and OpenSSH's ``scp`` with ``steun connect`` as
  its ProxyCommand (scp → ssh → a local asyncssh server in ``steun connect`` → the same files channel).
  The agent end is the real agent runtime (``Runtime`` + ``SessionCapability`` with ``files_root``) in its
  own process; the user's consent is stood in for (``ScriptedUI`` of the tests accepts every session).
* **Baseline**: OpenSSH's ``scp`` (default options, SFTP protocol, default cipher) to an ``sshd`` started
  here on 127.0.0.1 with a throwaway host key, authorized key and config in the temp directory (the
  system's sshd and its config are not touched; as root, sshd needs ``/run/sshd``, made if missing).

Every transfer moves the same random file, to and from the same disk, and its sha256 is checked after each
run; a wrong byte marks the row and the exit code. The systems take turns within each repetition so slow
phases of a noisy VM hit them alike. Reported per row: throughput (MB = 10^6 bytes, wall time of the whole
client command, session set-up included), CPU seconds of each side (server = Steun's relay; agent end =
the agent process, or the sshd listener and the per-connection processes it forked; client = every process
of the client command, reaped as a subreaper so ssh's ProxyCommand is counted), peak RSS of each side
(summed over its processes, sampled every 50 ms), and throughput as a fraction of scp's in the same
direction. It prints figures; it never fails because the machine is slow. ``STEUN_BENCH_AGENT_LOG=INFO``
shows the agent's log on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
DEVICE_NAME = "bench-device"
MB = 1e6

# Runs one client command and reports what all its processes cost. It makes itself a child subreaper, so
# processes that outlive their parent (ssh does not wait for its ProxyCommand) are reparented here and
# reaped, and RUSAGE_CHILDREN holds the CPU of the whole tree. Wall time ends when the command exits.
WRAPPER = r"""
import ctypes, json, os, resource, subprocess, sys, time
import psutil
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
out, err_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
code = wall = None
with open(err_path, "wb") as err:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    deadline = None
    while True:
        if deadline is not None and time.monotonic() > deadline:
            for child in psutil.Process().children(recursive=True):
                child.kill()
            deadline = float("inf")
        try:
            pid, status = os.waitpid(-1, os.WNOHANG if deadline is not None else 0)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.01)
            continue
        if pid == proc.pid:
            wall = time.perf_counter() - start
            code = os.waitstatus_to_exitcode(status)
            proc.returncode = code
            deadline = time.monotonic() + 10.0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    json.dump({"code": code, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss}, f)
"""


# ------------------------------------------------------------------------------------------------ helpers


def parse_size(text: str) -> int:
    """``1G``, ``256M``, ``512MiB``, ``1000000``: binary multiples (K = 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256M or 1G)")
    power = " kmgt".index(match.group(2) or " ")
    return int(float(match.group(1)) * 1024**power)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * 1024 * 1024))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def cpu_seconds(pid: int) -> float:
    """CPU of a process and of the children it has reaped."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def run_checked(argv: list[str], *, env: dict[str, str] | None = None, stdin: str = "") -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout + done.stderr


class PeakSampler:
    """Peak of the summed RSS of each side's processes: a root pid and (optionally) all its descendants."""

    def __init__(self, sides: dict[str, tuple[int, bool]], interval: float = 0.05) -> None:
        self.sides = sides
        self.interval = interval
        self.peaks = dict.fromkeys(sides, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._members: dict[str, list[psutil.Process]] = {}

    def _refresh(self) -> None:
        for name, (pid, with_root) in self.sides.items():
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                self._members[name] = [*([root] if with_root else []), *root.children(recursive=True)]

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            if tick % 5 == 0:  # the process trees change rarely; their RSS is read every tick
                self._refresh()
            tick += 1
            for name, members in self._members.items():
                total = 0
                for proc in members:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
                self.peaks[name] = max(self.peaks[name], total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._refresh()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------------------------- agent end


def agent_end_main(url: str, token: str, root: str, state_dir: str) -> None:
    """The device: enroll with ``token``, go online, accept every session, serve ``root``; until SIGTERM."""
    sys.path.insert(0, str(REPO))  # the consent stand-in lives in tests/
    logging.basicConfig(
        level=os.environ.get("STEUN_BENCH_AGENT_LOG", "WARNING"), format="agent end: %(message)s"
    )

    async def main() -> None:
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        device, cleanup = await _agent(url, token, root, state_dir)
        print(json.dumps({"device": device}), flush=True)
        try:
            await stopping.wait()
        finally:
            await cleanup()

    asyncio.run(main())


async def _agent(url: str, token: str, root: str, state_dir: str) -> tuple[str, Any]:
    from steun_agent.backends import default_backend
    from steun_agent.config import AgentConfig
    from steun_agent.enrollment import enroll
    from steun_agent.policy import Mode, Policy
    from steun_agent.runtime import Runtime
    from steun_agent.session import SessionCapability, SessionSettings
    from steun_protocol import auth as proofs

    from tests.session_agent.fakes import ScriptedUI

    config = AgentConfig(state_dir=Path(state_dir))
    state = await enroll(url, proofs.EnrollmentToken.parse(token), config, hostname=DEVICE_NAME)
    sessions = SessionCapability(
        org_public_key=state.org_public_key,
        identity=state.private_key,
        device_id=state.device_id,
        settings=SessionSettings(
            server_url=state.server_url,
            pin=state.spki_sha256,
            policy=Policy(),
            mode=Mode.ATTENDED,
            ui=ScriptedUI(["accept"] * 100_000),  # the user who says yes at once
            files_root=root,
        ),
    )
    runtime = Runtime(state, config, default_backend(), [sessions])
    running = asyncio.create_task(runtime.run())
    async with asyncio.timeout(30):
        await runtime.wait_online()

    async def cleanup() -> None:
        runtime.stop()
        await asyncio.gather(running, return_exceptions=True)

    return DEVICE_NAME, cleanup


# ------------------------------------------------------------------------------------------------- setup


@dataclasses.dataclass
class Steun:
    server: subprocess.Popen[bytes]
    agent: subprocess.Popen[bytes]
    device: str
    tech_env: dict[str, str]
    tech_home: Path


def start_steun(tmp: Path, root: Path) -> Steun:
    steun = [str(Path(sys.executable).with_name("steun"))]
    data = tmp / "server"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEUN_")}
    env["STEUN_LOG_LEVEL"] = "WARNING"
    run_checked([*steun, "init", "--data-dir", str(data)], env=env)
    added = run_checked(
        [*steun, "user", "add", "tina", "--role", "specialist", "--data-dir", str(data)], env=env
    )
    password = added.rsplit("shown once:", 1)[1].strip()
    token = re.search(r"st1\.\S+", run_checked([*steun, "token", "create", "--data-dir", str(data)], env=env))
    assert token is not None
    from steun_server.config import load_config
    from steun_server.keys import b64url, load_keys

    keys = load_keys(load_config(data, env={}))
    port = free_port()
    server = subprocess.Popen(
        [*steun, "server", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port)], env=env
    )
    agent: subprocess.Popen[bytes] | None = None
    try:
        wait_port(port, server)
        url = f"https://127.0.0.1:{port}"
        tech_home = tmp / "tech"
        tech_env = {**env, "STEUN_TECH_HOME": str(tech_home), "HOME": str(tech_home)}
        tech = [sys.executable, "-m", "steun_server.techcli"]
        login = [*tech, "login", "--server", url, "--user", "tina", f"--pin={b64url(keys.spki_sha256)}"]
        run_checked([*login, "--password-stdin"], env=tech_env, stdin=password + "\n")
        from steun_server.techcli.sshserver import host_key

        host_key(tech_home)  # the known_hosts line scp checks the proxy against
        agent = subprocess.Popen(
            [sys.executable, __file__, "--agent-end", url, token.group(0), str(root), str(tmp / "agent")],
            env=env, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert agent.stdout is not None
        line = agent.stdout.readline()
        if not line:
            raise RuntimeError(f"the agent end exited ({agent.wait()}) before it was online")
        device = json.loads(line)["device"]
        return Steun(server, agent, device, tech_env, tech_home)
    except BaseException:
        stop(agent)
        stop(server)
        raise


@dataclasses.dataclass
class Sshd:
    proc: subprocess.Popen[bytes]
    port: int
    key: Path
    known_hosts: Path


def start_sshd(tmp: Path) -> Sshd:
    sshd = shutil.which("sshd", path=f"/usr/sbin:/usr/local/sbin:{os.environ.get('PATH', '')}")
    if sshd is None:
        raise SystemExit(
            "sshd is not installed (Debian: openssh-server; scripts/bootstrap --tests installs it)"
        )
    d = tmp / "sshd"
    d.mkdir(mode=0o700)
    for name in ("host", "client"):
        run_checked(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"bench-{name}", "-f", str(d / name)]
        )
    shutil.copy(d / "client.pub", d / "authorized_keys")
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755)  # the privilege separation directory sshd insists on as root
    with (d / "sshd.log").open("wb") as log:
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(d / "sshd_config")], stderr=log)
    wait_port(port, proc)
    return Sshd(proc, port, d / "client", d / "known_hosts")


# ------------------------------------------------------------------------------------------------ running


@dataclasses.dataclass
class Method:
    name: str
    argv: Callable[[str, Path, Path], list[str]]  # direction, source, destination
    env: dict[str, str] | None
    steun: bool


@dataclasses.dataclass
class Run:
    method: str
    direction: str
    ok: bool
    code: int
    wall: float
    mbps: float
    cpu_server: float | None
    cpu_agent: float
    cpu_client: float
    rss_server_mb: float | None
    rss_agent_mb: float
    rss_client_mb: float
    reported_mbps: float | None


def wait_no_children(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with contextlib.suppress(psutil.Error):
        while psutil.Process(pid).children() and time.monotonic() < deadline:
            time.sleep(0.02)


def measure(
    method: Method,
    direction: str,
    source: Path,
    dest: Path,
    expected: str,
    size: int,
    server_pid: int | None,
    agent_pid: int,
    scratch: Path,
) -> Run:
    for stale in (dest, dest.with_name(dest.name + ".steunpart")):
        stale.unlink(missing_ok=True)
    os.sync()
    out, err = scratch / "wrapper.json", scratch / "client.stderr"
    server0 = cpu_seconds(server_pid) if server_pid else None
    agent0 = cpu_seconds(agent_pid)
    wrapper = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(out), str(err), *method.argv(direction, source, dest)],
        env=method.env,
    )
    sides = {"agent": (agent_pid, True), "client": (wrapper.pid, False)}
    if server_pid:
        sides["server"] = (server_pid, True)
    with PeakSampler(sides) as peaks:
        wrapper.wait()
        if not method.steun:
            wait_no_children(
                agent_pid
            )  # sshd reaps its per-connection processes: their CPU lands in its children's
    server1 = cpu_seconds(server_pid) if server_pid else None
    agent1 = cpu_seconds(agent_pid)
    result = json.loads(out.read_text())
    stderr = err.read_text(errors="replace")
    ok = result["code"] == 0 and dest.exists() and sha256_of(dest) == expected
    if result["code"] != 0:
        print(
            f"  {method.name} {direction} exited {result['code']}: {stderr.strip()[-500:]}", file=sys.stderr
        )
    reported = re.findall(r"([\d.]+) MB/s", stderr)
    dest.unlink(missing_ok=True)
    return Run(
        method=method.name,
        direction=direction,
        ok=ok,
        code=result["code"],
        wall=result["wall"],
        mbps=size / result["wall"] / MB,
        cpu_server=None if server0 is None or server1 is None else server1 - server0,
        cpu_agent=agent1 - agent0,
        cpu_client=result["cpu"],
        rss_server_mb=peaks.peaks["server"] / MB if server_pid else None,
        rss_agent_mb=peaks.peaks["agent"] / MB,
        rss_client_mb=max(peaks.peaks["client"], result["maxrss_kb"] * 1024) / MB,
        reported_mbps=float(reported[-1]) if reported else None,
    )


def methods(steun: Steun, sshd: Sshd, with_connect: bool) -> list[Method]:
    quiet = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
    tech = [sys.executable, "-m", "steun_server.techcli", "files"]
    device = steun.device

    def files(direction: str, source: Path, dest: Path) -> list[str]:
        if direction == "get":
            return [*tech, "get", device, source.name, str(dest)]
        return [*tech, "put", "--force", device, str(source), dest.name]

    found = [Method("steun files", files, steun.tech_env, True)]
    if with_connect:
        from steun_server.techcli.cli import ssh_command

        def connect(direction: str, source: Path, dest: Path) -> list[str]:
            remote = f"{device}:{source.name if direction == 'get' else dest.name}"
            pair = [remote, str(dest)] if direction == "get" else [str(source), remote]
            return ssh_command(device, [*quiet, *pair], program="scp", home=steun.tech_home)

        found.append(Method("scp via steun connect", connect, steun.tech_env, True))
    user = getpass.getuser()
    ssh_opts = [*quiet, "-i", str(sshd.key), "-P", str(sshd.port),
                "-o", f"UserKnownHostsFile={sshd.known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
                "-o", "GlobalKnownHostsFile=/dev/null"]  # fmt: skip

    def scp(direction: str, source: Path, dest: Path) -> list[str]:
        if direction == "get":
            return ["scp", *ssh_opts, f"{user}@127.0.0.1:{source}", str(dest)]
        return ["scp", *ssh_opts, str(source), f"{user}@127.0.0.1:{dest}"]

    found.append(Method("scp (OpenSSH, baseline)", scp, {**os.environ, "HOME": str(sshd.key.parent)}, False))
    return found


# ------------------------------------------------------------------------------------------------ report


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "openssh": ssh,
        "date": time.strftime("%Y-%m-%d"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def summarise(runs: list[Run]) -> dict[str, Any]:
    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    return {
        "runs": len(runs),
        "all_ok": all(r.ok for r in runs),
        "mbps_median": statistics.median(r.mbps for r in runs),
        "mbps_min": min(r.mbps for r in runs),
        "mbps_max": max(r.mbps for r in runs),
        "wall_median": statistics.median(r.wall for r in runs),
        "cpu_server_median": med([r.cpu_server for r in runs]),
        "cpu_agent_median": med([r.cpu_agent for r in runs]),
        "cpu_client_median": med([r.cpu_client for r in runs]),
        "rss_server_peak_mb": max((r.rss_server_mb or 0 for r in runs), default=0) or None,
        "rss_agent_peak_mb": max(r.rss_agent_mb for r in runs),
        "rss_client_peak_mb": max(r.rss_client_mb for r in runs),
        "reported_mbps_median": med([r.reported_mbps for r in runs]),
    }


def print_table(summary: dict[tuple[str, str], dict[str, Any]], baseline: str) -> None:
    def f(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    head = (f"{'':28} {'MB/s median (min–max)':>22} {'vs scp':>7} {'wall s':>7}  "
            f"{'CPU s: server':>13} {'agent':>6} {'client':>6}  {'peak RSS MB: server':>19} {'agent':>6} "
            f"{'client':>6}  sha256")  # fmt: skip
    print(head)
    for direction in ("get", "put"):
        print(f"{direction} ({'download from' if direction == 'get' else 'upload to'} the device)")
        base = summary[(baseline, direction)]["mbps_median"]
        for (name, d), s in summary.items():
            if d != direction:
                continue
            rate = f"{s['mbps_median']:.0f} ({s['mbps_min']:.0f}–{s['mbps_max']:.0f})"
            print(
                f"  {name:26} {rate:>22} {s['mbps_median'] / base:>7.2f} {s['wall_median']:>7.2f}  "
                f"{f(s['cpu_server_median'], '.2f'):>13} {f(s['cpu_agent_median'], '.2f'):>6} "
                f"{f(s['cpu_client_median'], '.2f'):>6}  {f(s['rss_server_peak_mb'], '.0f'):>19} "
                f"{s['rss_agent_peak_mb']:>6.0f} {s['rss_client_peak_mb']:>6.0f}  "
                f"{'ok' if s['all_ok'] else 'WRONG BYTES'}"
            )


# --------------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="file size (default 1G)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each transfer (default 3)")
    parser.add_argument("--json", type=Path, help="also write every run and the summary here")
    parser.add_argument("--no-connect", action="store_true", help="skip scp through `steun connect`")
    parser.add_argument("--dir", type=Path, help="where the temporary files go (default: the system's)")
    parser.add_argument("--agent-end", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent_end:
        agent_end_main(*args.agent_end)
        return 0

    from steun_agent.session import SessionSettings

    if "files_root" not in {f.name for f in dataclasses.fields(SessionSettings)}:
        raise SystemExit("this agent's session runtime does not serve files: nothing to measure")
    info = machine()
    print(f"{info['cpu']}, {info['cpus']} CPUs, {info['memory_gb']} GB, Linux {info['kernel']}, "
          f"Python {info['python']}, {info['openssh']}")  # fmt: skip
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print(f"note: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: other work is running, "
              "the figures will be low and noisy")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="steun-transfer-", dir=args.dir) as name:
        tmp = Path(name)
        root, local, scratch = tmp / "device", tmp / "technician", tmp / "scratch"
        for d in (root, local, scratch):
            d.mkdir()
        print(f"writing a {args.size / 2**20:,.0f} MiB random file in {tmp} ...", flush=True)
        expected = random_file(root / "src.bin", args.size)
        os.link(root / "src.bin", local / "src.bin")  # the same bytes on both sides, one copy on disk
        warm_sum = random_file(root / "warm.bin", 1024 * 1024)
        os.link(root / "warm.bin", local / "warm.bin")

        steun: Steun | None = None
        sshd: Sshd | None = None
        runs: list[Run] = []
        small: list[Run] = []
        try:
            print("starting the Steun server and an agent ...", flush=True)
            steun = start_steun(tmp, root)
            sshd = start_sshd(tmp)
            chosen = methods(steun, sshd, with_connect=not args.no_connect)

            def pids(method: Method, steun: Steun = steun, sshd: Sshd = sshd) -> tuple[int | None, int]:
                return (steun.server.pid, steun.agent.pid) if method.steun else (None, sshd.proc.pid)

            def places(direction: str, stem: str) -> tuple[Path, Path]:
                if direction == "get":
                    return root / f"{stem}.bin", local / f"got-{stem}.bin"
                return local / f"{stem}.bin", root / f"put-{stem}.bin"

            print("warming up (1 MiB each) ...", flush=True)
            for method in chosen:
                for direction in ("get", "put"):
                    source, dest = places(direction, "warm")
                    warm = measure(method, direction, source, dest, warm_sum, 2**20, *pids(method), scratch)
                    if not warm.ok:
                        raise SystemExit(f"{method.name} {direction} failed on 1 MiB; see the messages above")

            for rep in range(args.runs):
                for method in chosen:
                    for direction in ("get", "put"):
                        # 1 MiB: what starting a transfer costs (process, session, consent, handshake)
                        source, dest = places(direction, "warm")
                        small.append(
                            measure(method, direction, source, dest, warm_sum, 2**20, *pids(method), scratch)
                        )
                        source, dest = places(direction, "src")
                        run = measure(
                            method, direction, source, dest, expected, args.size, *pids(method), scratch
                        )
                        runs.append(run)
                        verdict = "ok" if run.ok and small[-1].ok else "WRONG BYTES"
                        print(f"  run {rep + 1}/{args.runs} {method.name:26} {direction}: "
                              f"{run.mbps:7.1f} MB/s {verdict}", flush=True)  # fmt: skip
        finally:
            stop(steun.agent if steun else None)
            stop(steun.server if steun else None)
            stop(sshd.proc if sshd else None)

    summary = {(m.name, d): summarise([r for r in runs if r.method == m.name and r.direction == d])
               for m in chosen for d in ("get", "put")}  # fmt: skip
    baseline = chosen[-1].name
    print()
    print(f"File transfer, {args.size / 2**20:,.0f} MiB random file, {args.runs} runs each, loopback; "
          "the agent's session runtime, consent answered at once")  # fmt: skip
    print_table(summary, baseline)
    print("\nStarting a transfer: wall seconds for a 1 MiB file, median (process start, session, consent and")
    print("handshake; for scp the ssh handshake and authentication)")
    for m in chosen:
        walls = {d: statistics.median(r.wall for r in small if r.method == m.name and r.direction == d)
                 for d in ("get", "put")}  # fmt: skip
        line = f"  {m.name:26} get {walls['get']:5.2f} s   put {walls['put']:5.2f} s"
        reported = [summary[(m.name, d)]["reported_mbps_median"] for d in ("get", "put")]
        if all(r is not None for r in reported):
            line += (
                f"   (the CLI's own rate, set-up excluded: get {reported[0]:.0f}, put {reported[1]:.0f} MB/s)"
            )
        print(line)
    all_ok = all(r.ok for r in [*runs, *small])
    if args.json:
        args.json.write_text(json.dumps({
            "machine": info, "size": args.size, "runs_per_method": args.runs,
            "summary": [{"method": k[0], "direction": k[1], **v} for k, v in summary.items()],
            "runs": [dataclasses.asdict(r) for r in runs],
            "runs_1mib": [dataclasses.asdict(r) for r in small],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        }, indent=2))  # fmt: skip
        print(f"wrote {args.json}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
