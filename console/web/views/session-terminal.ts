// The session's Terminal tab: one shell in the device's PTY, shown by xterm.js.
//
// Output is written into xterm and acknowledged (ACK) once xterm has parsed it, so a slow browser stops the
// agent's reader instead of growing a queue; input is sent within the agent's credit WINDOW and queued (bounded)
// beyond it. Resizing the panel resizes the PTY (FitAddon + ResizeObserver → RESIZE). The bytes the agent sends
// are for a terminal emulator: xterm interprets them on its own canvas of DOM rows and never as HTML.
//
// xterm.js is loaded when the Terminal tab is first used (a chunk of its own), not with every console page.

import "@xterm/xterm/css/xterm.css";
import type { FitAddon } from "@xterm/addon-fit";
import type { Terminal } from "@xterm/xterm";
import { clip, h } from "../lib/dom";
import { onLanguageChange, t } from "../lib/i18n";
import { button } from "../lib/ui";
import { utf8, type Bytes } from "../session/bytes";
import {
  MAX_DATA_BYTES,
  ShellProtocolError,
  Signal,
  WINDOW,
  decodeFromAgent,
  encodeAck,
  encodeData,
  encodeOpen,
  encodeResize,
  encodeSignal,
  signalName,
  type AgentShellMessage,
} from "../session/shellproto";

export interface TerminalPanel {
  el: HTMLElement;
  /** One DATA record's payload on Channel.SHELL. */
  onData(payload: Uint8Array): void;
  /** Whether the user allows the command line now (the agent refuses SHELL records otherwise). */
  setGranted(granted: boolean): void;
  /** The tab was shown (xterm can measure itself) or hidden. */
  setVisible(visible: boolean): void;
  /** The session ended: nothing more is sent, the terminal says so and takes no input. */
  end(): void;
  dispose(): void;
}

export interface TerminalOptions {
  send(payload: Bytes): void;
  /** The agent sent something that breaks the shell protocol: the session must end with this code. */
  onProtocolError(code: string): void;
}

type ShellState =
  | { kind: "idle" }
  | { kind: "opening" }
  | { kind: "running"; pid: number }
  | { kind: "exited"; status: number; signal: number }
  | { kind: "failed"; code: string; message: string }
  /** Access was withdrawn while it ran: the agent ends its shells. */
  | { kind: "gone" };

/** Input waiting for the agent's credit; beyond this a paste is refused rather than queued. */
const MAX_PENDING_INPUT = 1024 * 1024;
const SCROLLBACK = 5000;
const TERM = "xterm-256color";
/** Signals offered in the menu besides the interrupt button. */
const MENU_SIGNALS: [Signal, string][] = [
  [Signal.TERM, "session.term_signal_term"],
  [Signal.HUP, "session.term_signal_hup"],
  [Signal.QUIT, "session.term_signal_quit"],
  [Signal.TSTP, "session.term_signal_tstp"],
  [Signal.CONT, "session.term_signal_cont"],
  [Signal.KILL, "session.term_signal_kill"],
];

/**
 * xterm.js writes its per-terminal CSS (cell sizes, theme colours) into <style> elements, which the console's
 * CSP (style-src 'self', no 'unsafe-inline') does not apply. Constructed stylesheets are CSSOM, which the CSP
 * does not govern: the text of each <style> xterm puts under `root` is mirrored into one, adopted by the
 * document. The element itself is taken out of the document (xterm keeps its reference and updates it there),
 * so that each later update is not one more CSP violation report. The CSS comes from xterm and our options,
 * never from the agent. (24-bit colours, which xterm sets as style attributes, stay blocked: such text shows
 * in the default colour.)
 */
function mirrorXtermStyles(root: HTMLElement): () => void {
  const sheets = new Map<HTMLStyleElement, CSSStyleSheet>();
  const styleOf = (node: Node | null): HTMLStyleElement | null => {
    for (let n = node; n !== null; n = n.parentNode) if (n instanceof HTMLStyleElement) return n;
    return null;
  };
  const sync = (style: HTMLStyleElement): void => {
    let sheet = sheets.get(style);
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheets.set(style, sheet);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      observer.observe(style, { childList: true, characterData: true, subtree: true });
    }
    sheet.replaceSync(style.textContent ?? "");
    if (style.isConnected) style.remove();
  };
  const observer = new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node instanceof HTMLStyleElement) sync(node);
        else if (node instanceof Element) node.querySelectorAll("style").forEach(sync);
      }
      const style = styleOf(record.target);
      if (style) sync(style);
    }
  });
  observer.observe(root, { childList: true, subtree: true });
  root.querySelectorAll("style").forEach(sync);
  return () => {
    observer.disconnect();
    const mine = new Set(sheets.values());
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => !mine.has(s));
    sheets.clear();
  };
}

export function createTerminalPanel(options: TerminalOptions): TerminalPanel {
  let granted = false;
  let visible = false;
  let ended = false;
  let disposed = false;
  let state: ShellState = { kind: "idle" };
  /** The shell id of the current (or last) shell; a new shell takes a new id, so late records of the old one are told apart. */
  let shellId = 0;
  /** Input bytes sent that the agent has not acknowledged yet. */
  let inFlight = 0;
  let pending: Bytes[] = [];
  let pendingBytes = 0;
  let resizeTimer: number | null = null;
  let notice = "";
  let term: Terminal | null = null;
  let fit: FitAddon | null = null;
  let loading: Promise<Terminal> | null = null;
  let stopStyles: (() => void) | null = null;

  const status = h("p", { class: "terminal-status", attrs: { role: "status", "aria-live": "polite" }, dataset: { testid: "terminal-status" } });
  const noticeLine = h("p", { class: "terminal-notice muted", attrs: { "aria-live": "polite", hidden: true } });
  const interrupt = button("session.term_interrupt", () => sendSignal(Signal.INT), "secondary");
  interrupt.classList.add("button-small");
  interrupt.setAttribute("aria-keyshortcuts", "Control+C");
  const signalSelect = h(
    "select",
    { class: "session-select", tLabel: "session.term_signal", attrs: { name: "terminal-signal" } },
    h("option", { attrs: { value: "" }, t: "session.term_signal" }),
    MENU_SIGNALS.map(([signal, key]) => h("option", { attrs: { value: signal }, t: key })),
  );
  const copyButton = button("session.term_copy", () => copySelection(), "secondary");
  copyButton.classList.add("button-small");
  copyButton.setAttribute("aria-keyshortcuts", "Control+Shift+C");
  const pasteButton = button("session.term_paste", () => pasteClipboard(), "secondary");
  pasteButton.classList.add("button-small");
  pasteButton.setAttribute("aria-keyshortcuts", "Control+Shift+V");
  const newShell = button("session.term_new_shell", () => openShell(), "primary");
  newShell.classList.add("button-small");
  const toolbar = h(
    "div",
    { class: "session-toolbar terminal-toolbar", attrs: { role: "toolbar" }, tLabel: "session.term_toolbar" },
    interrupt,
    signalSelect,
    copyButton,
    pasteButton,
    newShell,
  );
  const host = h("div", { class: "terminal-host", dataset: { testid: "terminal" } });
  const frame = h("div", { class: "terminal-frame" }, host);
  const el = h("div", { class: "terminal-panel" }, h("div", { class: "terminal-head" }, status, toolbar), noticeLine, frame);

  /** xterm, loaded and opened in the (visible) panel on first use. */
  function load(): Promise<Terminal> {
    loading ??= Promise.all([import("@xterm/xterm"), import("@xterm/addon-fit")]).then(([xterm, addon]) => {
      if (disposed) throw new Error("the terminal panel is gone");
      const created = new xterm.Terminal({
        cols: 80,
        rows: 24,
        scrollback: SCROLLBACK,
        cursorBlink: true,
        fontFamily: '"DejaVu Sans Mono", "Liberation Mono", "Cascadia Mono", ui-monospace, Menlo, Consolas, monospace',
        fontSize: 14,
        rightClickSelectsWord: true,
        theme: { background: "#111418", foreground: "#e6e6e6", cursor: "#e6e6e6", selectionBackground: "#3a5a8c" },
      });
      fit = new addon.FitAddon();
      created.loadAddon(fit);
      wire(created);
      stopStyles = mirrorXtermStyles(host);
      created.open(host);
      term = created;
      fitNow();
      return created;
    });
    return loading;
  }

  function fitNow(): void {
    if (!fit || !visible || host.clientWidth === 0 || host.clientHeight === 0) return;
    fit.fit();
  }

  function live(): boolean {
    return !ended && granted && (state.kind === "opening" || state.kind === "running");
  }

  // ---- bytes out (within the agent's credit)

  function sendInput(data: Bytes): void {
    if (!live() || data.length === 0) return;
    if (pendingBytes + data.length > MAX_PENDING_INPUT) {
      showNotice(t("session.term_input_too_large"));
      return;
    }
    for (let at = 0; at < data.length; at += MAX_DATA_BYTES) {
      const chunk = data.slice(at, at + MAX_DATA_BYTES);
      pending.push(chunk);
      pendingBytes += chunk.length;
    }
    pump();
  }

  function pump(): void {
    while (pending.length > 0 && inFlight + pending[0]!.length <= WINDOW && live()) {
      const chunk = pending.shift()!;
      pendingBytes -= chunk.length;
      inFlight += chunk.length;
      options.send(encodeData(shellId, chunk));
    }
  }

  function sendSignal(signal: Signal): void {
    if (!live()) return;
    options.send(encodeSignal(shellId, signal));
    term?.focus();
  }

  function openShell(): void {
    if (ended || !granted || state.kind === "opening" || state.kind === "running") return;
    state = { kind: "opening" };
    notice = "";
    render();
    load().then(
      (opened) => {
        if (ended || !granted || state.kind !== "opening") return;
        fitNow();
        // Never reuse the last id at once: its EXIT may have left before the agent forgot it.
        shellId = (shellId % 0xffff) + 1;
        inFlight = 0;
        pending = [];
        pendingBytes = 0;
        opened.reset();
        opened.options.disableStdin = false;
        options.send(encodeOpen(shellId, opened.cols, opened.rows, TERM));
        showSize(opened.cols, opened.rows);
        if (visible) opened.focus();
      },
      (err: unknown) => {
        if (disposed) return;
        console.error("the terminal could not be loaded", err);
        state = { kind: "failed", code: "load_failed", message: err instanceof Error ? err.message : String(err) };
        render();
      },
    );
  }

  // ---- bytes in

  function onData(payload: Uint8Array): void {
    if (ended) return;
    let message: AgentShellMessage;
    try {
      message = decodeFromAgent(payload);
    } catch (err) {
      options.onProtocolError(err instanceof ShellProtocolError ? err.code : "invalid_message");
      return;
    }
    // Records of an earlier shell (a late ACK, output after we moved on) change nothing.
    if (message.shell !== shellId || term === null || state.kind === "idle") return;
    switch (message.kind) {
      case "data":
      case "stderr": {
        const id = message.shell;
        const length = message.data.length;
        // Acknowledged once xterm has consumed it: the agent then may send as much more.
        term.write(message.data, () => {
          if (!ended) options.send(encodeAck(id, length));
        });
        return;
      }
      case "ack":
        inFlight = Math.max(0, inFlight - message.nbytes);
        pump();
        return;
      case "opened":
        if (state.kind === "opening") state = { kind: "running", pid: message.pid };
        break;
      case "exit":
        state = { kind: "exited", status: message.status, signal: message.signal };
        stopInput();
        break;
      case "error":
        state = { kind: "failed", code: message.code, message: clip(message.message, 300) };
        stopInput();
        break;
    }
    render();
  }

  function stopInput(): void {
    pending = [];
    pendingBytes = 0;
    if (term) term.options.disableStdin = true;
  }

  // ---- copy and paste

  function copySelection(): void {
    const text = term?.getSelection() ?? "";
    if (!text) {
      showNotice(t("session.term_copy_nothing"));
      return;
    }
    navigator.clipboard.writeText(text).then(
      () => showNotice(t("common.copied")),
      () => showNotice(t("common.copy_failed")),
    );
  }

  function pasteClipboard(): void {
    if (!live()) return;
    navigator.clipboard.readText().then(
      (text) => {
        // term.paste() brackets the text when the program asked for it and sends it through onData.
        if (text && live()) term?.paste(text);
        term?.focus();
      },
      () => showNotice(t("session.term_paste_failed")),
    );
  }

  function showNotice(text: string): void {
    notice = text;
    noticeLine.textContent = text;
    noticeLine.hidden = text === "";
  }

  /** Keys, pastes and size changes of a new xterm go to the current shell. */
  function wire(created: Terminal): void {
    created.attachCustomKeyEventHandler((event) => {
      if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey || event.altKey || event.metaKey) return true;
      const key = event.key.toLowerCase();
      if (key === "c") {
        event.preventDefault();
        copySelection();
        return false;
      }
      // Ctrl+Shift+V: let the browser paste into xterm's textarea; xterm's paste handler sends it (bracketed).
      if (key === "v") return false;
      return true;
    });
    // Ctrl-C needs nothing special: xterm sends 0x03 and the PTY's line discipline interrupts the foreground group.
    created.onData((text) => sendInput(utf8(text)));
    created.onBinary((text) => {
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
      sendInput(bytes);
    });
    created.onResize(({ cols, rows }) => {
      if (resizeTimer !== null) window.clearTimeout(resizeTimer);
      // A dragged edge fires many sizes; the PTY needs only the last one.
      resizeTimer = window.setTimeout(() => {
        resizeTimer = null;
        if (!live()) return;
        options.send(encodeResize(shellId, cols, rows));
        showSize(cols, rows);
      }, 60);
    });
  }

  /** The size the PTY was last told (also what a test reads back from `stty size`). */
  function showSize(cols: number, rows: number): void {
    host.dataset["cols"] = String(cols);
    host.dataset["rows"] = String(rows);
  }

  signalSelect.addEventListener("change", () => {
    const value = Number(signalSelect.value);
    signalSelect.value = "";
    if (value) sendSignal(value as Signal);
  });

  const observer = new ResizeObserver(() => fitNow());
  observer.observe(host);

  function statusText(): string {
    if (ended) return t("session.term_session_ended");
    switch (state.kind) {
      case "gone":
        return t("session.term_withdrawn");
      case "idle":
        return t("session.term_idle");
      case "opening":
        return t("session.term_opening");
      case "running":
        return t("session.term_running", { pid: String(state.pid) });
      case "exited":
        return state.signal === 0
          ? t("session.term_exited", { status: String(state.status) })
          : t("session.term_killed", { signal: signalName(state.signal) });
      case "failed":
        return t("session.term_failed", { code: state.code, message: state.message || "—" });
    }
  }

  function render(): void {
    status.textContent = statusText();
    status.dataset["state"] = ended ? "ended" : state.kind;
    const running = live();
    interrupt.disabled = !running;
    signalSelect.disabled = !running;
    pasteButton.disabled = !running;
    newShell.hidden = ended || !granted || state.kind === "opening" || state.kind === "running";
    noticeLine.textContent = notice;
    noticeLine.hidden = notice === "";
  }

  const stopLanguage = onLanguageChange(() => render());
  render();

  return {
    el,
    onData,
    setGranted(now) {
      if (granted === now) return;
      granted = now;
      if (!granted) {
        if (state.kind === "opening" || state.kind === "running") state = { kind: "gone" };
        stopInput();
      } else if (visible && state.kind === "idle") {
        openShell();
      }
      render();
    },
    setVisible(now) {
      visible = now;
      // xterm is opened only where it can measure its cells: a visible panel the user allowed.
      if (!visible || !granted) return;
      if (!ended && state.kind === "idle") {
        openShell();
        return;
      }
      void load().then(
        (opened) => {
          fitNow();
          if (live() && visible) opened.focus();
        },
        () => undefined,
      );
    },
    end() {
      if (ended) return;
      ended = true;
      stopInput();
      term?.write(`\r\n\x1b[2m— ${t("session.term_session_ended")} —\x1b[0m\r\n`);
      term?.blur();
      render();
    },
    dispose() {
      ended = true;
      disposed = true;
      if (resizeTimer !== null) window.clearTimeout(resizeTimer);
      observer.disconnect();
      stopLanguage();
      term?.dispose();
      stopStyles?.();
    },
  };
}
