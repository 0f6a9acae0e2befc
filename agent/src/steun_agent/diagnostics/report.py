"""Reports of a run for people: a coloured terminal report, a self-contained HTML page, and JSON.

Everything a test measured is hostile text (process names, printer names, URLs come from the machine): the
terminal report strips control characters (no escape sequences reach the terminal), the HTML report escapes
every value and forbids scripts with a Content-Security-Policy, JSON is encoded by msgspec.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from steun_protocol.catalogue import Catalogue, format_scalar
from steun_protocol.diagnostics import STATUSES, CheckResult, Status, count_statuses, worst

#: C0 and C1 controls, DEL, and Unicode bidirectional overrides (which can disguise text in a terminal).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_COLORS: dict[Status, str] = {
    "pass": "\x1b[32m",
    "warn": "\x1b[33m",
    "fail": "\x1b[31;1m",
    "error": "\x1b[35m",
    "not_applicable": "\x1b[2m",
}
_RESET = "\x1b[0m"
#: Exit codes of ``steun-agent check`` by worst status (the Nagios plugin convention).
EXIT_CODES: dict[Status, int] = {"pass": 0, "not_applicable": 0, "warn": 1, "fail": 2, "error": 3}


def safe(text: object) -> str:
    """Text fit for a terminal: control characters become U+FFFD, newlines become spaces."""
    return _UNSAFE.sub("\ufffd", str(text).replace("\n", " ").replace("\t", " "))


@dataclass(slots=True)
class Report:
    results: list[CheckResult]
    catalogue: Catalogue
    lang: str = "en"
    host: str = ""
    started: float = 0.0  # wall time
    wall_ms: float = 0.0
    order: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.order = {c.id: i for i, c in enumerate(self.catalogue.checks)}
        self.results = sorted(
            self.results, key=lambda r: (self.order.get(r.check_id, 1 << 20), r.subject or "")
        )

    @property
    def worst(self) -> Status:
        return worst(r.status for r in self.results)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.worst]

    def label(self, key: str) -> str:
        text = self.catalogue.labels.get(key)
        return text.get(self.lang) if text is not None else key

    def status_label(self, status: Status) -> str:
        return self.catalogue.statuses[status].get(self.lang)

    def title(self, result: CheckResult) -> str:
        spec = self.catalogue.by_id.get(result.check_id)
        return spec.title.get(self.lang) if spec is not None else result.check_id

    def fix(self, result: CheckResult) -> str | None:
        spec = self.catalogue.by_id.get(result.check_id)
        if spec is None or result.status not in ("warn", "fail"):
            return None
        return spec.fix.get(self.lang)

    def summary(self, result: CheckResult) -> str:
        return self.catalogue.summary(result.summary_key, result.summary_params, self.lang)

    def value(self, result: CheckResult) -> str:
        if result.value is None:
            return ""
        text = format_scalar(result.value, self.lang)
        return f"{text} {result.unit}".strip() if result.unit else text

    def grouped(self) -> Iterable[tuple[str, list[CheckResult]]]:
        for group in self.catalogue.groups:
            members = [
                r for r in self.results if (s := self.catalogue.by_id.get(r.check_id)) and s.group == group.id
            ]
            if members:
                yield group.title.get(self.lang), members

    def generated(self) -> str:
        return (
            dt.datetime.fromtimestamp(self.started or 0, dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        )


def render_text(report: Report, *, color: bool) -> str:
    def paint(status: Status, text: str) -> str:
        return f"{_COLORS[status]}{text}{_RESET}" if color else text

    width = max(len(report.status_label(s)) for s in STATUSES) + 2
    lines = [
        safe(f"{report.label('report_title')} — {report.host}"),
        safe(
            f"{report.label('generated')}: {report.generated()} · {report.label('duration')}: "
            f"{format_scalar(report.wall_ms / 1000, report.lang)} s"
        ),
    ]
    if not report.results:
        lines.append(safe(report.label("no_results")))
    for group_title, results in report.grouped():
        heading = safe(group_title.upper())
        lines += ["", f"\x1b[1m{heading}{_RESET}" if color else heading]
        for r in results:
            badge = f"[{report.status_label(r.status)}]".ljust(width)
            head = report.title(r) + (f" — {r.subject}" if r.subject else "")
            lines.append(f"  {paint(r.status, safe(badge))} {safe(head)}")
            lines.append(f"  {' ' * width} {safe(report.summary(r))}")
            fix = report.fix(r)
            if fix:
                kb = f" ({report.label('kb')}: {r.kb_key})" if r.kb_key else ""
                lines.append(f"  {' ' * width} {safe(report.label('fix'))}: {safe(fix)}{safe(kb)}")
            if r.detail and r.status == "error":
                lines.append(f"  {' ' * width} {safe(report.label('detail'))}: {safe(r.detail)}")
    counts = count_statuses(r.status for r in report.results)
    totals = " · ".join(paint(s, f"{report.status_label(s)} {counts[s]}") for s in STATUSES if counts[s])
    lines += ["", f"{safe(report.label('totals'))}: {totals}", ""]
    return "\n".join(lines)


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%}td,th{padding:.35rem .5rem;vertical-align:top;text-align:left}
tr+tr td{border-top:1px solid #eee}
.s{font-weight:600;white-space:nowrap;border-radius:3px;padding:.1rem .4rem}
.pass{background:#dff3e2;color:#14532d}.warn{background:#fff4cc;color:#713f12}
.fail{background:#fde2e1;color:#7f1d1d}.error{background:#f1e4f7;color:#581c87}
.not_applicable{background:#eee;color:#555}.fix{color:#333;margin-top:.3rem}
.meta{color:#555}details{color:#444;font-size:.9em}code{font-size:.9em}.totals span{margin-right:.8rem}
"""


def render_html(report: Report) -> str:
    def e(text: object) -> str:
        return html.escape(safe(text), quote=True)

    counts = count_statuses(r.status for r in report.results)
    parts = [
        "<!doctype html>",
        f'<html lang="{e(report.lang)}">',
        '<head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="'
        + "default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{e(report.label('report_title'))} — {e(report.host)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(report.label('report_title'))} — {e(report.host)}</h1>",
        f'<p class="meta">{e(report.label("generated"))}: {e(report.generated())} · '
        f"{e(report.label('duration'))}: {e(format_scalar(report.wall_ms / 1000, report.lang))} s</p>",
        '<p class="totals">'
        + "".join(
            f'<span class="s {s}">{e(report.status_label(s))}: {counts[s]}</span>'
            for s in STATUSES
            if counts[s]
        )
        + "</p>",
    ]
    if not report.results:
        parts.append(f"<p>{e(report.label('no_results'))}</p>")
    for group_title, results in report.grouped():
        parts.append(f"<h2>{e(group_title)}</h2><table>")
        parts.append(
            f"<tr><th>{e(report.label('result'))}</th><th>{e(report.label('test'))}</th>"
            f"<th>{e(report.label('value'))}</th></tr>"
        )
        for r in results:
            head = e(report.title(r)) + (f" — <code>{e(r.subject)}</code>" if r.subject else "")
            body = f"<div>{e(report.summary(r))}</div>"
            fix = report.fix(r)
            if fix:
                kb = (
                    f" <small>({e(report.label('kb'))}: <code>{e(r.kb_key or '')}</code>)</small>"
                    if r.kb_key
                    else ""
                )
                body += f'<div class="fix"><b>{e(report.label("fix"))}:</b> {e(fix)}{kb}</div>'
            if r.detail:
                body += f'<div class="meta">{e(report.label("detail"))}: <code>{e(r.detail)}</code></div>'
            if r.measured or r.thresholds:
                rows = "".join(
                    f"<li><code>{e(k)}</code>: {e(format_scalar(v, report.lang))}</li>"
                    for k, v in r.measured.items()
                )
                rows += "".join(
                    f"<li><code>{e(k)}</code>: {e(format_scalar(v, report.lang))}</li>"
                    for k, v in r.thresholds.items()
                )
                heading = f"{e(report.label('measured'))} / {e(report.label('thresholds'))}"
                body += f"<details><summary>{heading}</summary><ul>{rows}</ul></details>"
            parts.append(
                f'<tr><td><span class="s {e(r.status)}">{e(report.status_label(r.status))}</span></td>'
                f"<td><b>{head}</b>{body}</td><td>{e(report.value(r))}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_json(report: Report) -> bytes:
    results: list[dict[str, Any]] = []
    for r in report.results:
        entry = msgspec.to_builtins(r)
        entry["title"] = report.title(r)
        entry["summary"] = report.summary(r)
        entry["fix"] = report.fix(r)
        results.append(entry)
    document = {
        "format": "steun-diagnostics-report",
        "version": 1,
        "catalogue_version": report.catalogue.version,
        "host": report.host,
        "generated_at": dt.datetime.fromtimestamp(report.started or 0, dt.UTC).isoformat(),
        "lang": report.lang,
        "wall_ms": round(report.wall_ms, 1),
        "worst": report.worst,
        "counts": count_statuses(r.status for r in report.results),
        "results": results,
    }
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"
