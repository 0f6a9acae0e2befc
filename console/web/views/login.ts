// Sign-in: username and password, then a TOTP or recovery code when the account has two-step verification.

import { ApiError, login, type LoginRequest, type User } from "../lib/api";
import { h, replaceChildren } from "../lib/dom";
import { t } from "../lib/i18n";
import { brand } from "./brand";
import { busy, errorArea, errorText, field, languageSelect, type View } from "../lib/ui";

export interface LoginOptions {
  onSignedIn: (user: User) => void;
  /** Shown above the form, e.g. after the session expired. */
  noticeKey?: string;
}

type SecondFactor = "totp" | "recovery";

export function loginView(options: LoginOptions): View {
  const formHost = h("div", { class: "login-form-host" });
  const notice = options.noticeKey
    ? h("p", { class: "notice", attrs: { role: "status" }, t: options.noticeKey })
    : null;
  const el = h(
    "div",
    { class: "login-page" },
    h(
      "main",
      { class: "login-panel", id: "main" },
      h("div", { class: "login-brand" }, brand()),
      h("p", { class: "login-tagline", t: "login.tagline" }),
      notice,
      formHost,
    ),
    h("footer", { class: "login-footer" }, languageSelect()),
  );

  let throttleTimer: number | null = null;
  const stopThrottle = (): void => {
    if (throttleTimer !== null) window.clearInterval(throttleTimer);
    throttleTimer = null;
  };

  /** Shows the 429 answer with a live countdown and keeps the submit button disabled until it ends. */
  function showThrottled(
    err: ApiError,
    errors: ReturnType<typeof errorArea>,
    submit: HTMLButtonElement,
  ): void {
    stopThrottle();
    let remaining = Math.ceil(err.retryAfter ?? 30);
    const tick = (): void => {
      if (remaining <= 0 || !submit.isConnected) {
        stopThrottle();
        errors.show(null);
        submit.disabled = false;
        return;
      }
      errors.show(t("login.throttled", { seconds: remaining }));
      submit.disabled = true;
      remaining -= 1;
    };
    tick();
    throttleTimer = window.setInterval(tick, 1000);
  }

  async function attempt(
    request: LoginRequest,
    form: HTMLFormElement,
    errors: ReturnType<typeof errorArea>,
    submit: HTMLButtonElement,
    secondStep: boolean,
  ): Promise<void> {
    errors.show(null);
    try {
      const user = await busy(form, () => login(request));
      stopThrottle();
      options.onSignedIn(user);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.code === "totp_required" && !secondStep) {
        showSecondFactor(request.username, request.password, "totp");
      } else if (err.status === 429 || err.code === "throttled") {
        showThrottled(err, errors, submit);
      } else if (err.code === "invalid_credentials" || err.code === "totp_required") {
        errors.show(t(secondStep ? "login.invalid_code" : "login.invalid_credentials"));
        const retry = form.querySelector<HTMLInputElement>(secondStep ? "input" : "input[type=password]");
        retry?.select();
        retry?.focus();
      } else {
        errors.show(errorText(err));
      }
    }
  }

  function showCredentials(username = ""): void {
    stopThrottle();
    const errors = errorArea();
    const usernameInput = h("input", {
      attrs: { type: "text", name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" },
    });
    usernameInput.value = username;
    const passwordInput = h("input", {
      attrs: { type: "password", name: "password", autocomplete: "current-password", required: true },
    });
    const submit = h("button", { class: "button button-primary button-block", attrs: { type: "submit" }, t: "login.submit" });
    const form = h(
      "form",
      { class: "form", attrs: { novalidate: false, "aria-labelledby": "login-title" } },
      h("h1", { id: "login-title", class: "login-title", t: "login.title" }),
      field("login.username", usernameInput),
      field("login.password", passwordInput),
      errors.el,
      submit,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void attempt(
        { username: usernameInput.value.trim(), password: passwordInput.value },
        form,
        errors,
        submit,
        false,
      );
    });
    replaceChildren(formHost, form);
    (username ? passwordInput : usernameInput).focus();
  }

  function showSecondFactor(username: string, password: string, mode: SecondFactor): void {
    stopThrottle();
    const errors = errorArea();
    const codeInput =
      mode === "totp"
        ? h("input", {
            class: "code-input",
            attrs: {
              type: "text",
              name: "totp_code",
              inputmode: "numeric",
              autocomplete: "one-time-code",
              pattern: "[0-9 ]{6,8}",
              maxlength: 8,
              required: true,
            },
          })
        : h("input", {
            class: "code-input",
            attrs: { type: "text", name: "recovery_code", autocomplete: "off", spellcheck: "false", maxlength: 64, required: true },
          });
    const submit = h("button", { class: "button button-primary button-block", attrs: { type: "submit" }, t: "login.verify" });
    const switchMode = h("button", {
      class: "button button-link",
      attrs: { type: "button" },
      t: mode === "totp" ? "login.use_recovery" : "login.use_totp",
      on: { click: () => showSecondFactor(username, password, mode === "totp" ? "recovery" : "totp") },
    });
    const back = h("button", {
      class: "button button-link",
      attrs: { type: "button" },
      t: "login.back",
      on: { click: () => showCredentials(username) },
    });
    const form = h(
      "form",
      { class: "form", attrs: { "aria-labelledby": "login-title" } },
      h("h1", { id: "login-title", class: "login-title", t: "login.second_factor_title" }),
      h("p", { class: "muted", t: mode === "totp" ? "login.totp_prompt" : "login.recovery_prompt" }),
      field(mode === "totp" ? "login.totp_code" : "login.recovery_code", codeInput),
      errors.el,
      submit,
      h("div", { class: "form-links" }, switchMode, back),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const code = codeInput.value.replace(/\s+/g, "");
      const request: LoginRequest =
        mode === "totp" ? { username, password, totp_code: code } : { username, password, recovery_code: code };
      void attempt(request, form, errors, submit, true);
    });
    replaceChildren(formHost, form);
    codeInput.focus();
  }

  showCredentials();
  return { el, dispose: stopThrottle };
}
