// Administration: enrollment tokens for new devices, device groups, and technician accounts.

import { get, patch, post, type Role, type User } from "../lib/api";
import { clip, h, replaceChildren } from "../lib/dom";
import { formatDateTime } from "../lib/format";
import { onLanguageChange, t } from "../lib/i18n";
import { badge, busy, card, copyButton, emptyState, errorArea, errorText, field, type View } from "../lib/ui";

interface Group {
  name: string;
  description: string;
  deviceCount: number | null;
}

interface TokenResult {
  token: string;
  expires_at: number;
  command: string;
}

const ROLES: readonly Role[] = ["technician", "specialist", "admin"];
const TTL_CHOICES: readonly [number, string][] = [
  [3600, "admin.ttl_1h"],
  [8 * 3600, "admin.ttl_8h"],
  [24 * 3600, "admin.ttl_24h"],
  [7 * 24 * 3600, "admin.ttl_7d"],
];

/** Accepts `{"<key>": [...]}` or a bare list, as list endpoints may answer either. */
function listOf(body: unknown, key: string): unknown[] {
  if (Array.isArray(body)) return body;
  if (body && typeof body === "object") {
    const inner = (body as Record<string, unknown>)[key];
    if (Array.isArray(inner)) return inner;
  }
  return [];
}

function readGroup(value: unknown): Group | null {
  if (!value || typeof value !== "object") return null;
  const o = value as Record<string, unknown>;
  if (typeof o["name"] !== "string") return null;
  return {
    name: o["name"],
    description: typeof o["description"] === "string" ? o["description"] : "",
    deviceCount: typeof o["device_count"] === "number" ? o["device_count"] : null,
  };
}

function readUser(value: unknown): User | null {
  if (!value || typeof value !== "object") return null;
  const o = value as Record<string, unknown>;
  if (typeof o["username"] !== "string" || typeof o["id"] !== "number") return null;
  return {
    id: o["id"],
    username: o["username"],
    display_name: typeof o["display_name"] === "string" ? o["display_name"] : "",
    role: (typeof o["role"] === "string" ? o["role"] : "technician") as Role,
    totp_enabled: o["totp_enabled"] === true,
    disabled: o["disabled"] === true,
  };
}

function roleSelect(name: string, value: Role): HTMLSelectElement {
  const select = h(
    "select",
    { attrs: { name } },
    ROLES.map((role) => h("option", { attrs: { value: role, selected: role === value }, t: `role.${role}` })),
  );
  select.value = value;
  return select;
}

export function adminView(currentUser: User): View {
  if (currentUser.role !== "admin") {
    return {
      el: h("div", null, h("h1", { t: "admin.title" }), h("div", { class: "card" }, emptyState("admin.forbidden"))),
      dispose() {},
    };
  }

  let groups: Group[] = [];
  let users: User[] = [];
  const cleanups: (() => void)[] = [];

  // ---- enrollment tokens
  const tokenGroup = h("select", { attrs: { name: "group", required: true } });
  const tokenTtl = h(
    "select",
    { attrs: { name: "ttl" } },
    TTL_CHOICES.map(([seconds, key]) => h("option", { attrs: { value: seconds }, t: key })),
  );
  const tokenErrors = errorArea();
  const tokenResult = h("div", { class: "token-result", attrs: { "aria-live": "polite" } });
  const tokenForm = h(
    "form",
    { class: "form" },
    h("div", { class: "form-row" }, field("admin.token_group", tokenGroup), field("admin.token_ttl", tokenTtl)),
    tokenErrors.el,
    h("button", { class: "button button-primary", attrs: { type: "submit" }, t: "admin.token_create" }),
  );
  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    tokenErrors.show(null);
    void busy(tokenForm, () =>
      post<TokenResult>("/api/enrollment-tokens", { group: tokenGroup.value, ttl_seconds: Number(tokenTtl.value) }),
    )
      .then((result) => {
        replaceChildren(
          tokenResult,
          h("p", { class: "notice notice-info", t: "admin.token_once", tParams: { when: formatDateTime(result.expires_at) } }),
          h("p", { class: "label", t: "admin.token_command" }),
          h("pre", { class: "command", attrs: { "data-testid": "enrollment-command" } }, h("code", null, result.command)),
          h(
            "div",
            { class: "button-row" },
            copyButton(() => result.command, "admin.copy_command"),
            copyButton(() => result.token, "admin.copy_token"),
          ),
        );
      })
      .catch((err: unknown) => tokenErrors.show(errorText(err)));
  });

  // ---- groups
  const groupList = h("div");
  const groupName = h("input", {
    attrs: { type: "text", name: "name", required: true, maxlength: 64, pattern: "[A-Za-z0-9][A-Za-z0-9 ._-]*", autocomplete: "off" },
  });
  const groupDescription = h("input", { attrs: { type: "text", name: "description", maxlength: 256, autocomplete: "off" } });
  const groupErrors = errorArea();
  const groupForm = h(
    "form",
    { class: "form" },
    h("div", { class: "form-row" }, field("admin.group_name", groupName), field("admin.group_description", groupDescription)),
    groupErrors.el,
    h("button", { class: "button button-secondary", attrs: { type: "submit" }, t: "admin.group_create" }),
  );
  groupForm.addEventListener("submit", (event) => {
    event.preventDefault();
    groupErrors.show(null);
    void busy(groupForm, () =>
      post("/api/groups", { name: groupName.value.trim(), description: groupDescription.value.trim() }),
    )
      .then(() => {
        groupName.value = "";
        groupDescription.value = "";
        return loadGroups();
      })
      .catch((err: unknown) => groupErrors.show(errorText(err)));
  });

  function renderGroups(): void {
    const selected = tokenGroup.value;
    replaceChildren(
      tokenGroup,
      groups.map((group) => h("option", { attrs: { value: group.name } }, clip(group.name, 64))),
    );
    if (groups.some((g) => g.name === selected)) tokenGroup.value = selected;
    replaceChildren(
      groupList,
      groups.length === 0
        ? emptyState("admin.groups_empty")
        : h(
            "ul",
            { class: "group-list" },
            groups.map((group) =>
              h(
                "li",
                null,
                h("strong", null, clip(group.name, 64)),
                group.description ? h("span", { class: "muted" }, ` — ${clip(group.description)}`) : null,
                group.deviceCount === null
                  ? null
                  : h("span", { class: "badge badge-info group-count" }, t("admin.group_devices", { count: group.deviceCount })),
              ),
            ),
          ),
    );
  }

  async function loadGroups(): Promise<void> {
    groups = listOf(await get("/api/groups"), "groups")
      .map(readGroup)
      .filter((g): g is Group => g !== null);
    renderGroups();
  }

  // ---- users
  const userRows = h("tbody");
  const userErrors = errorArea();
  const newUsername = h("input", {
    attrs: { type: "text", name: "username", required: true, maxlength: 64, autocomplete: "off", autocapitalize: "none", spellcheck: "false" },
  });
  const newDisplayName = h("input", { attrs: { type: "text", name: "display_name", maxlength: 128, autocomplete: "off" } });
  const newRole = roleSelect("role", "technician");
  const createErrors = errorArea();
  const createdResult = h("div", { attrs: { "aria-live": "polite" } });
  const userForm = h(
    "form",
    { class: "form" },
    h(
      "div",
      { class: "form-row" },
      field("admin.user_username", newUsername),
      field("admin.user_display_name", newDisplayName),
      field("admin.user_role", newRole),
    ),
    createErrors.el,
    h("button", { class: "button button-primary", attrs: { type: "submit" }, t: "admin.user_create" }),
  );
  userForm.addEventListener("submit", (event) => {
    event.preventDefault();
    createErrors.show(null);
    void busy(userForm, () =>
      post<{ user: unknown; password: string }>("/api/users", {
        username: newUsername.value.trim(),
        display_name: newDisplayName.value.trim(),
        role: newRole.value,
      }),
    )
      .then((result) => {
        const created = readUser(result.user);
        newUsername.value = "";
        newDisplayName.value = "";
        replaceChildren(
          createdResult,
          h(
            "div",
            { class: "notice notice-warning" },
            h("p", {
              t: "admin.user_created",
              tParams: { username: clip(created?.username ?? "", 64) },
            }),
            h(
              "p",
              { class: "one-time-password" },
              h("code", { attrs: { "data-testid": "one-time-password" } }, result.password),
              " ",
              copyButton(() => result.password),
            ),
          ),
        );
        return loadUsers();
      })
      .catch((err: unknown) => createErrors.show(errorText(err)));
  });

  function userRow(user: User): HTMLTableRowElement {
    const role = roleSelect(`role-${user.id}`, user.role);
    role.setAttribute("aria-label", t("admin.user_role_of", { username: clip(user.username, 64) }));
    role.disabled = user.id === currentUser.id; // nobody demotes themselves by accident
    role.addEventListener("change", () => {
      userErrors.show(null);
      void patch(`/api/users/${user.id}`, { role: role.value })
        .then(loadUsers)
        .catch((err: unknown) => {
          role.value = user.role;
          userErrors.show(errorText(err));
        });
    });
    const self = user.id === currentUser.id;
    const toggle = h("button", {
      class: "button button-secondary button-small",
      attrs: { type: "button", disabled: self },
      t: user.disabled ? "admin.user_enable" : "admin.user_disable",
    });
    toggle.addEventListener("click", () => {
      userErrors.show(null);
      void busy(toggle, () => patch(`/api/users/${user.id}`, { disabled: !user.disabled }))
        .then(loadUsers)
        .catch((err: unknown) => userErrors.show(errorText(err)));
    });
    return h(
      "tr",
      { class: [user.disabled ? "is-disabled" : null] },
      h("td", null, h("span", { class: "mono" }, clip(user.username, 64))),
      h("td", null, clip(user.display_name, 128) || "—"),
      h("td", null, role),
      h(
        "td",
        null,
        user.disabled
          ? badge("off", "admin.user_disabled")
          : badge(user.totp_enabled ? "ok" : "warn", user.totp_enabled ? "admin.totp_on" : "admin.totp_off"),
      ),
      h("td", { class: "num" }, toggle),
    );
  }

  function renderUsers(): void {
    replaceChildren(userRows, users.map(userRow));
  }

  async function loadUsers(): Promise<void> {
    users = listOf(await get("/api/users"), "users")
      .map(readUser)
      .filter((u): u is User => u !== null)
      .sort((a, b) => a.username.localeCompare(b.username));
    renderUsers();
  }

  const loadErrors = errorArea();
  void loadGroups().catch((err: unknown) => loadErrors.show(errorText(err)));
  void loadUsers().catch((err: unknown) => loadErrors.show(errorText(err)));
  cleanups.push(onLanguageChange(renderUsers));

  const el = h(
    "div",
    { class: "admin-page" },
    h("div", { class: "page-header" }, h("h1", { t: "admin.title" })),
    loadErrors.el,
    card("admin.section_enroll", h("p", { class: "muted", t: "admin.enroll_help" }), tokenForm, tokenResult),
    card(
      "admin.section_users",
      userErrors.el,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table users-admin-table" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", { attrs: { scope: "col" }, t: "admin.user_username" }),
              h("th", { attrs: { scope: "col" }, t: "admin.user_display_name" }),
              h("th", { attrs: { scope: "col" }, t: "admin.user_role" }),
              h("th", { attrs: { scope: "col" }, t: "admin.user_totp" }),
              h("th", { attrs: { scope: "col" } }, h("span", { class: "visually-hidden", t: "admin.user_actions" })),
            ),
          ),
          userRows,
        ),
      ),
      h("h3", { t: "admin.user_new" }),
      userForm,
      createdResult,
    ),
    card("admin.section_groups", groupList, h("h3", { t: "admin.group_new" }), groupForm),
  );
  return {
    el,
    dispose() {
      for (const cleanup of cleanups) cleanup();
    },
  };
}
