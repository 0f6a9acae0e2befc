"""MKDIR, REMOVE and RENAME on the files channel: what they do, what they refuse, and that no path — traversal,
absolute, a link out of the root, a link swapped in after the check — lets them touch anything outside it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from steun_agent.files import PathGuard, pathguard
from steun_agent.files.pathguard import Located
from steun_protocol.files import Error, FileErrorCode, MakeDir, Overwrite, Removal, Remove, Rename

from .peer import FilesConsole, TransferFailed


@pytest.fixture
def outside(tmp_path: Path, root: Path) -> Path:
    """A directory beside the root with a secret, and links to it from inside the root."""
    out = tmp_path / "outside"
    (out / "sub").mkdir(parents=True)
    (out / "secret.txt").write_text("secret")
    (root / "docs").mkdir()
    (root / "docs" / "a.txt").write_text("alpha")
    (root / "out-dir").symlink_to(out)
    (root / "out-file").symlink_to(out / "secret.txt")
    (root / "out-rel").symlink_to("../outside")
    return out


def snapshot(directory: Path) -> dict[str, str]:
    """Every path below ``directory`` (links not followed) with its content or kind."""
    found = {}
    for base, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = Path(base) / name
            rel = str(path.relative_to(directory))
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_text()
    return found


async def code_of(attempt: object) -> str:
    try:
        await attempt  # type: ignore[misc]
    except TransferFailed as exc:
        return exc.code
    return "ok"


# ------------------------------------------------------------------------------------------- what they do


async def test_mkdir_remove_rename_and_their_audit(console: FilesConsole, root: Path, outside: Path) -> None:
    await console.mkdir("docs/new")
    assert (root / "docs" / "new").is_dir()
    assert (root / "docs" / "new").stat().st_mode & 0o777 == 0o755 & ~_umask()
    await console.rename("docs/a.txt", "docs/new/b.txt")
    assert (root / "docs" / "new" / "b.txt").read_text() == "alpha" and not (root / "docs" / "a.txt").exists()
    await console.rename("docs/new", "moved")  # a directory moves with what it holds
    assert (root / "moved" / "b.txt").read_text() == "alpha"
    await console.remove("moved/b.txt")
    await console.remove("moved")
    assert not (root / "moved").exists()
    assert [(e.name, e.path, e.target, e.result) for e in console.events] == [
        ("files.mkdir", "docs/new", "", "ok"),
        ("files.rename", "docs/a.txt", "docs/new/b.txt", "ok"),
        ("files.rename", "docs/new", "moved", "ok"),
        ("files.remove", "moved/b.txt", "", "ok"),
        ("files.remove", "moved", "", "ok"),
    ]


async def test_paths_in_the_audit_are_canonical(console: FilesConsole, root: Path, outside: Path) -> None:
    (root / "to-docs").symlink_to("docs")
    await console.mkdir("./to-docs//x/")
    assert (root / "docs" / "x").is_dir()
    assert console.events[-1].path == "docs/x"


async def test_what_remove_expects(console: FilesConsole, root: Path, outside: Path) -> None:
    (root / "full").mkdir()
    (root / "full" / "f").write_text("f")
    (root / "empty").mkdir()
    assert await code_of(console.remove("full")) == FileErrorCode.NOT_EMPTY  # never recursive
    assert await code_of(console.remove("full", Removal.DIRECTORY)) == FileErrorCode.NOT_EMPTY
    assert (
        await code_of(console.remove("empty", Removal.NOT_DIRECTORY)) == FileErrorCode.NOT_A_FILE
    )  # sftp rm
    assert (
        await code_of(console.remove("full/f", Removal.DIRECTORY)) == FileErrorCode.NOT_A_DIRECTORY
    )  # rmdir
    assert await code_of(console.remove("missing")) == FileErrorCode.NOT_FOUND
    assert (root / "full" / "f").read_text() == "f" and (root / "empty").is_dir()
    await console.remove("empty", Removal.DIRECTORY)
    await console.remove("full/f", Removal.NOT_DIRECTORY)
    assert not (root / "empty").exists() and not (root / "full" / "f").exists()
    assert [e.result for e in console.events if e.name == "files.remove"] == [
        "not_empty", "not_empty", "not_a_file", "not_a_directory", "not_found", "ok", "ok",
    ]  # fmt: skip


async def test_mkdir_refusals(console: FilesConsole, root: Path, outside: Path) -> None:
    assert await code_of(console.mkdir("docs")) == FileErrorCode.EXISTS
    assert await code_of(console.mkdir("docs/a.txt")) == FileErrorCode.EXISTS
    assert await code_of(console.mkdir("")) == FileErrorCode.EXISTS  # the root
    assert await code_of(console.mkdir("no/such/parent")) == FileErrorCode.NOT_FOUND
    assert await code_of(console.mkdir("docs/a.txt/x")) == FileErrorCode.NOT_A_DIRECTORY
    assert await code_of(console.mkdir("out-file")) == FileErrorCode.EXISTS  # a link is never followed


async def test_rename_refuses_an_existing_target_unless_told(
    console: FilesConsole, root: Path, outside: Path
) -> None:
    (root / "b.txt").write_text("beta")
    (root / "d1").mkdir()
    (root / "d2").mkdir()
    assert await code_of(console.rename("docs/a.txt", "b.txt")) == FileErrorCode.EXISTS
    assert await code_of(console.rename("d1", "d2")) == FileErrorCode.EXISTS  # an empty directory too
    assert (root / "b.txt").read_text() == "beta" and (root / "docs" / "a.txt").exists()
    await console.rename("docs/a.txt", "b.txt", Overwrite.REPLACE)
    assert (root / "b.txt").read_text() == "alpha"
    await console.rename("d1", "d2", Overwrite.REPLACE)
    assert not (root / "d1").exists() and (root / "d2").is_dir()
    (root / "d3").mkdir()
    (root / "d2" / "keep").write_text("keep")
    assert await code_of(console.rename("d3", "d2", Overwrite.REPLACE)) == FileErrorCode.NOT_EMPTY
    assert await code_of(console.rename("b.txt", "d2", Overwrite.REPLACE)) == FileErrorCode.NOT_A_FILE
    assert await code_of(console.rename("d3", "d3/inner")) == FileErrorCode.INVALID  # into itself
    assert await code_of(console.rename("missing", "x")) == FileErrorCode.NOT_FOUND
    assert await code_of(console.rename("b.txt", "no/such/dir")) == FileErrorCode.NOT_FOUND


async def test_without_renameat2_an_existing_target_is_still_refused(
    console: FilesConsole, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pathguard, "_renameat2", None)
    (root / "b.txt").write_text("beta")
    assert await code_of(console.rename("docs/a.txt", "b.txt")) == FileErrorCode.EXISTS
    await console.rename("docs/a.txt", "c.txt")
    assert (root / "c.txt").read_text() == "alpha"


async def test_the_root_itself_is_never_removed_or_moved(
    console: FilesConsole, root: Path, outside: Path
) -> None:
    for path in ("", ".", "./", "././"):
        assert await code_of(console.remove(path)) == FileErrorCode.PERMISSION_DENIED
    assert await code_of(console.remove("docs/..")) == FileErrorCode.PATH_INVALID
    assert await code_of(console.rename("", "elsewhere")) == FileErrorCode.PERMISSION_DENIED
    assert await code_of(console.rename("docs", "")) == FileErrorCode.PERMISSION_DENIED
    assert await code_of(console.rename("docs", ".", Overwrite.REPLACE)) == FileErrorCode.PERMISSION_DENIED
    assert root.is_dir() and (root / "docs" / "a.txt").exists()


# ------------------------------------------------------------------------------------------- hostile paths

HOSTILE = [
    ("../outside/secret.txt", FileErrorCode.PATH_INVALID),
    ("docs/../../outside/x", FileErrorCode.PATH_INVALID),
    ("/etc/passwd", FileErrorCode.PATH_OUTSIDE_ROOT),
    ("C:/Windows", FileErrorCode.PATH_OUTSIDE_ROOT),
    ("docs/a\0b", FileErrorCode.PATH_INVALID),
    ("docs\\a.txt", FileErrorCode.PATH_INVALID),
    ("out-dir/secret.txt", FileErrorCode.SYMLINK_ESCAPE),
    ("out-dir/sub", FileErrorCode.SYMLINK_ESCAPE),
    ("out-rel/secret.txt", FileErrorCode.SYMLINK_ESCAPE),
    ("out-dir/new", FileErrorCode.SYMLINK_ESCAPE),
]


@pytest.mark.parametrize(("path", "code"), HOSTILE)
async def test_hostile_paths_are_refused_by_every_change(
    console: FilesConsole, root: Path, outside: Path, path: str, code: FileErrorCode
) -> None:
    before = snapshot(outside), snapshot(root)
    attempts: list[Callable[[], object]] = [
        lambda: console.mkdir(path),
        lambda: console.remove(path),
        lambda: console.remove(path, Removal.DIRECTORY),
        lambda: console.rename(path, "docs/got"),  # from outside into the root
        lambda: console.rename("docs/a.txt", path),  # from the root to outside
        lambda: console.rename("docs/a.txt", path, Overwrite.REPLACE),
    ]
    for attempt in attempts:
        assert await code_of(attempt()) == code, attempt
    assert (snapshot(outside), snapshot(root)) == before, "nothing changed, inside or outside"
    assert len(console.events) == len(attempts) and {e.result for e in console.events} == {str(code)}


async def test_a_link_out_of_the_root_is_removed_or_moved_as_a_link(
    console: FilesConsole, root: Path, outside: Path
) -> None:
    await console.rename("out-file", "docs/moved-link")  # the link moves; what it points to stays
    assert os.readlink(root / "docs" / "moved-link") == str(outside / "secret.txt")
    assert await code_of(console.stat("docs/moved-link")) == FileErrorCode.SYMLINK_ESCAPE  # still refused
    await console.remove("docs/moved-link")
    assert await code_of(console.remove("out-dir", Removal.DIRECTORY)) == FileErrorCode.NOT_A_DIRECTORY
    await console.remove("out-dir")
    assert (outside / "secret.txt").read_text() == "secret" and (outside / "sub").is_dir()
    assert not (root / "out-dir").is_symlink()


async def test_rename_onto_a_link_replaces_the_link_never_its_target(
    console: FilesConsole, root: Path, outside: Path
) -> None:
    assert await code_of(console.rename("docs/a.txt", "out-file")) == FileErrorCode.EXISTS
    assert await code_of(console.rename("docs/a.txt", "out-dir")) == FileErrorCode.EXISTS
    await console.rename("docs/a.txt", "out-file", Overwrite.REPLACE)
    assert not (root / "out-file").is_symlink() and (root / "out-file").read_text() == "alpha"
    assert (outside / "secret.txt").read_text() == "secret"
    (root / "d").mkdir()
    assert await code_of(console.rename("d", "out-rel")) == FileErrorCode.EXISTS
    assert await code_of(console.rename("d", "out-rel", Overwrite.REPLACE)) == FileErrorCode.NOT_A_DIRECTORY
    assert (root / "out-rel").is_symlink() and (root / "d").is_dir()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "sub"]


async def test_links_inside_the_root_are_followed_on_the_way(
    console: FilesConsole, root: Path, outside: Path
) -> None:
    (root / "to-docs").symlink_to("docs")
    (root / "docs" / "up").symlink_to("..")  # climbs to the root: still inside
    await console.rename("to-docs/a.txt", "docs/up/top.txt")
    assert (root / "top.txt").read_text() == "alpha"
    assert console.events[-1].path == "docs/a.txt" and console.events[-1].target == "top.txt"


# ------------------------------------------------------------------------------------------- swaps after the check


def swap_after_locate(monkeypatch: pytest.MonkeyPatch, guard_path: str, swap: Callable[[], None]) -> None:
    """Run ``swap`` right after PathGuard.locate checked ``guard_path``: the attacker's race, won."""
    original = PathGuard.locate

    def locate(self: PathGuard, path: str, *, follow_last: bool = True) -> Located:
        where = original(self, path, follow_last=follow_last)
        if path == guard_path:
            swap()
        return where

    monkeypatch.setattr(PathGuard, "locate", locate)


def swap_dir_for_link(directory: Path, target: Path) -> Callable[[], None]:
    def swap() -> None:
        directory.rename(directory.with_name(directory.name + "-old"))
        directory.symlink_to(target)

    return swap


async def test_a_parent_swapped_for_a_link_after_the_check_keeps_every_change_inside(
    console: FilesConsole, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = root / "docs" / "deep"
    deep.mkdir()
    (deep / "victim.txt").write_text("inside")
    (outside / "victim.txt").write_text("outside")

    swap_after_locate(monkeypatch, "docs/deep/new", swap_dir_for_link(deep, outside))
    await console.mkdir("docs/deep/new")
    assert (root / "docs" / "deep-old" / "new").is_dir() and not (outside / "new").exists()

    _reset(root, deep, outside)
    swap_after_locate(monkeypatch, "docs/deep/victim.txt", swap_dir_for_link(deep, outside))
    await console.remove("docs/deep/victim.txt")
    assert not (root / "docs" / "deep-old" / "victim.txt").exists()
    assert (outside / "victim.txt").read_text() == "outside"

    _reset(root, deep, outside)
    swap_after_locate(monkeypatch, "docs/deep/moved.txt", swap_dir_for_link(deep, outside))
    await console.rename("docs/a.txt", "docs/deep/moved.txt")
    assert (root / "docs" / "deep-old" / "moved.txt").read_text() == "alpha"
    assert not (outside / "moved.txt").exists()

    _reset(root, deep, outside)
    (root / "docs" / "deep" / "src.txt").write_text("src")
    swap_after_locate(monkeypatch, "docs/deep/src.txt", swap_dir_for_link(deep, outside))
    await console.rename("docs/deep/src.txt", "docs/pulled.txt")  # cannot pull a file in from outside
    assert (root / "docs" / "pulled.txt").read_text() == "src"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "sub", "victim.txt"]


async def test_an_entry_swapped_for_a_link_is_removed_as_a_link(
    console: FilesConsole, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "docs" / "d").mkdir()

    def swap() -> None:
        (root / "docs" / "d").rmdir()
        (root / "docs" / "d").symlink_to(outside / "sub")

    swap_after_locate(monkeypatch, "docs/d", swap)
    assert await code_of(console.remove("docs/d", Removal.DIRECTORY)) == FileErrorCode.NOT_A_DIRECTORY
    assert (outside / "sub").is_dir(), "rmdir never follows the link to what it points at"


def _reset(root: Path, deep: Path, outside: Path) -> None:
    """Undo a swap: the link goes, the real directory comes back."""
    deep.unlink()
    (root / "docs" / "deep-old").rename(deep)


# ------------------------------------------------------------------------------------------- limits


async def test_changes_count_as_requests_and_are_refused_after_stop(
    console: FilesConsole, root: Path, outside: Path
) -> None:
    await console.close()
    for message in (MakeDir(70, "x"), Remove(71, "docs/a.txt"), Rename(72, "docs/a.txt", "y")):
        reply = await console.request(message)
        assert isinstance(reply, Error) and reply.code == FileErrorCode.CLOSED
    assert (root / "docs" / "a.txt").exists() and not (root / "x").exists()
    assert [e.result for e in console.events] == ["closed"] * 3  # asked for, refused: still audited


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
