// The administrator's routine-test policy editor (#/admin/diagnostics): per device group, the schedule, the
// thresholds (empty: the catalogue's default), tests switched off, required software and services, expected
// ports, HTTPS addresses, DNS names, time zone and the per-test timeout.

import "./diagnostics.css";
import { clip, h, replaceChildren } from "../lib/dom";
import { formatDateTime } from "../lib/format";
import { onLanguageChange, t } from "../lib/i18n";
import { busy, card, emptyState, errorText, field, type View } from "../lib/ui";
import { WsError, type ConsoleSocket } from "../lib/ws";
import { formatScalar, loadCatalogue, text, type Catalogue } from "./diagnostics-model";

type Json = Record<string, unknown>;

const SCHEDULES = [0, 900, 3600, 4 * 3600, 12 * 3600, 86400, 7 * 86400] as const;

interface GroupRow {
  group: string;
  devices: number;
  interval: number | null;
  customised: boolean;
}

function obj(value: unknown): Json {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : {};
}

function strings(value: unknown, max = 256): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string").slice(0, max) : [];
}

function lines(textarea: HTMLTextAreaElement): string[] {
  return textarea.value
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
}

function textarea(name: string, rows = 3): HTMLTextAreaElement {
  return h("textarea", { attrs: { name, rows, spellcheck: "false", autocomplete: "off" } });
}

export function diagnosticsPolicyView(socket: ConsoleSocket): View {
  let catalogue: Catalogue | null = null;
  let groups: GroupRow[] = [];
  let current: Json | null = null;
  let effective: Json = {};
  let disposed = false;

  const groupSelect = h("select", { class: "diag-policy-group", attrs: { name: "group" }, tLabel: "diag.policy_group" });
  const schedule = h("select", { attrs: { name: "interval" } });
  const timeout = h("input", { attrs: { type: "number", name: "check_timeout", min: 0.1, max: 30, step: 0.1 } });
  const timezone = h("input", { attrs: { type: "text", name: "expected_timezone", autocomplete: "off", spellcheck: "false" } });
  const software = textarea("required_software", 4);
  const services = textarea("required_services");
  const ports = h("input", { attrs: { type: "text", name: "expected_ports", autocomplete: "off", inputmode: "numeric" } });
  const urls = textarea("https_urls");
  const dns = textarea("dns_names");
  const checksBody = h("tbody");
  const alert = h("p", { class: "form-error", attrs: { role: "alert", hidden: true } });
  const notice = h("p", { class: "notice", attrs: { role: "status", hidden: true } });
  const updated = h("p", { class: "muted diag-policy-updated" });
  const save = h("button", { class: "button button-primary diag-policy-save", attrs: { type: "submit" }, t: "diag.policy_save" });
  const thresholdInputs = new Map<string, HTMLInputElement>();
  const enabledBoxes = new Map<string, HTMLInputElement>();

  const form = h(
    "form",
    { class: "diag-policy-form", attrs: { novalidate: true } },
    card(
      "diag.policy_schedule_title",
      field("diag.policy_group", groupSelect),
      updated,
      field("diag.policy_interval", schedule, "diag.policy_interval_hint"),
      field("diag.policy_timeout", timeout, "diag.policy_timeout_hint"),
    ),
    card(
      "diag.policy_lists_title",
      field("diag.policy_software", software, "diag.policy_software_hint"),
      field("diag.policy_services", services, "diag.policy_lines_hint"),
      field("diag.policy_ports", ports, "diag.policy_ports_hint"),
      field("diag.policy_urls", urls, "diag.policy_lines_hint"),
      field("diag.policy_dns", dns, "diag.policy_dns_hint"),
      field("diag.policy_timezone", timezone, "diag.policy_timezone_hint"),
    ),
    card(
      "diag.policy_checks_title",
      h("p", { class: "muted", t: "diag.policy_checks_hint" }),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table diag-thresholds-table" },
          h(
            "thead",
            null,
            h("tr", null, ["diag.policy_col_run", "diag.col_test", "diag.policy_col_thresholds"].map((key) => h("th", { attrs: { scope: "col" }, t: key }))),
          ),
          checksBody,
        ),
      ),
    ),
    alert,
    notice,
    h("div", { class: "form-actions" }, save),
  );
  const status = h("div");
  const el = h(
    "div",
    { class: "diag-policy-page" },
    h("a", { class: "back-link", attrs: { href: "#/fleet/diagnostics" }, t: "diag.policy_back" }),
    h("div", { class: "page-header" }, h("div", null, h("h1", { t: "diag.policy_title" }), h("p", { class: "page-subtitle", t: "diag.policy_subtitle" }))),
    status,
    form,
  );
  form.hidden = true;

  function scheduleLabel(seconds: number): string {
    if (seconds === 0) return t("diag.schedule_off");
    if (seconds % 86400 === 0) return t("diag.schedule_days", { count: seconds / 86400 });
    if (seconds % 3600 === 0) return t("diag.schedule_hours", { count: seconds / 3600 });
    return t("diag.schedule_minutes", { count: Math.round(seconds / 60) });
  }

  function fillSchedule(interval: number | null): void {
    const values: number[] = [...SCHEDULES];
    if (interval !== null && !values.includes(interval)) values.push(interval);
    replaceChildren(schedule, values.sort((a, b) => a - b).map((v) => h("option", { attrs: { value: v } }, scheduleLabel(v))));
    schedule.value = String(interval ?? 0);
  }

  function fillGroups(): void {
    const selected = groupSelect.value;
    replaceChildren(
      groupSelect,
      groups.map((g) =>
        h(
          "option",
          { attrs: { value: g.group } },
          `${clip(g.group, 64)} · ${t("diag.policy_devices", { count: g.devices })} · ${scheduleLabel(g.interval ?? 0)}`,
        ),
      ),
    );
    if (selected && groups.some((g) => g.group === selected)) groupSelect.value = selected;
  }

  function fillChecks(policy: Json): void {
    if (!catalogue) return;
    const overrides = obj(policy["thresholds"]);
    const disabled = new Set(strings(policy["disabled"]));
    thresholdInputs.clear();
    enabledBoxes.clear();
    const rows = catalogue.checks.map((check) => {
      const box = h("input", { attrs: { type: "checkbox", name: `run-${check.id}`, checked: !disabled.has(check.id) }, tLabel: "diag.policy_col_run" });
      enabledBoxes.set(check.id, box);
      const mine = obj(overrides[check.id]);
      const inputs = Object.entries(check.thresholds).map(([name, spec]) => {
        const input = h("input", {
          class: "diag-threshold-input",
          attrs: {
            type: "number",
            step: "any",
            name: `${check.id}:${name}`,
            placeholder: formatScalar(spec.default),
            "aria-label": `${text(check.title)} ${name}`,
          },
        });
        const value = mine[name];
        if (typeof value === "number") input.value = String(value);
        thresholdInputs.set(`${check.id}\u0000${name}`, input);
        return h("label", { class: "diag-threshold-field" }, h("span", { class: "mono" }, name), input, spec.unit ? h("span", { class: "muted" }, spec.unit) : null);
      });
      return h(
        "tr",
        { dataset: { check: check.id } },
        h("td", null, box),
        h("td", null, h("strong", null, text(check.title)), h("div", { class: "muted mono" }, check.id)),
        h("td", null, inputs.length > 0 ? inputs : h("span", { class: "muted" }, "—")),
      );
    });
    replaceChildren(checksBody, rows);
  }

  function fillForm(body: Json): void {
    const policy = obj(body["policy"]);
    current = policy;
    effective = obj(body["effective"]);
    const interval = typeof body["interval"] === "number" ? body["interval"] : null;
    fillSchedule(interval);
    timeout.value = typeof policy["check_timeout"] === "number" ? String(policy["check_timeout"]) : "";
    timeout.placeholder = formatScalar(2.5);
    timezone.value = typeof policy["expected_timezone"] === "string" ? policy["expected_timezone"] : "";
    software.value = (Array.isArray(policy["required_software"]) ? policy["required_software"] : [])
      .map((item) => {
        const o = obj(item);
        const name = typeof o["name"] === "string" ? o["name"] : "";
        return typeof o["min_version"] === "string" ? `${name} >= ${o["min_version"]}` : name;
      })
      .filter(Boolean)
      .join("\n");
    services.value = strings(policy["required_services"]).join("\n");
    const portList = Array.isArray(policy["expected_ports"]) ? policy["expected_ports"].filter((p) => typeof p === "number") : null;
    ports.value = portList ? portList.join(", ") : "";
    ports.placeholder = (Array.isArray(effective["expected_ports"]) ? effective["expected_ports"] : []).join(", ");
    urls.value = strings(policy["https_urls"]).join("\n");
    dns.value = strings(policy["dns_names"]).join("\n");
    dns.placeholder = strings(effective["dns_names"]).join("\n");
    const by = typeof body["updated_by"] === "string" ? body["updated_by"] : null;
    const at = typeof body["updated_at"] === "number" ? body["updated_at"] : null;
    updated.textContent = at !== null ? t("diag.policy_updated", { when: formatDateTime(at), who: clip(by ?? "—", 64) }) : t("diag.policy_defaults");
    fillChecks(policy);
    form.hidden = false;
  }

  function collect(): Json | string {
    const policy: Json = { ...(current ?? {}) };
    const thresholds: Record<string, Record<string, number>> = {};
    for (const [key, input] of thresholdInputs) {
      if (input.value.trim() === "") continue;
      const value = Number(input.value.replace(",", "."));
      const [check, name] = key.split("\u0000") as [string, string];
      if (!Number.isFinite(value)) return t("diag.policy_bad_number", { name: `${check} ${name}` });
      (thresholds[check] ??= {})[name] = value;
    }
    policy["thresholds"] = thresholds;
    policy["disabled"] = [...enabledBoxes].filter(([, box]) => !box.checked).map(([id]) => id);
    const required = [];
    for (const line of lines(software)) {
      const match = /^(\S+)(?:\s*>=\s*(\S+))?$/.exec(line);
      if (!match) return t("diag.policy_bad_software", { line: clip(line, 80) });
      required.push(match[2] ? { name: match[1], min_version: match[2] } : { name: match[1] });
    }
    policy["required_software"] = required;
    policy["required_services"] = lines(services);
    if (ports.value.trim() === "") policy["expected_ports"] = null;
    else {
      const list = ports.value.split(/[\s,;]+/).filter(Boolean).map(Number);
      if (list.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) return t("diag.policy_bad_ports");
      policy["expected_ports"] = list;
    }
    policy["https_urls"] = lines(urls);
    policy["dns_names"] = lines(dns);
    policy["expected_timezone"] = timezone.value.trim() || null;
    if (timeout.value.trim() === "") delete policy["check_timeout"];
    else {
      const seconds = Number(timeout.value.replace(",", "."));
      if (!Number.isFinite(seconds)) return t("diag.policy_bad_number", { name: "check_timeout" });
      policy["check_timeout"] = seconds;
    }
    return policy;
  }

  async function loadGroup(): Promise<void> {
    const group = groupSelect.value;
    if (!group) return;
    notice.hidden = true;
    alert.hidden = true;
    try {
      const body = obj(await socket.request<unknown>("diagnostics/policy/get", { group }));
      if (!disposed && groupSelect.value === group) fillForm(body);
    } catch (err) {
      if (disposed) return;
      alert.textContent = errorText(err);
      alert.hidden = false;
    }
  }

  async function loadAll(): Promise<void> {
    try {
      const [cat, list] = await Promise.all([loadCatalogue(socket), socket.request<unknown>("diagnostics/policy/list")]);
      if (disposed) return;
      catalogue = cat;
      groups = (Array.isArray(obj(list)["groups"]) ? (obj(list)["groups"] as unknown[]) : []).slice(0, 1000).flatMap((item) => {
        const o = obj(item);
        return typeof o["group"] === "string"
          ? [{
              group: o["group"],
              devices: typeof o["devices"] === "number" ? o["devices"] : 0,
              interval: typeof o["interval"] === "number" ? o["interval"] : null,
              customised: o["customised"] === true,
            }]
          : [];
      });
      replaceChildren(status, groups.length === 0 ? emptyState("diag.policy_no_groups") : null);
      fillGroups();
      await loadGroup();
    } catch (err) {
      if (disposed) return;
      replaceChildren(status, h("p", { class: "form-error", attrs: { role: "alert" } }, errorText(err)));
    }
  }

  groupSelect.addEventListener("change", () => void loadGroup());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const policy = collect();
    notice.hidden = true;
    if (typeof policy === "string") {
      alert.textContent = policy;
      alert.hidden = false;
      return;
    }
    alert.hidden = true;
    const interval = Number(schedule.value) || null;
    const group = groupSelect.value;
    void busy(form, async () => {
      try {
        const body = obj(await socket.request<unknown>("diagnostics/policy/set", { group, policy, interval }));
        fillForm(body);
        const row = groups.find((g) => g.group === group);
        if (row) {
          row.interval = interval;
          row.customised = true;
        }
        fillGroups();
        notice.textContent = t("diag.policy_saved", { group: clip(group, 64) });
        notice.hidden = false;
      } catch (err) {
        // the server lists what does not fit the catalogue (its own words, not an agent's)
        alert.textContent =
          err instanceof WsError && err.code === "invalid_message"
            ? t("diag.policy_refused", { message: clip(err.message, 1000) })
            : errorText(err);
        alert.hidden = false;
      }
    });
  });

  const stopState = socket.onStateChange((state) => {
    if (state === "open" && catalogue === null) void loadAll();
  });
  const stopLanguage = onLanguageChange(() => {
    fillGroups();
    fillSchedule(Number(schedule.value) || null);
    if (current) fillChecks(collectSafe());
  });

  function collectSafe(): Json {
    const value = collect();
    return typeof value === "string" ? current ?? {} : value;
  }

  return {
    el,
    dispose() {
      disposed = true;
      stopState();
      stopLanguage();
    },
  };
}
