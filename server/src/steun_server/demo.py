"""``steun demo``: a throwaway server on SQLite with this machine's agent enrolled and running."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from .app import RunningApp, serve
from .bootstrap import initialise
from .config import load_config
from .fleet.enrollment import create_enrollment_token
from .fleet.service import FLEET
from .web import AUDIT, DB, KEYS

#: How long the agent may take to enroll, and then to come online, before the demo gives up.
ENROLL_TIMEOUT = 60.0
ONLINE_TIMEOUT = 60.0


def agent_command() -> list[str]:
    """The ``steun-agent`` command installed beside this server (never imported: the agent ships alone)."""
    beside = Path(sys.executable).with_name("steun-agent")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("steun-agent")
    if found:
        return [found]
    raise SystemExit(
        "steun demo needs the steun-agent command: install the steun-agent package next to steun"
    )


@dataclasses.dataclass
class Demo:
    running: RunningApp
    data_dir: Path
    agent: asyncio.subprocess.Process | None = None

    async def stop(self) -> None:
        if self.agent is not None and self.agent.returncode is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.agent.wait(), 10)
            except TimeoutError:
                self.agent.kill()
                await self.agent.wait()
        await self.running.stop()


async def start_demo(
    data_dir: Path, *, host: str = "127.0.0.1", port: int = 8443
) -> tuple[Demo, str, str, str]:
    """Initialise ``data_dir``, serve, enroll and start the local agent; return the demo, URL and login."""
    config = load_config(data_dir, overrides={"listen_host": host, "listen_port": port})
    result = await initialise(config, admin_username="admin", hostnames=())
    try:
        running = await serve(config)
    except OSError:
        # the usual port is taken (another demo?): any free port will do
        running = await serve(dataclasses.replace(config, listen_port=0, public_url=""))
    demo = Demo(running, data_dir)
    app = running.app
    token, _ = await create_enrollment_token(
        app[DB], app[KEYS], group="default", ttl=600.0, created_by=None, audit=app[AUDIT], actor="steun demo"
    )
    agent_state = data_dir / "agent"
    command = agent_command()
    env = {**os.environ, "STEUN_AGENT_STATE_DIR": str(agent_state)}
    enroll = await asyncio.create_subprocess_exec(
        *command,
        "enroll",
        "--server",
        running.url,
        "--token",
        str(token),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(enroll.communicate(), ENROLL_TIMEOUT)
    except TimeoutError:
        enroll.kill()
        await demo.stop()
        raise SystemExit("the local agent did not enroll within a minute") from None
    if enroll.returncode != 0:
        await demo.stop()
        raise SystemExit(f"the local agent could not enroll:\n{output.decode(errors='replace')}")
    demo.agent = await asyncio.create_subprocess_exec(*command, "run", env=env)
    presence = app[FLEET].presence
    deadline = asyncio.get_running_loop().time() + ONLINE_TIMEOUT
    while not any(True for _ in presence.online_devices()):
        if demo.agent.returncode is not None or asyncio.get_running_loop().time() > deadline:
            await demo.stop()
            raise SystemExit("the local agent did not come online; see its messages above")
        await asyncio.sleep(0.1)
    return demo, running.url, result.admin_username, result.admin_password


async def run_demo(host: str, port: int, keep: bool) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="steun-demo-"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    demo: Demo | None = None
    try:
        demo, url, username, password = await start_demo(data_dir, host=host, port=port)
        print(
            "\nSteun demo is running.\n"
            f"  Console:  {url}/\n"
            f"  Login:    {username} / {password}\n"
            "  Agent:    this machine, enrolled and online\n"
            f"  Data:     {data_dir}{' (kept)' if keep else ' (deleted on exit)'}\n\n"
            "The certificate is self-signed: accept it once in your browser. Ctrl-C stops the demo.\n",
            flush=True,
        )
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
        if demo.agent is not None:
            waiters.append(asyncio.ensure_future(demo.agent.wait()))
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if demo.agent is not None and demo.agent.returncode is not None:
            print(
                f"the local agent stopped (exit {demo.agent.returncode}); stopping the demo", file=sys.stderr
            )
            return 1
        return 0
    finally:
        if demo is not None:
            await demo.stop()
        if not keep:
            await asyncio.to_thread(shutil.rmtree, data_dir, True)
