"""PathGuard: one canonical check per path; traversal, absolute paths, NUL, backslashes and symbolic links out
of the root are refused — also when a link is swapped in after the check. Pure file system, no event loop."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from steun_agent.files import FilesError, PathGuard, split
from steun_agent.files.pathguard import from_os_error
from steun_agent.files.storage import prepare_upload
from steun_protocol.files import MAX_PATH_BYTES, EntryKind, FileErrorCode, Overwrite


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """root/ with files, a subdirectory and links; outside/ beside it with a secret."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "docs" / "deep").mkdir(parents=True)
    outside.mkdir()
    (root / "docs" / "a.txt").write_text("inside")
    (root / "docs" / "deep" / "b.txt").write_text("deeper")
    (outside / "secret.txt").write_text("secret")
    (root / "to-docs").symlink_to("docs")  # relative, inside
    (root / "abs-inside").symlink_to(root / "docs" / "a.txt")  # absolute, inside
    (root / "docs" / "up").symlink_to("..")  # climbs to the root: still inside
    (root / "escape-rel").symlink_to("../outside/secret.txt")
    (root / "escape-abs").symlink_to(outside / "secret.txt")
    (root / "escape-dir").symlink_to(outside)
    (root / "docs" / "sneaky").symlink_to("../../outside")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    return root, outside


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../outside/secret.txt", FileErrorCode.PATH_INVALID),
        ("docs/../../outside", FileErrorCode.PATH_INVALID),
        ("docs/..", FileErrorCode.PATH_INVALID),
        ("/etc/passwd", FileErrorCode.PATH_OUTSIDE_ROOT),
        ("//etc/passwd", FileErrorCode.PATH_OUTSIDE_ROOT),
        ("C:/Windows/win.ini", FileErrorCode.PATH_OUTSIDE_ROOT),
        ("c:", FileErrorCode.PATH_OUTSIDE_ROOT),
        ("docs\\a.txt", FileErrorCode.PATH_INVALID),
        ("..\\..\\etc\\passwd", FileErrorCode.PATH_INVALID),
        ("docs/a.txt\0.png", FileErrorCode.PATH_INVALID),
        ("a" * (MAX_PATH_BYTES + 1), FileErrorCode.PATH_INVALID),
    ],
)
def test_split_refuses_tricks_with_clear_codes(path: str, code: FileErrorCode) -> None:
    with pytest.raises(FilesError) as caught:
        split(path)
    assert caught.value.code == code
    assert caught.value.message  # a sentence a technician can read


def test_split_is_canonical() -> None:
    assert split("") == ()
    assert split(".") == ()
    assert split("./docs//a.txt/") == ("docs", "a.txt")
    assert split("c:d/e") == ("c:d", "e")  # a colon is an ordinary character on POSIX
    assert split("...") == ("...",)


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("docs/a.txt", "inside"),
        ("to-docs/a.txt", "inside"),
        ("abs-inside", "inside"),
        ("docs/up/docs/deep/b.txt", "deeper"),
        ("to-docs/up/to-docs/deep/b.txt", "deeper"),
    ],
)
def test_links_inside_the_root_are_followed(tree: tuple[Path, Path], path: str, content: str) -> None:
    guard = PathGuard(tree[0])
    fd, _, _ = guard.open_file(path)
    try:
        assert os.read(fd, 100).decode() == content
    finally:
        os.close(fd)
        guard.close()


@pytest.mark.parametrize(
    "path",
    [
        "escape-rel",
        "escape-abs",
        "escape-dir/secret.txt",
        "docs/sneaky/secret.txt",
        "docs/up/escape-dir/secret.txt",
    ],
)
def test_links_out_of_the_root_are_refused(tree: tuple[Path, Path], path: str) -> None:
    guard = PathGuard(tree[0])
    for attempt in (
        lambda: guard.open_file(path),
        lambda: guard.stat(path),
        lambda: list(guard.list_dir(path, 10)),
    ):
        with pytest.raises(FilesError) as caught:
            attempt()
        assert caught.value.code == FileErrorCode.SYMLINK_ESCAPE, path
    guard.close()


def test_link_loops_end(tree: tuple[Path, Path]) -> None:
    with pytest.raises(FilesError) as caught:
        PathGuard(tree[0]).open_file("loop1")
    assert caught.value.code == FileErrorCode.SYMLINK_ESCAPE


def test_a_root_reached_through_a_link_is_its_real_path(tree: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "root-link").symlink_to(tree[0])
    guard = PathGuard(tmp_path / "root-link")
    fd, _, _ = guard.open_file("abs-inside")  # an absolute link under the real root is inside
    os.close(fd)
    assert guard.root == str(tree[0])


def test_special_files_are_not_opened(tree: tuple[Path, Path]) -> None:
    root = tree[0]
    os.mkfifo(root / "fifo")
    guard = PathGuard(root)
    for path, code in [
        ("fifo", FileErrorCode.NOT_A_FILE),
        ("docs", FileErrorCode.NOT_A_FILE),
        ("", FileErrorCode.NOT_A_FILE),
        ("nope", FileErrorCode.NOT_FOUND),
        ("nope/a", FileErrorCode.NOT_FOUND),
        ("docs/a.txt/x", FileErrorCode.NOT_A_DIRECTORY),
    ]:
        with pytest.raises(FilesError) as caught:
            guard.open_file(path)  # a FIFO must not block the open
        assert caught.value.code == code, path


def test_stat_and_listing(tree: tuple[Path, Path]) -> None:
    guard = PathGuard(tree[0])
    assert guard.stat("").kind is EntryKind.DIRECTORY and guard.stat("").name == ""
    entry = guard.stat("to-docs/a.txt")
    assert (entry.name, entry.kind, entry.size) == ("a.txt", EntryKind.FILE, 6)
    listing = {e.name: e for e in guard.list_dir("", 100)}
    assert listing["docs"].kind is EntryKind.DIRECTORY
    assert listing["escape-abs"].kind is EntryKind.SYMLINK  # listed, as what it is; not followed
    assert len(list(guard.list_dir("", 3))) == 3


def test_a_file_swapped_for_a_link_after_the_check_is_refused(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    guard = PathGuard(root)
    where = guard.locate("docs/a.txt")
    os.unlink(root / "docs" / "a.txt")
    os.symlink(outside / "secret.txt", root / "docs" / "a.txt")  # the attacker's swap
    with pytest.raises(FilesError) as caught:
        guard.open_at(where, os.O_RDONLY)
    assert caught.value.code == FileErrorCode.SYMLINK_ESCAPE
    where.close()


def test_a_directory_swapped_for_a_link_after_the_check_is_not_followed(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (outside / "b.txt").write_text("outside")
    guard = PathGuard(root)
    where = guard.locate("docs/deep/b.txt")
    os.rename(root / "docs" / "deep", root / "docs" / "deep-old")
    os.symlink(outside, root / "docs" / "deep")
    fd = guard.open_at(where, os.O_RDONLY)  # through the directory that was checked, held open
    try:
        assert os.read(fd, 100) == b"deeper"
    finally:
        os.close(fd)
        where.close()
    with pytest.raises(FilesError) as caught:  # asked again, the new link is seen for what it is
        guard.open_file("docs/deep/b.txt")
    assert caught.value.code == FileErrorCode.SYMLINK_ESCAPE


def test_an_upload_whose_directory_is_swapped_lands_inside(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    guard = PathGuard(root)
    upload = prepare_upload(
        guard.locate("docs/deep/new.txt"), size=2, sha256=None, overwrite=Overwrite.FAIL, resume=False
    )
    os.rename(root / "docs" / "deep", root / "docs" / "deep-old")
    os.symlink(outside, root / "docs" / "deep")
    upload.write(0, b"hi")
    upload.commit(0)
    assert (root / "docs" / "deep-old" / "new.txt").read_text() == "hi"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_an_upload_onto_a_link_out_of_the_root_is_refused(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    guard = PathGuard(root)
    with pytest.raises(FilesError) as caught:
        prepare_upload(
            guard.locate("escape-abs"), size=1, sha256=None, overwrite=Overwrite.REPLACE, resume=True
        )
    assert caught.value.code == FileErrorCode.SYMLINK_ESCAPE
    assert (outside / "secret.txt").read_text() == "secret"


def test_a_hard_link_planted_as_the_partial_is_never_written_through(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    guard = PathGuard(root)
    probe = prepare_upload(
        guard.locate("docs/new.bin"), size=3, sha256=None, overwrite=Overwrite.FAIL, resume=True
    )
    partial = probe.partial
    probe.discard()
    os.link(outside / "secret.txt", root / "docs" / partial)  # the planted name, same file system
    upload = prepare_upload(
        guard.locate("docs/new.bin"), size=3, sha256=None, overwrite=Overwrite.FAIL, resume=True
    )
    assert upload.offset == 0
    upload.write(0, b"new")
    upload.commit(0)
    assert (outside / "secret.txt").read_text() == "secret"
    assert (root / "docs" / "new.bin").read_text() == "new"


def test_os_errors_map_to_stable_codes() -> None:
    cases = {
        errno.ENOENT: FileErrorCode.NOT_FOUND,
        errno.EACCES: FileErrorCode.PERMISSION_DENIED,
        errno.ENOSPC: FileErrorCode.NO_SPACE,
        errno.ELOOP: FileErrorCode.SYMLINK_ESCAPE,
        errno.EIO: FileErrorCode.IO_ERROR,
    }
    for number, code in cases.items():
        assert from_os_error(OSError(number, os.strerror(number)), "x").code == code


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_files_are_permission_denied(tree: tuple[Path, Path]) -> None:
    locked = tree[0] / "docs" / "locked"
    locked.write_text("no")
    locked.chmod(0)
    with pytest.raises(FilesError) as caught:
        PathGuard(tree[0]).open_file("docs/locked")
    assert caught.value.code == FileErrorCode.PERMISSION_DENIED


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another account")
def test_unreadable_files_are_permission_denied_for_an_ordinary_account() -> None:
    # What the account can read is the limit: run the guard as 'nobody' against files only root may read.
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        base.chmod(0o755)
        (base / "locked").write_text("no")
        (base / "locked").chmod(0o600)
        (base / "private").mkdir(mode=0o700)
        codes = _as_nobody(
            lambda: [
                _code(lambda: PathGuard(base).open_file("locked")),
                _code(lambda: PathGuard(base).open_file("private/x")),
                _code(lambda: list(PathGuard(base).list_dir("private", 9))),
            ]
        )
        assert codes == ["permission_denied"] * 3
    finally:
        shutil.rmtree(base)


def _code(attempt: Callable[[], object]) -> str:
    try:
        attempt()
    except FilesError as exc:
        return str(exc.code)
    return "allowed"


def _as_nobody(work: Callable[[], list[str]]) -> list[str]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, " ".join(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        out = pipe.read().decode()
    os.waitpid(pid, 0)
    return out.split()
