// New folder, rename and delete in the Files tab: inline editors inside the listing (never window.prompt or
// confirm), one change at a time, each answered DONE or an ERROR whose code is shown in words; after a change
// the listing is asked for again.
//
// A typed name is sent as typed, joined to the folder on show ("Archive/report.txt" moves a file into
// Archive): the agent checks every path in one place and says why it refuses one ("..", absolute paths,
// links out of the shared folder). A delete is never recursive: the agent removes a folder only when it is
// empty (``not_empty`` otherwise), and the console never walks a tree to empty it.
//
// The editors are elements that persist while they are open, so a re-render of the listing (a language switch,
// a sort, an upload that finished) keeps what was typed and where the focus was.

import { clip, h, replaceChildren } from "../lib/dom";
import { t } from "../lib/i18n";
import { EntryKind, Overwrite, Removal, type ConsoleMessage, type Entry } from "../session/filesproto";

export interface Problem {
  code: string;
  detail: string;
}

/** What the panel gives the operations: its folder, a way to ask the agent, and its listing. */
export interface OpsHost {
  cwd(): string;
  /** Send one change request built around a fresh id; resolves null on DONE, else the problem. */
  ask(build: (id: number) => ConsoleMessage): Promise<Problem | null>;
  /** List the current folder again. */
  refresh(): void;
  /** Draw the listing again from what is known. */
  render(): void;
  /** The names of the rows on show, in their order. */
  shownNames(): string[];
  /** The panel's status line (read out by screen readers). */
  notify(text: string | null): void;
}

export interface FileOps {
  /** The toolbar's "New folder" button. */
  readonly newFolderButton: HTMLButtonElement;
  /** Rows shown above the entries (the new-folder editor while it is open). */
  headRows(): HTMLElement[];
  /** The rows that stand for an entry while it is being renamed or deleted; null when it is not. */
  rowsFor(entry: Entry, normal: () => HTMLElement): HTMLElement[] | null;
  /** Rename and Delete for an entry's row. */
  rowButtons(entry: Entry): HTMLElement[];
  /** A new listing arrived (or the folder changed): editors whose entry or folder went away close. */
  listed(names: ReadonlySet<string>): void;
  /** After a render: put the focus where the last change left it. ``settled`` once no listing is under way. */
  placeFocus(find: (key: string) => HTMLElement | null, settled: boolean): boolean;
  setEnabled(enabled: boolean): void;
}

type Kind = "mkdir" | "rename" | "delete";

interface Editor {
  kind: Kind;
  folder: string;
  /** The entry's name (rename, delete); "" for a new folder. */
  name: string;
  rows: HTMLElement[];
  busy: boolean;
  draw(): void;
}

interface FocusRequest {
  key: string | null;
  fallback: () => void;
}

/** The key a row's button carries, so that focus can find its way back after the row was drawn again. */
export function focusKey(action: string, name: string): string {
  return `${action}:${name}`;
}

function join(folder: string, name: string): string {
  return folder === "" ? name : `${folder}/${name}`;
}

/** The words for a code, said for a change first (files.op_error.*), else as for a transfer (files.error.*). */
export function opProblemText(problem: Problem): string {
  for (const key of [`files.op_error.${problem.code}`, `files.error.${problem.code}`]) {
    const text = t(key);
    if (text !== key) return text;
  }
  return t("files.error.unknown", { code: problem.code });
}

let lastInputId = 0;

export function createFileOps(host: OpsHost): FileOps {
  let current: Editor | null = null;
  let focusRequest: FocusRequest | null = null;

  const newFolderButton = h("button", {
    class: "button button-secondary button-small",
    attrs: { type: "button" },
    dataset: { testid: "files-new-folder-button" },
    t: "files.new_folder",
    on: { click: () => openMkdir() },
  });

  const focusNewFolder = (): void => {
    if (!newFolderButton.disabled) newFolderButton.focus();
  };

  function close(): void {
    current = null;
    host.render();
  }

  function busyGuard(): boolean {
    return current !== null && current.busy;
  }

  /** Close an editor and send the focus back to the button that opened it. */
  function dismiss(editor: Editor, key: string | null): void {
    if (editor.busy || current !== editor) return;
    focusRequest = { key, fallback: focusNewFolder };
    close();
  }

  function onEscape(editor: Editor, key: string | null) {
    return (event: KeyboardEvent): void => {
      if (event.key !== "Escape") return;
      event.preventDefault();
      event.stopPropagation();
      dismiss(editor, key);
    };
  }

  // ---- the parts every editor has

  function message(): { box: HTMLElement; show(problem: Problem | null, prefix: string): void } {
    const box = h("div", { class: "files-op-message", attrs: { role: "alert" }, dataset: { testid: "files-op-error" } });
    return {
      box,
      show(problem, prefix) {
        if (problem === null) {
          replaceChildren(box);
          delete box.dataset["code"];
          return;
        }
        box.dataset["code"] = problem.code;
        if (problem.code === "name_required") {
          // The console's own hint, not the device's answer: no code to pass on.
          replaceChildren(box, h("p", { class: "files-op-error" }, opProblemText(problem)));
          return;
        }
        replaceChildren(
          box,
          h("p", { class: "files-op-error" }, `${prefix} ${opProblemText(problem)}`),
          h("p", { class: "muted files-code" }, problem.detail ? `${problem.code} · ${problem.detail}` : problem.code),
        );
      },
    };
  }

  function actionButton(variant: string, onClick: () => void, type: "button" | "submit" = "button"): HTMLButtonElement {
    const button = h("button", { class: `button button-${variant} button-small`, attrs: { type } });
    if (type === "button") button.addEventListener("click", onClick);
    return button;
  }

  /** Disabled without ``disabled``: a focused button that becomes disabled would drop the focus to the page. */
  function setBusy(controls: readonly HTMLElement[], input: HTMLInputElement | null, busy: boolean): void {
    for (const control of controls) control.setAttribute("aria-disabled", busy ? "true" : "false");
    if (input) input.readOnly = busy;
  }

  /** Run one change: busy while the agent works, then the outcome. */
  async function run(editor: Editor, build: (id: number) => ConsoleMessage): Promise<Problem | null> {
    editor.busy = true;
    editor.draw();
    const problem = await host.ask(build);
    editor.busy = false;
    return problem;
  }

  /** A change went through: close, ask for the listing again, then put the focus on ``key``. */
  function succeeded(editor: Editor, key: string | null, said: string): void {
    if (current !== editor) return;
    host.notify(said);
    current = null;
    if (host.cwd() === editor.folder) {
      focusRequest = { key, fallback: focusNewFolder };
      host.refresh();
    } else {
      host.render(); // the technician went elsewhere meanwhile: the focus stays where they are
    }
  }

  /** A change was refused: say why in its editor, or drop it if the technician went elsewhere meanwhile. */
  function refused(editor: Editor): boolean {
    if (current !== editor) return false;
    if (host.cwd() !== editor.folder) {
      current = null;
      host.render();
      return false;
    }
    editor.draw();
    return true;
  }

  // ---- a name editor (new folder, rename)

  interface NameForm {
    row: HTMLTableRowElement;
    input: HTMLInputElement;
    label: HTMLLabelElement;
    submit: HTMLButtonElement;
    cancel: HTMLButtonElement;
    status: ReturnType<typeof message>;
    question: HTMLElement;
  }

  function nameForm(editor: Editor, testid: string, icon: string, cancelKey: string | null, onSubmit: (typed: string) => void): NameForm {
    lastInputId += 1;
    const id = `files-op-input-${lastInputId}`;
    const input = h("input", {
      class: "files-op-input",
      id,
      attrs: { type: "text", name: `files-${editor.kind}`, spellcheck: "false", autocomplete: "off", maxlength: 1024 },
    });
    const label = h("label", { class: "files-op-label", attrs: { for: id } });
    const submit = actionButton("primary", () => undefined, "submit");
    const cancel = actionButton("secondary", () => dismiss(editor, cancelKey));
    const status = message();
    const question = h("div", { class: "files-op-question", attrs: { hidden: true } });
    const form = h(
      "form",
      { class: "files-op-form" },
      h("span", { class: ["files-icon", `files-icon-${icon}`], attrs: { "aria-hidden": "true" } }),
      label,
      input,
      h("span", { class: "button-row files-op-buttons" }, submit, cancel),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (editor.busy || current !== editor) return;
      if (input.value === "") {
        status.show({ code: "name_required", detail: "" }, "");
        input.focus();
        return;
      }
      onSubmit(input.value);
    });
    const cell = h("td", { attrs: { colspan: 4 } }, form, question, status.box);
    const row = h("tr", { class: "files-op-row", dataset: { testid, name: editor.name } }, cell);
    row.addEventListener("keydown", onEscape(editor, cancelKey));
    return { row, input, label, submit, cancel, status, question };
  }

  // ---- new folder

  function openMkdir(): void {
    if (busyGuard() || newFolderButton.disabled) return;
    let problem: Problem | null = null;
    const editor: Editor = { kind: "mkdir", folder: host.cwd(), name: "", rows: [], busy: false, draw };
    const form = nameForm(editor, "files-new-folder", "directory", null, (typed) => void create(typed));
    editor.rows = [form.row];

    function draw(): void {
      form.label.textContent = t("files.new_folder_label");
      form.submit.textContent = t("files.create");
      form.cancel.textContent = t("files.cancel");
      setBusy([form.submit, form.cancel], form.input, editor.busy);
      if (editor.busy) replaceChildren(form.status.box, h("p", { class: "muted" }, t("files.working")));
      else form.status.show(problem, t("files.mkdir_failed"));
    }

    async function create(typed: string): Promise<void> {
      problem = await run(editor, (id) => ({ kind: "mkdir", id, path: join(editor.folder, typed) }));
      if (problem === null) {
        succeeded(editor, typed.includes("/") ? null : focusKey("open", typed), t("files.created", { name: clip(typed, 200) }));
        return;
      }
      if (refused(editor)) {
        form.input.focus();
        form.input.select();
      }
    }

    form.input.value = t("files.new_folder_name");
    form.input.addEventListener("input", () => {
      if (problem?.code === "name_required") {
        problem = null;
        draw();
      }
    });
    open(editor);
    form.input.focus();
    form.input.select();
  }

  // ---- rename

  function openRename(entry: Entry): void {
    if (busyGuard()) return;
    let problem: Problem | null = null;
    /** The target that exists, while the question "Replace it?" is open. */
    let existing: string | null = null;
    const editor: Editor = { kind: "rename", folder: host.cwd(), name: entry.name, rows: [], busy: false, draw };
    const back = focusKey("rename", entry.name);
    const icon = { [EntryKind.FILE]: "file", [EntryKind.DIRECTORY]: "directory", [EntryKind.SYMLINK]: "symlink", [EntryKind.OTHER]: "other" }[entry.kind];
    const form = nameForm(editor, "files-rename", icon ?? "other", back, (typed) => {
      if (typed === entry.name) return dismiss(editor, back);
      void rename(typed, Overwrite.FAIL);
    });
    editor.rows = [form.row];
    const questionText = h("p", { class: "files-op-question-text" });
    const replace = actionButton("danger", () => {
      if (existing !== null && !editor.busy) void rename(existing, Overwrite.REPLACE);
    });
    const other = actionButton("secondary", () => {
      if (editor.busy) return;
      existing = null;
      draw();
      form.input.focus();
      form.input.select();
    });
    form.question.append(questionText, h("div", { class: "button-row" }, replace, other));

    function draw(): void {
      const name = clip(entry.name, 200);
      form.label.textContent = t("files.rename_label", { name });
      form.submit.textContent = t("files.rename");
      form.cancel.textContent = t("files.cancel");
      replace.textContent = t("files.rename_replace");
      other.textContent = t("files.rename_other");
      form.question.hidden = existing === null || editor.busy;
      if (existing !== null) questionText.textContent = t("files.rename_exists", { name: clip(existing, 200) });
      setBusy([form.submit, form.cancel, replace, other], form.input, editor.busy);
      if (editor.busy) replaceChildren(form.status.box, h("p", { class: "muted" }, t("files.working")));
      else form.status.show(problem, t("files.rename_failed", { name }));
    }

    async function rename(typed: string, overwrite: Overwrite): Promise<void> {
      existing = null;
      problem = await run(editor, (id) => ({
        kind: "rename",
        id,
        source: join(editor.folder, entry.name),
        target: join(editor.folder, typed),
        overwrite,
      }));
      if (problem === null) {
        const said = t("files.renamed", { name: clip(entry.name, 200), target: clip(typed, 200) });
        succeeded(editor, typed.includes("/") ? null : focusKey("rename", typed), said);
        return;
      }
      if (problem.code === "exists" && overwrite === Overwrite.FAIL) {
        // Asked, not assumed: the technician says whether the other entry may go.
        existing = typed;
        problem = null;
        if (refused(editor)) replace.focus();
        return;
      }
      if (refused(editor)) form.input.focus();
    }

    form.input.value = entry.name;
    form.input.addEventListener("input", () => {
      if (existing !== null || problem !== null) {
        existing = null;
        problem = null;
        draw();
      }
    });
    open(editor);
    form.input.focus();
    // The name without its extension is what people usually change.
    const dot = entry.kind === EntryKind.DIRECTORY ? -1 : entry.name.lastIndexOf(".");
    form.input.setSelectionRange(0, dot > 0 ? dot : entry.name.length);
  }

  // ---- delete

  function openDelete(entry: Entry): void {
    if (busyGuard()) return;
    let problem: Problem | null = null;
    const editor: Editor = { kind: "delete", folder: host.cwd(), name: entry.name, rows: [], busy: false, draw };
    const back = focusKey("delete", entry.name);
    const question = h("p", { class: "files-op-question-text" });
    const confirm = actionButton("danger", () => void remove());
    const cancel = actionButton("secondary", () => dismiss(editor, back));
    const status = message();
    const row = h(
      "tr",
      { class: "files-op-row files-confirm-row", dataset: { testid: "files-delete-confirm", name: entry.name } },
      h("td", { attrs: { colspan: 4 } }, question, h("div", { class: "button-row" }, confirm, cancel), status.box),
    );
    row.addEventListener("keydown", onEscape(editor, back));
    editor.rows = [row];
    const kindKey = { [EntryKind.FILE]: "file", [EntryKind.DIRECTORY]: "folder", [EntryKind.SYMLINK]: "link", [EntryKind.OTHER]: "other" }[entry.kind];

    function draw(): void {
      const name = clip(entry.name, 200);
      question.textContent = t(`files.delete_confirm_${kindKey ?? "other"}`, { name });
      confirm.textContent = t("files.delete");
      cancel.textContent = t("files.cancel");
      setBusy([confirm, cancel], null, editor.busy);
      if (editor.busy) replaceChildren(status.box, h("p", { class: "muted" }, t("files.working")));
      else status.show(problem, t("files.delete_failed", { name }));
    }

    async function remove(): Promise<void> {
      if (editor.busy || current !== editor) return;
      // What the row showed is what may go: an entry swapped for another kind meanwhile is refused.
      const what = entry.kind === EntryKind.DIRECTORY ? Removal.DIRECTORY : Removal.NOT_DIRECTORY;
      const neighbour = host.cwd() === editor.folder ? nextTo(entry.name) : null;
      problem = await run(editor, (id) => ({ kind: "remove", id, path: join(editor.folder, entry.name), what }));
      if (problem === null) {
        succeeded(editor, neighbour === null ? null : focusKey("delete", neighbour), t("files.deleted", { name: clip(entry.name, 200) }));
        return;
      }
      if (refused(editor)) cancel.focus();
    }

    open(editor);
    cancel.focus();
  }

  /** The entry shown after ``name`` (else before it): where the focus goes once ``name`` is gone. */
  function nextTo(name: string): string | null {
    const names = host.shownNames();
    const at = names.indexOf(name);
    if (at < 0) return null;
    return names[at + 1] ?? names[at - 1] ?? null;
  }

  function open(editor: Editor): void {
    host.notify(null);
    current = editor;
    editor.draw();
    host.render();
  }

  // ---- what the panel asks

  function shown(editor: Editor | null): editor is Editor {
    return editor !== null && editor.folder === host.cwd();
  }

  return {
    newFolderButton,
    headRows() {
      if (!shown(current) || current.kind !== "mkdir") return [];
      current.draw();
      return current.rows;
    },
    rowsFor(entry, normal) {
      if (!shown(current) || current.kind === "mkdir" || current.name !== entry.name || entry.nameLossy) return null;
      current.draw();
      return current.kind === "rename" ? current.rows : [normal(), ...current.rows];
    },
    rowButtons(entry) {
      // A name that is not valid UTF-8 on the device cannot be addressed, so it cannot be changed either.
      if (entry.nameLossy) return [];
      const name = clip(entry.name, 256);
      const editing = shown(current) && current.kind !== "mkdir" && current.name === entry.name;
      const button = (action: "rename" | "delete", onClick: () => void): HTMLButtonElement =>
        h(
          "button",
          {
            class: `button button-${action === "delete" ? "danger" : "secondary"} button-small files-op-button`,
            attrs: { type: "button", "aria-label": t(`files.${action}_name`, { name }), "aria-expanded": editing && current?.kind === action ? "true" : "false" },
            dataset: { focusKey: focusKey(action, entry.name) },
            on: { click: onClick },
          },
          t(`files.${action}`),
        );
      return [button("rename", () => openRename(entry)), button("delete", () => openDelete(entry))];
    },
    listed(names) {
      if (current === null || current.busy) return;
      if (current.folder !== host.cwd() || (current.kind !== "mkdir" && !names.has(current.name))) current = null;
    },
    placeFocus(find, settled) {
      if (focusRequest === null) return false;
      const target = focusRequest.key === null ? null : find(focusRequest.key);
      if (target) {
        focusRequest = null;
        target.focus();
        return true;
      }
      if (!settled) return false;
      const fallback = focusRequest.fallback;
      focusRequest = null;
      fallback();
      return true;
    },
    setEnabled(enabled) {
      newFolderButton.disabled = !enabled;
    },
  };
}
