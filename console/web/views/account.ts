// The technician's own account: profile, language and two-step verification (TOTP) with recovery codes.

import { fetchMe, post, type User } from "../lib/api";
import { h, replaceChildren } from "../lib/dom";
import { t } from "../lib/i18n";
import {
  badge,
  busy,
  button,
  card,
  copyButton,
  errorArea,
  errorText,
  facts,
  field,
  languageSelect,
  type View,
} from "../lib/ui";

interface Enrollment {
  secret: string;
  otpauth_uri: string;
  qr_svg: string;
}

/** The SVG as a data: URL for an <img>: an image cannot run script, and the markup is never parsed into the page. */
export function svgDataUrl(svgText: string): string {
  const bytes = new TextEncoder().encode(svgText);
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return `data:image/svg+xml;base64,${btoa(binary)}`;
}

function codeInput(name: string): HTMLInputElement {
  return h("input", {
    class: "code-input",
    attrs: {
      type: "text",
      name,
      inputmode: "numeric",
      autocomplete: "one-time-code",
      pattern: "[0-9 ]{6,8}",
      maxlength: 8,
      required: true,
    },
  });
}

function roleKey(role: string): string {
  return role === "admin" || role === "specialist" || role === "technician" ? `role.${role}` : "role.unknown";
}

export function accountView(initialUser: User, onUserChange: (user: User) => void): View {
  let user = initialUser;
  const profile = h("div");
  const totp = h("div");

  function renderProfile(): void {
    replaceChildren(
      profile,
      facts([
        ["account.username", h("span", { class: "mono" }, user.username)],
        ["account.display_name", user.display_name || "—"],
        ["account.role", h("span", { t: roleKey(user.role) })],
      ]),
    );
  }

  async function refreshUser(): Promise<void> {
    const me = await fetchMe();
    if (me) {
      user = me;
      onUserChange(me);
    }
  }

  function renderTotpStatus(): void {
    if (user.totp_enabled) {
      const errors = errorArea();
      const password = h("input", {
        attrs: { type: "password", name: "password", autocomplete: "current-password", required: true },
      });
      const code = codeInput("code");
      const form = h(
        "form",
        { class: "form form-inline-narrow" },
        h("h3", { t: "account.totp_disable_title" }),
        h("p", { class: "muted", t: "account.totp_disable_help" }),
        field("account.password", password),
        field("account.totp_code", code),
        errors.el,
        h("button", { class: "button button-danger", attrs: { type: "submit" }, t: "account.totp_disable" }),
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        errors.show(null);
        void busy(form, () =>
          post("/api/auth/totp/disable", { password: password.value, code: code.value.replace(/\s+/g, "") }),
        )
          .then(refreshUser)
          .then(renderTotpStatus)
          .catch((err: unknown) => errors.show(errorText(err)));
      });
      replaceChildren(
        totp,
        h("div", { class: "status-line" }, badge("ok", "account.totp_on"), h("span", { class: "muted", t: "account.totp_on_help" })),
        h("details", { class: "disclosure" }, h("summary", { t: "account.totp_disable_title" }), form),
      );
      return;
    }
    const errors = errorArea();
    const start = button("account.totp_setup", () => {
      errors.show(null);
      void busy(totp, () => post<Enrollment>("/api/auth/totp/enroll"))
        .then(renderEnrollment)
        .catch((err: unknown) => errors.show(errorText(err)));
    });
    replaceChildren(
      totp,
      h("div", { class: "status-line" }, badge("warn", "account.totp_off"), h("span", { class: "muted", t: "account.totp_off_help" })),
      errors.el,
      start,
    );
  }

  function renderEnrollment(enrollment: Enrollment): void {
    const errors = errorArea();
    const code = codeInput("code");
    const qr = h("img", {
      class: "qr",
      attrs: { src: svgDataUrl(enrollment.qr_svg), width: 200, height: 200 },
      tAlt: "account.totp_qr_alt",
    });
    const secretText = enrollment.secret.replace(/(.{4})/g, "$1 ").trim();
    const form = h(
      "form",
      { class: "form" },
      field("account.totp_code", code, "account.totp_code_help"),
      errors.el,
      h(
        "div",
        { class: "button-row" },
        h("button", { class: "button button-primary", attrs: { type: "submit" }, t: "account.totp_verify" }),
        button("common.cancel", renderTotpStatus, "secondary"),
      ),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      errors.show(null);
      void busy(form, () =>
        post<{ recovery_codes: string[] }>("/api/auth/totp/verify", { code: code.value.replace(/\s+/g, "") }),
      )
        .then((result) => renderRecoveryCodes(Array.isArray(result.recovery_codes) ? result.recovery_codes : []))
        .catch((err: unknown) => {
          errors.show(errorText(err));
          code.select();
        });
    });
    replaceChildren(
      totp,
      h(
        "ol",
        { class: "steps" },
        h(
          "li",
          null,
          h("p", { t: "account.totp_step_scan" }),
          h(
            "div",
            { class: "qr-row" },
            h("div", { class: "qr-frame" }, qr),
            h(
              "div",
              { class: "qr-manual" },
              h("p", { class: "muted", t: "account.totp_manual" }),
              h("p", null, h("code", { class: "secret", attrs: { "data-testid": "totp-secret" } }, secretText)),
              copyButton(() => enrollment.secret, "account.copy_secret"),
              h(
                "details",
                { class: "disclosure" },
                h("summary", { t: "account.totp_uri" }),
                h("p", null, h("code", { class: "uri", attrs: { "data-testid": "otpauth-uri" } }, enrollment.otpauth_uri)),
                copyButton(() => enrollment.otpauth_uri),
              ),
            ),
          ),
        ),
        h("li", null, h("p", { t: "account.totp_step_verify" }), form),
      ),
    );
    code.focus();
  }

  function renderRecoveryCodes(codes: string[]): void {
    const text = codes.join("\n");
    const download = h("a", {
      class: "button button-secondary button-small",
      attrs: { download: `steun-recovery-codes-${user.username}.txt` },
      t: "account.recovery_download",
    });
    download.href = URL.createObjectURL(new Blob([`${text}\n`], { type: "text/plain" }));
    const done = button("account.recovery_done", () => {
      URL.revokeObjectURL(download.href);
      void refreshUser().finally(renderTotpStatus);
    });
    replaceChildren(
      totp,
      h("div", { class: "status-line" }, badge("ok", "account.totp_on")),
      h("p", { class: "notice notice-warning", attrs: { role: "alert" }, t: "account.recovery_once" }),
      h("ul", { class: "recovery-codes", attrs: { "data-testid": "recovery-codes" } }, codes.map((c) => h("li", null, h("code", null, c)))),
      h("div", { class: "button-row" }, copyButton(() => text, "account.recovery_copy"), download, done),
    );
    done.focus();
  }

  function passwordForm(): HTMLElement {
    const errors = errorArea();
    const done = h("p", { class: "notice notice-info", attrs: { role: "status", hidden: true }, t: "account.password_changed" });
    const current = h("input", {
      attrs: { type: "password", name: "current_password", autocomplete: "current-password", required: true },
    });
    const next = h("input", {
      attrs: { type: "password", name: "new_password", autocomplete: "new-password", required: true, minlength: 12 },
    });
    const repeat = h("input", {
      attrs: { type: "password", name: "repeat_password", autocomplete: "new-password", required: true, minlength: 12 },
    });
    // Lets password managers file the new password under the right account.
    const username = h("input", {
      class: "visually-hidden",
      attrs: { type: "text", name: "username", autocomplete: "username", readonly: true, tabindex: -1, "aria-hidden": "true" },
    });
    username.value = user.username;
    const form = h(
      "form",
      { class: "form form-inline-narrow" },
      username,
      field("account.password_current", current),
      field("account.password_new", next, "account.password_rules"),
      field("account.password_repeat", repeat),
      errors.el,
      done,
      h("button", { class: "button button-secondary", attrs: { type: "submit" }, t: "account.password_change" }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      errors.show(null);
      done.hidden = true;
      if (next.value !== repeat.value) {
        errors.show(t("account.password_mismatch"));
        repeat.focus();
        return;
      }
      void busy(form, () =>
        post("/api/auth/password", { current_password: current.value, new_password: next.value }),
      )
        .then(() => {
          form.reset();
          done.hidden = false;
        })
        .catch((err: unknown) => errors.show(errorText(err)));
    });
    return form;
  }

  renderProfile();
  renderTotpStatus();
  const el = h(
    "div",
    { class: "account-page" },
    h("div", { class: "page-header" }, h("h1", { t: "account.title" })),
    h(
      "div",
      { class: "grid grid-2" },
      card("account.section_profile", profile),
      card("account.section_language", h("p", { class: "muted", t: "account.language_help" }), languageSelect()),
    ),
    card("account.section_totp", h("p", { class: "muted", t: "account.totp_intro" }), totp),
    card("account.section_password", passwordForm()),
  );
  return { el, dispose() {} };
}
