"""The Files tab in real Chromium against the real server, the real relay and the real agent runtime.

An agent is enrolled with a real token and runs ``Runtime`` with its ``SessionCapability`` in this process
(consent answered by ``ScriptedUI``, files rooted in a folder the test made). The technician signs in,
requests control on the device page, opens the Files tab and asks for files; everything after that goes
through the console's own code: its codec (``session/filesproto.ts``), its SHA-256, its save and upload paths.

The save dialog (``showSaveFilePicker``) needs a user gesture and a native dialog, so the tests start the page
with ``window.__steunTestHooks = true``: ``window.__steunFiles.downloadTarget = "opfs"`` then sends downloads
into the origin-private file system, and ``opfsSha256(name)`` reads a saved file's hash back. The same hook
types paths (``navigate``, ``download``) and lists the transfers. Nothing of Steun is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Locator, Page, expect
from steun_agent.session import SessionCapability
from steun_protocol import files
from steun_protocol.errors import ProtocolError

from tests.session_agent.fakes import ScriptedUI
from tests.support.real_agent import RealAgent, real_agent
from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for

from .conftest import PageErrors
from .helpers import sign_in_as_admin

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

MiB = 1024 * 1024
#: How long a transfer of tens of MiB may take on a loaded two-core machine (scaled).
TRANSFER_TIMEOUT_MS = scaled(120) * 1000
#: Big enough that a click lands while the transfer is still running.
SLOW_SIZE = 160 * MiB


@dataclass
class Device:
    agent: RealAgent
    root: Path

    @property
    def device_id(self) -> str:
        return self.agent.device_id

    @property
    def sessions(self) -> SessionCapability:
        return self.agent.sessions

    @property
    def ui(self) -> ScriptedUI:
        return self.agent.ui

    @property
    def refused_records(self) -> int:
        runner: Any = self.sessions.runner
        return int(runner.outcome.refused_records) if runner is not None else 0


@contextlib.asynccontextmanager
async def running_agent(server: RunningServer, tmp_path: Path, answers: list[str]) -> AsyncIterator[Device]:
    """An enrolled agent whose files are rooted in tmp_path/home; consent answered from ``answers``."""
    root = tmp_path / "home"
    root.mkdir()
    async with real_agent(
        server, tmp_path / "agent-state", answers=answers, files_root=root, hostname="pc-bestanden"
    ) as agent:
        yield Device(agent, root)


@pytest.fixture
async def tab(context: BrowserContext, server: RunningServer, page_errors: PageErrors) -> AsyncIterator[Page]:
    """A signed-out console page with the files test hook switched on."""
    await context.add_init_script("window.__steunTestHooks = true;")
    page = page_errors.watch(await context.new_page())
    await page.goto(server.url + "/")
    yield page
    await page.close()
    assert page_errors.errors == [], f"uncaught errors in the page: {page_errors.errors}"


async def open_session(
    page: Page, server: RunningServer, device: Device, *, ask_files: bool = True
) -> Locator:
    """Sign in, request control on the device page, open the Files tab (and ask for files); the panel."""
    await sign_in_as_admin(page, server)
    await page.goto(f"{server.url}/#/devices/{device.device_id}")
    card = page.locator("section").filter(has=page.get_by_role("heading", name="Remote support"))
    await card.get_by_label("Reason").fill("Copy the printer logs")
    await card.get_by_role("button", name="Request control").click()
    await expect(page).to_have_url(re.compile(r"#/sessions/[A-Za-z0-9_-]+$"))
    files_tab = page.get_by_role("tab", name="Files")
    await expect(files_tab).to_be_visible(timeout=scaled(30) * 1000)
    await files_tab.click()
    panel = page.get_by_test_id("files-panel")
    if ask_files:
        await page.get_by_role("button", name="Ask for access to files").click()
        await expect(panel).to_be_visible(timeout=scaled(30) * 1000)
        await page.evaluate("window.__steunFiles.downloadTarget = 'opfs'")
    return panel


def transfer(page: Page, name: str) -> Locator:
    return page.get_by_test_id("transfer").filter(has_text=name)


async def transfer_info(page: Page, name: str) -> dict[str, Any]:
    infos: list[dict[str, Any]] = await page.evaluate("() => window.__steunFiles.transfers()")
    return next(i for i in infos if i["name"] == name)


async def wait_progress(page: Page, name: str, at_least: int) -> dict[str, Any]:
    async def moved() -> dict[str, Any] | None:
        info = await transfer_info(page, name)
        return info if info["done"] >= at_least and info["state"] == "running" else None

    return await wait_for(moved, timeout=60, interval=0.01, what=f"{name} under way")


async def opfs_sha256(page: Page, name: str) -> str | None:
    digest: str | None = await page.evaluate("name => window.__steunFiles.opfsSha256(name)", name)
    return digest


async def opfs_names(page: Page) -> list[str]:
    names: list[str] = await page.evaluate("() => window.__steunFiles.opfsNames()")
    return names


def write_random(path: Path, size: int) -> str:
    """Write ``size`` random bytes (in blocks: never the whole file in memory); their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MiB))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".steunpart"))


# --------------------------------------------------------------------------------------------- browse, get, put


async def test_browse_download_and_upload(tab: Page, server: RunningServer, tmp_path: Path) -> None:
    page = tab
    async with running_agent(server, tmp_path, ["accept", "accept"]) as device:
        root = device.root
        docs = root / "Mes documents"
        docs.mkdir()
        (docs / "facture été 2024.pdf").write_bytes(b"%PDF-1.4 " + bytes(5000))
        (docs / "notes.txt").write_text("bonjour\n", encoding="utf-8")
        (root / "Bureau").mkdir()
        (root / "a small file.txt").write_bytes(b"x" * 10)
        big_sha = await asyncio.to_thread(write_random, root / "grand fichier é.bin", 20 * MiB)
        os.utime(root / "a small file.txt", (1_600_000_000, 1_600_000_000))

        panel = await open_session(page, server, device)
        # consent was asked twice: the session (view, control), then files from the Files tab
        assert [sorted(c.value for c in p.capabilities) for p in device.ui.prompts] == [
            ["control", "view"],
            ["files"],
        ]

        # the root lists itself: folders first, names with accents and spaces shown as they are
        rows = panel.locator("tr.files-row")
        await expect(rows).to_have_count(4)
        names = rows.locator("td.files-name")
        await expect(names).to_have_text(
            [re.compile(r"Bureau$"), re.compile(r"Mes documents$"), re.compile(r"a small file\.txt$"),
             re.compile(r"grand fichier é\.bin$")]
        )  # fmt: skip
        big_row = rows.filter(has_text="grand fichier é.bin")
        await expect(big_row).to_contain_text("20 MB")
        # sorting by size, largest first (folders stay on top)
        await panel.get_by_role("button", name="Size", exact=True).click()
        await expect(names.nth(2)).to_have_text(re.compile(r"grand fichier é\.bin$"))
        await panel.get_by_role("button", name="Name", exact=True).click()

        # into a folder, the breadcrumb, and back up
        await panel.get_by_role("button", name="Mes documents", exact=True).click()
        await expect(panel.get_by_role("navigation", name="Folder path")).to_contain_text("Mes documents")
        await expect(rows).to_have_count(2)
        await expect(rows.filter(has_text="facture été 2024.pdf")).to_contain_text("4.9 KB")
        assert await page.evaluate("() => window.__steunFiles.cwd()") == "Mes documents"
        await panel.get_by_role("button", name="Up", exact=True).click()
        await expect(rows).to_have_count(4)

        # download 20 MiB: streamed into a file, SHA-256 checked by the console against the agent's
        await big_row.get_by_role("button", name="Download grand fichier é.bin").click()
        row = transfer(page, "grand fichier é.bin")
        await expect(row).to_have_attribute("data-state", "done", timeout=TRANSFER_TIMEOUT_MS)
        await expect(row).to_contain_text("SHA-256 checked")
        assert await opfs_sha256(page, "grand fichier é.bin") == big_sha
        assert (await transfer_info(page, "grand fichier é.bin"))["sha256"] == big_sha

        # upload 20 MiB through the file input; the agent moves it into place only once the hashes match
        source = tmp_path / "rapport van de printer.bin"
        source_sha = await asyncio.to_thread(write_random, source, 20 * MiB + 123)
        await panel.locator("input[type=file]").set_input_files(source)
        row = transfer(page, "rapport van de printer.bin")
        await expect(row).to_have_attribute("data-state", "done", timeout=TRANSFER_TIMEOUT_MS)
        landed = root / "rapport van de printer.bin"
        assert await asyncio.to_thread(sha256_of, landed) == source_sha
        assert partials(root) == []
        await expect(rows.filter(has_text="rapport van de printer.bin")).to_have_count(1)  # listing refreshed

        # the same name again: refused as existing, then replaced on request
        await panel.locator("input[type=file]").set_input_files(
            files=[{"name": "a small file.txt", "mimeType": "text/plain", "buffer": b"new content \xc3\xa9"}]
        )
        row = transfer(page, "a small file.txt")
        await expect(row).to_have_attribute("data-state", "failed")
        await expect(row).to_contain_text("A file with this name already exists on the device.")
        await row.get_by_role("button", name="Replace the existing file").click()
        await expect(row).to_have_attribute("data-state", "done")
        assert (root / "a small file.txt").read_bytes() == b"new content \xc3\xa9"

        # drag and drop a file onto the panel
        drop = await page.evaluate_handle(
            """() => {
              const data = new DataTransfer();
              data.items.add(new File([new TextEncoder().encode("déposé\\n")], "déposé ici.txt"));
              return data;
            }"""
        )
        for event in ("dragenter", "dragover", "drop"):
            await panel.dispatch_event(event, {"dataTransfer": drop})
        await expect(transfer(page, "déposé ici.txt")).to_have_attribute("data-state", "done")
        assert (root / "déposé ici.txt").read_text("utf-8") == "déposé\n"


async def test_several_transfers_pause_and_resume(tab: Page, server: RunningServer, tmp_path: Path) -> None:
    """Three downloads at once; one is paused mid-way and resumed with an offset (the hash still matches)."""
    page = tab
    async with running_agent(server, tmp_path, ["accept", "accept"]) as device:
        big = device.root / "groot.bin"
        big_sha = await asyncio.to_thread(write_random, big, SLOW_SIZE)
        small = {f"klein {i}.bin": os.urandom(3 * MiB + i) for i in range(2)}
        for name, data in small.items():
            (device.root / name).write_bytes(data)
        panel = await open_session(page, server, device)
        await expect(panel.locator("tr.files-row")).to_have_count(3)

        # the big one's credit is held back, so it is still in flight when Pause is clicked (however fast
        # or loaded the machine); the small ones run beside it
        await page.evaluate("() => window.__steunFiles.holdCredit('groot.bin')")
        await panel.get_by_role("button", name="Download groot.bin").click()
        for name in small:
            await panel.get_by_role("button", name=f"Download {name}").click()
        row = transfer(page, "groot.bin")
        await wait_progress(page, "groot.bin", 1)
        await row.get_by_role("button", name="Pause").click()
        await page.evaluate("() => window.__steunFiles.holdCredit(null)")
        await expect(row).to_have_attribute("data-state", "paused")
        paused_at = (await transfer_info(page, "groot.bin"))["done"]
        assert 0 < paused_at < SLOW_SIZE, paused_at
        await expect(row).to_contain_text("of 160 MB")
        for name, data in small.items():
            await expect(transfer(page, name)).to_have_attribute(
                "data-state", "done", timeout=TRANSFER_TIMEOUT_MS
            )
            assert await opfs_sha256(page, name) == hashlib.sha256(data).hexdigest()

        await row.get_by_role("button", name="Resume").click()
        await expect(row).to_have_attribute("data-state", "done", timeout=TRANSFER_TIMEOUT_MS)
        assert await opfs_sha256(page, "groot.bin") == big_sha


# --------------------------------------------------------------------------------------------- cancel


async def test_cancel_mid_way_leaves_no_partial_file(
    tab: Page, server: RunningServer, tmp_path: Path
) -> None:
    page = tab
    async with running_agent(server, tmp_path, ["accept", "accept"]) as device:
        await asyncio.to_thread(write_random, device.root / "weg ermee.bin", SLOW_SIZE)
        panel = await open_session(page, server, device)
        await expect(panel.locator("tr.files-row")).to_have_count(1)

        # a download cancelled mid-way: nothing under its name on this side (held in flight for the click)
        await page.evaluate("() => window.__steunFiles.holdCredit('weg ermee.bin')")
        await panel.get_by_role("button", name="Download weg ermee.bin").click()
        row = transfer(page, "weg ermee.bin")
        await wait_progress(page, "weg ermee.bin", 1)
        await row.get_by_role("button", name="Cancel").click()
        await page.evaluate("() => window.__steunFiles.holdCredit(null)")
        await expect(row).to_have_attribute("data-state", "cancelled")
        info = await transfer_info(page, "weg ermee.bin")
        assert 0 < info["done"] < SLOW_SIZE, info
        await wait_for(
            lambda: _absent(page, "weg ermee.bin"), timeout=20, what="the cancelled download's file to go"
        )

        # an upload cancelled mid-way: the agent deletes its partial, the target never appears
        source = tmp_path / "upload annulé.bin"
        await asyncio.to_thread(write_random, source, SLOW_SIZE)
        await page.evaluate("() => window.__steunFiles.holdCredit('upload annulé.bin')")
        await panel.locator("input[type=file]").set_input_files(source)
        row = transfer(page, "upload annulé.bin")
        await wait_progress(page, "upload annulé.bin", 1)
        await row.get_by_role("button", name="Cancel").click()
        await page.evaluate("() => window.__steunFiles.holdCredit(null)")
        await expect(row).to_have_attribute("data-state", "cancelled")
        info = await transfer_info(page, "upload annulé.bin")
        assert info["done"] < SLOW_SIZE, info
        await wait_for(lambda: partials(device.root) == [], timeout=20, what="the partial upload to go")
        assert not (device.root / "upload annulé.bin").exists()
        assert sorted(p.name for p in device.root.iterdir()) == ["weg ermee.bin"]


async def _absent(page: Page, name: str) -> bool:
    return name not in await opfs_names(page)


# --------------------------------------------------------------------------------------------- refusals


async def test_paths_outside_the_root_are_refused_in_words(
    tab: Page, server: RunningServer, tmp_path: Path
) -> None:
    page = tab
    async with running_agent(server, tmp_path, ["accept", "accept"]) as device:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_text("not for the technician")
        (device.root / "naar buiten").symlink_to(outside)
        (device.root / "gewoon.txt").write_text("ok")
        panel = await open_session(page, server, device)
        await expect(panel.locator("tr.files-row")).to_have_count(2)
        error = panel.get_by_test_id("files-error")

        # ".." typed through the hook: the agent refuses it, the console says why
        await page.evaluate("() => window.__steunFiles.navigate('../outside')")
        await expect(error).to_have_attribute("data-code", "path_invalid")
        await expect(error).to_contain_text("This path is not allowed")
        assert await page.evaluate("() => window.__steunFiles.cwd()") == ""

        # an absolute path typed in the "Go to folder" field
        await panel.get_by_label("Go to folder").fill(str(outside))
        await panel.get_by_role("button", name="Go", exact=True).click()
        await expect(error).to_have_attribute("data-code", "path_outside_root")
        await expect(error).to_contain_text("outside the folder the device shares")

        # a link inside the root that leads out of it
        await panel.get_by_role("button", name="naar buiten", exact=True).click()
        await expect(error).to_have_attribute("data-code", "symlink_escape")
        await expect(error).to_contain_text("A link on this path leads outside the shared folder.")

        # a download of "../outside/secret.txt": refused, nothing saved
        await page.evaluate("() => window.__steunFiles.download('../outside/secret.txt', 'secret.txt')")
        row = transfer(page, "secret.txt")
        await expect(row).to_have_attribute("data-state", "failed")
        await expect(row.locator(".files-transfer-status")).to_have_attribute("data-code", "path_invalid")
        await expect(row).to_contain_text("This path is not allowed")
        await wait_for(lambda: _absent(page, "secret.txt"), timeout=10, what="no secret.txt saved")

        # the same in Dutch
        await page.get_by_label("Language").first.select_option("nl")
        await expect(row).to_contain_text("Dit pad is niet toegestaan")
        await expect(error).to_contain_text("Een koppeling op dit pad leidt buiten de gedeelde map.")


async def test_files_not_granted(tab: Page, server: RunningServer, tmp_path: Path) -> None:
    """Without ``files`` the tab only offers to ask; a FILES record sent anyway is refused by the agent."""
    page = tab
    async with running_agent(server, tmp_path, ["accept"]) as device:
        (device.root / "privé.txt").write_text("niet delen")
        panel = await open_session(page, server, device, ask_files=False)
        await expect(page.get_by_role("button", name="Ask for access to files")).to_be_visible()
        await expect(panel).to_be_hidden()
        before = device.refused_records
        await page.evaluate("() => window.__steunFiles.navigate('')")
        await wait_for(
            lambda: device.refused_records > before, timeout=15, what="the agent to refuse the FILES record"
        )
        await expect(page.get_by_text("The device refused a request: not_granted")).to_be_visible()
        await expect(panel).to_be_hidden()
        assert await page.evaluate("() => window.__steunFiles.names()") == []
        runner: Any = device.sessions.runner
        assert runner.files is None  # no files service was ever made


# --------------------------------------------------------------------------------------------- changes


def _tree(root: Path) -> dict[str, str]:
    """What is on the agent's disk below ``root``: each relative path, "dir" or the file's text."""
    return {
        p.relative_to(root).as_posix(): "dir" if p.is_dir() else p.read_text("utf-8")
        for p in sorted(root.rglob("*"))
    }


async def test_new_folder_rename_and_delete(tab: Page, server: RunningServer, tmp_path: Path) -> None:
    """New folder, rename (into a folder, onto an existing name, to "..") and delete, through the inline
    editors of the listing, checked on the agent's disk after each step."""
    page = tab
    async with running_agent(server, tmp_path, ["accept", "accept"]) as device:
        root = device.root
        (root / "rapport.txt").write_text("printer log\n", encoding="utf-8")
        (root / "oud.txt").write_text("oud\n", encoding="utf-8")
        (root / "bestaand.txt").write_text("bestaand\n", encoding="utf-8")
        panel = await open_session(page, server, device)
        rows = panel.locator("tr.files-row")
        await expect(rows).to_have_count(3)
        problem = panel.get_by_test_id("files-op-error")
        confirm = panel.get_by_test_id("files-delete-confirm")
        editor = panel.get_by_test_id("files-rename")
        language = page.locator("select[name=language]").first

        # a new folder, named in an input inside the listing (not a browser prompt)
        await panel.get_by_role("button", name="New folder", exact=True).click()
        folder_name = panel.get_by_label("Name of the new folder")
        await expect(folder_name).to_be_focused()
        await expect(folder_name).to_have_value("New folder")
        await folder_name.fill("Nieuwe map é")
        await folder_name.press("Enter")
        open_folder = panel.get_by_role("button", name="Nieuwe map é", exact=True)
        await expect(open_folder).to_be_focused()  # the new folder's row, once listed again
        await expect(rows).to_have_count(4)
        await expect(panel.get_by_role("status")).to_have_text("Folder “Nieuwe map é” created.")
        assert _tree(root) == {
            "Nieuwe map é": "dir",
            "bestaand.txt": "bestaand\n",
            "oud.txt": "oud\n",
            "rapport.txt": "printer log\n",
        }

        # rename a file into it: the name typed is relative to the folder on show
        await panel.get_by_role("button", name="Rename rapport.txt").click()
        new_name = panel.get_by_label("New name for “rapport.txt”")
        await expect(new_name).to_be_focused()
        await expect(new_name).to_have_value("rapport.txt")
        await new_name.fill("Nieuwe map é/rapport.txt")
        await new_name.press("Enter")
        await expect(rows).to_have_count(3)
        await expect(rows.filter(has_text="rapport.txt")).to_have_count(0)
        assert _tree(root) == {
            "Nieuwe map é": "dir",
            "Nieuwe map é/rapport.txt": "printer log\n",
            "bestaand.txt": "bestaand\n",
            "oud.txt": "oud\n",
        }

        # a folder that is not empty is not deleted (never recursively): said in words, in three languages
        await panel.get_by_role("button", name="Delete Nieuwe map é").click()
        await expect(confirm).to_contain_text("Delete the folder “Nieuwe map é” from the device?")
        await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
        await confirm.get_by_role("button", name="Delete", exact=True).click()
        await expect(problem).to_have_attribute("data-code", "not_empty")
        await expect(problem).to_contain_text("“Nieuwe map é” was not deleted. The folder is not empty")
        assert (root / "Nieuwe map é" / "rapport.txt").read_text("utf-8") == "printer log\n"
        await language.select_option("nl")
        await expect(problem).to_contain_text("“Nieuwe map é” is niet verwijderd. De map is niet leeg")
        await language.select_option("fr")
        await expect(problem).to_contain_text(
            "« Nieuwe map é » n’a pas été supprimé. Le dossier n’est pas vide"
        )
        await language.select_option("en")
        await expect(rows).to_have_count(3)  # the folder is still listed
        await confirm.get_by_role("button", name="Cancel").click()
        await expect(confirm).to_have_count(0)
        await expect(panel.get_by_role("button", name="Delete Nieuwe map é")).to_be_focused()

        # inside it: delete the file (the confirmation names it), then the folder, empty now
        await open_folder.click()
        await expect(rows).to_have_count(1)
        await panel.get_by_role("button", name="Delete rapport.txt").click()
        await expect(confirm).to_contain_text("Delete the file “rapport.txt” from the device?")
        await confirm.get_by_role("button", name="Delete", exact=True).click()
        await expect(panel.get_by_text("This folder is empty.")).to_be_visible()
        await expect(rows).to_have_count(0)
        assert _tree(root / "Nieuwe map é") == {}
        await panel.get_by_role("button", name="Up", exact=True).click()
        await expect(rows).to_have_count(3)
        await panel.get_by_role("button", name="Delete Nieuwe map é").click()
        await confirm.get_by_role("button", name="Delete", exact=True).click()
        await expect(rows).to_have_count(2)
        await expect(panel.get_by_role("button", name="Delete bestaand.txt")).to_be_focused()  # the next row
        assert _tree(root) == {"bestaand.txt": "bestaand\n", "oud.txt": "oud\n"}

        # a rename onto an existing name asks first; Replace sends it again, replacing
        await panel.get_by_role("button", name="Rename oud.txt").click()
        new_name = panel.get_by_label("New name for “oud.txt”")
        await new_name.fill("bestaand.txt")
        await new_name.press("Enter")
        await expect(editor).to_contain_text("“bestaand.txt” already exists here. Replace it?")
        replace = editor.get_by_role("button", name="Replace", exact=True)
        await expect(replace).to_be_focused()
        assert _tree(root) == {"bestaand.txt": "bestaand\n", "oud.txt": "oud\n"}
        await replace.click()
        await expect(rows).to_have_count(1)
        await expect(panel.get_by_role("button", name="Rename bestaand.txt")).to_be_focused()
        assert _tree(root) == {"bestaand.txt": "oud\n"}

        # ".." typed as the new name: the agent refuses it, the console says why, nothing moves
        await panel.get_by_role("button", name="Rename bestaand.txt").click()
        new_name = panel.get_by_label("New name for “bestaand.txt”")
        await new_name.fill("../ontsnapt.txt")
        await new_name.press("Enter")
        await expect(problem).to_have_attribute("data-code", "path_invalid")
        await expect(problem).to_contain_text("“bestaand.txt” was not renamed. This path is not allowed")
        assert _tree(root) == {"bestaand.txt": "oud\n"}
        assert not (tmp_path / "ontsnapt.txt").exists()
        # Escape closes the editor; the focus goes back to the button that opened it
        await expect(new_name).to_be_focused()
        await new_name.press("Escape")
        await expect(editor).to_have_count(0)
        await expect(panel.get_by_role("button", name="Rename bestaand.txt")).to_be_focused()

        # a new folder under a name that exists: refused in words; Escape goes back to "New folder"
        await panel.get_by_role("button", name="New folder", exact=True).click()
        await folder_name.fill("bestaand.txt")
        await folder_name.press("Enter")
        await expect(problem).to_have_attribute("data-code", "exists")
        await expect(problem).to_contain_text(
            "The folder was not created. Something with this name already exists here."
        )
        await folder_name.press("Escape")
        await expect(panel.get_by_role("button", name="New folder", exact=True)).to_be_focused()
        assert _tree(root) == {"bestaand.txt": "oud\n"}


# --------------------------------------------------------------------------------------------- the codec


def _vectors() -> list[files.FilesMessage]:
    digest = hashlib.sha256(b"steun").digest()
    entry = files.Entry("facture été.pdf", files.EntryKind.FILE, 2**53 - 1, 1_700_000_000.25, 0o644)
    lossy = files.Entry("\ufffd.bin", files.EntryKind.OTHER, 0, 0.0, 0o7777, name_lossy=True)
    long_name = files.Entry("é" * 600, files.EntryKind.DIRECTORY, 0, -1.5, 0o755)  # cut to 1024 bytes
    return [
        files.ListDir(1, ""),
        files.ListDir(0xFFFFFFFF, "Mes documents/été"),
        files.Stat(2, "a/b"),
        files.Download(3, "x.bin", 0, 1),
        files.Download(4, "y", 2**53 - 1, files.MAX_WINDOW),
        files.Upload(5, "up.bin", 10, None, files.Overwrite.FAIL, False, 0.0),
        files.Upload(6, "up é.bin", 2**40, digest, files.Overwrite.REPLACE, True, 1_700_000_000.5),
        files.Finish(7, digest),
        files.MakeDir(8, "nieuw"),
        files.Remove(9, "weg", files.Removal.DIRECTORY),
        files.Rename(10, "oud.txt", "nieuw é.txt", files.Overwrite.REPLACE),
        files.Chunk(11, 0, b"\x00"),
        files.Chunk(12, 2**50, os.urandom(files.MAX_CHUNK)),
        files.Credit(13, 0xFFFFFFFF),
        files.Cancel(14),
        files.Entries(15, (), last=True),
        files.Entries(16, (entry, lossy, long_name), last=False, truncated=True),
        files.StatResult(17, entry),
        files.DownloadMeta(18, 100, 1.5, 40, None),
        files.DownloadMeta(19, 2**53 - 1, 0.0, 2**53 - 1, digest),
        files.DownloadEnd(20, digest),
        files.UploadReady(21, 7, files.DEFAULT_WINDOW),
        files.UploadDone(22, digest),
        files.Done(23),
        files.Error(24, "path_invalid", "“..” is not allowed " + "é" * 600),
    ]


def _malformed() -> list[bytes]:
    good = files.encode(files.ListDir(1, "abc"))
    meta = files.encode(files.DownloadMeta(2, 100, 0.0, 0, None))
    chunk = files.encode(files.Chunk(3, 0, b"abc"))
    upload = files.encode(files.Upload(4, "p", 1, None))
    error = files.encode(files.Error(5, "not_found", "x"))
    entries = files.encode(files.Entries(6, (files.Entry("n", files.EntryKind.FILE),)))
    return [
        b"",
        b"\x01",
        b"\x01\x00\x00\x00\x01",  # LIST without its path length
        good[:-1],  # path truncated
        good + b"\x00",  # trailing byte
        b"\x7f\x00\x00\x00\x01",  # unknown type
        struct.pack("!BIH", 0x01, 1, 5000) + b"a" * 5000,  # path too long
        struct.pack("!BIH", 0x01, 1, 2) + b"\xc3\x28",  # not UTF-8
        meta[:5] + struct.pack("!Q", 2**53) + meta[13:],  # size beyond 2^53 - 1
        meta[:5] + meta[5:13] + struct.pack("!d", math.nan) + meta[21:],  # NaN mtime
        meta[:29] + b"\x02" + meta[30:],  # meta flags
        meta[:29] + b"\x00" + meta[30:-1] + b"\x01",  # a hash without its flag
        chunk[:13] + struct.pack("!I", 0),  # empty chunk
        chunk[:13] + struct.pack("!I", files.MAX_CHUNK + 1) + chunk[17:],  # chunk over its cap
        upload[:21] + b"\x04" + upload[22:],  # upload flags
        upload[:22] + b"\x02" + upload[23:],  # overwrite policy
        error[:5] + b"\x00" + error[6:],  # empty error code
        error[:6] + b"NOT_FOUND" + error[15:],  # code outside [a-z_]
        entries[:8] + b"\x09" + entries[9:],  # unknown entry kind
        entries[:5] + struct.pack("!BH", 1, 257) + entries[8:],  # too many entries in a page
        struct.pack("!BIB", 0x07, 1, 3) + struct.pack("!H", 1) + b"x",  # unknown removal
    ]


def _python_decode(data: bytes) -> str:
    try:
        return files.encode(files.decode(data)).hex()
    except ProtocolError as exc:
        return f"error:{exc.code}"


async def test_codec_is_byte_exact_with_python(tab: Page) -> None:
    """Every message type, encoded by steun_protocol, decodes and re-encodes to the same bytes in the
    console; malformed messages are refused with the same error codes."""
    vectors = [files.encode(m) for m in _vectors()]
    assert {m.type for m in _vectors()} == set(files.MessageType)
    out: list[str] = await tab.evaluate(
        "messages => window.__steunFiles.roundTrip(messages)", [v.hex() for v in vectors]
    )
    assert out == [v.hex() for v in vectors]
    bad = _malformed()
    expected = [_python_decode(b) for b in bad]
    assert all(e.startswith("error:") for e in expected), expected
    out = await tab.evaluate("messages => window.__steunFiles.roundTrip(messages)", [b.hex() for b in bad])
    assert out == expected
