// One device: its live state, metrics and the inventory its agent reported, updated as it changes.

import type { Role } from "../lib/api";
import { clip, h, replaceChildren, type Child } from "../lib/dom";
import { formatBytes, formatDateTime, formatDuration, formatNumber, formatPercent, formatRelative } from "../lib/format";
import { language, onLanguageChange, t } from "../lib/i18n";
import { readDetail, readDeviceEvent, type DeviceDetail, type Inventory, type LiveMetrics } from "../lib/model";
import { badge, card, emptyState, errorText, facts, meter, type View } from "../lib/ui";
import type { ConsoleSocket } from "../lib/ws";
import { requestControlForm } from "./request";
import { diagnosticsSection } from "./diagnostics";

const PACKAGE_PAGE = 200;
const LIST_PAGE = 100;
const REFRESH_MS = 30_000;

function table(headKeys: string[], rows: HTMLTableRowElement[], className = ""): HTMLElement {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: ["table", className] },
      h("thead", null, h("tr", null, headKeys.map((key) => h("th", { attrs: { scope: "col" }, t: key })))),
      h("tbody", null, rows),
    ),
  );
}

function td(...children: Child[]): HTMLTableCellElement {
  return h("td", null, ...children);
}

function mono(text: string): HTMLElement {
  return h("span", { class: "mono" }, text);
}

function systemFacts(inv: Inventory): HTMLElement {
  const os = inv.os_pretty || [inv.os_name, inv.os_version].filter(Boolean).join(" ");
  return facts([
    ["device.hostname", clip(inv.hostname)],
    ["device.os", clip(os)],
    ["device.kernel", inv.kernel ? clip(inv.kernel) : null],
    ["device.architecture", inv.architecture ? clip(inv.architecture) : null],
    ["device.manufacturer", inv.manufacturer],
    ["device.model", inv.model],
    ["device.serial", inv.serial ? mono(inv.serial) : null],
    ["device.uuid", inv.machine_uuid ? mono(inv.machine_uuid) : null],
    ["device.boot_time", formatDateTime(inv.boot_time)],
  ]);
}

function hardwareFacts(inv: Inventory): HTMLElement {
  const cores =
    inv.cpu_cores === null && inv.cpu_threads === null
      ? null
      : t("device.cores_threads", {
          cores: inv.cpu_cores === null ? "—" : formatNumber(inv.cpu_cores),
          threads: inv.cpu_threads === null ? "—" : formatNumber(inv.cpu_threads),
        });
  return facts([
    ["device.cpu", inv.cpu_model ? clip(inv.cpu_model) : null],
    ["device.cpu_cores", cores],
    ["device.memory", formatBytes(inv.memory_total)],
    ["device.swap", formatBytes(inv.swap_total)],
  ]);
}

function metricRow(labelKey: string, percent: number | null, detail: string): HTMLElement {
  return h(
    "div",
    { class: "metric" },
    h("div", { class: "metric-head" }, h("span", { class: "metric-label", t: labelKey }), h("span", { class: "metric-value" }, detail)),
    meter(percent, labelKey),
  );
}

function metricsBlock(detail: DeviceDetail, metrics: LiveMetrics): HTMLElement {
  const memoryTotal = detail.inventory?.memory_total ?? null;
  const memoryDetail =
    metrics.memory_used !== null && memoryTotal !== null
      ? `${formatPercent(metrics.memory_percent)} · ${formatBytes(metrics.memory_used)} / ${formatBytes(memoryTotal)}`
      : formatPercent(metrics.memory_percent);
  return h(
    "div",
    { class: "metrics" },
    detail.online ? null : h("p", { class: "notice notice-muted", t: "device.metrics_stale" }),
    metricRow("device.cpu_usage", metrics.cpu_percent, formatPercent(metrics.cpu_percent)),
    metricRow("device.memory_usage", metrics.memory_percent, memoryDetail),
    metricRow("device.swap_usage", metrics.swap_percent, formatPercent(metrics.swap_percent)),
    facts([
      ["device.uptime", formatDuration(metrics.uptime)],
      [
        "device.load_average",
        metrics.load_average && metrics.load_average.length > 0
          ? metrics.load_average.map((n) => formatNumber(n, 2)).join(" · ")
          : null,
      ],
      ["device.processes", formatNumber(metrics.process_count)],
    ]),
  );
}

function disksTable(inv: Inventory): HTMLElement {
  if (inv.disks.length === 0) return emptyState("device.no_disks");
  const rows = inv.disks.slice(0, LIST_PAGE).map((disk) => {
    const percent = disk.total > 0 ? (disk.used / disk.total) * 100 : null;
    return h(
      "tr",
      null,
      td(mono(clip(disk.mountpoint, 200))),
      td(clip(disk.device, 120)),
      td(clip(disk.fstype, 40)),
      h("td", { class: "num" }, formatBytes(disk.total)),
      h("td", { class: "num" }, formatBytes(disk.used)),
      h("td", { class: "num" }, formatBytes(disk.free)),
      h("td", { class: "cell-usage" }, meter(percent, "device.disk_usage"), h("span", { class: "usage-text" }, formatPercent(percent))),
    );
  });
  return table(
    ["device.disk_mount", "device.disk_device", "device.disk_fs", "device.disk_size", "device.disk_used", "device.disk_free", "device.disk_usage"],
    rows,
    "disks-table",
  );
}

function interfacesTable(inv: Inventory): HTMLElement {
  if (inv.interfaces.length === 0) return emptyState("device.no_interfaces");
  const rows = inv.interfaces.slice(0, LIST_PAGE).map((nic) => {
    const addresses = nic.addresses.map((address) =>
      h(
        "li",
        null,
        h("span", { class: "address-family" }, address.family === "mac" ? "MAC" : address.family === "ipv6" ? "IPv6" : "IPv4"),
        mono(clip(address.address, 80)),
        address.netmask ? h("span", { class: "muted" }, ` / ${clip(address.netmask, 80)}`) : null,
      ),
    );
    return h(
      "tr",
      null,
      td(h("strong", null, clip(nic.name, 80))),
      td(badge(nic.is_up ? "ok" : "off", nic.is_up ? "device.if_up" : "device.if_down")),
      h("td", { class: "num" }, nic.speed_mbps ? t("device.speed_mbps", { speed: nic.speed_mbps }) : "—"),
      h("td", { class: "num" }, formatNumber(nic.mtu)),
      td(addresses.length > 0 ? h("ul", { class: "address-list" }, addresses) : "—"),
    );
  });
  return table(
    ["device.if_name", "device.if_state", "device.if_speed", "device.if_mtu", "device.if_addresses"],
    rows,
    "interfaces-table",
  );
}

function usersTable(inv: Inventory): HTMLElement {
  if (inv.users.length === 0) return emptyState("device.no_users");
  const rows = inv.users.slice(0, LIST_PAGE).map((user) =>
    h(
      "tr",
      null,
      td(h("strong", null, clip(user.name, 80))),
      td(user.terminal ? clip(user.terminal, 80) : "—"),
      td(user.host ? clip(user.host, 120) : t("device.user_local")),
      td(user.started === null ? "—" : formatDateTime(user.started)),
    ),
  );
  return table(["device.user_name", "device.user_terminal", "device.user_host", "device.user_since"], rows, "users-table");
}

/** The package list: filtered on every keystroke, rendered a page at a time (a machine can have 20,000). */
function packagesPanel(): { el: HTMLElement; update(inv: Inventory | null): void } {
  let packages: Inventory["packages"] = [];
  let manager: string | null = null;
  let limit = PACKAGE_PAGE;
  const filter = h("input", {
    class: "search-input",
    attrs: { type: "search", name: "package-filter", autocomplete: "off", spellcheck: "false" },
    tPlaceholder: "device.packages_filter",
    tLabel: "device.packages_filter",
  });
  const summary = h("p", { class: "muted packages-summary", attrs: { "aria-live": "polite" } });
  const body = h("div", { class: "packages-body" });

  function render(): void {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = words.length
      ? packages.filter((p) => {
          const text = `${p.name} ${p.version}`.toLowerCase();
          return words.every((w) => text.includes(w));
        })
      : packages;
    summary.textContent = manager
      ? t("device.packages_summary_manager", { count: packages.length, manager: clip(manager, 40) })
      : t("device.packages_summary", { count: packages.length });
    if (packages.length === 0) {
      replaceChildren(body, emptyState("device.no_packages"));
      filter.hidden = true;
      return;
    }
    filter.hidden = false;
    if (shown.length === 0) {
      replaceChildren(body, emptyState("device.packages_no_match"));
      return;
    }
    const rows = shown.slice(0, limit).map((p) => h("tr", null, td(clip(p.name, 200)), td(mono(clip(p.version, 120)))));
    const more =
      shown.length > limit
        ? h(
            "div",
            { class: "table-footer" },
            h("span", { class: "muted" }, t("device.packages_showing", { shown: limit, count: shown.length })),
            h("button", {
              class: "button button-secondary button-small",
              attrs: { type: "button" },
              t: "common.show_more",
              on: {
                click: () => {
                  limit += PACKAGE_PAGE;
                  render();
                },
              },
            }),
          )
        : null;
    replaceChildren(body, table(["device.package_name", "device.package_version"], rows, "packages-table"), more);
  }

  filter.addEventListener("input", () => {
    limit = PACKAGE_PAGE;
    render();
  });

  return {
    el: h("div", { class: "packages" }, h("div", { class: "toolbar" }, filter, summary), body),
    update(inv) {
      packages = inv?.packages ?? [];
      manager = inv?.package_manager ?? null;
      render();
    },
  };
}

export function deviceView(socket: ConsoleSocket, deviceId: string, role: Role): View {
  let detail: DeviceDetail | null = null;
  let error: string | null = null;

  const title = h("h1", { class: "device-title" });
  const statusHolder = h("span");
  const subtitle = h("p", { class: "page-subtitle" });
  const alert = h("div");
  const overview = h("div");
  const live = h("div");
  const system = h("div");
  const hardware = h("div");
  const disks = h("div");
  const interfaces = h("div");
  const users = h("div");
  const packages = packagesPanel();
  const inventorySections = h(
    "div",
    { class: "device-inventory" },
    h("div", { class: "grid grid-2" }, card("device.section_system", system), card("device.section_hardware", hardware)),
    card("device.section_disks", disks),
    card("device.section_network", interfaces),
    card("device.section_users", users),
    card("device.section_packages", packages.el),
  );
  const remote = requestControlForm(socket, role);
  const diagnostics = diagnosticsSection(socket, deviceId);
  const noInventory = h("div", { class: "card" }, emptyState("device.no_inventory"));
  const content = h(
    "div",
    { class: "device-content", attrs: { hidden: true } },
    h("div", { class: "grid grid-2" }, card("device.section_overview", overview), card("device.section_live", live)),
    card("session.request_title", remote.el),
    card("diag.title", diagnostics.el),
    noInventory,
    inventorySections,
  );

  const el = h(
    "div",
    { class: "device-page" },
    h("a", { class: "back-link", attrs: { href: "#/devices" }, t: "device.back" }),
    h("div", { class: "page-header" }, h("div", null, h("div", { class: "title-row" }, title, statusHolder), subtitle)),
    alert,
    content,
  );

  let renderedInventory = "";

  function render(force = false): void {
    if (error !== null) {
      replaceChildren(alert, h("p", { class: "form-error", attrs: { role: "alert" } }, error));
    } else if (detail === null) {
      replaceChildren(alert, emptyState("device.loading"));
    } else {
      replaceChildren(alert);
    }
    if (detail === null) {
      title.textContent = error !== null ? t("device.title_unknown") : "";
      content.hidden = true;
      return;
    }
    const d = detail;
    content.hidden = false;
    remote.update({ id: d.id, label: d.hostname || d.id, online: d.online });
    diagnostics.update(d.online);
    title.textContent = clip(d.hostname || d.id, 120);
    replaceChildren(statusHolder, badge(d.online ? "ok" : "off", d.online ? "status.online" : "status.offline"));
    subtitle.textContent = [d.os, d.group].filter(Boolean).map((s) => clip(s, 80)).join(" · ");

    replaceChildren(
      overview,
      facts([
        ["device.status", d.online ? t("status.online") : t("device.offline_since", { when: formatRelative(d.last_seen) })],
        ["device.last_seen", d.online ? t("devices.now") : formatDateTime(d.last_seen)],
        ["device.group", d.group ? clip(d.group) : null],
        ["device.enrolled_at", formatDateTime(d.enrolled_at)],
        ["device.inventory_updated", d.inventory_updated_at === null ? t("common.never") : formatRelative(d.inventory_updated_at)],
        ["device.id", mono(d.id)],
      ]),
    );
    replaceChildren(
      live,
      d.metrics
        ? metricsBlock(d, d.metrics)
        : emptyState(d.online ? "device.no_metrics" : "device.no_metrics_offline"),
    );

    const inv = d.inventory;
    noInventory.hidden = inv !== null;
    inventorySections.hidden = inv === null;
    // Heartbeats arrive every few seconds; the inventory only changes when the agent re-sends it.
    const inventoryKey = `${language()}|${d.inventory_updated_at ?? ""}|${inv === null}`;
    if (inventoryKey === renderedInventory && !force) return;
    renderedInventory = inventoryKey;
    if (inv) {
      replaceChildren(system, systemFacts(inv));
      replaceChildren(hardware, hardwareFacts(inv));
      replaceChildren(disks, disksTable(inv));
      replaceChildren(interfaces, interfacesTable(inv));
      replaceChildren(users, usersTable(inv));
    }
    packages.update(inv);
  }

  const subscription = socket.subscribe({
    type: "device/subscribe",
    fields: { device_id: deviceId },
    onResult(result) {
      detail = readDetail(result);
      error = detail ? null : t("error.malformed");
      render();
    },
    onEvent(event) {
      const next = readDeviceEvent(event);
      if (!next) return;
      detail = next;
      render();
    },
    onError(err) {
      error = err.code === "not_found" ? t("device.not_found") : errorText(err);
      render();
    },
  });

  const ticker = window.setInterval(() => render(), REFRESH_MS);
  const stopLanguage = onLanguageChange(() => render(true));
  render();
  return {
    el,
    dispose() {
      subscription.close();
      diagnostics.dispose();
      window.clearInterval(ticker);
      stopLanguage();
    },
  };
}
