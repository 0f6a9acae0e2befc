"""steun-agent check: terminal report, JSON and escaped HTML files, language, selection, exit status."""

from __future__ import annotations

import html.parser
import io
import json
from pathlib import Path

import pytest
from steun_agent.diagnostics.backend import Printer, Volume
from steun_agent.diagnostics.cli import EXIT_USAGE, check_main, default_lang
from steun_agent.diagnostics.fake import NOW, FakeDiagnostics

HOSTILE = '<script>alert("x")</script>\x1b[31m&amp;'


def hostile_backend() -> FakeDiagnostics:
    gib = 1024**3
    return FakeDiagnostics(
        volumes=[Volume(f"/mnt/{HOSTILE}", "/dev/sdz", "ext4", 100 * gib, 5 * gib, 10, 5)],
        printers=[Printer(HOSTILE, False, 3)],
    )


def test_json_and_html_reports_are_valid_and_escaped(tmp_path: Path) -> None:
    out = io.StringIO()
    code = check_main(
        [
            "--json",
            str(tmp_path / "r.json"),
            "--html",
            str(tmp_path / "r.html"),
            "--lang",
            "nl",
            "--only",
            "disk.free,printer.queue",
            "--only",
            "os",
        ],
        backend=hostile_backend(),
        out=out,
        clock=lambda: NOW,
    )
    assert code == 2  # a failure (5 % free, a stopped printer)
    report = json.loads((tmp_path / "r.json").read_text())
    assert (
        report["format"] == "steun-diagnostics-report"
        and report["lang"] == "nl"
        and report["worst"] == "fail"
    )
    disk = next(r for r in report["results"] if r["check_id"] == "disk.free")
    assert disk["subject"] == f"/mnt/{HOSTILE}" and disk["summary"].startswith("5 % vrij op /mnt/")
    assert disk["fix"] and disk["kb_key"] == "disk-full"
    assert {r["check_id"] for r in report["results"]} >= {"disk.free", "printer.queue", "os.uptime"}

    page = (tmp_path / "r.html").read_text()
    assert "<script" not in page and "\x1b" not in page.replace("\\x1b", "")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "&amp;amp;" in page
    assert "default-src 'none'" in page
    parser = html.parser.HTMLParser()
    parser.feed(page)  # well-formed enough to parse
    assert 'lang="nl"' in page and "Wat te doen" in page

    text = out.getvalue()
    assert "\x1b" not in text  # not a terminal: no colours, and the hostile escape is neutralised
    assert "\ufffd[31m" in text and "VRIJE SCHIJFRUIMTE" not in text and "HARDWARE" in text


def test_colours_follow_no_color_and_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    check_main(
        ["--only", "os.uptime", "--color", "always"], clock=lambda: NOW, backend=FakeDiagnostics(), out=out
    )
    assert "\x1b[32m" in out.getvalue()
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setenv("NO_COLOR", "1")
    check_main(["--only", "os.uptime"], clock=lambda: NOW, backend=FakeDiagnostics(), out=tty)
    assert "\x1b[" not in tty.getvalue()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--only", "os.uptime"], 0),
        (["--only", "no.such"], EXIT_USAGE),
        (["--bogus"], EXIT_USAGE),
        (["--timeout", "0"], EXIT_USAGE),
        (["--url", "http://not-https.example"], EXIT_USAGE),
        (["--list"], 0),
    ],
)
def test_exit_status(argv: list[str], expected: int) -> None:
    assert check_main(argv, clock=lambda: NOW, backend=FakeDiagnostics(), out=io.StringIO()) == expected


def test_warning_and_error_exit_codes() -> None:
    fake = FakeDiagnostics(boot_time=0.0)  # up for decades: a warning
    assert (
        check_main(["--only", "os.uptime", "--quiet"], backend=fake, out=io.StringIO(), clock=lambda: NOW)
        == 1
    )
    fake = FakeDiagnostics()
    fake.errors["boot_time"] = OSError("unreadable")
    assert (
        check_main(["--only", "os.uptime", "--quiet"], backend=fake, out=io.StringIO(), clock=lambda: NOW)
        == 3
    )


def test_policy_file_and_server_option(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"required_services": ["cups"]}))
    out = io.StringIO()
    code = check_main(
        [
            "--policy",
            str(tmp_path / "p.json"),
            "--server",
            "steun.example:8443",
            "--only",
            "os.services,net.server",
            "--lang",
            "fr",
        ],
        clock=lambda: NOW,
        backend=FakeDiagnostics(),
        out=out,
    )
    assert code == 0
    assert "steun.example:8443" in out.getvalue() and "cups est en marche" in out.getvalue()


@pytest.mark.parametrize(
    ("env", "lang"),
    [
        ({"LANG": "nl_BE.UTF-8"}, "nl"),
        ({"LC_ALL": "fr_FR.UTF-8", "LANG": "nl_BE.UTF-8"}, "fr"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({"LANG": "C"}, "en"),
        ({}, "en"),
        ({"LANGUAGE": "fr:en"}, "fr"),
    ],
)
def test_default_language_from_the_locale(env: dict[str, str], lang: str) -> None:
    assert default_lang(env) == lang
