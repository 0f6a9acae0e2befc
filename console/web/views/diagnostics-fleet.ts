// The fleet view of routine tests (#/fleet/diagnostics): which devices fail test X now, and what failed most
// often over the last days — the frequent-problem map a helpdesk keeps.

import "./diagnostics.css";
import type { User } from "../lib/api";
import { clip, deviceHref, h, replaceChildren } from "../lib/dom";
import { formatNumber } from "../lib/format";
import { onLanguageChange, t } from "../lib/i18n";
import { card, emptyState, errorText, statusDot, type View } from "../lib/ui";
import type { ConsoleSocket } from "../lib/ws";
import { failingSince, statusLight } from "./diagnostics";
import {
  checkTitle,
  loadCatalogue,
  readFleet,
  summary,
  text,
  valueText,
  type Catalogue,
  type FleetReport,
} from "./diagnostics-model";

const PERIODS = [1, 7, 30] as const;

// Kept across visits: coming back from a device shows the same question.
const remembered = { check: "", days: 7, statuses: ["fail", "warn"] as string[] };

export function diagnosticsFleetView(socket: ConsoleSocket, user: User): View {
  let catalogue: Catalogue | null = null;
  let report: FleetReport | null = null;
  let error: string | null = null;
  let loading = false;
  let disposed = false;
  let generation = 0;

  const checkSelect = h("select", { class: "diag-fleet-check", attrs: { name: "check" }, tLabel: "diag.fleet_check_label" });
  const periodSelect = h(
    "select",
    { class: "diag-fleet-period", attrs: { name: "days" }, tLabel: "diag.fleet_period_label" },
    PERIODS.map((days) => h("option", { attrs: { value: days }, t: "diag.fleet_days", tParams: { count: days } })),
  );
  periodSelect.value = String(remembered.days);
  const statusBoxes = (["fail", "warn", "error"] as const).map((s) => {
    const box = h("input", { attrs: { type: "checkbox", name: `status-${s}`, value: s, checked: remembered.statuses.includes(s) } });
    box.addEventListener("change", () => {
      remembered.statuses = statusBoxes.filter((b) => b.checked).map((b) => b.value);
      if (remembered.statuses.length === 0) {
        box.checked = true;
        remembered.statuses = [s];
      }
      void load();
    });
    return box;
  });
  const statusLabels = statusBoxes.map((box) =>
    h("label", { class: "diag-status-filter" }, box, " ", h("span", { dataset: { status: box.value }, class: "diag-status-word" })),
  );
  const alert = h("p", { class: "form-error", attrs: { role: "alert", hidden: true } });
  const failing = h("div", { class: "diag-fleet-failing" });
  const top = h("div", { class: "diag-fleet-top" });
  const topSubtitle = h("p", { class: "muted" });

  const el = h(
    "div",
    { class: "diag-fleet-page" },
    h(
      "div",
      { class: "page-header" },
      h(
        "div",
        null,
        h("h1", { t: "diag.fleet_title" }),
        h("p", { class: "page-subtitle", t: "diag.fleet_subtitle" }),
      ),
      user.role === "admin" ? h("a", { class: "button button-secondary", attrs: { href: "#/admin/diagnostics" }, t: "diag.policy_link" }) : null,
    ),
    alert,
    card(
      "diag.fleet_top_title",
      h("div", { class: "diag-fleet-controls" }, periodSelect),
      topSubtitle,
      top,
    ),
    card(
      "diag.fleet_failing_title",
      h("div", { class: "diag-fleet-controls" }, checkSelect, statusLabels),
      failing,
    ),
  );

  function fillChecks(): void {
    if (!catalogue) return;
    const cat = catalogue;
    replaceChildren(
      checkSelect,
      h("option", { attrs: { value: "" }, t: "diag.fleet_pick_check" }),
      cat.groups.map((g) =>
        h(
          "optgroup",
          { attrs: { label: text(g.title) } },
          cat.checks.filter((c) => c.group === g.id).map((c) => h("option", { attrs: { value: c.id } }, text(c.title))),
        ),
      ),
    );
    checkSelect.value = remembered.check;
  }

  function renderTop(): void {
    topSubtitle.textContent = t("diag.fleet_top_subtitle", { count: remembered.days });
    if (!report) {
      replaceChildren(top, emptyState(loading ? "diag.loading" : "diag.fleet_none"));
      return;
    }
    if (report.top.length === 0) {
      replaceChildren(top, emptyState("diag.fleet_top_empty"));
      return;
    }
    const rows = report.top.map((row) => {
      const tr = h(
        "tr",
        { class: "diag-top-row", dataset: { check: row.check_id }, attrs: { tabindex: 0 } },
        h("td", null, h("strong", null, checkTitle(catalogue, row.check_id))),
        h("td", { class: "num" }, formatNumber(row.devices)),
        h("td", { class: "num" }, formatNumber(row.fail)),
        h("td", { class: "num" }, formatNumber(row.warn)),
        h("td", null, row.kb_key ? h("code", { class: "diag-kb-key" }, clip(row.kb_key, 96)) : "—"),
      );
      const pick = (): void => {
        remembered.check = row.check_id;
        checkSelect.value = row.check_id;
        void load();
      };
      tr.addEventListener("click", pick);
      tr.addEventListener("keydown", (event) => {
        if (event.key === "Enter") pick();
      });
      return tr;
    });
    replaceChildren(
      top,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table diag-top-table" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              ["diag.col_test", "diag.col_devices", "diag.col_fail", "diag.col_warn", "diag.col_kb"].map((key) =>
                h("th", { attrs: { scope: "col" }, t: key }),
              ),
            ),
          ),
          h("tbody", null, rows),
        ),
      ),
    );
  }

  function renderFailing(): void {
    if (!remembered.check) {
      replaceChildren(failing, emptyState("diag.fleet_pick_hint"));
      return;
    }
    if (!report) {
      replaceChildren(failing, emptyState("diag.loading"));
      return;
    }
    if (report.failing.length === 0) {
      replaceChildren(failing, emptyState("diag.fleet_failing_empty", { test: checkTitle(catalogue, remembered.check) }));
      return;
    }
    const rows = report.failing.map((d) =>
      h(
        "tr",
        { class: "diag-failing-row", dataset: { deviceId: d.device_id } },
        h("td", null, statusDot(d.online), h("a", { attrs: { href: deviceHref(d.device_id) } }, clip(d.hostname || d.device_id, 120))),
        h("td", null, clip(d.group, 80)),
        h("td", { class: "mono" }, clip(d.subject ?? "—", 120)),
        h("td", null, statusLight(catalogue, d.status)),
        h("td", { class: "num" }, valueText(d.result)),
        h("td", null, clip(summary(catalogue, d.result), 300)),
        h("td", null, failingSince(d.failing_since)),
      ),
    );
    replaceChildren(
      failing,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table diag-failing-table" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              ["diag.col_device", "diag.col_group", "diag.col_item", "diag.col_status", "diag.col_value", "diag.col_summary", "diag.col_since"].map(
                (key) => h("th", { attrs: { scope: "col" }, t: key }),
              ),
            ),
          ),
          h("tbody", null, rows),
        ),
      ),
    );
  }

  function render(): void {
    alert.textContent = error ?? "";
    alert.hidden = error === null;
    for (const label of statusLabels) {
      const word = label.querySelector<HTMLElement>(".diag-status-word");
      const s = word?.dataset["status"];
      if (word && (s === "fail" || s === "warn" || s === "error")) word.textContent = text(catalogue?.statuses[s]) || s;
    }
    renderTop();
    renderFailing();
  }

  async function load(): Promise<void> {
    const mine = ++generation;
    loading = true;
    render();
    try {
      const [cat, value] = await Promise.all([
        loadCatalogue(socket),
        socket.request<unknown>("diagnostics/fleet", {
          ...(remembered.check ? { check_id: remembered.check } : {}),
          statuses: remembered.statuses,
          days: remembered.days,
        }),
      ]);
      if (disposed || mine !== generation) return;
      if (!catalogue) {
        catalogue = cat;
        fillChecks();
      }
      report = readFleet(value);
      error = null;
    } catch (err) {
      if (disposed || mine !== generation) return;
      error = errorText(err);
    }
    loading = false;
    render();
  }

  checkSelect.addEventListener("change", () => {
    remembered.check = checkSelect.value;
    void load();
  });
  periodSelect.addEventListener("change", () => {
    remembered.days = Number(periodSelect.value) || 7;
    void load();
  });

  const stopState = socket.onStateChange((state) => {
    if (state === "open" && (report === null || error !== null)) void load();
  });
  const stopLanguage = onLanguageChange(() => {
    fillChecks();
    render();
  });
  render();
  return {
    el,
    dispose() {
      disposed = true;
      stopState();
      stopLanguage();
    },
  };
}
