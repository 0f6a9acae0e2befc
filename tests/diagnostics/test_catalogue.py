"""The catalogue: complete in three languages, consistent templates, sourced thresholds, matched by the agent."""

from __future__ import annotations

import subprocess
import sys

import pytest
from steun_agent.diagnostics.checks import ALL_CHECKS
from steun_protocol.catalogue import LANGS, load_catalogue, placeholders, policy_problems, render, validate
from steun_protocol.diagnostics import GROUPS, Policy

CATALOGUE = load_catalogue()


def test_the_catalogue_has_at_least_34_tests_in_every_group() -> None:
    assert len(CATALOGUE.checks) >= 34
    assert [g.id for g in CATALOGUE.groups] == list(GROUPS)
    for group in GROUPS:
        assert CATALOGUE.in_group(group), group


def test_the_shipped_catalogue_is_consistent() -> None:
    assert validate(CATALOGUE) == []


@pytest.mark.parametrize("spec", CATALOGUE.checks, ids=lambda s: s.id)
def test_every_test_speaks_three_languages(spec: object) -> None:
    from steun_protocol.catalogue import CheckSpec

    assert isinstance(spec, CheckSpec)
    for field in ("title", "measures", "explanation", "fix"):
        text = getattr(spec, field)
        for lang in LANGS:
            assert text.get(lang).strip(), (spec.id, field, lang)
        # Real translations, not copies (a few short titles are the same word in all three: "Firewall").
        if field != "title":
            assert text.nl != text.en and text.fr != text.en, (spec.id, field)
    for name, template in spec.summaries.items():
        names = placeholders(template.en)
        assert placeholders(template.nl) == names == placeholders(template.fr), (spec.id, name)
    assert spec.platforms and spec.kb_key and spec.statuses


def test_every_threshold_cites_a_source_and_every_source_is_used() -> None:
    cited = {t.source for spec in CATALOGUE.checks for t in spec.thresholds.values()}
    assert cited <= set(CATALOGUE.sources)
    assert set(CATALOGUE.sources) - cited == set(), "an unused source"


def test_the_issue_defaults_are_kept() -> None:
    t = CATALOGUE.thresholds
    assert t("disk.free") == {"warn_below": 25, "fail_below": 10}
    assert t("disk.fill_time")["warn_below"] == 8 and t("disk.fill_time")["fail_below"] == 2
    assert t("memory.usage")["warn_at"] == 70 and t("memory.usage")["fail_at"] == 85
    assert t("cpu.load")["warn_at"] == 70 and t("cpu.load")["fail_at"] == 90
    assert t("memory.swap") == {"warn_at": 90, "fail_at": 98}
    assert t("battery.charge") == {"warn_below": 10, "fail_below": 5}
    assert t("temperature.cpu") == {"warn_at": 70, "fail_at": 80}
    assert t("temperature.disk") == {"warn_at": 52, "fail_at": 60}
    assert t("os.uptime") == {"warn_at": 14}
    assert t("os.updates")["warn_at"] == 30
    assert t("net.https") == {"warn_below": 30, "fail_below": 7}
    assert t("net.errors")["warn_at"] == 2 and t("net.errors")["wifi_warn_at"] == 10


def test_the_agent_implements_exactly_the_catalogue() -> None:
    assert [c.id for c in ALL_CHECKS] == [s.id for s in CATALOGUE.checks]


def test_policy_overrides_only_known_thresholds() -> None:
    policy = Policy(thresholds={"disk.free": {"warn_below": 30, "bogus": 1}, "no.such": {"x": 1}})
    assert CATALOGUE.thresholds("disk.free", policy) == {"warn_below": 30, "fail_below": 10}
    problems = policy_problems(policy, CATALOGUE)
    assert any("bogus" in p for p in problems) and any("no.such" in p for p in problems)
    assert policy_problems(Policy(), CATALOGUE) == []


def test_rendering_uses_the_readers_decimal_separator_and_never_raises() -> None:
    params = {"free_percent": 24.56, "volume": "/home", "free_gib": 12.0, "total_gib": 50.0}
    assert CATALOGUE.summary("disk.free.level", params, "en") == "24.6 % free on /home (12 GiB of 50 GiB)."
    assert CATALOGUE.summary("disk.free.level", params, "nl") == "24,6 % vrij op /home (12 GiB van 50 GiB)."
    assert CATALOGUE.summary("disk.free.level", params, "fr").startswith("24,6 % libre sur /home")
    assert CATALOGUE.summary("disk.free.level", {}, "en").startswith("— % free")
    assert CATALOGUE.summary("no.such.key", {}, "en") == "no.such.key"
    assert render("{a}{b.__class__}{c!r}", {"a": "{b}"}) == "{b}{b.__class__}{c!r}"  # no format tricks


def test_the_catalogue_loads_without_io_frameworks() -> None:
    code = (
        "import sys\nfrom steun_protocol.catalogue import load_catalogue\nload_catalogue()\n"
        "print(','.join(m for m in ('asyncio', 'ssl', 'socket', 'threading') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


def test_the_user_documentation_lists_every_test() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "diagnostics.md").read_text()
    missing = [spec.id for spec in CATALOGUE.checks if f"`{spec.id}`" not in doc]
    assert missing == [], "regenerate the table in docs/diagnostics.md"
