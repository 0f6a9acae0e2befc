"""The ``steun-agent`` command: ``enroll``, ``run``, ``support``, ``status`` and ``check``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from steun_protocol.auth import b64encode

from . import __version__
from .backends import default_backend
from .capabilities import Capability
from .capabilities.inventory import InventoryCapability
from .config import AgentConfig
from .diagnostics import DiagnosticsCapability
from .enrollment import enroll, parse_token
from .errors import EXIT_FAILURE, EXIT_OK, AgentError, ConfigError
from .locallog import LocalLog
from .policy import Mode
from .runtime import Runtime
from .state import AgentState

log = logging.getLogger("steun_agent")

ENV_TOKEN = "STEUN_AGENT_TOKEN"  # noqa: S105 - the variable's name, not a secret


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steun-agent", description="The Steun endpoint agent.")
    parser.add_argument("--version", action="version", version=f"steun-agent {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("STEUN_AGENT_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default: INFO",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the identity and pins live (default: $STEUN_AGENT_STATE_DIR, "
        "/var/lib/steun-agent as root, "
        "else ~/.local/share/steun-agent)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("enroll", parents=[common], help="enroll this machine with a one-time token")
    p.add_argument("--server", required=True, help="the server's address, e.g. https://steun.example.org")
    p.add_argument(
        "--token",
        default=None,
        help=f"the enrollment token (st1.…); '-' reads it from standard input; default: ${ENV_TOKEN}",
    )
    p.add_argument("--force", action="store_true", help="replace an existing enrollment")

    p = sub.add_parser("run", parents=[common], help="connect and stay connected (the service's command)")
    p.add_argument("--backoff-base", type=float, default=None, help="first reconnect delay bound, seconds")
    p.add_argument("--backoff-cap", type=float, default=None, help="largest reconnect delay, seconds")
    p.add_argument("--inventory-interval", type=float, default=None, help="seconds between inventory checks")

    p = sub.add_parser(
        "support",
        parents=[common],
        help="quick support: type the code your helpdesk gives you (no install, no admin needed)",
    )
    p.add_argument(
        "--config",
        type=Path,
        required=True,
        help="the support config downloaded from your helpdesk's server (JSON or TOML)",
    )
    p.add_argument("--language", default=None, help="en, nl or fr (default: the system language)")
    p.add_argument("--terminal", action="store_true", help="ask in the terminal instead of a window")

    p = sub.add_parser("status", parents=[common], help="show the enrollment state")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser(
        "check",
        add_help=False,
        help="run the routine tests on this machine and print a report (works offline; see check --help)",
    )
    p.add_argument("check_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:
        # `check` has its own options (--json, --html, --only ...), parsed by the diagnostics CLI.
        from .diagnostics.cli import check_main

        return check_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "enroll":
            return _enroll(args)
        if args.command == "run":
            return _run(args)
        if args.command == "support":
            return asyncio.run(_support(args))
        if args.command == "check":
            from .diagnostics.cli import check_main

            return check_main(list(args.check_args))
        return _status(args)
    except AgentError as exc:
        print(f"steun-agent: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_FAILURE


def _config(args: argparse.Namespace, **overrides: object) -> AgentConfig:
    return AgentConfig.from_env(state_dir=args.state_dir, **overrides)


def _enroll(args: argparse.Namespace) -> int:
    raw = args.token if args.token is not None else os.environ.get(ENV_TOKEN)
    if raw == "-":
        raw = sys.stdin.readline()
    if not raw:
        raise ConfigError(f"no enrollment token: pass --token or set {ENV_TOKEN}")
    token = parse_token(raw)
    config = _config(args)
    state = asyncio.run(enroll(args.server, token, config, force=args.force))
    print(f"Enrolled as device {state.device_id} (group {state.group or '-'}) with {state.server_url}.")
    print(f"State stored in {config.state_dir}. Start the agent with: steun-agent run")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    config = _config(
        args,
        backoff_base=args.backoff_base,
        backoff_cap=args.backoff_cap,
        inventory_interval=args.inventory_interval,
    )
    state = AgentState.load(config.state_dir)
    asyncio.run(_run_with_sessions(state, config))
    return EXIT_OK


async def _run_with_sessions(state: AgentState, config: AgentConfig) -> None:
    from .session import SessionCapability, SessionSettings
    from .session.local import NobodyUI, load_policy_or_lock, x11_dispatcher_factory, x11_streamer_factory

    backend = default_backend()
    diagnostics = DiagnosticsCapability()
    policy, _ = await load_policy_or_lock()  # an unsafe policy file forbids everything (logged)
    ui: Any = NobodyUI()
    closers: list[Any] = []
    if os.environ.get("DISPLAY") or sys.platform != "linux":
        from .ui import UIUnavailable, open_ui

        try:
            ui = await open_ui(policy_language=policy.language, prefer="tk")
            closers.append(ui)
        except UIUnavailable as exc:
            log.info(
                "no window to ask consent in (%s): sessions need the local policy's unattended list", exc
            )
    is_service = getattr(os, "geteuid", lambda: 0)() == 0
    sessions = SessionCapability(
        org_public_key=state.org_public_key,
        identity=state.private_key,
        device_id=state.device_id,
        settings=SessionSettings(
            server_url=state.server_url,
            pin=state.spki_sha256,
            policy=policy,
            mode=Mode.SERVICE if is_service else Mode.ATTENDED,
            ui=ui,
            local_log=LocalLog(config.state_dir),
            streamer_factory=x11_streamer_factory(),
            dispatcher_factory=x11_dispatcher_factory(),
        ),
    )
    capabilities: list[Capability] = [
        InventoryCapability(backend, config.inventory_interval),
        diagnostics,
        sessions,
    ]
    runtime = Runtime(state, config, backend, capabilities)
    try:
        await _serve(runtime, diagnostics)
    finally:
        for closer in closers:
            with contextlib.suppress(Exception):
                await closer.close()


async def _support(args: argparse.Namespace) -> int:
    from .session import SessionSettings
    from .session.local import load_policy_or_lock, x11_dispatcher_factory, x11_streamer_factory
    from .session.support import SupportConfig, load_support_config, run_support
    from .ui import open_ui

    support = load_support_config(args.config)
    config = _config(args)
    policy, policy_error = await load_policy_or_lock()
    ui = await open_ui(
        args.language, policy_language=policy.language, prefer="terminal" if args.terminal else "auto"
    )
    try:
        if policy_error is not None:
            await ui.notify(ui.texts("policy.unsafe") + "\n\n" + str(policy_error))
            return policy_error.exit_code

        def settings_for(sc: SupportConfig) -> SessionSettings:
            return SessionSettings(
                server_url=sc.server_url,
                pin=sc.pin,
                policy=policy,
                mode=Mode.ATTENDED,  # quick support: never unattended
                ui=ui,
                local_log=LocalLog(config.state_dir),
                streamer_factory=x11_streamer_factory(),
                dispatcher_factory=x11_dispatcher_factory(),
            )

        return await run_support(
            support, config, settings_for, ui.ask_support_code, metrics=default_backend().live_metrics
        )
    finally:
        await ui.close()


async def _serve(runtime: Runtime, diagnostics: DiagnosticsCapability) -> None:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        # Not available on Windows' event loop; the service wrapper stops the agent there.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, _on_signal, runtime, sig)
    try:
        await runtime.run()
    finally:
        await diagnostics.close()
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
    log.info("stopped")


def _on_signal(runtime: Runtime, sig: signal.Signals) -> None:
    log.info("%s received, shutting down", sig.name)
    runtime.stop()


def _status(args: argparse.Namespace) -> int:
    config = _config(args)
    state = AgentState.load(config.state_dir)
    info = {
        "state_dir": str(config.state_dir),
        "server_url": state.server_url,
        "device_id": state.device_id,
        "group": state.group,
        "enrolled_at": state.enrolled_at,
        "server_spki_sha256": state.spki_sha256.hex(),
        "org_public_key": b64encode(state.org_public_key),
        "agent_public_key": b64encode(state.public_key),
    }
    if args.json:
        print(msgspec.json.encode(info).decode())
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    return EXIT_OK
