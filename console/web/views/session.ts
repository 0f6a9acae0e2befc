// The remote session viewer: handshake status and the six-digit code, then (after the user allowed it) the
// session's tabs: the screen on a canvas with toolbar, keyboard capture, clipboard and connection quality; the
// terminal; files; chat.
//
// A tab works only once the agent's "granted" control message names its capability (view, shell, files, chat);
// until then it offers to ask for it. Before consent the technician sees the code to read out and what the
// device is waiting for. Names, reasons, chat and clipboard text from the agent are shown as text only, clipped.

import "../session/session.css";
import { clip, deviceHref, h, replaceChildren } from "../lib/dom";
import { formatBytes } from "../lib/format";
import { onLanguageChange, t } from "../lib/i18n";
import { button, card, emptyState, nextId, type View } from "../lib/ui";
import type { ConsoleSocket } from "../lib/ws";
import { utf8 } from "../session/bytes";
import type { Capability, ConsoleHandshake, SignedOffer } from "../session/crypto";
import { InputCapture } from "../session/input";
import { Channel, RelayClient, relayUrl, type CloseInfo, type ControlMessage, type RelayState } from "../session/relay";
import { extendSession, takeSession } from "../session/request";
import { ScreenDecoder } from "../session/screen";
import {
  MAX_CLIPBOARD_BYTES,
  MANDATORY_ENCODINGS,
  decodeFromAgent,
  encodeClipboard,
  encodeConfigure,
  encodeRefresh,
  encodeSelectMonitor,
  type MonitorInfo,
} from "../session/screenproto";
import { createChatPanel, uploadTranscript, type TranscriptExport } from "./session-chat";
import { createFilesPanel } from "./session-files";
import { createTerminalPanel } from "./session-terminal";

export interface ViewerOptions {
  sessionId: string;
  deviceId: string;
  deviceLabel: string;
  relayUrl: string;
  handshake: ConsoleHandshake;
  signedOffer: SignedOffer;
  /** Capabilities asked for (the offer carries the same). */
  capabilities: Capability[];
  /**
   * Re-signs the offer with more capabilities (``session/extend``): needed to ask for what the first offer did
   * not carry. Without it, asking only works within the first offer.
   */
  extend?: (capabilities: Capability[]) => Promise<SignedOffer>;
  /** Called once when the session ends, whoever ended it (tell the server). */
  onEnded?: (info: CloseInfo) => void;
  /** Called once at the end with the chat's transcript, when the chat was used (keep it with the session). */
  onTranscript?: (transcript: TranscriptExport) => void;
}

type TabId = "screen" | "terminal" | "files" | "chat";

interface TabSpec {
  id: TabId;
  capability: Capability;
  label: string;
  ask: string;
}

const TABS: TabSpec[] = [
  { id: "screen", capability: "view", label: "session.tab_screen", ask: "session.ask_view" },
  { id: "terminal", capability: "shell", label: "session.tab_terminal", ask: "session.ask_shell" },
  { id: "files", capability: "files", label: "session.tab_files", ask: "session.ask_files" },
  { id: "chat", capability: "chat", label: "session.tab_chat", ask: "session.ask_chat" },
];

const QUALITIES: [number, string][] = [
  [0, "session.quality_adaptive"],
  [85, "session.quality_high"],
  [65, "session.quality_medium"],
  [40, "session.quality_low"],
];
const MAX_IN_FLIGHT = 3;
/** Errors that mean "someone tampered with the session" rather than "the device misbehaved". */
const SECURITY_CODES = new Set([
  "handshake_failed",
  "offer_invalid",
  "record_forged",
  "record_replayed",
  "record_truncated",
  "record_invalid",
  "session_closed",
  "unsupported_version",
]);

function groupedSas(sas: string): string {
  return `${sas.slice(0, 3)} ${sas.slice(3)}`;
}

function capabilityList(capabilities: readonly Capability[]): string {
  return capabilities.map((c) => t(`session.cap_${c}`)).join(", ");
}

export function sessionViewer(options: ViewerOptions): View {
  let relayState: RelayState = "connecting";
  let sas: string | null = null;
  let granted: Capability[] = [];
  let denied: Capability[] = [];
  let decoder: ScreenDecoder | null = null;
  let ended: CloseInfo | null = null;
  let fit = true;
  let lastBytes = 0;
  let lastTick = performance.now();
  let bandwidth = 0;
  let remoteClipboard = "";
  const asked = new Set<Capability>();
  let askProblem: string | null = null;

  // ---- status (before the screen shows)
  const stateText = h("p", { class: "session-state", attrs: { role: "status", "aria-live": "polite" } });
  const sasDigits = h("p", { class: "sas-digits", dataset: { testid: "sas" } });
  const sasPanel = h(
    "section",
    { class: "sas-panel", attrs: { hidden: true, "aria-labelledby": "sas-title" } },
    h("h2", { class: "sas-title", id: "sas-title", t: "session.sas_title" }),
    sasDigits,
    h("p", { class: "sas-instruction", t: "session.sas_instruction" }),
  );
  const notices = h("div", { class: "session-notices", attrs: { "aria-live": "polite" } });

  // ---- screen
  const screenCanvas = h("canvas", { class: "session-screen", attrs: { width: 1, height: 1 } });
  const cursorCanvas = h("canvas", { class: "session-cursor", attrs: { width: 1, height: 1, "aria-hidden": "true" } });
  const stack = h("div", { class: "session-stack" }, screenCanvas, cursorCanvas);
  const viewport = h(
    "div",
    { class: "session-viewport session-fit", attrs: { tabindex: 0, role: "application", hidden: true }, tLabel: "session.screen_label" },
    stack,
  );

  // ---- toolbar
  const monitorSelect = h("select", { class: "session-select", tLabel: "session.monitor", attrs: { name: "monitor", disabled: true } });
  const qualitySelect = h(
    "select",
    { class: "session-select", tLabel: "session.quality", attrs: { name: "quality" } },
    QUALITIES.map(([value, key]) => h("option", { attrs: { value }, t: key })),
  );
  const scaleButton = h("button", { class: "button button-secondary button-small", attrs: { type: "button", "aria-pressed": "false" }, t: "session.scale_actual" });
  const keyboardButton = h("button", { class: "button button-secondary button-small keyboard-button", attrs: { type: "button" }, t: "session.keyboard_capture" });
  const keyboardHint = h("span", { class: "keyboard-hint muted", t: "session.keyboard_free" });
  const refreshButton = button("session.refresh", () => decoder && relay.send(Channel.SCREEN, encodeRefresh()), "secondary");
  refreshButton.classList.add("button-small");
  const fullscreenButton = button("session.fullscreen", () => void viewport.requestFullscreen?.().catch(() => undefined), "secondary");
  fullscreenButton.classList.add("button-small");
  const askControl = button("session.ask_control", () => ask("control"), "secondary");
  const askClipboard = button("session.ask_clipboard", () => ask("clipboard"), "secondary");
  askControl.classList.add("button-small");
  askClipboard.classList.add("button-small");
  const sasBadge = h("span", { class: "sas-badge mono", tTitle: "session.sas_title" });
  const stats = h("p", { class: "session-stats", tTitle: "session.stats_label", dataset: { testid: "stats" } });
  const stopButton = button("session.stop", () => stop(), "danger");
  const toolbar = h(
    "div",
    { class: "session-toolbar", attrs: { role: "toolbar", hidden: true }, tLabel: "session.toolbar" },
    h("label", { class: "session-tool" }, h("span", { t: "session.monitor" }), monitorSelect),
    h("label", { class: "session-tool" }, h("span", { t: "session.quality" }), qualitySelect),
    scaleButton,
    refreshButton,
    fullscreenButton,
    keyboardButton,
    askControl,
    askClipboard,
    sasBadge,
  );

  // ---- clipboard
  const received = h("textarea", {
    class: "clipboard-text",
    attrs: { readonly: true, rows: 3, name: "clipboard-received", spellcheck: "false" },
    tLabel: "session.clipboard_received",
  });
  const outgoing = h("textarea", {
    class: "clipboard-text",
    attrs: { rows: 3, name: "clipboard-send", spellcheck: "false" },
    tLabel: "session.clipboard_to_device",
    tPlaceholder: "session.clipboard_placeholder",
  });
  const clipboardStatus = h("p", { class: "muted clipboard-status", attrs: { "aria-live": "polite" } });
  const copyReceived = button("common.copy", () => {
    void navigator.clipboard.writeText(remoteClipboard).then(
      () => (clipboardStatus.textContent = t("common.copied")),
      () => (clipboardStatus.textContent = t("common.copy_failed")),
    );
  }, "secondary");
  const pasteButton = button("session.clipboard_paste", () => {
    void navigator.clipboard.readText().then(
      (text) => {
        outgoing.value = text;
      },
      () => (clipboardStatus.textContent = t("session.clipboard_paste_failed")),
    );
  }, "secondary");
  const sendClipboard = button("session.clipboard_send", () => {
    const text = outgoing.value;
    if (utf8(text).length > MAX_CLIPBOARD_BYTES) {
      clipboardStatus.textContent = t("session.clipboard_too_large");
      return;
    }
    relay.send(Channel.CLIPBOARD, encodeClipboard(text));
    clipboardStatus.textContent = t("session.clipboard_sent");
  });
  const clipboardPanel = h(
    "section",
    { class: "session-clipboard card", attrs: { hidden: true, "aria-labelledby": "clipboard-title" } },
    h("h2", { class: "card-title", id: "clipboard-title", t: "session.clipboard" }),
    h(
      "div",
      { class: "grid grid-2" },
      h("div", { class: "field" }, h("span", { class: "label", t: "session.clipboard_received" }), received, h("div", { class: "button-row" }, copyReceived)),
      h("div", { class: "field" }, h("span", { class: "label", t: "session.clipboard_to_device" }), outgoing, h("div", { class: "button-row" }, pasteButton, sendClipboard)),
    ),
    clipboardStatus,
  );

  // ---- the tabs: one per capability; a tab's content works once the user allowed its capability
  let selected: TabId = "screen";
  let consentSeen = false;
  let unread = 0;
  const terminal = createTerminalPanel({
    send: (payload) => relay.send(Channel.SHELL, payload),
    onProtocolError: (code) => fail(code),
  });
  const chat = createChatPanel({
    send: (payload) => relay.send(Channel.CHAT, payload),
    onUnread: (count) => {
      unread = count;
      renderTabs();
    },
    onProtocolError: (code) => fail(code),
  });
  const files = createFilesPanel({ send: (payload) => relay.send(Channel.FILES, payload) });
  const contents: Record<TabId, HTMLElement> = {
    screen: h("div", { class: "session-screen-panel" }, toolbar, viewport, clipboardPanel),
    terminal: terminal.el,
    files: files.el,
    chat: chat.el,
  };
  const chatBadge = h("span", { class: "session-tab-badge", attrs: { hidden: true }, dataset: { testid: "chat-unread" } });
  const tabs = TABS.map((spec) => {
    const tabId = nextId(`tab-${spec.id}`);
    const panelId = nextId(`panel-${spec.id}`);
    const tab = h(
      "button",
      {
        class: "session-tab",
        id: tabId,
        attrs: { type: "button", role: "tab", "aria-controls": panelId, "aria-selected": "false", tabindex: -1 },
        dataset: { tab: spec.id },
      },
      h("span", { t: spec.label }),
      spec.id === "chat" ? chatBadge : null,
    );
    tab.addEventListener("click", () => select(spec.id));
    const gateLine = h("p", { class: "session-gate-text" });
    const askButton = button(spec.ask, () => ask(spec.capability), "primary");
    const gate = h("div", { class: "session-gate", attrs: { hidden: true } }, gateLine, askButton);
    const content = contents[spec.id];
    // A panel is named by its tab, except the screen's: "Screen" already names the monitor picker inside it.
    const panel = h(
      "section",
      {
        class: ["session-panel", `session-panel-${spec.id}`],
        id: panelId,
        attrs: { role: "tabpanel", "aria-labelledby": spec.id === "screen" ? null : tabId, hidden: true },
        ...(spec.id === "screen" ? { tLabel: "session.panel_screen" } : {}),
      },
      gate,
      content,
    );
    return { spec, tab, panel, gate, gateLine, askButton, content };
  });
  const tabBar = h(
    "div",
    { class: "session-tabs", attrs: { role: "tablist", hidden: true }, tLabel: "session.tabs" },
    tabs.map((entry) => entry.tab),
  );
  tabBar.addEventListener("keydown", (event) => {
    // The ARIA tabs pattern: arrows move between tabs, Home/End to the first/last.
    const index = TABS.findIndex((spec) => spec.id === selected);
    const next =
      event.key === "ArrowRight" ? (index + 1) % TABS.length
      : event.key === "ArrowLeft" ? (index + TABS.length - 1) % TABS.length
      : event.key === "Home" ? 0
      : event.key === "End" ? TABS.length - 1
      : -1;
    if (next < 0) return;
    event.preventDefault();
    select(TABS[next]!.id);
    tabs[next]!.tab.focus();
  });

  const endPanel = h("div", { class: "session-ended card", attrs: { hidden: true, role: "alert" } });
  const title = h("h1", { class: "session-title" });
  const el = h(
    "div",
    { class: "session-page" },
    h("a", { class: "back-link", attrs: { href: deviceHref(options.deviceId) }, t: "session.back" }),
    h("div", { class: "page-header session-header" }, title, h("div", { class: "button-row" }, stats, stopButton)),
    stateText,
    sasPanel,
    notices,
    endPanel,
    tabBar,
    tabs.map((entry) => entry.panel),
  );

  // ---- the relay
  const relay = new RelayClient(options.relayUrl, options.handshake, options.signedOffer, {
    onState(state) {
      relayState = state;
      render();
    },
    onEstablished(code) {
      sas = code;
      render();
    },
    onControl(message) {
      control(message);
    },
    onData(channel, payload) {
      data(channel, payload);
    },
    onClosed(info) {
      end(info);
    },
  });

  const input = new InputCapture(viewport, screenCanvas, {
    send: (payload) => relay.send(Channel.INPUT, payload),
    frameSize: () => decoder?.frameSize() ?? { width: 0, height: 0 },
  });
  input.onCaptureChange = () => renderKeyboard();

  function control(message: ControlMessage): void {
    if (message.type === "granted") {
      granted = message.capabilities;
      denied = message.denied;
      asked.clear();
      askProblem = null;
      if (granted.includes("view") && decoder === null) startScreen();
      if (!granted.includes("view") && decoder !== null) {
        // Viewing was withdrawn: stop painting at once (the agent stops sending too).
        decoder.dispose();
        decoder = null;
      }
      input.enabled = granted.includes("control");
      if (!input.enabled) input.release();
      if (!consentSeen && granted.length > 0) {
        consentSeen = true;
        // Open on the first tab the user allowed (the screen, unless viewing was refused).
        const first = TABS.find((spec) => granted.includes(spec.capability));
        if (first) select(first.id);
      }
      // The tabs first: a panel that becomes usable must be visible before it opens (xterm measures itself).
      renderTabs();
      terminal.setGranted(granted.includes("shell"));
      chat.setGranted(granted.includes("chat"));
      render();
    } else if (message.type === "refused" && message.channel === Channel.CONTROL && asked.size > 0) {
      // The agent did not pass the request on to its user (an offer it does not trust, another one pending).
      asked.clear();
      askProblem = t("session.ask_refused", { reason: clip(message.reason, 200) });
      render();
    } else if (message.type === "refused") {
      replaceChildren(
        notices,
        h("p", { class: "notice notice-warning" }, t("session.refused_record", { reason: clip(message.reason, 200) })),
      );
    }
  }

  function data(channel: number, payload: Uint8Array): void {
    if (channel === Channel.SCREEN) {
      // Nothing is painted before the user allowed viewing.
      decoder?.push(payload);
      return;
    }
    // Nothing reaches a tab whose capability the user has not allowed.
    if (channel === Channel.SHELL) {
      if (granted.includes("shell")) terminal.onData(payload);
      return;
    }
    if (channel === Channel.CHAT) {
      if (granted.includes("chat")) chat.onData(payload);
      return;
    }
    if (channel === Channel.FILES) {
      if (granted.includes("files")) files.onData(payload);
      return;
    }
    if ((channel === Channel.CLIPBOARD || channel === Channel.INPUT) && granted.includes("clipboard")) {
      try {
        const message = decodeFromAgent(payload);
        if (message.kind === "clipboard") showClipboard(message.text);
      } catch {
        // A malformed clipboard message is dropped; it cannot affect the screen.
      }
    }
  }

  function showClipboard(text: string): void {
    if (!granted.includes("clipboard")) return;
    remoteClipboard = text;
    received.value = text;
    clipboardStatus.textContent = t("session.clipboard_arrived");
  }

  function startScreen(): void {
    decoder = new ScreenDecoder(screenCanvas, cursorCanvas, {
      send: (payload) => relay.send(Channel.SCREEN, payload),
      onMonitors: (monitors) => renderMonitors(monitors),
      onClipboard: (text) => showClipboard(text),
      onFrameSize: () => layout(),
      onError: (code) => fail(code),
    });
    decoder.window = MAX_IN_FLIGHT;
    configure();
  }

  function configure(): void {
    relay.send(
      Channel.SCREEN,
      encodeConfigure({ quality: Number(qualitySelect.value) || 0, maxFps: 0, encodings: MANDATORY_ENCODINGS, maxInFlight: MAX_IN_FLIGHT }),
    );
  }

  function renderMonitors(monitors: MonitorInfo[]): void {
    replaceChildren(
      monitorSelect,
      monitors.map((m) =>
        h(
          "option",
          { attrs: { value: m.id, selected: m.selected } },
          t("session.monitor_option", {
            name: clip(m.name || t("session.monitor_unnamed", { id: String(m.id) }), 64),
            width: String(m.width),
            height: String(m.height),
          }),
        ),
      ),
    );
    monitorSelect.disabled = monitors.length < 2;
  }

  function ask(capability: Capability): void {
    if (asked.has(capability)) return;
    asked.add(capability);
    askProblem = null;
    render();
    if (!options.extend) {
      relay.sendControl({ type: "ask", capabilities: [capability], reason: "" });
      return;
    }
    // The server re-signs the offer with the new capability; the agent trusts only that signature.
    options.extend([capability]).then(
      (offer) => {
        if (ended) return;
        relay.sendControl({ type: "ask", capabilities: [capability], reason: "", offer });
      },
      (error: unknown) => {
        asked.delete(capability);
        askProblem = t("session.ask_failed", { error: clip(error instanceof Error ? error.message : String(error), 200) });
        render();
      },
    );
  }

  function layout(): void {
    const { width, height } = decoder?.frameSize() ?? { width: 0, height: 0 };
    if (width === 0 || height === 0) return;
    let scale = 1;
    if (fit) {
      const available = viewport.clientWidth || width;
      const availableHeight = Math.max(200, window.innerHeight - viewport.getBoundingClientRect().top - 16);
      scale = Math.min(available / width, (document.fullscreenElement === viewport ? viewport.clientHeight : availableHeight) / height);
    }
    stack.style.width = `${Math.max(1, Math.floor(width * scale))}px`;
    stack.style.height = `${Math.max(1, Math.floor(height * scale))}px`;
  }

  /** The agent broke a channel's protocol: the session ends (no half-working session). */
  function fail(code: string): void {
    end({ code, detail: "" });
    relay.stop(code);
  }

  function select(id: TabId): void {
    selected = id;
    if (id !== "screen") input.release();
    renderTabs();
    terminal.setVisible(id === "terminal");
    chat.setVisible(id === "chat");
    if (id === "screen") layout();
  }

  function gateText(spec: TabSpec): string {
    const name = t(`session.cap_${spec.capability}`);
    if (ended) return t("session.gate_ended", { capability: name });
    if (asked.has(spec.capability)) return t("session.asked");
    if (denied.includes(spec.capability)) return t("session.gate_denied", { capability: name });
    return t("session.gate_not_granted", { capability: name });
  }

  function renderTabs(): void {
    const live = relayState === "established" && ended === null;
    tabBar.hidden = !consentSeen;
    for (const { spec, tab, panel, gate, gateLine, askButton, content } of tabs) {
      const on = spec.id === selected;
      const allowed = granted.includes(spec.capability);
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      tab.classList.toggle("session-tab-locked", !allowed);
      panel.hidden = !consentSeen || !on;
      gate.hidden = allowed;
      content.hidden = !allowed;
      gateLine.textContent = gateText(spec);
      askButton.hidden = !live || asked.has(spec.capability);
    }
    chatBadge.hidden = unread === 0;
    chatBadge.textContent = unread > 0 ? String(unread) : "";
    chatBadge.setAttribute("aria-label", t("session.chat_unread", { count: unread }));
  }

  function renderKeyboard(): void {
    const captured = input.isCaptured();
    keyboardButton.hidden = !granted.includes("control");
    keyboardButton.textContent = t(captured ? "session.keyboard_release" : "session.keyboard_capture");
    keyboardButton.setAttribute("aria-pressed", String(captured));
    keyboardHint.textContent = granted.includes("control") ? t(captured ? "session.keyboard_hint" : "session.keyboard_free") : t("session.view_only");
    viewport.classList.toggle("session-captured", captured);
  }

  function renderStats(): void {
    const now = performance.now();
    const { bytesIn } = relay.statistics();
    const seconds = (now - lastTick) / 1000;
    if (seconds >= 0.9) {
      bandwidth = (bytesIn - lastBytes) / seconds;
      lastBytes = bytesIn;
      lastTick = now;
    }
    if (!decoder || ended) {
      stats.hidden = true;
      return;
    }
    const s = decoder.statistics(now);
    stats.hidden = false;
    stats.textContent = [
      t("session.stats_fps", { fps: s.fps }),
      s.rttMs === null ? t("session.stats_latency_unknown") : t("session.stats_latency", { ms: Math.round(s.rttMs) }),
      t("session.stats_bandwidth", { rate: formatBytes(Math.round(bandwidth)) }),
      s.width > 0 ? t("session.stats_resolution", { width: String(s.width), height: String(s.height) }) : "",
    ]
      .filter(Boolean)
      .join(" · ");
  }

  function endMessage(info: CloseInfo): string {
    switch (info.code) {
      case "stopped":
        return t("session.end_stopped");
      case "peer_stopped":
        return t("session.end_peer_stopped");
      case "peer_closed":
        return t("session.end_peer_closed");
      case "relay_closed":
        return t("session.end_relay_closed");
      case "stopped_by_server":
        return t("session.end_stopped_by_server");
      case "no_partner":
        return t("session.end_no_partner");
      case "timeout":
        return t("session.end_timeout");
      default:
        return SECURITY_CODES.has(info.code) ? t("session.end_security", { code: info.code }) : t("session.end_protocol", { code: info.code });
    }
  }

  function render(): void {
    title.textContent = t("session.title", { device: clip(options.deviceLabel || options.deviceId, 120) });
    const live = relayState === "established" && ended === null;
    const showing = live && decoder !== null;
    if (ended) {
      stateText.hidden = true;
    } else {
      stateText.hidden = false;
      stateText.dataset["state"] = showing ? "live" : relayState;
      if (relayState === "established") {
        stateText.textContent = showing
          ? t("session.state_live")
          : denied.length > 0 && granted.length === 0
            ? t("session.refused_all")
            : t("session.state_waiting_consent");
      } else {
        stateText.textContent = t(`session.state_${relayState}`);
      }
    }
    sasPanel.hidden = sas === null || showing || ended !== null;
    sasDigits.textContent = sas ? groupedSas(sas) : "";
    sasDigits.setAttribute("aria-label", sas ? sas.split("").join(" ") : "");
    sasBadge.textContent = sas ? t("session.sas_short", { sas: groupedSas(sas) }) : "";
    toolbar.hidden = !showing;
    viewport.hidden = !showing;
    stopButton.hidden = ended !== null;
    clipboardPanel.hidden = !(live && granted.includes("clipboard"));
    askControl.hidden = !live || granted.includes("control") || asked.has("control");
    askClipboard.hidden = !live || granted.includes("clipboard") || asked.has("clipboard");
    if (live && (granted.length > 0 || denied.length > 0)) {
      replaceChildren(
        notices,
        granted.length > 0 ? h("p", { class: "notice notice-info" }, t("session.granted", { list: capabilityList(granted) })) : null,
        denied.length > 0 ? h("p", { class: "notice notice-warning" }, t("session.denied", { list: capabilityList(denied) })) : null,
        asked.size > 0 ? h("p", { class: "notice notice-muted" }, t("session.asked")) : null,
        askProblem ? h("p", { class: "notice notice-warning" }, askProblem) : null,
      );
    }
    if (ended) {
      replaceChildren(
        endPanel,
        h("p", { class: "session-end-text" }, endMessage(ended)),
        ended.detail ? h("p", { class: "muted" }, t("session.end_detail", { detail: clip(ended.detail, 200) })) : null,
        h("a", { class: "button button-secondary", attrs: { href: deviceHref(options.deviceId) }, t: "session.back" }),
      );
      endPanel.hidden = false;
    }
    renderTabs();
    renderKeyboard();
    renderStats();
    layout();
  }

  function end(info: CloseInfo): void {
    if (ended) return;
    ended = info;
    input.enabled = false;
    input.release();
    decoder?.dispose();
    terminal.end();
    chat.end();
    if (document.fullscreenElement === viewport) void document.exitFullscreen().catch(() => undefined);
    if (chat.used()) options.onTranscript?.(chat.transcript());
    options.onEnded?.(info);
    render();
  }

  function stop(): void {
    relay.stop(t("session.stop_reason"));
  }

  qualitySelect.addEventListener("change", () => configure());
  monitorSelect.addEventListener("change", () => relay.send(Channel.SCREEN, encodeSelectMonitor(Number(monitorSelect.value))));
  scaleButton.addEventListener("click", () => {
    fit = !fit;
    viewport.classList.toggle("session-fit", fit);
    scaleButton.setAttribute("aria-pressed", String(!fit));
    scaleButton.textContent = t(fit ? "session.scale_actual" : "session.scale_fit");
    layout();
  });
  keyboardButton.addEventListener("click", () => {
    if (input.isCaptured()) input.release();
    else input.capture();
  });
  toolbar.append(keyboardHint);

  const resize = new ResizeObserver(() => layout());
  resize.observe(el);
  const onFullscreen = (): void => layout();
  document.addEventListener("fullscreenchange", onFullscreen);
  const ticker = window.setInterval(renderStats, 1000);
  const stopLanguage = onLanguageChange(() => render());
  render();
  relay.connect();

  return {
    el,
    dispose() {
      // Leaving the viewer ends the session: a session nobody watches must not stay open.
      relay.stop(t("session.stop_reason"));
      input.dispose();
      decoder?.dispose();
      terminal.dispose();
      chat.dispose();
      files.dispose();
      resize.disconnect();
      document.removeEventListener("fullscreenchange", onFullscreen);
      window.clearInterval(ticker);
      stopLanguage();
    },
  };
}

/** The route #/sessions/<id>: the viewer for a session this tab requested (its keys live only here). */
export function sessionView(socket: ConsoleSocket, sessionId: string): View {
  const session = takeSession(sessionId);
  if (!session) {
    return {
      el: h(
        "div",
        { class: "session-page" },
        h("a", { class: "back-link", attrs: { href: "#/devices" }, t: "device.back" }),
        card("session.unavailable_title", emptyState("session.unavailable")),
      ),
      dispose() {},
    };
  }
  return sessionViewer({
    sessionId: session.session_id,
    deviceId: session.deviceId,
    deviceLabel: session.deviceLabel,
    relayUrl: relayUrl(session.relay_path, session.ticket),
    handshake: session.handshake,
    signedOffer: session.offer,
    capabilities: session.capabilities,
    extend: (capabilities) => extendSession(socket, session.session_id, capabilities),
    onEnded() {
      socket.request("session/stop", { session_id: session.session_id }).catch(() => {
        // The relay closes the session anyway; the server only cleans up sooner.
      });
    },
    onTranscript(transcript) {
      uploadTranscript(session.session_id, transcript).catch((err: unknown) => {
        // The session is over either way; a transcript the server did not take is only logged.
        console.warn("the chat transcript was not saved", err);
      });
    },
  });
}
