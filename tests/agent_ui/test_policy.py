"""The local policy file: parsing, the pure decision, and refusing a file that a non-admin could have written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from steun_agent.policy import (
    MAX_PROMPT_TIMEOUT,
    Mode,
    Policy,
    PolicyError,
    decide,
    load_policy,
    parse_policy,
)
from steun_protocol.session import Capability

V, C, CB, SH, F, INSTALL = (
    Capability.VIEW,
    Capability.CONTROL,
    Capability.CLIPBOARD,
    Capability.SHELL,
    Capability.FILES,
    Capability.INSTALL,
)

ROOT = os.geteuid() == 0
#: Who the tests may trust as the file's owner: root, or (for a developer running them unprivileged) themselves.
TRUSTED = {0, os.geteuid()}


def write(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    directory = tmp_path / "etc"
    directory.mkdir(mode=0o755, exist_ok=True)
    path = directory / "policy.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


# ------------------------------------------------------------------------------------------------ parsing


def test_defaults_prompt_for_everything_and_allow_nothing_unattended() -> None:
    policy = Policy()
    assert policy.prompt_timeout == MAX_PROMPT_TIMEOUT == 60
    assert not policy.forbid and not policy.unattended and not policy.always_prompt


def test_full_file_parses() -> None:
    policy = parse_policy(
        'forbid = ["shell", "install"]\nalways_prompt = true\nunattended = ["view"]\n'
        'prompt_timeout = 20\nlanguage = "nl"\n'
    )
    assert policy.forbid == {SH, INSTALL}
    assert policy.always_prompt is True
    assert policy.unattended == {V}
    assert policy.prompt_timeout == 20.0
    assert policy.language == "nl"


def test_prompt_timeout_can_only_shorten() -> None:
    policy = parse_policy("prompt_timeout = 600")
    assert policy.prompt_timeout == MAX_PROMPT_TIMEOUT
    assert any("shortened" in note for note in policy.notes)
    with pytest.raises(PolicyError, match="below"):
        parse_policy("prompt_timeout = 0")
    with pytest.raises(PolicyError, match="below"):
        parse_policy("prompt_timeout = nan")
    with pytest.raises(PolicyError, match="number"):
        parse_policy("prompt_timeout = true")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('forbid = ["shel"]', "unknown capabilities in forbid: shel"),
        ('unattended = ["everything"]', "unknown capabilities in unattended"),
        ("alwayz_prompt = true", "unknown settings: alwayz_prompt"),
        ('always_prompt = "yes"', "always_prompt"),
        ('forbid = "shell"', "not a list"),
        ('language = "de"', "language"),
        ("forbid = [", "not valid TOML"),
    ],
)
def test_mistakes_are_errors_never_ignored(text: str, problem: str) -> None:
    # A typo silently ignored would leave the machine more open than its admin believes.
    with pytest.raises(PolicyError, match=problem):
        parse_policy(text)


# ------------------------------------------------------------------------------------------------ decide


def test_forbid_wins_over_unattended_and_prompt() -> None:
    policy = Policy(forbid=frozenset({SH, V}), unattended=frozenset({V, C}), shell_account="helpdesk")
    decision = decide([V, C, SH, F], policy, Mode.SERVICE)
    assert decision.forbidden == {SH, V}
    assert decision.unattended == {C}
    assert decision.prompt == {F}


def test_a_service_agent_without_shell_account_forbids_shell_and_files() -> None:
    # An installed agent runs as root: without a named account, a shell or file browser would be root's.
    policy = Policy(unattended=frozenset({SH, F, V}))
    decision = decide([V, SH, F], policy, Mode.SERVICE)
    assert decision.forbidden == {SH, F}
    assert decision.unattended == {V}
    # quick support acts as the user who started it: nothing to name
    assert decide([SH, F], Policy(), Mode.ATTENDED).prompt == {SH, F}
    named = Policy(unattended=frozenset({SH}), shell_account="helpdesk")
    assert decide([SH, F], named, Mode.SERVICE).forbidden == set()


@pytest.mark.parametrize("name", ["root;rm", "", "a b", "../x", "x" * 40, "-n"])
def test_shell_account_must_be_an_account_name(name: str) -> None:
    with pytest.raises(PolicyError, match="shell_account"):
        parse_policy(f"shell_account = {name!r}")


def test_shell_account_root_is_allowed_with_a_note() -> None:
    policy = parse_policy('shell_account = "root"')
    assert policy.shell_account == "root"
    assert any("full control" in note for note in policy.notes)


def test_unattended_only_for_the_installed_service() -> None:
    policy = Policy(unattended=frozenset({V, C}))
    assert decide([V, C], policy, Mode.ATTENDED).unattended == set()
    assert decide([V, C], policy, Mode.ATTENDED).prompt == {V, C}
    assert decide([V, C], policy, Mode.SERVICE).unattended == {V, C}
    assert not decide([V, C], policy, Mode.SERVICE).needs_prompt


def test_always_prompt_turns_unattended_off() -> None:
    policy = Policy(always_prompt=True, unattended=frozenset({V}))
    decision = decide([V], policy, Mode.SERVICE)
    assert decision.unattended == set() and decision.prompt == {V}


capability_sets = st.frozensets(st.sampled_from(list(Capability)))


@given(requested=capability_sets, forbid=capability_sets, unattended=capability_sets, always=st.booleans())
def test_whatever_is_asked_the_policy_is_never_loosened(
    requested: frozenset[Capability],
    forbid: frozenset[Capability],
    unattended: frozenset[Capability],
    always: bool,
) -> None:
    """The server's only input to decide() is the list it asks for: no list can get past the file."""
    policy = Policy(forbid=forbid, unattended=unattended, always_prompt=always)
    for mode in Mode:
        d = decide(requested, policy, mode)
        assert d.forbidden | d.prompt | d.unattended == requested  # everything is sorted somewhere...
        assert not (d.forbidden & d.prompt or d.forbidden & d.unattended or d.prompt & d.unattended)
        assert not (d.prompt | d.unattended) & forbid  # ...and nothing forbidden gets through
        assert d.unattended <= unattended
        if mode is Mode.ATTENDED or always:
            assert not d.unattended


# ------------------------------------------------------------------------------------------------ loading


def test_missing_file_means_the_strict_defaults(tmp_path: Path) -> None:
    assert load_policy(tmp_path / "nope.toml", trusted_owners=TRUSTED) == Policy()


def test_missing_file_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    # Whoever could delete the admin's file would take its forbids with it.
    directory = tmp_path / "etc"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    with pytest.raises(PolicyError, match="writable by group or others"):
        load_policy(directory / "policy.toml", trusted_owners=TRUSTED)


def test_good_file_is_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, 'forbid = ["shell"]\nprompt_timeout = 2\n')
    policy = load_policy(path, trusted_owners=TRUSTED)
    assert policy.forbid == {SH} and policy.prompt_timeout == 2 and policy.source == path


@pytest.mark.parametrize("mode", [0o666, 0o646, 0o664])
def test_file_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, 'forbid = ["shell"]', mode=mode)
    with pytest.raises(PolicyError, match="writable by group or others") as info:
        load_policy(path, trusted_owners=TRUSTED)
    assert "Remote sessions are refused" in str(info.value)


def test_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    path.parent.chmod(0o777)
    with pytest.raises(PolicyError, match=r"directory .*etc is writable"):
        load_policy(path, trusted_owners=TRUSTED)


def test_symlink_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path, 'unattended = ["view", "control"]')
    link = tmp_path / "etc" / "link.toml"
    link.symlink_to(target)
    with pytest.raises(PolicyError, match="symbolic link"):
        load_policy(link, trusted_owners=TRUSTED)


@pytest.mark.skipif(not ROOT, reason="giving a file away needs root")
def test_file_owned_by_a_normal_user_is_refused_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, 'unattended = ["view", "control", "shell"]')
    os.chown(path, 65534, 65534)  # nobody: a user who is not the machine's admin
    with pytest.raises(PolicyError, match="belongs to uid 65534, not to root"):
        load_policy(path)


@pytest.mark.skipif(not ROOT, reason="the default trusts root only")
def test_root_owned_file_is_honoured_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, 'forbid = ["install"]')
    assert load_policy(path).forbid == {INSTALL}


def test_unparseable_file_is_refused_not_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "forbid = [shell]")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(path, trusted_owners=TRUSTED)


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "# " + "x" * 70_000)
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(path, trusted_owners=TRUSTED)
