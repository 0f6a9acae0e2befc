// The device list: every enrolled device with its live online state, searchable and filterable.

import { clip, deviceHref, h, replaceChildren } from "../lib/dom";
import { formatRelative } from "../lib/format";
import { onLanguageChange, t } from "../lib/i18n";
import { readDeviceList, readDevicesEvent, type DeviceSummary } from "../lib/model";
import { navigate } from "../lib/router";
import { emptyState, errorText, statusDot, type View } from "../lib/ui";
import type { ConsoleSocket } from "../lib/ws";
import { deviceListDiagnostics } from "./diagnostics-list";

const PAGE_SIZE = 200;
const RELATIVE_TIME_REFRESH_MS = 30_000;

type StatusFilter = "all" | "online" | "offline";

// Kept across visits, so coming back from a device page shows the same search.
const remembered = { query: "", group: "", status: "all" as StatusFilter };

function matches(device: DeviceSummary, words: string[]): boolean {
  if (words.length === 0) return true;
  const haystack = `${device.hostname}\n${device.os}\n${device.group}\n${device.id}`.toLowerCase();
  return words.every((word) => haystack.includes(word));
}

function compareDevices(a: DeviceSummary, b: DeviceSummary): number {
  if (a.online !== b.online) return a.online ? -1 : 1;
  return a.hostname.localeCompare(b.hostname, undefined, { sensitivity: "base", numeric: true }) || a.id.localeCompare(b.id);
}

export function devicesView(socket: ConsoleSocket): View {
  const devices = new Map<string, DeviceSummary>();
  let loaded = false;
  let loadError: string | null = null;
  let limit = PAGE_SIZE;

  const search = h("input", {
    class: "search-input",
    attrs: { type: "search", name: "q", autocomplete: "off", spellcheck: "false" },
    tPlaceholder: "devices.search_placeholder",
    tLabel: "devices.search_label",
  });
  search.value = remembered.query;
  const groupSelect = h("select", { attrs: { name: "group" }, tLabel: "devices.filter_group" });
  const statusSelect = h(
    "select",
    { attrs: { name: "status" }, tLabel: "devices.filter_status" },
    h("option", { attrs: { value: "all" }, t: "devices.status_all" }),
    h("option", { attrs: { value: "online" }, t: "devices.status_online" }),
    h("option", { attrs: { value: "offline" }, t: "devices.status_offline" }),
  );
  statusSelect.value = remembered.status;

  const counts = h("p", { class: "page-subtitle", attrs: { "aria-live": "polite" } });
  const diag = deviceListDiagnostics(socket, () => scheduleRender());
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "table devices-table" },
    h("caption", { class: "visually-hidden", t: "devices.title" }),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        h("th", { attrs: { scope: "col" }, t: "devices.col_status" }),
        h("th", { attrs: { scope: "col" }, t: "devices.col_hostname" }),
        h("th", { attrs: { scope: "col" }, t: "devices.col_os" }),
        h("th", { attrs: { scope: "col" }, t: "devices.col_group" }),
        h("th", { attrs: { scope: "col" }, t: "devices.col_last_seen" }),
        diag.header(),
      ),
    ),
    tbody,
  );
  const below = h("div", { class: "table-footer" });
  const status = h("div", { class: "list-status" });

  const el = h(
    "div",
    { class: "devices-page" },
    h("div", { class: "page-header" }, h("div", null, h("h1", { t: "devices.title" }), counts)),
    h(
      "div",
      { class: "toolbar", attrs: { role: "search" } },
      search,
      groupSelect,
      statusSelect,
      diag.select,
    ),
    status,
    h("div", { class: "table-wrap" }, table),
    below,
  );

  function renderGroups(): void {
    const groups = [...new Set([...devices.values()].map((d) => d.group).filter(Boolean))].sort((a, b) =>
      a.localeCompare(b),
    );
    if (remembered.group && !groups.includes(remembered.group)) groups.push(remembered.group);
    replaceChildren(
      groupSelect,
      h("option", { attrs: { value: "" }, t: "devices.group_all" }),
      groups.map((group) => h("option", { attrs: { value: group } }, clip(group, 80))),
    );
    groupSelect.value = remembered.group;
  }

  function row(device: DeviceSummary): HTMLTableRowElement {
    const href = deviceHref(device.id);
    const tr = h(
      "tr",
      { class: ["device-row", device.online ? "is-online" : "is-offline"], dataset: { deviceId: device.id } },
      h(
        "td",
        { class: "cell-status" },
        statusDot(device.online),
        h("span", { class: "status-text", t: device.online ? "status.online" : "status.offline" }),
      ),
      h("td", { class: "cell-hostname" }, h("a", { attrs: { href } }, clip(device.hostname || device.id, 120))),
      h("td", { class: "cell-os" }, clip(device.os, 120)),
      h("td", { class: "cell-group" }, clip(device.group, 80)),
      h(
        "td",
        { class: "cell-last-seen" },
        device.online ? t("devices.now") : formatRelative(device.last_seen),
      ),
      diag.cell(device.id),
    );
    // The whole row is a target, not only the name (the link stays for keyboards and middle clicks).
    tr.addEventListener("click", (event) => {
      if ((event.target as Element).closest("a")) return;
      navigate(href);
    });
    return tr;
  }

  function render(): void {
    renderGroups();
    const all = [...devices.values()];
    const online = all.filter((d) => d.online).length;
    counts.textContent = loaded ? t("devices.counts", { online, count: all.length }) : "";

    if (loadError !== null) {
      replaceChildren(status, h("p", { class: "form-error", attrs: { role: "alert" } }, loadError));
    } else if (!loaded) {
      replaceChildren(status, emptyState("devices.loading"));
    } else {
      replaceChildren(status);
    }

    const words = remembered.query.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = all
      .filter(
        (d) =>
          (remembered.group === "" || d.group === remembered.group) &&
          (remembered.status === "all" || d.online === (remembered.status === "online")) &&
          diag.matches(d.id) &&
          matches(d, words),
      )
      .sort(compareDevices);
    replaceChildren(tbody, shown.slice(0, limit).map(row));
    table.hidden = shown.length === 0;

    replaceChildren(below);
    if (loaded && all.length === 0) {
      below.append(emptyState("devices.empty"));
    } else if (loaded && shown.length === 0) {
      below.append(emptyState("devices.no_match"));
    } else if (shown.length > limit) {
      below.append(
        h("span", { class: "muted" }, t("devices.showing", { shown: limit, count: shown.length })),
        h("button", {
          class: "button button-secondary button-small",
          attrs: { type: "button" },
          t: "common.show_more",
          on: {
            click: () => {
              limit += PAGE_SIZE;
              render();
            },
          },
        }),
      );
    }
  }

  // Bursts of presence events (a site coming back online) are folded into one render per frame.
  let frame: number | null = null;
  const scheduleRender = (): void => {
    if (frame !== null) return;
    frame = window.requestAnimationFrame(() => {
      frame = null;
      render();
    });
  };

  search.addEventListener("input", () => {
    remembered.query = search.value;
    limit = PAGE_SIZE;
    scheduleRender();
  });
  groupSelect.addEventListener("change", () => {
    remembered.group = groupSelect.value;
    limit = PAGE_SIZE;
    render();
  });
  statusSelect.addEventListener("change", () => {
    remembered.status = statusSelect.value as StatusFilter;
    limit = PAGE_SIZE;
    render();
  });

  const subscription = socket.subscribe({
    type: "devices/subscribe",
    onResult(result) {
      devices.clear();
      for (const device of readDeviceList(result)) devices.set(device.id, device);
      loaded = true;
      loadError = null;
      scheduleRender();
    },
    onEvent(event) {
      const change = readDevicesEvent(event);
      if (!change) return;
      if (change.kind === "upsert") devices.set(change.device.id, change.device);
      else devices.delete(change.deviceId);
      scheduleRender();
    },
    onError(err) {
      loadError = errorText(err);
      scheduleRender();
    },
  });

  const ticker = window.setInterval(scheduleRender, RELATIVE_TIME_REFRESH_MS);
  const stopLanguage = onLanguageChange(render);
  render();
  // Ready to type a name at once on a desktop; on a phone, focusing would pop up the keyboard.
  if (window.matchMedia("(pointer: fine)").matches) queueMicrotask(() => search.focus());

  return {
    el,
    dispose() {
      subscription.close();
      diag.dispose();
      window.clearInterval(ticker);
      stopLanguage();
      if (frame !== null) window.cancelAnimationFrame(frame);
    },
  };
}
