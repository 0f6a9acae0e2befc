// "Request control": which capabilities and why, then session/request and on to the viewer.

import "../session/session.css";
import { h } from "../lib/dom";
import { navigate } from "../lib/router";
import { busy, errorArea, errorText, field, nextId } from "../lib/ui";
import type { Role } from "../lib/api";
import type { ConsoleSocket } from "../lib/ws";
import type { Capability } from "../session/crypto";
import { requestSession, sessionHref } from "../session/request";

export interface RequestTarget {
  id: string;
  label: string;
  online: boolean;
}

const OPTIONAL: Capability[] = ["control", "clipboard", "chat", "shell", "files"];
/** What the server lets a role ask for (steun_server.sessions.service.CAPABILITY_ROLES); the rest is not offered. */
const NEEDS_SPECIALIST: ReadonlySet<Capability> = new Set<Capability>(["shell", "files"]);

function offered(capability: Capability, role: Role): boolean {
  return !NEEDS_SPECIALIST.has(capability) || role === "specialist" || role === "admin";
}

function checkbox(capability: Capability, checked: boolean, disabled = false): { el: HTMLElement; input: HTMLInputElement } {
  const id = nextId(`cap-${capability}`);
  const input = h("input", { id, attrs: { type: "checkbox", name: `capability-${capability}`, checked, disabled } });
  return { el: h("label", { class: "check", attrs: { for: id } }, input, h("span", { t: `session.cap_${capability}` })), input };
}

/** The form; `update` follows the device (a request needs it online). */
export function requestControlForm(
  socket: ConsoleSocket,
  role: Role,
): { el: HTMLElement; update(target: RequestTarget | null): void } {
  let target: RequestTarget | null = null;
  const view = checkbox("view", true, true);
  const optional = OPTIONAL.filter((capability) => offered(capability, role)).map((capability) => ({
    capability,
    ...checkbox(capability, capability === "control"),
  }));
  const reason = h("input", {
    attrs: { type: "text", name: "reason", maxlength: 200, autocomplete: "off" },
    tPlaceholder: "session.request_reason_placeholder",
  });
  const errors = errorArea();
  const offline = h("p", { class: "notice notice-muted", t: "session.request_offline", attrs: { hidden: true } });
  const submit = h("button", { class: "button button-primary", attrs: { type: "submit" }, t: "session.request_submit" });
  const form = h(
    "form",
    { class: "form request-form", attrs: { novalidate: true } },
    h("p", { class: "muted", t: "session.request_intro" }),
    h(
      "fieldset",
      { class: "capabilities" },
      h("legend", { t: "session.request_capabilities" }),
      view.el,
      optional.map((o) => o.el),
    ),
    field("session.request_reason", reason, "session.request_reason_hint"),
    errors.el,
    offline,
    h("div", { class: "button-row" }, submit),
  );

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const device = target;
    if (!device || !device.online) return;
    const capabilities: Capability[] = ["view", ...optional.filter((o) => o.input.checked).map((o) => o.capability)];
    errors.show(null);
    void busy(form, async () => {
      try {
        const session = await requestSession(socket, device, capabilities, reason.value.trim().slice(0, 200));
        navigate(sessionHref(session.session_id));
      } catch (err) {
        errors.show(errorText(err));
      }
    }).then(() => {
      view.input.disabled = true;
      submit.disabled = !target?.online;
    });
  });

  return {
    el: form,
    update(next) {
      target = next;
      const online = next?.online ?? false;
      offline.hidden = online;
      if (form.getAttribute("aria-busy") !== "true") submit.disabled = !online;
    },
  };
}
