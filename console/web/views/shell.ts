// The frame around every signed-in page: navigation, connection indicator, language, user and sign-out.

import type { User } from "../lib/api";
import { h, replaceChildren } from "../lib/dom";
import { onLanguageChange, t } from "../lib/i18n";
import type { Route } from "../lib/router";
import { languageSelect, type View } from "../lib/ui";
import type { ConnectionState, ConsoleSocket } from "../lib/ws";
import { brand } from "./brand";

export interface Shell extends View {
  /** Where the current page goes. */
  main: HTMLElement;
  setActive(route: Route): void;
}

function connectionIndicator(socket: ConsoleSocket): { el: HTMLElement; dispose(): void } {
  const label = h("span", { class: "connection-label" });
  const el = h(
    "div",
    { class: "connection", attrs: { role: "status", "aria-live": "polite" }, dataset: { state: "connecting" } },
    h("span", { class: "connection-dot", attrs: { "aria-hidden": "true" } }),
    label,
  );
  let state: ConnectionState = socket.connectionState();
  let retryAt: number | null = null;
  let countdown: number | null = null;

  const render = (): void => {
    el.dataset["state"] = state;
    if (state === "open") label.textContent = t("connection.open");
    else if (state === "connecting") label.textContent = t("connection.connecting");
    else if (state === "reconnecting" && retryAt !== null) {
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      label.textContent = seconds > 0 ? t("connection.retry_in", { seconds }) : t("connection.reconnecting");
    } else if (state === "reconnecting") label.textContent = t("connection.reconnecting");
    else label.textContent = t("connection.offline");
  };

  const stopState = socket.onStateChange((next, nextRetryAt) => {
    state = next;
    retryAt = nextRetryAt;
    if (countdown !== null) window.clearInterval(countdown);
    countdown = retryAt !== null ? window.setInterval(render, 1000) : null;
    render();
  });
  const stopLanguage = onLanguageChange(render);
  return {
    el,
    dispose() {
      stopState();
      stopLanguage();
      if (countdown !== null) window.clearInterval(countdown);
    },
  };
}

export function shellView(user: User, socket: ConsoleSocket, onSignOut: () => void): Shell {
  const links: Record<string, HTMLAnchorElement> = {
    devices: h("a", { class: "nav-link", attrs: { href: "#/devices" }, t: "nav.devices" }),
    support: h("a", { class: "nav-link", attrs: { href: "#/support" }, t: "nav.support" }),
    "fleet-diagnostics": h("a", { class: "nav-link", attrs: { href: "#/fleet/diagnostics" }, t: "diag.nav" }),
    account: h("a", { class: "nav-link", attrs: { href: "#/account" }, t: "nav.account" }),
  };
  if (user.role === "admin") {
    links["admin"] = h("a", { class: "nav-link", attrs: { href: "#/admin" }, t: "nav.admin" });
  }
  const indicator = connectionIndicator(socket);
  const userName = h("span", { class: "user-name" });
  replaceChildren(userName, user.display_name || user.username);
  const signOut = h("button", {
    class: "button button-secondary button-small",
    attrs: { type: "button" },
    t: "nav.sign_out",
    on: { click: onSignOut },
  });
  const main = h("main", { class: "page", id: "main", attrs: { tabindex: -1 } });
  const el = h(
    "div",
    { class: "app" },
    h("a", { class: "skip-link", attrs: { href: "#main" }, t: "nav.skip" }),
    h(
      "header",
      { class: "topbar" },
      h("a", { class: "topbar-brand", attrs: { href: "#/devices" }, tLabel: "nav.home" }, brand()),
      h("nav", { class: "nav", tLabel: "nav.label" }, Object.values(links)),
      h(
        "div",
        { class: "topbar-tools" },
        indicator.el,
        languageSelect("language-select-compact"),
        h("span", { class: "user", attrs: { title: user.username } }, userName),
        signOut,
      ),
    ),
    main,
  );
  // The skip link targets the main region without changing the hash route.
  el.querySelector(".skip-link")?.addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });

  return {
    el,
    main,
    setActive(route) {
      const active = route.name === "device" || route.name === "session" ? "devices" : route.name;
      for (const [name, link] of Object.entries(links)) {
        if (name === active) link.setAttribute("aria-current", "page");
        else link.removeAttribute("aria-current");
      }
    },
    dispose: indicator.dispose,
  };
}
