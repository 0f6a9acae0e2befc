"""``steun-agent check``: run the routine tests here and now, without a server, and report them.

For the end user on the phone with the helpdesk, or for a machine with no network at all. It prints a
coloured report grouped by category (plain when ``NO_COLOR`` is set or the output is not a terminal), and
can write the same results as JSON (``--json``) and as a self-contained HTML page (``--html``).

Exit codes (the Nagios plugin convention): 0 all passed (or not applicable), 1 at least one warning,
2 at least one failure, 3 only errors (could not test), 64 bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import msgspec
from steun_protocol.catalogue import LANGS, load_catalogue
from steun_protocol.diagnostics import DEFAULT_CHECK_TIMEOUT, CheckResult, Policy

from .backend import DiagnosticsBackend
from .pool import ProbePool
from .report import Report, render_html, render_json, render_text
from .runner import Runner

EXIT_USAGE = 64


def default_lang(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The report language from the locale (LANGUAGE, LC_ALL, LC_MESSAGES, LANG): nl, fr, else en."""
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        for value in environ.get(var, "").split(":"):
            code = value.strip()[:2].lower()
            if code in LANGS:
                return code
            if value.strip() and value.strip() not in ("C", "POSIX", "C.UTF-8"):
                return "en"
    return "en"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="steun-agent check",
        description="Run Steun's routine tests on this machine and report pass / warn / fail.",
        epilog="Exit status: 0 pass, 1 warning, 2 failure, 3 only errors, 64 usage.",
    )
    p.add_argument("--json", metavar="FILE", type=Path, help="also write the results as JSON")
    p.add_argument("--html", metavar="FILE", type=Path, help="also write a self-contained HTML report")
    p.add_argument("--lang", choices=LANGS, help="report language (default: from the locale)")
    p.add_argument(
        "--only",
        metavar="ID/GROUP",
        action="append",
        default=[],
        help="run only these tests or groups (repeat or separate by commas), e.g. disk.free,network",
    )
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--server", metavar="HOST[:PORT]", help="the Steun server to test reachability of")
    p.add_argument("--url", metavar="URL", action="append", default=[], help="an https:// address to test")
    p.add_argument("--policy", metavar="FILE", type=Path, help="a policy as JSON (the server's format)")
    p.add_argument(
        "--timeout", metavar="SECONDS", type=float, help=f"per-test timeout (default {DEFAULT_CHECK_TIMEOUT})"
    )
    p.add_argument("--list", action="store_true", help="list the tests and exit")
    p.add_argument("--quiet", action="store_true", help="print nothing; only the exit status and files")
    return p


def check_main(
    argv: list[str],
    *,
    backend: DiagnosticsBackend | None = None,
    out: TextIO | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Entry point of ``steun-agent check``; returns the exit status."""
    out = out or sys.stdout
    try:
        args = _parser().parse_args(argv)
        policy = _policy(args)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else EXIT_USAGE
    except (OSError, ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        print(f"steun-agent check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    lang = args.lang or default_lang()
    catalogue = load_catalogue()
    if args.list:
        for spec in catalogue.checks:
            print(f"{spec.group:9} {spec.id:24} {spec.title.get(lang)}", file=out)
        return 0
    if backend is None:
        from .backends import default_backend

        backend = default_backend()
    only = [item.strip() for value in args.only for item in value.split(",") if item.strip()]
    groups = [o for o in only if o in {g.id for g in catalogue.groups}]
    checks = [o for o in only if o not in groups]
    runner = Runner(backend, catalogue=catalogue, pool=ProbePool(), clock=clock)
    selected, unknown = runner.select(groups, checks)
    if unknown:
        print(f"steun-agent check: unknown test or group: {', '.join(unknown)} (see --list)", file=sys.stderr)
        return EXIT_USAGE
    started = time.time()
    t0 = time.perf_counter()
    try:
        results = asyncio.run(_run(runner, selected, policy))
    finally:
        runner.pool.close()
    report = Report(
        results, catalogue, lang, socket.gethostname(), started, (time.perf_counter() - t0) * 1000
    )
    if not args.quiet:
        color = args.color == "always" or (
            args.color == "auto"
            and not os.environ.get("NO_COLOR")
            and hasattr(out, "isatty")
            and out.isatty()
        )
        out.write(render_text(report, color=color))
        out.flush()
    try:
        if args.json is not None:
            args.json.write_bytes(render_json(report))
        if args.html is not None:
            args.html.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        print(f"steun-agent check: cannot write the report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return report.exit_code


async def _run(runner: Runner, selected: list[str], policy: Policy) -> list[CheckResult]:
    return await runner.run_all(selected, policy)


def _policy(args: argparse.Namespace) -> Policy:
    policy = Policy()
    if args.policy is not None:
        policy = msgspec.json.decode(args.policy.read_bytes(), type=Policy)
    changes: dict[str, object] = {}
    if args.server:
        host, _, port = args.server.rpartition(":") if args.server.count(":") == 1 else (args.server, "", "")
        changes["server_host"] = host or args.server
        if port:
            changes["server_port"] = int(port)
    if args.url:
        changes["https_urls"] = [*policy.https_urls, *args.url]
    if args.timeout is not None:
        changes["check_timeout"] = args.timeout
    if changes:
        # Re-validate through msgspec so the command line obeys the same bounds as the server's policy.
        policy = msgspec.convert({**msgspec.to_builtins(policy), **changes}, type=Policy)
    return policy


if __name__ == "__main__":  # python -m steun_agent.diagnostics.cli
    raise SystemExit(check_main(sys.argv[1:]))
