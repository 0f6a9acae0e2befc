// Quick support: a 9-digit code the user types into the quick-support agent; when they do, start a session.

import type { Role } from "../lib/api";
import "../session/session.css";
import { clip, h, replaceChildren } from "../lib/dom";
import { onLanguageChange, t } from "../lib/i18n";
import { button, card, errorText, type View } from "../lib/ui";
import type { ConsoleSocket, Subscription } from "../lib/ws";
import { requestControlForm } from "./request";

/** How long a code is valid at most (steun_protocol.sessionplane.SUPPORT_CODE_TTL). */
const SUPPORT_CODE_TTL_S = 600;

/** The quick-support agent's config (`steun-agent support --config FILE`), served by the server. */
const AGENT_CONFIG_URL = "/api/support/agent-config";
const AGENT_CONFIG_FILENAME = "steun-support.json";

interface Created {
  code: string;
  expiresAt: number; // local clock, ms
}

interface Redeemed {
  deviceId: string;
  hostname: string;
}

/** "123456789" → "123 456 789". */
export function groupCode(code: string): string {
  return code.replace(/(\d{3})(?=\d)/g, "$1 ");
}

function readCreated(value: unknown): Created | null {
  if (typeof value !== "object" || value === null) return null;
  const { code, expires_at } = value as { code?: unknown; expires_at?: unknown };
  if (typeof code !== "string" || !/^[0-9]{9}$/.test(code) || typeof expires_at !== "number" || !Number.isFinite(expires_at)) return null;
  // The server's clock and ours may differ: never count down longer than a code can live.
  const remaining = Math.min(SUPPORT_CODE_TTL_S * 1000, Math.max(0, expires_at * 1000 - Date.now()));
  return { code, expiresAt: Date.now() + remaining };
}

function readEvent(value: unknown): { kind: "redeemed"; device: Redeemed } | { kind: "expired" } | null {
  if (typeof value !== "object" || value === null) return null;
  const { kind, device_id, hostname } = value as { kind?: unknown; device_id?: unknown; hostname?: unknown };
  if (kind === "expired") return { kind };
  if (kind === "redeemed" && typeof device_id === "string" && /^[A-Za-z0-9_-]{1,64}$/.test(device_id)) {
    return { kind, device: { deviceId: device_id, hostname: typeof hostname === "string" ? clip(hostname, 120) : "" } };
  }
  return null;
}

function formatCountdown(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

export function supportView(socket: ConsoleSocket, role: Role): View {
  type State =
    | { kind: "idle" }
    | { kind: "creating" }
    | { kind: "waiting"; created: Created }
    | { kind: "redeemed"; created: Created; device: Redeemed }
    | { kind: "expired" }
    | { kind: "interrupted" }
    | { kind: "error"; message: string };
  let state: State = { kind: "idle" };
  let subscription: Subscription | null = null;

  const body = h("div", { class: "support-body" });
  const request = requestControlForm(socket, role);
  const el = h(
    "div",
    { class: "support-page" },
    h("div", { class: "page-header" }, h("div", null, h("h1", { t: "support.title" }), h("p", { class: "page-subtitle", t: "support.intro" }))),
    card(null, body),
    card(
      null,
      h("p", { class: "muted", t: "support.agent_config_help" }),
      h(
        "div",
        { class: "button-row" },
        h("a", {
          class: "button button-secondary",
          attrs: { href: AGENT_CONFIG_URL, download: AGENT_CONFIG_FILENAME },
          dataset: { testid: "agent-config-download" },
          t: "support.agent_config_download",
        }),
      ),
    ),
  );

  function close(): void {
    subscription?.close();
    subscription = null;
  }

  function create(): void {
    close();
    state = { kind: "creating" };
    render();
    subscription = socket.subscribe({
      type: "support/create",
      onResult(result) {
        const created = readCreated(result);
        if (state.kind === "waiting" || state.kind === "redeemed" || state.kind === "expired") {
          // A second result means the subscription was re-sent after a reconnect: that is a new code the user
          // was never told. Drop it rather than confuse anyone.
          close();
          state = { kind: "interrupted" };
        } else {
          state = created ? { kind: "waiting", created } : { kind: "error", message: t("error.malformed") };
        }
        render();
      },
      onEvent(event) {
        const next = readEvent(event);
        if (!next || (state.kind !== "waiting" && state.kind !== "redeemed")) return;
        if (next.kind === "expired") {
          if (state.kind === "waiting") {
            close();
            state = { kind: "expired" };
          }
        } else {
          state = { kind: "redeemed", created: state.created, device: next.device };
          request.update({ id: next.device.deviceId, label: next.device.hostname || next.device.deviceId, online: true });
        }
        render();
      },
      onError(err) {
        close();
        state = { kind: "error", message: errorText(err) };
        render();
      },
    });
  }

  const stopState = socket.onStateChange((connection) => {
    if (connection !== "open" && (state.kind === "waiting" || state.kind === "creating")) {
      close();
      state = { kind: "interrupted" };
      render();
    }
  });

  const countdown = h("p", { class: "support-countdown", attrs: { "aria-live": "off" } });

  function renderCountdown(): void {
    if (state.kind !== "waiting") return;
    const left = state.created.expiresAt - Date.now();
    if (left <= 0) {
      close();
      state = { kind: "expired" };
      render();
      return;
    }
    countdown.textContent = t("support.expires_in", { time: formatCountdown(left) });
  }

  function render(): void {
    const createButton = (key: string): HTMLButtonElement => button(key, () => create());
    switch (state.kind) {
      case "idle":
        replaceChildren(body, h("p", { class: "muted", t: "support.how" }), h("div", { class: "button-row" }, createButton("support.create")));
        break;
      case "creating":
        replaceChildren(body, h("p", { class: "muted", t: "common.loading" }));
        break;
      case "waiting":
        replaceChildren(
          body,
          h("p", { class: "label", t: "support.code_label" }),
          h("p", { class: "support-code mono", dataset: { testid: "support-code" }, attrs: { "aria-label": state.created.code.split("").join(" ") } }, groupCode(state.created.code)),
          h("p", { class: "muted", t: "support.read_code" }),
          countdown,
          h("p", { class: "support-waiting", attrs: { role: "status" }, t: "support.waiting" }),
          h("div", { class: "button-row" }, button("support.cancel", () => {
            close();
            state = { kind: "idle" };
            render();
          }, "secondary")),
        );
        renderCountdown();
        break;
      case "redeemed":
        replaceChildren(
          body,
          h("p", { class: "support-code support-code-used mono" }, groupCode(state.created.code)),
          h(
            "p",
            { class: "notice notice-info", attrs: { role: "status" } },
            state.device.hostname ? t("support.redeemed", { hostname: state.device.hostname }) : t("support.redeemed_unknown"),
          ),
          request.el,
        );
        break;
      case "expired":
        replaceChildren(body, h("p", { class: "notice notice-warning", t: "support.expired" }), h("div", { class: "button-row" }, createButton("support.new_code")));
        break;
      case "interrupted":
        replaceChildren(body, h("p", { class: "notice notice-warning", t: "support.interrupted" }), h("div", { class: "button-row" }, createButton("support.new_code")));
        break;
      case "error":
        replaceChildren(body, h("p", { class: "form-error", attrs: { role: "alert" } }, state.message), h("div", { class: "button-row" }, createButton("support.new_code")));
        break;
    }
  }

  const ticker = window.setInterval(renderCountdown, 1000);
  const stopLanguage = onLanguageChange(() => render());
  render();
  return {
    el,
    dispose() {
      close();
      stopState();
      stopLanguage();
      window.clearInterval(ticker);
    },
  };
}
