// The device list's routine-test column: each device's worst latest status, live, and a filter on it.

import { h } from "../lib/dom";
import { formatDateTime } from "../lib/format";
import { t } from "../lib/i18n";
import type { ConsoleSocket } from "../lib/ws";
import { statusLight } from "./diagnostics";
import { loadCatalogue, readStatusEvent, readStatusList, type Catalogue, type DeviceStatus } from "./diagnostics-model";

export type DiagFilter = "all" | "fail" | "warn" | "error" | "pass" | "none" | "problems";
const FILTERS: readonly DiagFilter[] = ["all", "problems", "fail", "warn", "error", "pass", "none"];

// Kept across visits, like the list's other filters.
const remembered = { filter: "all" as DiagFilter };

export interface DeviceListDiagnostics {
  /** The filter control for the list's toolbar. */
  select: HTMLSelectElement;
  header(): HTMLTableCellElement;
  cell(deviceId: string): HTMLTableCellElement;
  matches(deviceId: string): boolean;
  dispose(): void;
}

export function deviceListDiagnostics(socket: ConsoleSocket, onChange: () => void): DeviceListDiagnostics {
  const statuses = new Map<string, DeviceStatus>();
  let catalogue: Catalogue | null = null;

  const select = h(
    "select",
    { class: "diag-filter", attrs: { name: "diag-status" }, tLabel: "diag.filter_label" },
    FILTERS.map((f) => h("option", { attrs: { value: f }, t: `diag.filter_${f}` })),
  );
  select.value = remembered.filter;
  select.addEventListener("change", () => {
    remembered.filter = select.value as DiagFilter;
    onChange();
  });

  // The catalogue gives the status words; asked for once the socket is open (requests need a connection).
  const stopState = socket.onStateChange((state) => {
    if (state !== "open" || catalogue !== null) return;
    void loadCatalogue(socket)
      .then((cat) => {
        catalogue = cat;
        onChange();
      })
      .catch(() => {
        // Status words fall back to their codes until the next connection; the lights still show.
      });
  });

  const subscription = socket.subscribe({
    type: "diagnostics/statuses",
    onResult(value) {
      statuses.clear();
      for (const status of readStatusList(value)) statuses.set(status.device_id, status);
      onChange();
    },
    onEvent(value) {
      const status = readStatusEvent(value);
      if (!status) return;
      statuses.set(status.device_id, status);
      onChange();
    },
  });

  return {
    select,
    header() {
      return h("th", { attrs: { scope: "col" }, t: "diag.col_tests" });
    },
    cell(deviceId) {
      const status = statuses.get(deviceId);
      if (!status) {
        return h(
          "td",
          { class: "diag-cell", dataset: { diagStatus: "none" } },
          h(
            "span",
            { class: "diag-status diag-status-none" },
            h("span", { class: "diag-light diag-light-none", attrs: { "aria-hidden": "true" } }),
            h("span", { class: "diag-status-text muted", t: "diag.no_tests" }),
          ),
        );
      }
      const td = h("td", { class: "diag-cell", dataset: { diagStatus: status.worst } }, statusLight(catalogue, status.worst));
      if (status.time !== null) td.title = t("diag.tested_at", { when: formatDateTime(status.time) });
      return td;
    },
    matches(deviceId) {
      const filter = remembered.filter;
      if (filter === "all") return true;
      const status = statuses.get(deviceId);
      if (filter === "none") return status === undefined;
      if (!status) return false;
      if (filter === "problems") return status.worst === "fail" || status.worst === "warn";
      if (filter === "pass") return status.worst === "pass" || status.worst === "not_applicable";
      return status.worst === filter;
    },
    dispose() {
      subscription.close();
      stopState();
    },
  };
}
