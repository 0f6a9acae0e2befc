// Small shared pieces of the interface: cards, fields, badges, the language picker, copy buttons, errors.

import { ApiError } from "./api";
import { copyToClipboard, h, type Child } from "./dom";
import { LANGUAGE_NAMES, LANGUAGES, language, onLanguageChange, setLanguage, t, type Language } from "./i18n";
import { WsError } from "./ws";

export interface View {
  el: HTMLElement;
  dispose(): void;
}

let uid = 0;
export function nextId(prefix: string): string {
  uid += 1;
  return `${prefix}-${uid}`;
}

export function card(titleKey: string | null, ...children: Child[]): HTMLElement {
  const headingId = nextId("card");
  return h(
    "section",
    { class: "card", attrs: titleKey ? { "aria-labelledby": headingId } : {} },
    titleKey ? h("h2", { class: "card-title", id: headingId, t: titleKey }) : null,
    ...children,
  );
}

/** A labelled form control; the label is bound to the control for screen readers and clicks. */
export function field(labelKey: string, control: HTMLElement, hintKey?: string): HTMLElement {
  const id = control.id || nextId("field");
  control.id = id;
  const hint = hintKey ? h("p", { class: "field-hint", id: `${id}-hint`, t: hintKey }) : null;
  if (hint) control.setAttribute("aria-describedby", hint.id);
  return h("div", { class: "field" }, h("label", { attrs: { for: id }, t: labelKey }), control, hint);
}

export function languageSelect(extraClass = ""): HTMLSelectElement {
  const select = h(
    "select",
    { class: ["language-select", extraClass], tLabel: "language.label", attrs: { name: "language" } },
    LANGUAGES.map((code) =>
      h("option", { attrs: { value: code, lang: code, selected: code === language() } }, LANGUAGE_NAMES[code]),
    ),
  );
  select.addEventListener("change", () => setLanguage(select.value as Language));
  // Several pickers may be on screen (header, account page): keep them in step.
  const stop = onLanguageChange((next) => {
    if (!select.isConnected) {
      stop();
      return;
    }
    select.value = next;
  });
  return select;
}

/** A status badge: online / offline and similar two-state values. */
export function badge(kind: "ok" | "off" | "warn" | "info", key: string): HTMLElement {
  return h("span", { class: ["badge", `badge-${kind}`], t: key });
}

export function statusDot(online: boolean): HTMLElement {
  return h("span", {
    class: ["status-dot", online ? "status-online" : "status-offline"],
    attrs: { "aria-hidden": "true" },
  });
}

export function copyButton(getText: () => string, labelKey = "common.copy"): HTMLButtonElement {
  const button = h("button", { class: "button button-secondary button-small", attrs: { type: "button" }, t: labelKey });
  button.addEventListener("click", () => {
    void copyToClipboard(getText()).then((ok) => {
      button.textContent = t(ok ? "common.copied" : "common.copy_failed");
      window.setTimeout(() => {
        if (button.isConnected) button.textContent = t(labelKey);
      }, 2000);
    });
  });
  return button;
}

/** The translated, human-readable text of an error from the REST API or the websocket. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError || err instanceof WsError) {
    const code = err.code;
    if (code === "network" || code === "not_connected" || code === "disconnected") return t("error.network");
    if (code === "timeout") return t("error.timeout");
    const key = `error.${code}`;
    const text = t(key);
    if (text !== key) return text;
    if (err instanceof ApiError && err.status >= 500) return t("error.server");
    return err.message ? t("error.with_message", { message: err.message }) : t("error.unknown");
  }
  return t("error.unknown");
}

/** An area for form errors, announced to screen readers. */
export function errorArea(): { el: HTMLElement; show(text: string | null): void } {
  const el = h("p", { class: "form-error", attrs: { role: "alert", hidden: true } });
  return {
    el,
    show(text) {
      el.textContent = text ?? "";
      el.hidden = text === null;
    },
  };
}

export function button(
  key: string,
  onClick: (event: MouseEvent) => void,
  variant: "primary" | "secondary" | "danger" | "link" = "primary",
): HTMLButtonElement {
  return h("button", {
    class: ["button", `button-${variant}`],
    attrs: { type: "button" },
    t: key,
    on: { click: onClick },
  });
}

/** Disables a form's controls while `task` runs, so a double click cannot send a request twice. */
export async function busy<T>(form: HTMLFormElement | HTMLElement, task: () => Promise<T>): Promise<T> {
  const controls = [...form.querySelectorAll<HTMLButtonElement | HTMLInputElement | HTMLSelectElement>(
    "button, input, select, textarea",
  )].filter((el) => !el.disabled);
  form.setAttribute("aria-busy", "true");
  for (const el of controls) el.disabled = true;
  try {
    return await task();
  } finally {
    form.removeAttribute("aria-busy");
    for (const el of controls) el.disabled = false;
  }
}

export function emptyState(key: string, params?: Record<string, string | number>): HTMLElement {
  return h("p", { class: "empty", t: key, ...(params ? { tParams: params } : {}) });
}

/** A definition list of label / value rows; values are always text. */
export function facts(rows: [string, Child][]): HTMLElement {
  return h(
    "dl",
    { class: "facts" },
    rows.map(([key, value]) => h("div", { class: "fact" }, h("dt", { t: key }), h("dd", null, value ?? "—"))),
  );
}

export function meter(percent: number | null, labelKey: string): HTMLElement {
  const value = percent === null ? 0 : Math.max(0, Math.min(100, percent));
  const level = value >= 90 ? "high" : value >= 75 ? "mid" : "low";
  const bar = h("span", { class: "meter-bar" });
  bar.style.width = `${value}%`;
  return h(
    "span",
    {
      class: ["meter", `meter-${level}`],
      attrs: { role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(value) },
      tLabel: labelKey,
    },
    bar,
  );
}
