// The Files tab of a session: browse below the root the agent serves, download to this computer, upload from
// it (new folder, rename and delete are in session-files-ops.ts) — several transfers at once, each paced by the agent's credit, resumable within the session and verified
// by SHA-256 from byte 0 on both sides (the wire is session/filesproto.ts; the agent's end files/service.py).
//
// Memory stays bounded: a download is written to disk chunk by chunk (File System Access API) and credit goes
// back to the agent only after the write, so a slow disk stops the agent instead of filling the tab; an upload
// reads the File in slices, never whole, within the credit the agent grants. Browsers without
// showSaveFilePicker collect a download as Blob parts (Chromium keeps large blobs on disk) up to BLOB_CAP and
// refuse bigger files with a clear message.
//
// Names and messages from the agent are hostile: they only ever become text nodes, clipped.
//
// Test hook: when the page was started with ``window.__steunTestHooks = true`` (Playwright's add_init_script),
// ``window.__steunFiles`` lets a test send downloads into the origin-private file system instead of a save
// dialog (which needs a user gesture and a native dialog), read their SHA-256 back, type paths, list the
// transfers, and round-trip wire messages through this console's codec. Without the flag nothing is exposed.

import "./session-files.css";
// WebCrypto's digest() takes the whole input at once; a transfer must hash as it streams (files of many GB,
// and a paused download continues the same hash). @noble/hashes is audited, dependency-free and keeps the
// SHA-256 state between update() calls.
import { sha256 } from "@noble/hashes/sha2.js";
import { clip, h, replaceChildren } from "../lib/dom";
import { formatBytes, formatDateTime } from "../lib/format";
import { language, onLanguageChange, t } from "../lib/i18n";
import { equalBytes, hex } from "../session/bytes";
import {
  DEFAULT_WINDOW,
  EntryKind,
  FilesProtocolError,
  MAX_CHUNK,
  MAX_TRANSFERS,
  Overwrite,
  decode,
  decodeFromAgent,
  encode,
  type AgentMessage,
  type BothMessage,
  type ConsoleMessage,
  type Entry,
} from "../session/filesproto";
import { createFileOps, focusKey } from "./session-files-ops";

export interface FilesPanel {
  el: HTMLElement;
  onData(payload: Uint8Array): void;
  dispose(): void;
}

/** The largest download a browser without showSaveFilePicker collects in memory (as Blob parts). */
export const BLOB_CAP = 512 * 1024 * 1024;
/** How long the agent may take to answer a listing, a change or the start of a transfer (a resume re-hashes a prefix). */
const LIST_TIMEOUT_MS = 30_000;
const CHANGE_TIMEOUT_MS = 30_000;
const START_TIMEOUT_MS = 60_000;
/** What one upload reads from its File at a time (then cut into MAX_CHUNK messages). */
const READ_BLOCK = 4 * 1024 * 1024;
/** Rows shown at once; "Show more" adds as many. */
const ROWS_PER_PAGE = 500;
const RATE_WINDOW_MS = 5_000;
/** Codes after which a transfer can go on from where it stopped (the data so far is good). */
const RESUMABLE = new Set(["io_error", "busy", "too_many_transfers", "id_in_use", "transfer_unknown", "timeout", "closed", "no_space"]);

type SortKey = "name" | "size" | "mtime";
type TransferState =
  | "choosing"
  | "queued"
  | "starting"
  | "hashing"
  | "running"
  | "paused"
  | "verifying"
  | "done"
  | "failed"
  | "cancelled";

interface Problem {
  code: string;
  detail: string;
}

/** Where a download goes: written in order, then committed (close) or thrown away (discard). */
interface Sink {
  readonly blob: boolean;
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
  discard(): Promise<void>;
}

interface TransferRow {
  li: HTMLLIElement;
  title: HTMLElement;
  detail: HTMLElement;
  bar: HTMLProgressElement;
  figures: HTMLElement;
  status: HTMLElement;
  pause: HTMLButtonElement;
  resume: HTMLButtonElement;
  retry: HTMLButtonElement;
  replace: HTMLButtonElement;
  cancel: HTMLButtonElement;
  dismiss: HTMLButtonElement;
}

interface TransferBase {
  key: number;
  /** The wire id while the agent holds this transfer; 0 when it does not. */
  id: number;
  path: string;
  name: string;
  size: number;
  state: TransferState;
  problem: Problem | null;
  sha256: string;
  samples: [number, number][];
  timer: number;
  row: TransferRow | null;
}

interface DownloadTransfer extends TransferBase {
  direction: "download";
  sink: Sink | null;
  /** Bytes received, hashed and queued for writing (the offset of a resume). */
  received: number;
  written: number;
  hasher: ReturnType<typeof sha256.create>;
  writes: Promise<void>;
  broken: boolean;
  announced: Uint8Array | null;
  started: boolean;
}

interface UploadTransfer extends TransferBase {
  direction: "upload";
  file: File;
  folder: string;
  overwrite: Overwrite;
  credit: number;
  sent: number;
  /** Bytes the agent has written (its offset plus the credit it returned). */
  acked: number;
  hasher: ReturnType<typeof sha256.create> | null;
  digest: Uint8Array | null;
  pumping: boolean;
}

type Transfer = DownloadTransfer | UploadTransfer;

export interface TransferInfo {
  key: number;
  direction: "download" | "upload";
  name: string;
  path: string;
  state: TransferState;
  done: number;
  size: number;
  code: string;
  detail: string;
  sha256: string;
}

// --------------------------------------------------------------------------------------------- small helpers

/** The path the agent would use: empty and "." components dropped ("" is the root). */
function canonical(path: string): string {
  return path
    .split("/")
    .filter((part) => part !== "" && part !== ".")
    .join("/");
}

function join(folder: string, name: string): string {
  return folder === "" ? name : `${folder}/${name}`;
}

function parentOf(path: string): string {
  const parts = canonical(path).split("/");
  parts.pop();
  return parts.join("/");
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : "";
}

function errorDetail(err: unknown): string {
  return clip(err instanceof Error ? err.message : String(err), 200);
}

function unit(value: number, which: "second" | "minute" | "hour"): string {
  return new Intl.NumberFormat(language(), { style: "unit", unit: which, unitDisplay: "narrow" }).format(value);
}

function formatEta(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 60) return unit(s, "second");
  if (s < 3600) return `${unit(Math.floor(s / 60), "minute")} ${unit(s % 60, "second")}`;
  return `${unit(Math.floor(s / 3600), "hour")} ${unit(Math.floor((s % 3600) / 60), "minute")}`;
}

/** The words for a wire code or one of the console's own (timeout, write_failed, read_failed, ...). */
function problemText(problem: Problem): string {
  const key = `files.error.${problem.code}`;
  const text = t(key);
  return text === key ? t("files.error.unknown", { code: problem.code }) : text;
}

// --------------------------------------------------------------------------------------------- sinks

interface SavePickerWindow {
  showSaveFilePicker?: (options?: { suggestedName?: string }) => Promise<FileSystemFileHandle>;
}

interface RemovableHandle {
  remove?: () => Promise<void>;
}

async function writableSink(handle: FileSystemFileHandle, remove: () => Promise<void>): Promise<Sink> {
  // Chromium writes to a swap file and moves it over the target only on close(): an aborted download never
  // leaves a half-written file under the chosen name.
  const writable = await handle.createWritable({ keepExistingData: false });
  return {
    blob: false,
    write: (data) => writable.write(data as Uint8Array<ArrayBuffer>),
    close: () => writable.close(),
    async discard() {
      await writable.abort().catch(() => undefined);
      await remove().catch(() => undefined);
    },
  };
}

async function pickerSink(picked: Promise<FileSystemFileHandle>): Promise<Sink> {
  const handle = await picked;
  // The picker creates the file when it does not exist yet: remove it again on cancel, but never a file
  // that had content before (the swap file keeps that one intact).
  const existed = (await handle.getFile()).size > 0;
  return writableSink(handle, async () => {
    const removable = handle as unknown as RemovableHandle;
    if (!existed && removable.remove) await removable.remove();
  });
}

async function opfsSink(name: string): Promise<Sink> {
  const root = await navigator.storage.getDirectory();
  const handle = await root.getFileHandle(name, { create: true });
  return writableSink(handle, () => root.removeEntry(name));
}

function blobSink(name: string): Sink {
  let parts: Blob[] = [];
  return {
    blob: true,
    write(data) {
      parts.push(new Blob([data as Uint8Array<ArrayBuffer>]));
      return Promise.resolve();
    },
    close() {
      const url = URL.createObjectURL(new Blob(parts, { type: "application/octet-stream" }));
      parts = [];
      const link = h("a", { attrs: { href: url, download: name, hidden: true } });
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
      return Promise.resolve();
    },
    discard() {
      parts = [];
      return Promise.resolve();
    },
  };
}

// --------------------------------------------------------------------------------------------- test hook

type DownloadTarget = "auto" | "opfs" | "blob";

interface PanelHooks {
  navigate(path: string): void;
  download(path: string, name?: string): void;
  transfers(): TransferInfo[];
  cwd(): string;
  names(): string[];
}

interface FilesTestHook {
  downloadTarget: DownloadTarget;
  panel: PanelHooks | null;
  navigate(path: string): void;
  download(path: string, name?: string): void;
  transfers(): TransferInfo[];
  cwd(): string;
  names(): string[];
  opfsSha256(name: string): Promise<string | null>;
  opfsNames(): Promise<string[]>;
  opfsClear(): Promise<void>;
  roundTrip(messages: string[]): string[];
  /** Hold the transfer called `name` in flight (null: release): a download's credit waits, an upload sends
   * its first block and waits. */
  holdCredit(name: string | null): void;
}

/** Tests only (``holdCredit``): a download whose credit waits, so a click lands while it is in flight. */
let creditHold: { name: string; released: Promise<void>; release(): void } | null = null;

interface HookWindow {
  __steunTestHooks?: boolean;
  __steunFiles?: FilesTestHook;
}

function fromHex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function installHook(): FilesTestHook | null {
  const w = window as unknown as HookWindow;
  if (w.__steunTestHooks !== true) return null;
  if (w.__steunFiles) return w.__steunFiles;
  const need = (): PanelHooks => {
    if (!hook.panel) throw new Error("no files panel is open");
    return hook.panel;
  };
  const hook: FilesTestHook = {
    downloadTarget: "auto",
    panel: null,
    navigate: (path) => need().navigate(path),
    download: (path, name) => need().download(path, name),
    transfers: () => need().transfers(),
    cwd: () => need().cwd(),
    names: () => need().names(),
    async opfsSha256(name) {
      const root = await navigator.storage.getDirectory();
      let file: File;
      try {
        file = await (await root.getFileHandle(name)).getFile();
      } catch {
        return null;
      }
      const hasher = sha256.create();
      for (let at = 0; at < file.size; at += READ_BLOCK) {
        hasher.update(new Uint8Array(await file.slice(at, at + READ_BLOCK).arrayBuffer()));
      }
      return hex(hasher.digest());
    },
    async opfsNames() {
      const root = await navigator.storage.getDirectory();
      const names: string[] = [];
      for await (const name of (root as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
      return names.sort();
    },
    async opfsClear() {
      const root = await navigator.storage.getDirectory();
      for (const name of await hook.opfsNames()) await root.removeEntry(name, { recursive: true });
    },
    /** Each hex message decoded (either direction) and encoded again; "error:<code>" when it does not decode. */
    holdCredit: () => {},
    roundTrip(messages) {
      return messages.map((text) => {
        try {
          return hex(encode(decode(fromHex(text))));
        } catch (err) {
          return `error:${err instanceof FilesProtocolError ? err.code : errorDetail(err)}`;
        }
      });
    },
  };
  hook.holdCredit = (name) => {
    creditHold?.release();
    creditHold = null;
    if (name === null) return;
    let release = (): void => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    creditHold = { name, released, release };
  };
  w.__steunFiles = hook;
  return hook;
}

const testHook = installHook();

// --------------------------------------------------------------------------------------------- the panel

export function createFilesPanel(opts: { send(payload: Uint8Array): void }): FilesPanel {
  const routes = new Map<number, (message: AgentMessage) => void>();
  let lastId = 0;
  let nextKey = 0;
  const transfers: Transfer[] = [];
  let disposed = false;

  let cwd = "";
  let entries: Entry[] = [];
  let listed = false;
  let truncated = false;
  let shown = ROWS_PER_PAGE;
  let sortKey: SortKey = "name";
  let sortDir: 1 | -1 = 1;
  let listing: { id: number; path: string; page: Entry[]; timer: number } | null = null;
  let listProblem: (Problem & { path: string }) | null = null;

  // ---- wire plumbing

  function newId(handler: (message: AgentMessage) => void): number {
    do lastId = lastId >= 0xffff_ffff ? 1 : lastId + 1;
    while (routes.has(lastId));
    routes.set(lastId, handler);
    return lastId;
  }

  function send(message: ConsoleMessage | BothMessage): void {
    if (!disposed) opts.send(encode(message));
  }

  function onData(payload: Uint8Array): void {
    if (disposed) return;
    let message: AgentMessage;
    try {
      message = decodeFromAgent(payload);
    } catch (err) {
      notify(t("files.malformed", { detail: err instanceof FilesProtocolError ? err.code : errorDetail(err) }));
      return;
    }
    // Late chunks and credits for a transfer that just ended or was paused have no route: dropped.
    routes.get(message.id)?.(message);
  }

  // ---- elements

  const notice = h("p", { class: "files-notice", attrs: { role: "status", "aria-live": "polite", hidden: true } });
  const upButton = h("button", { class: "button button-secondary button-small", attrs: { type: "button" }, t: "files.up" });
  const refreshButton = h("button", { class: "button button-secondary button-small", attrs: { type: "button" }, t: "files.refresh" });
  const crumbs = h("ol", { class: "files-crumbs" });
  const breadcrumb = h("nav", { class: "files-breadcrumb", tLabel: "files.breadcrumb" }, crumbs);
  const gotoInput = h("input", {
    class: "files-goto-input",
    attrs: { type: "text", name: "files-path", spellcheck: "false", autocomplete: "off" },
    tLabel: "files.goto_label",
    tPlaceholder: "files.goto_placeholder",
  });
  const gotoForm = h(
    "form",
    { class: "files-goto" },
    gotoInput,
    h("button", { class: "button button-secondary button-small", attrs: { type: "submit" }, t: "files.goto" }),
  );
  const fileInput = h("input", { class: "files-input", attrs: { type: "file", multiple: true, hidden: true }, tLabel: "files.upload" });
  const uploadButton = h("button", { class: "button button-primary button-small", attrs: { type: "button" }, t: "files.upload" });
  const listStatus = h("div", { class: "files-list-status", attrs: { "aria-live": "polite" }, dataset: { testid: "files-status" } });
  const caption = h("caption", { class: "visually-hidden" });
  const headRow = h("tr");
  const tbody = h("tbody");
  const table = h("table", { class: "table files-table" }, caption, h("thead", null, headRow), tbody);
  const moreButton = h("button", { class: "button button-secondary button-small", attrs: { type: "button", hidden: true }, t: "common.show_more" });
  const dropHint = h("p", { class: "files-drop-hint muted" });
  const transferList = h("ul", { class: "files-transfers-list" });
  const noTransfers = h("p", { class: "muted", t: "files.no_transfers" });

  // Declared before the panel's element: its "New folder" button sits in the toolbar.
  const ops = createFileOps({
    cwd: () => cwd,
    ask,
    refresh: () => navigate(cwd),
    render: () => renderListing(),
    shownNames: () => sorted().slice(0, shown).map((e) => e.name),
    notify,
  });

  const el = h(
    "section",
    { class: "files-panel", tLabel: "files.title", dataset: { testid: "files-panel" } },
    h("div", { class: "files-toolbar" }, upButton, refreshButton, breadcrumb, gotoForm, ops.newFolderButton, uploadButton, fileInput),
    notice,
    listStatus,
    h("div", { class: "table-wrap files-table-wrap" }, table),
    moreButton,
    dropHint,
    h("section", { class: "files-transfers" }, h("h3", { class: "files-transfers-title", t: "files.transfers" }), noTransfers, transferList),
  );

  function notify(text: string | null): void {
    notice.textContent = text ?? "";
    notice.hidden = text === null;
  }

  // ---- changes (MKDIR, REMOVE, RENAME): one request, one DONE or ERROR

  function ask(build: (id: number) => ConsoleMessage): Promise<Problem | null> {
    return new Promise((resolve) => {
      if (disposed) return resolve({ code: "closed", detail: "" });
      let timer = 0;
      const id = newId((message) => {
        routes.delete(id);
        window.clearTimeout(timer);
        if (message.kind === "done") resolve(null);
        else if (message.kind === "error") resolve({ code: message.code, detail: clip(message.message, 200) });
        else resolve({ code: "protocol", detail: message.kind });
      });
      timer = window.setTimeout(() => {
        // The agent drops the reply of a cancelled change; the listing shows what happened to the disk.
        routes.delete(id);
        try {
          send({ kind: "cancel", id });
        } catch {
          // cannot fail for a valid id
        }
        resolve({ code: "timeout", detail: "" });
      }, CHANGE_TIMEOUT_MS);
      try {
        send(build(id));
      } catch (err) {
        routes.delete(id);
        window.clearTimeout(timer);
        resolve({ code: "path_invalid", detail: errorDetail(err) });
      }
    });
  }


  // ---- browsing

  function navigate(path: string): void {
    if (listing) {
      routes.delete(listing.id);
      window.clearTimeout(listing.timer);
    }
    const request = { id: 0, path, page: [] as Entry[], timer: 0 };
    request.id = newId((message) => onListing(request, message));
    request.timer = window.setTimeout(() => listingFailed(request, { code: "timeout", detail: "" }), LIST_TIMEOUT_MS);
    listing = request;
    try {
      send({ kind: "list", id: request.id, path });
    } catch (err) {
      listingFailed(request, { code: "path_invalid", detail: errorDetail(err) });
      return;
    }
    renderListing();
  }

  function onListing(request: NonNullable<typeof listing>, message: AgentMessage): void {
    if (listing !== request) return;
    if (message.kind === "entries") {
      request.page.push(...message.entries);
      if (!message.last) {
        // A long listing comes in many pages: the time limit is for the next one.
        window.clearTimeout(request.timer);
        request.timer = window.setTimeout(() => listingFailed(request, { code: "timeout", detail: "" }), LIST_TIMEOUT_MS);
        return;
      }
      routes.delete(request.id);
      window.clearTimeout(request.timer);
      listing = null;
      listProblem = null;
      cwd = canonical(request.path);
      entries = request.page;
      truncated = message.truncated;
      listed = true;
      shown = ROWS_PER_PAGE;
      ops.listed(new Set(entries.map((e) => e.name)));
      renderListing();
    } else if (message.kind === "error") {
      listingFailed(request, { code: message.code, detail: clip(message.message, 200) });
    } else {
      listingFailed(request, { code: "protocol", detail: message.kind });
    }
  }

  function listingFailed(request: NonNullable<typeof listing>, problem: Problem): void {
    if (listing !== request) return;
    routes.delete(request.id);
    window.clearTimeout(request.timer);
    listing = null;
    listProblem = { ...problem, path: request.path };
    renderListing();
  }

  function sorted(): Entry[] {
    const collator = new Intl.Collator(language(), { numeric: true, sensitivity: "base" });
    const rank = (e: Entry): number => (e.kind === EntryKind.DIRECTORY ? 0 : 1);
    return [...entries].sort((a, b) => {
      const folders = rank(a) - rank(b);
      if (folders !== 0) return folders;
      let order = 0;
      if (sortKey === "size") order = a.size - b.size;
      else if (sortKey === "mtime") order = a.mtime - b.mtime;
      if (order === 0) order = collator.compare(a.name, b.name);
      return order * sortDir;
    });
  }

  function folderLabel(path: string): string {
    return path === "" ? t("files.root") : clip(path, 200);
  }

  function renderCrumbs(): void {
    const parts = cwd === "" ? [] : cwd.split("/");
    const items: HTMLElement[] = [];
    const crumb = (label: string, path: string, current: boolean): HTMLElement =>
      h(
        "li",
        null,
        current
          ? h("span", { class: "files-crumb-current", attrs: { "aria-current": "location" } }, label)
          : h("button", { class: "files-link files-crumb", attrs: { type: "button" }, on: { click: () => navigate(path) } }, label),
      );
    items.push(crumb(t("files.root"), "", parts.length === 0));
    parts.forEach((part, i) => items.push(crumb(clip(part, 80), parts.slice(0, i + 1).join("/"), i === parts.length - 1)));
    replaceChildren(crumbs, items);
    upButton.disabled = cwd === "";
  }

  function renderHead(): void {
    const column = (key: SortKey, label: string, numeric = false): HTMLElement => {
      const active = sortKey === key;
      const button = h(
        "button",
        { class: "files-link files-sort", attrs: { type: "button" }, on: { click: () => sortBy(key) } },
        t(label),
        active ? h("span", { attrs: { "aria-hidden": "true" } }, sortDir === 1 ? " ▲" : " ▼") : null,
      );
      return h(
        "th",
        { class: numeric ? "num" : "", attrs: { scope: "col", "aria-sort": active ? (sortDir === 1 ? "ascending" : "descending") : "none" } },
        button,
      );
    };
    replaceChildren(
      headRow,
      column("name", "files.col_name"),
      column("size", "files.col_size", true),
      column("mtime", "files.col_modified"),
      h("th", { attrs: { scope: "col" } }, h("span", { class: "visually-hidden", t: "files.col_actions" })),
    );
  }

  function sortBy(key: SortKey): void {
    if (sortKey === key) sortDir = sortDir === 1 ? -1 : 1;
    else {
      sortKey = key;
      sortDir = key === "name" ? 1 : -1;
    }
    renderListing();
  }

  function entryRow(entry: Entry): HTMLElement {
    const path = join(cwd, entry.name);
    const name = clip(entry.name, 256);
    const kindKey = { [EntryKind.FILE]: "file", [EntryKind.DIRECTORY]: "directory", [EntryKind.SYMLINK]: "symlink", [EntryKind.OTHER]: "other" }[entry.kind];
    const icon = h("span", { class: ["files-icon", `files-icon-${kindKey}`], attrs: { "aria-hidden": "true" } });
    const kind = h("span", { class: "visually-hidden" }, `${t(`files.kind_${kindKey}`)}: `);
    const folderLike = entry.kind === EntryKind.DIRECTORY || entry.kind === EntryKind.SYMLINK;
    const nameCell = h("td", { class: "files-name" }, icon, kind);
    if (entry.nameLossy) {
      nameCell.append(h("span", null, name), h("span", { class: "muted files-lossy" }, ` (${t("files.name_unreadable")})`));
    } else if (folderLike) {
      nameCell.append(
        h(
          "button",
          { class: "files-link files-open", attrs: { type: "button" }, dataset: { focusKey: focusKey("open", entry.name) }, on: { click: () => navigate(path) } },
          name,
        ),
      );
    } else {
      nameCell.append(h("span", null, name));
    }
    const canDownload = !entry.nameLossy && (entry.kind === EntryKind.FILE || entry.kind === EntryKind.SYMLINK);
    const actions = h("td", { class: "files-actions" });
    if (canDownload) {
      actions.append(
        h(
          "button",
          {
            class: "button button-secondary button-small",
            attrs: { type: "button", "aria-label": t("files.download_name", { name }) },
            dataset: { focusKey: focusKey("download", entry.name) },
            on: { click: () => startDownload(path, entry.name, entry.kind === EntryKind.FILE ? entry.size : null) },
          },
          t("files.download"),
        ),
      );
    }
    actions.append(...ops.rowButtons(entry));
    return h(
      "tr",
      { class: "files-row", dataset: { kind: kindKey ?? "other", name: entry.name } },
      nameCell,
      // A link's own size is the length of its target's path: not what a technician wants to read.
      h("td", { class: "num" }, entry.kind === EntryKind.FILE ? formatBytes(entry.size) : "—"),
      h("td", null, entry.mtime > 0 ? formatDateTime(entry.mtime) : "—"),
      actions,
    );
  }

  /** An entry's rows: its own, or what stands for it while it is renamed or deleted. */
  function entryRows(entry: Entry): HTMLElement[] {
    return ops.rowsFor(entry, () => entryRow(entry)) ?? [entryRow(entry)];
  }

  function findFocusKey(key: string): HTMLElement | null {
    for (const candidate of tbody.querySelectorAll<HTMLElement>("[data-focus-key]")) {
      if (candidate.dataset["focusKey"] === key) return candidate;
    }
    return null;
  }

  function renderListing(): void {
    // Rows are drawn anew: the focus goes back to the same button (by its key) or the same open editor.
    const active = document.activeElement instanceof HTMLElement && el.contains(document.activeElement) ? document.activeElement : null;
    const activeKey = active?.dataset["focusKey"] ?? null;
    renderCrumbs();
    renderHead();
    caption.textContent = t("files.table_caption", { folder: folderLabel(cwd) });
    dropHint.textContent = t("files.drop_hint", { folder: folderLabel(cwd) });
    const status: HTMLElement[] = [];
    if (listing) status.push(h("p", { class: "muted" }, t("files.loading")));
    if (listProblem) {
      status.push(
        h(
          "div",
          { class: "notice notice-warning files-error", attrs: { role: "alert" }, dataset: { testid: "files-error", code: listProblem.code } },
          h("p", null, t("files.open_failed", { path: listProblem.path === "" ? t("files.root") : clip(listProblem.path, 200) })),
          h("p", null, problemText(listProblem)),
          h("p", { class: "muted files-code" }, listProblem.detail ? `${listProblem.code} · ${listProblem.detail}` : listProblem.code),
        ),
      );
    }
    if (listed && truncated) status.push(h("p", { class: "notice notice-muted" }, t("files.truncated", { count: entries.length })));
    if (listed && entries.length === 0 && !listing) status.push(h("p", { class: "muted files-empty" }, t("files.empty")));
    replaceChildren(listStatus, status);
    const rows = sorted();
    replaceChildren(tbody, ops.headRows(), rows.slice(0, shown).map(entryRows));
    table.hidden = !listed;
    moreButton.hidden = rows.length <= shown;
    ops.setEnabled(listed);
    if (ops.placeFocus(findFocusKey, listing === null)) return;
    if (active && document.activeElement !== active && !active.isConnected && activeKey !== null) findFocusKey(activeKey)?.focus();
    else if (active && document.activeElement !== active && active.isConnected) active.focus();
  }

  // ---- transfers: common

  function slotsUsed(): number {
    return transfers.filter((tr) => tr.id !== 0).length;
  }

  function schedule(): void {
    if (disposed) return;
    for (const tr of transfers) {
      if (slotsUsed() >= MAX_TRANSFERS) break;
      if (tr.state !== "queued") continue;
      if (tr.direction === "download") beginDownload(tr);
      else beginUpload(tr);
    }
    renderTransfers();
  }

  function release(tr: Transfer): void {
    if (tr.id !== 0) routes.delete(tr.id);
    tr.id = 0;
    window.clearTimeout(tr.timer);
  }

  /** Tell the agent to stop this transfer and forget its id (late messages for it are then dropped). */
  function stopOnWire(tr: Transfer): void {
    if (tr.id !== 0) {
      try {
        send({ kind: "cancel", id: tr.id });
      } catch {
        // cannot fail for a valid id; the id is released either way
      }
    }
    release(tr);
  }

  function fail(tr: Transfer, problem: Problem, tellAgent = false): void {
    if (tr.state === "failed" || tr.state === "cancelled" || tr.state === "done") return;
    if (tellAgent) stopOnWire(tr);
    else release(tr);
    tr.state = "failed";
    tr.problem = problem;
    if (tr.direction === "download" && !resumable(tr)) void discardDownload(tr);
    schedule();
  }

  function resumable(tr: Transfer): boolean {
    if (tr.state !== "failed" || tr.problem === null || !RESUMABLE.has(tr.problem.code)) return false;
    return tr.direction === "upload" || (tr.sink !== null && !tr.broken);
  }

  function armStart(tr: Transfer): void {
    window.clearTimeout(tr.timer);
    tr.timer = window.setTimeout(() => fail(tr, { code: "timeout", detail: "" }, true), START_TIMEOUT_MS);
  }

  function progressOf(tr: Transfer): number {
    return tr.direction === "download" ? tr.received : tr.acked;
  }

  function sample(tr: Transfer): void {
    const now = performance.now();
    tr.samples.push([now, progressOf(tr)]);
    while (tr.samples.length > 2 && now - tr.samples[0]![0] > RATE_WINDOW_MS) tr.samples.shift();
  }

  function rate(tr: Transfer): number | null {
    const first = tr.samples[0];
    const last = tr.samples[tr.samples.length - 1];
    if (!first || !last || last[0] - first[0] < 500) return null;
    return ((last[1] - first[1]) * 1000) / (last[0] - first[0]);
  }

  function cancel(tr: Transfer): void {
    if (tr.state === "done" || tr.state === "cancelled") return;
    stopOnWire(tr);
    tr.state = "cancelled";
    tr.problem = null;
    if (tr.direction === "download") void discardDownload(tr);
    schedule();
  }

  function pause(tr: Transfer): void {
    if (tr.direction === "download") {
      if (tr.state !== "running" && tr.state !== "starting" && tr.state !== "queued") return;
      // The agent forgets a cancelled download; resuming asks again from what this side already holds.
      stopOnWire(tr);
      tr.state = "paused";
    } else {
      if (tr.state !== "running") return;
      // An upload keeps its place on the agent (which would delete a cancelled partial): we stop sending.
      tr.state = "paused";
    }
    schedule();
  }

  function resume(tr: Transfer): void {
    if (tr.state === "paused" && tr.direction === "upload") {
      tr.state = "running";
      tr.samples = [];
      void pump(tr);
    } else if (tr.state === "paused" || resumable(tr)) {
      tr.state = "queued";
      tr.problem = null;
      schedule();
    }
    renderTransfers();
  }

  function dismiss(tr: Transfer): void {
    const index = transfers.indexOf(tr);
    if (index >= 0 && (tr.state === "done" || tr.state === "failed" || tr.state === "cancelled")) {
      if (tr.state === "failed") cancel(tr);
      transfers.splice(index, 1);
      tr.row?.li.remove();
      renderTransfers();
    }
  }

  function base(path: string, name: string, size: number): Omit<TransferBase, "state"> {
    nextKey += 1;
    return { key: nextKey, id: 0, path, name, size, problem: null, sha256: "", samples: [], timer: 0, row: null };
  }

  // ---- downloads

  /** Called from a click: the save dialog must open before anything is awaited (it needs the user's gesture). */
  function startDownload(path: string, name: string, sizeHint: number | null): void {
    const target = testHook?.downloadTarget ?? "auto";
    const picker = (window as unknown as SavePickerWindow).showSaveFilePicker;
    const tr: DownloadTransfer = {
      ...base(path, name, sizeHint ?? -1),
      direction: "download",
      state: "choosing",
      sink: null,
      received: 0,
      written: 0,
      hasher: sha256.create(),
      writes: Promise.resolve(),
      broken: false,
      announced: null,
      started: false,
    };
    transfers.push(tr);
    let sink: Promise<Sink>;
    if (target === "opfs") {
      sink = opfsSink(name);
    } else if (target === "auto" && typeof picker === "function") {
      sink = pickerSink(picker.call(window, { suggestedName: name }));
    } else if (sizeHint !== null && sizeHint > BLOB_CAP) {
      tr.state = "queued";
      fail(tr, { code: "too_large_for_browser", detail: "" });
      return;
    } else {
      sink = Promise.resolve(blobSink(name));
    }
    renderTransfers();
    sink.then(
      (ready) => {
        if (tr.state !== "choosing" || disposed) {
          void ready.discard();
          return;
        }
        tr.sink = ready;
        tr.state = "queued";
        schedule();
      },
      (err: unknown) => {
        if (tr.state !== "choosing") return;
        if (errorName(err) === "AbortError") {
          // The technician closed the save dialog: nothing to show.
          transfers.splice(transfers.indexOf(tr), 1);
          tr.row?.li.remove();
          renderTransfers();
          return;
        }
        tr.state = "queued";
        fail(tr, { code: "write_failed", detail: errorDetail(err) });
      },
    );
  }

  function beginDownload(tr: DownloadTransfer): void {
    tr.id = newId((message) => onDownload(tr, message));
    tr.state = "starting";
    tr.samples = [];
    armStart(tr);
    try {
      send({ kind: "download", id: tr.id, path: tr.path, offset: tr.received, window: DEFAULT_WINDOW });
    } catch (err) {
      fail(tr, { code: "path_invalid", detail: errorDetail(err) });
    }
  }

  function onDownload(tr: DownloadTransfer, message: AgentMessage): void {
    const sink = tr.sink;
    if (sink === null) return;
    switch (message.kind) {
      case "download_meta":
        if (tr.state !== "starting") return fail(tr, { code: "protocol", detail: "a second DOWNLOAD_META" }, true);
        window.clearTimeout(tr.timer);
        if (message.offset !== tr.received) return fail(tr, { code: "protocol", detail: "the agent did not resume where this side stopped" }, true);
        if (tr.started && message.size !== tr.size) return fail(tr, { code: "file_changed", detail: "" }, true);
        if (sink.blob && message.size > BLOB_CAP) return fail(tr, { code: "too_large_for_browser", detail: "" }, true);
        tr.size = message.size;
        tr.announced = message.sha256;
        tr.started = true;
        tr.state = "running";
        sample(tr);
        renderTransfer(tr);
        return;
      case "chunk": {
        if (tr.state !== "running") return;
        const length = message.data.length;
        if (message.offset !== tr.received || tr.received + length > tr.size) {
          return fail(tr, { code: "protocol", detail: `chunk at ${message.offset}, expected ${tr.received}` }, true);
        }
        tr.hasher.update(message.data);
        tr.received += length;
        const id = tr.id;
        const data = message.data;
        // Credit goes back only once the bytes are on disk: a slow disk slows the agent, not the tab's memory.
        tr.writes = tr.writes.then(async () => {
          if (tr.broken || tr.state === "cancelled") return;
          try {
            await sink.write(data);
          } catch (err) {
            tr.broken = true;
            fail(tr, { code: "write_failed", detail: errorDetail(err) }, true);
            return;
          }
          tr.written += length;
          if (creditHold !== null && creditHold.name === tr.name) await creditHold.released;
          if (tr.id === id && id !== 0) send({ kind: "credit", id, nbytes: length });
        });
        return;
      }
      case "download_end":
        if (tr.state !== "running") return fail(tr, { code: "protocol", detail: "DOWNLOAD_END before DOWNLOAD_META" }, true);
        release(tr);
        tr.state = "verifying";
        renderTransfer(tr);
        void finishDownload(tr, sink, message.sha256);
        schedule();
        return;
      case "error":
        fail(tr, { code: message.code, detail: clip(message.message, 200) });
        return;
      default:
        fail(tr, { code: "protocol", detail: message.kind }, true);
    }
  }

  async function finishDownload(tr: DownloadTransfer, sink: Sink, theirs: Uint8Array): Promise<void> {
    const ours = tr.hasher.digest();
    await tr.writes;
    if (tr.broken || tr.state !== "verifying") return;
    const problem: Problem | null =
      tr.received !== tr.size
        ? { code: "protocol", detail: `${tr.received} of ${tr.size} bytes` }
        : !equalBytes(ours, theirs) || (tr.announced !== null && !equalBytes(tr.announced, theirs))
          ? { code: "hash_mismatch", detail: "" }
          : null;
    if (problem) {
      fail(tr, problem);
      return;
    }
    try {
      await sink.close();
    } catch (err) {
      tr.broken = true;
      fail(tr, { code: "write_failed", detail: errorDetail(err) });
      return;
    }
    tr.sha256 = hex(ours);
    tr.state = "done";
    renderTransfer(tr);
  }

  async function discardDownload(tr: DownloadTransfer): Promise<void> {
    const sink = tr.sink;
    tr.sink = null;
    if (sink === null) return;
    await tr.writes;
    await sink.discard();
  }

  // ---- uploads

  function startUpload(file: File, folder: string, overwrite: Overwrite = Overwrite.FAIL): void {
    const tr: UploadTransfer = {
      ...base(join(folder, file.name), file.name, file.size),
      direction: "upload",
      state: "queued",
      file,
      folder,
      overwrite,
      credit: 0,
      sent: 0,
      acked: 0,
      hasher: null,
      digest: null,
      pumping: false,
    };
    transfers.push(tr);
    schedule();
  }

  function beginUpload(tr: UploadTransfer): void {
    tr.id = newId((message) => onUpload(tr, message));
    tr.state = "starting";
    tr.credit = tr.sent = tr.acked = 0;
    tr.hasher = null;
    tr.digest = null;
    tr.samples = [];
    armStart(tr);
    try {
      send({
        kind: "upload",
        id: tr.id,
        path: tr.path,
        size: tr.size,
        sha256: null, // only in FINISH: announcing it would mean reading the whole file twice
        overwrite: tr.overwrite,
        resume: true,
        mtime: tr.file.lastModified > 0 ? tr.file.lastModified / 1000 : 0,
      });
    } catch (err) {
      fail(tr, { code: "path_invalid", detail: errorDetail(err) });
    }
  }

  function onUpload(tr: UploadTransfer, message: AgentMessage): void {
    switch (message.kind) {
      case "upload_ready":
        if (tr.state !== "starting") return fail(tr, { code: "protocol", detail: "a second UPLOAD_READY" }, true);
        window.clearTimeout(tr.timer);
        if (message.offset > tr.size) return fail(tr, { code: "protocol", detail: `offset ${message.offset}` }, true);
        tr.credit = message.window;
        tr.acked = message.offset;
        tr.hasher = sha256.create();
        if (message.offset > 0) {
          // The agent kept a partial from an earlier attempt: the hash still covers the file from byte 0.
          tr.state = "hashing";
          renderTransfer(tr);
          void hashPrefix(tr, message.offset);
        } else {
          tr.state = "running";
          sample(tr);
          void pump(tr);
        }
        renderTransfer(tr);
        return;
      case "credit":
        tr.credit += message.nbytes;
        tr.acked += message.nbytes;
        void pump(tr);
        return;
      case "upload_done": {
        if (tr.state !== "verifying" || tr.digest === null) return fail(tr, { code: "protocol", detail: "UPLOAD_DONE before FINISH" }, true);
        release(tr);
        if (!equalBytes(tr.digest, message.sha256)) return fail(tr, { code: "hash_mismatch", detail: "" });
        tr.sha256 = hex(tr.digest);
        tr.acked = tr.size;
        tr.state = "done";
        if (canonical(tr.folder) === cwd && !listing) navigate(cwd);
        schedule();
        return;
      }
      case "error":
        fail(tr, { code: message.code, detail: clip(message.message, 200) });
        return;
      default:
        fail(tr, { code: "protocol", detail: message.kind }, true);
    }
  }

  async function hashPrefix(tr: UploadTransfer, end: number): Promise<void> {
    const id = tr.id;
    try {
      for (let at = 0; at < end; at += READ_BLOCK) {
        const block = new Uint8Array(await tr.file.slice(at, Math.min(end, at + READ_BLOCK)).arrayBuffer());
        if (tr.id !== id || tr.state !== "hashing") return;
        tr.hasher?.update(block);
      }
    } catch (err) {
      fail(tr, { code: "read_failed", detail: errorDetail(err) }, true);
      return;
    }
    tr.sent = end;
    tr.state = "running";
    sample(tr);
    void pump(tr);
  }

  async function pump(tr: UploadTransfer): Promise<void> {
    if (tr.pumping) return;
    tr.pumping = true;
    try {
      while (tr.state === "running" && tr.sent < tr.size && tr.credit > 0) {
        const id = tr.id;
        const at = tr.sent;
        const want = Math.min(tr.credit, READ_BLOCK, tr.size - at);
        const block = new Uint8Array(await tr.file.slice(at, at + want).arrayBuffer());
        if (tr.id !== id || !running(tr)) return;
        if (block.length !== want) {
          fail(tr, { code: "read_failed", detail: "the file became shorter" }, true);
          return;
        }
        tr.hasher?.update(block);
        if (creditHold !== null && creditHold.name === tr.name && at > 0) {
          await creditHold.released; // tests only: the upload stays in flight after its first block
          if (tr.id !== id || !running(tr)) return;
        }
        for (let offset = 0; offset < block.length; offset += MAX_CHUNK) {
          send({ kind: "chunk", id, offset: at + offset, data: block.subarray(offset, Math.min(block.length, offset + MAX_CHUNK)) });
        }
        tr.sent += want;
        tr.credit -= want;
      }
      if (running(tr) && tr.sent === tr.size && tr.hasher !== null) {
        tr.digest = tr.hasher.digest();
        tr.state = "verifying";
        send({ kind: "finish", id: tr.id, sha256: tr.digest });
        renderTransfer(tr);
      }
    } catch (err) {
      fail(tr, { code: "read_failed", detail: errorDetail(err) }, true);
    } finally {
      tr.pumping = false;
    }
  }

  /** Read again after an await: a click may have paused, cancelled or failed the transfer meanwhile. */
  function running(tr: Transfer): boolean {
    return tr.state === "running";
  }

  function replace(tr: Transfer): void {
    if (tr.direction !== "upload" || tr.state !== "failed" || tr.problem?.code !== "exists") return;
    tr.overwrite = Overwrite.REPLACE;
    tr.problem = null;
    tr.state = "queued";
    schedule();
  }

  // ---- transfers: the list

  function makeRow(tr: Transfer): TransferRow {
    const small = (key: string, action: () => void, variant = "secondary"): HTMLButtonElement =>
      h("button", { class: `button button-${variant} button-small`, attrs: { type: "button", hidden: true }, t: key, on: { click: action } });
    const row: TransferRow = {
      li: h("li", { class: "files-transfer", dataset: { testid: "transfer", direction: tr.direction } }),
      title: h("p", { class: "files-transfer-title" }),
      detail: h("p", { class: "muted files-transfer-detail" }),
      bar: h("progress", { class: "files-progress" }),
      figures: h("p", { class: "files-transfer-figures" }),
      status: h("p", { class: "files-transfer-status" }),
      pause: small("files.pause", () => pause(tr)),
      resume: small("files.resume", () => resume(tr), "primary"),
      retry: small("common.retry", () => resume(tr), "primary"),
      replace: small("files.replace", () => replace(tr), "primary"),
      cancel: small("files.cancel", () => cancel(tr), "danger"),
      dismiss: small("files.dismiss", () => dismiss(tr)),
    };
    row.li.append(
      h("div", { class: "files-transfer-main" }, row.title, row.detail, row.bar, row.figures, row.status),
      h("div", { class: "button-row files-transfer-actions" }, row.pause, row.resume, row.retry, row.replace, row.cancel, row.dismiss),
    );
    return row;
  }

  function renderTransfer(tr: Transfer): void {
    const row = (tr.row ??= makeRow(tr));
    const name = clip(tr.name, 200);
    const done = progressOf(tr);
    row.li.dataset["state"] = tr.state;
    row.li.dataset["name"] = tr.name;
    row.title.textContent = `${tr.direction === "download" ? "↓" : "↑"} ${name}`;
    row.detail.textContent =
      tr.direction === "download"
        ? t("files.from_path", { path: clip(tr.path, 200) })
        : t("files.to_folder", { folder: folderLabel(canonical(tr.folder)) });
    row.bar.setAttribute("aria-label", t(tr.direction === "download" ? "files.download_of" : "files.upload_of", { name }));
    if (tr.size > 0) {
      row.bar.max = tr.size;
      row.bar.value = Math.min(done, tr.size);
    } else if (tr.state === "done" || tr.state === "failed" || tr.state === "cancelled") {
      row.bar.max = 1;
      row.bar.value = tr.state === "done" ? 1 : 0;
    } else {
      row.bar.removeAttribute("value"); // indeterminate until the size is known
    }
    const figures: string[] = [];
    if (tr.size >= 0) figures.push(t("files.progress", { done: formatBytes(done), total: formatBytes(tr.size) }));
    const active = tr.state === "running";
    const speed = active ? rate(tr) : null;
    if (speed !== null) {
      figures.push(t("files.rate", { rate: formatBytes(Math.round(speed)) }));
      if (speed > 0 && tr.size > done) figures.push(t("files.eta", { time: formatEta((tr.size - done) / speed) }));
    }
    row.figures.textContent = figures.join(" · ");
    let status = t(`files.state_${tr.state}`);
    if (tr.state === "failed" && tr.problem) status = `${t("files.state_failed")}: ${problemText(tr.problem)}`;
    row.status.textContent = status;
    row.status.classList.toggle("files-transfer-error", tr.state === "failed");
    if (tr.state === "done" && tr.sha256) row.status.title = t("files.sha256", { hash: tr.sha256 });
    else row.status.removeAttribute("title");
    if (tr.state === "failed" && tr.problem) {
      row.status.dataset["code"] = tr.problem.code;
      if (tr.problem.detail) row.status.title = `${tr.problem.code} · ${tr.problem.detail}`;
    } else {
      delete row.status.dataset["code"];
    }
    const ended = tr.state === "done" || tr.state === "cancelled" || tr.state === "failed";
    const canPause =
      tr.direction === "download" ? ["queued", "starting", "running"].includes(tr.state) && tr.sink !== null : tr.state === "running";
    row.pause.hidden = !canPause;
    row.resume.hidden = tr.state !== "paused";
    row.retry.hidden = !resumable(tr);
    row.replace.hidden = !(tr.direction === "upload" && tr.state === "failed" && tr.problem?.code === "exists");
    row.cancel.hidden = ended && !resumable(tr);
    row.dismiss.hidden = !ended;
  }

  function renderTransfers(): void {
    for (const tr of transfers) {
      renderTransfer(tr);
      if (tr.row && tr.row.li.parentElement !== transferList) transferList.prepend(tr.row.li);
    }
    noTransfers.hidden = transfers.length > 0;
  }

  function tick(): void {
    for (const tr of transfers) {
      if (tr.state === "running" || tr.state === "verifying" || tr.state === "hashing") {
        sample(tr);
        renderTransfer(tr);
      }
    }
  }

  // ---- uploads from the page

  function uploadFiles(files: Iterable<File>): void {
    for (const file of files) startUpload(file, cwd);
  }

  uploadButton.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    if (fileInput.files) uploadFiles(Array.from(fileInput.files));
    fileInput.value = "";
  });
  let dragDepth = 0;
  const carriesFiles = (event: DragEvent): boolean => event.dataTransfer?.types.includes("Files") ?? false;
  el.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth += 1;
    el.classList.add("files-dragging");
  });
  el.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  el.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) el.classList.remove("files-dragging");
  });
  el.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    el.classList.remove("files-dragging");
    const files: File[] = [];
    let folders = 0;
    for (const item of Array.from(event.dataTransfer?.items ?? [])) {
      if (item.kind !== "file") continue;
      if (item.webkitGetAsEntry?.()?.isDirectory) {
        folders += 1;
        continue;
      }
      const file = item.getAsFile();
      if (file) files.push(file);
    }
    notify(folders > 0 ? t("files.drop_folder_refused") : null);
    uploadFiles(files);
  });

  upButton.addEventListener("click", () => navigate(parentOf(cwd)));
  refreshButton.addEventListener("click", () => navigate(cwd));
  moreButton.addEventListener("click", () => {
    shown += ROWS_PER_PAGE;
    renderListing();
  });
  gotoForm.addEventListener("submit", (event) => {
    event.preventDefault();
    // Sent as typed: the agent checks every path once, canonically, and says why it refuses one.
    if (gotoInput.value !== "") navigate(gotoInput.value);
  });

  // The first listing waits until the tab is shown: the session may not be established (nor files granted)
  // while the panel exists but is hidden.
  const visibility = new IntersectionObserver((observed) => {
    if (observed.some((entry) => entry.isIntersecting) && !listed && !listing && !listProblem) navigate("");
  });
  visibility.observe(el);

  const ticker = window.setInterval(tick, 500);
  const stopLanguage = onLanguageChange(() => {
    renderListing();
    renderTransfers();
  });
  renderListing();
  renderTransfers();

  const hooks: PanelHooks = {
    navigate,
    download: (path, name) => startDownload(path, name ?? path.split("/").pop() ?? "download", null),
    transfers: () =>
      transfers.map((tr) => ({
        key: tr.key,
        direction: tr.direction,
        name: tr.name,
        path: tr.path,
        state: tr.state,
        done: progressOf(tr),
        size: tr.size,
        code: tr.problem?.code ?? "",
        detail: tr.problem?.detail ?? "",
        sha256: tr.sha256,
      })),
    cwd: () => cwd,
    names: () => entries.map((e) => e.name).sort(),
  };
  if (testHook) testHook.panel = hooks;

  return {
    el,
    onData,
    dispose() {
      if (disposed) return;
      // The session ends with the view: the agent ends every transfer itself; here only local state goes.
      disposed = true;
      for (const tr of transfers) {
        release(tr);
        if (tr.direction === "download" && tr.state !== "done") void discardDownload(tr);
      }
      routes.clear();
      if (listing) window.clearTimeout(listing.timer);
      visibility.disconnect();
      window.clearInterval(ticker);
      stopLanguage();
      if (testHook?.panel === hooks) testHook.panel = null;
    },
  };
}
