// Entry point: decides between the sign-in screen and the signed-in console, and routes between pages.

import "./styles/app.css";
import { fetchMe, logout, onUnauthorized, type User } from "./lib/api";
import { h, replaceChildren } from "./lib/dom";
import { initLanguage } from "./lib/i18n";
import { currentRoute, onRouteChange, type Route } from "./lib/router";
import { emptyState, errorText, type View } from "./lib/ui";
import { ConsoleSocket } from "./lib/ws";
import { accountView } from "./views/account";
import { adminView } from "./views/admin";
import { deviceView } from "./views/device";
import { devicesView } from "./views/devices";
import { diagnosticsFleetView } from "./views/diagnostics-fleet";
import { diagnosticsPolicyView } from "./views/diagnostics-policy";
import { loginView } from "./views/login";
import { sessionView } from "./views/session";
import { shellView, type Shell } from "./views/shell";
import { supportView } from "./views/support";

const root = document.getElementById("app") ?? document.body;

interface Session {
  user: User;
  socket: ConsoleSocket;
  shell: Shell;
  page: View | null;
  stopRoutes: () => void;
}

let session: Session | null = null;
let screen: View | null = null;

function show(view: View): void {
  screen?.dispose();
  screen = view;
  replaceChildren(root, view.el);
}

function pageFor(current: Session, route: Route): View {
  switch (route.name) {
    case "devices":
      return devicesView(current.socket);
    case "device":
      return deviceView(current.socket, route.id, current.user.role);
    case "support":
      return supportView(current.socket, current.user.role);
    case "session":
      return sessionView(current.socket, route.id);
    case "account":
      return accountView(current.user, (user) => {
        current.user = user;
      });
    case "admin":
      return adminView(current.user);
    case "fleet-diagnostics":
      return diagnosticsFleetView(current.socket, current.user);
    case "diagnostics-policy":
      return diagnosticsPolicyView(current.socket);
    case "not-found":
      return { el: h("div", { class: "card" }, emptyState("common.page_not_found")), dispose() {} };
  }
}

function renderRoute(current: Session, route: Route): void {
  current.page?.dispose();
  current.page = pageFor(current, route);
  current.shell.setActive(route);
  replaceChildren(current.shell.main, current.page.el);
  window.scrollTo(0, 0);
}

function endSession(): void {
  if (!session) return;
  const ending = session;
  session = null;
  ending.stopRoutes();
  ending.page?.dispose();
  ending.socket.stop();
}

function startSession(user: User): void {
  endSession();
  // The socket cannot see why an upgrade was refused; ask the REST API whether the session still exists.
  const socket = new ConsoleSocket(undefined, () => {
    void fetchMe()
      .then((me) => {
        if (me === null && session?.socket === socket) showLogin("login.session_expired");
      })
      .catch(() => {
        // Server unreachable: keep retrying, the indicator says so.
      });
  });
  const shell = shellView(user, socket, () => void signOut());
  const current: Session = { user, socket, shell, page: null, stopRoutes: () => {} };
  session = current;
  show(shell);
  current.stopRoutes = onRouteChange((route) => renderRoute(current, route));
  renderRoute(current, currentRoute());
  socket.start();
}

function showLogin(noticeKey?: string): void {
  endSession();
  show(
    loginView({
      onSignedIn: (user) => startSession(user),
      ...(noticeKey ? { noticeKey } : {}),
    }),
  );
}

async function signOut(): Promise<void> {
  endSession();
  try {
    await logout();
  } catch {
    // Signed out locally either way; the server expires the session on its own.
  }
  // The next person to sign in on this browser starts from the device list, not from where this one left.
  history.replaceState(null, "", "#/devices");
  showLogin("login.signed_out");
}

async function boot(): Promise<void> {
  initLanguage();
  onUnauthorized(() => {
    if (session) showLogin("login.session_expired");
  });
  show({ el: h("div", { class: "boot" }, emptyState("common.loading")), dispose() {} });
  try {
    // Also makes the server set the CSRF cookie that the sign-in request must echo.
    const user = await fetchMe();
    if (user) startSession(user);
    else showLogin();
  } catch (err) {
    const retry = h("button", {
      class: "button button-primary",
      attrs: { type: "button" },
      t: "common.retry",
      on: { click: () => void boot() },
    });
    show({
      el: h("div", { class: "boot" }, h("p", { class: "form-error", attrs: { role: "alert" } }, errorText(err)), retry),
      dispose() {},
    });
  }
}

void boot();
