// The device page's "Routine tests" section: run all tests, a group or one test; results stream in as traffic
// lights with the measured value, the sentence, the explanation and the fix from the catalogue, the
// knowledge-base key, "failing since", and a history chart for tests that measure a number.

import "./diagnostics.css";
import { lineChart } from "../lib/chart";
import { clip, h, replaceChildren, type Child } from "../lib/dom";
import { formatDateTime, formatRelative } from "../lib/format";
import { onLanguageChange, t } from "../lib/i18n";
import { emptyState, errorText } from "../lib/ui";
import type { ConsoleSocket, Subscription, WsError } from "../lib/ws";
import {
  checkTitle,
  formatScalar,
  loadCatalogue,
  readHistory,
  readLatest,
  readRunEvent,
  readRunStarted,
  SEVERITY,
  statusLabel,
  summary,
  text,
  valueText,
  worst,
  type Catalogue,
  type CheckSpec,
  type LatestResult,
  type RunInfo,
  type Status,
} from "./diagnostics-model";

const REFRESH_MS = 60_000;
const MAX_CHARTS = 4;
const MAX_ITEMS_SHOWN = 64;
const HISTORY_POINTS = 200;

export interface DiagnosticsSection {
  el: HTMLElement;
  update(online: boolean): void;
  dispose(): void;
}

/** A traffic light with its status word (colour is never the only signal). */
export function statusLight(catalogue: Catalogue | null, status: Status | "pending"): HTMLElement {
  const label = status === "pending" ? t("diag.pending") : statusLabel(catalogue, status);
  return h(
    "span",
    { class: ["diag-status", `diag-status-${status}`], dataset: { status } },
    h("span", { class: ["diag-light", `diag-light-${status}`], attrs: { "aria-hidden": "true" } }),
    h("span", { class: "diag-status-text" }, label),
  );
}

/** "failing since 3 days ago" with the exact time on hover. */
export function failingSince(since: number | null): HTMLElement | null {
  if (since === null) return null;
  return h(
    "span",
    { class: "diag-failing-since", attrs: { title: formatDateTime(since) } },
    t("diag.failing_since", { when: formatRelative(since) }),
  );
}

function keyOf(checkId: string, subject: string | null): string {
  return `${checkId}\u0000${subject ?? ""}`;
}

const FAILING: readonly Status[] = ["warn", "fail"];

/** What the server computes as "failing since", applied to a result that just streamed in. */
function nextFailingSince(previous: LatestResult | undefined, status: Status, time: number): number | null {
  if (FAILING.includes(status)) return previous?.failing_since ?? time;
  if (status === "error") return previous?.failing_since ?? null;
  return null;
}

function thresholdLines(result: LatestResult["result"]): { value: number; kind: string; label: string }[] {
  const lines: { value: number; kind: string; label: string }[] = [];
  for (const [name, value] of Object.entries(result.thresholds)) {
    if (/^(warn|fail)_(below|at|above)$/.test(name)) {
      lines.push({ value, kind: name.startsWith("fail") ? "fail" : "warn", label: name });
    }
  }
  return lines;
}

export function diagnosticsSection(socket: ConsoleSocket, deviceId: string): DiagnosticsSection {
  let catalogue: Catalogue | null = null;
  let latest = new Map<string, LatestResult>();
  let loaded = false;
  let online = false;
  let error: string | null = null;
  let lastRun: RunInfo | null = null;
  let run: {
    sub: Subscription;
    id: string | null;
    accepted: Set<string> | null;
    reported: Set<string>;
    startedAt: number;
  } | null = null;
  const openChecks = new Set<string>();
  const charts = new Map<string, { stamp: number; el: HTMLElement }>();
  let disposed = false;

  const runAll = h("button", {
    class: "button button-primary diag-run-all",
    attrs: { type: "button" },
    t: "diag.run_all",
    on: { click: () => startRun({}) },
  });
  const groupSelect = h("select", { class: "diag-group-select", attrs: { name: "diag-group" }, tLabel: "diag.group_label" });
  const runGroup = h("button", {
    class: "button button-secondary diag-run-group",
    attrs: { type: "button" },
    t: "diag.run_group",
    on: { click: () => groupSelect.value && startRun({ groups: [groupSelect.value] }) },
  });
  const checkSelect = h("select", { class: "diag-check-select", attrs: { name: "diag-check" }, tLabel: "diag.check_label" });
  const runCheck = h("button", {
    class: "button button-secondary diag-run-check",
    attrs: { type: "button" },
    t: "diag.run_check",
    on: { click: () => checkSelect.value && startRun({ checks: [checkSelect.value] }) },
  });
  const statusLine = h("p", { class: "diag-run-status muted", attrs: { role: "status", "aria-live": "polite" } });
  const alert = h("p", { class: "form-error", attrs: { role: "alert", hidden: true } });
  const counts = h("div", { class: "diag-counts" });
  const results = h("div", { class: "diag-results" });
  const el = h(
    "div",
    { class: "diagnostics", dataset: { deviceId } },
    h(
      "div",
      { class: "toolbar diag-toolbar" },
      runAll,
      h("span", { class: "diag-toolbar-group" }, groupSelect, runGroup),
      h("span", { class: "diag-toolbar-group" }, checkSelect, runCheck),
    ),
    statusLine,
    alert,
    counts,
    results,
  );

  function fillSelects(): void {
    if (!catalogue) return;
    const cat = catalogue;
    const group = groupSelect.value;
    const check = checkSelect.value;
    replaceChildren(
      groupSelect,
      cat.groups.map((g) => h("option", { attrs: { value: g.id } }, text(g.title))),
    );
    replaceChildren(
      checkSelect,
      cat.groups.map((g) =>
        h(
          "optgroup",
          { attrs: { label: text(g.title) } },
          cat.checks.filter((c) => c.group === g.id).map((c) => h("option", { attrs: { value: c.id } }, text(c.title))),
        ),
      ),
    );
    if (group) groupSelect.value = group;
    if (check) checkSelect.value = check;
  }

  function renderStatus(): void {
    const busy = run !== null;
    for (const control of [runAll, runGroup, runCheck, groupSelect, checkSelect]) control.disabled = busy || !online || !catalogue;
    if (run) {
      const total = run.accepted?.size ?? 0;
      statusLine.textContent = run.accepted
        ? t("diag.running_progress", { done: run.reported.size, count: total })
        : t("diag.starting");
    } else if (!online) {
      statusLine.textContent = t("diag.offline");
    } else if (lastRun) {
      statusLine.textContent = t("diag.last_run", {
        when: formatRelative(lastRun.finished_at ?? lastRun.started_at),
        state: t(`diag.state_${lastRun.state}`),
      });
    } else {
      statusLine.textContent = loaded ? t("diag.never_run") : "";
    }
    alert.textContent = error ?? "";
    alert.hidden = error === null;
  }

  function chartFor(item: LatestResult, spec: CheckSpec | undefined): HTMLElement {
    const key = keyOf(item.check_id, item.subject);
    const cached = charts.get(key);
    if (cached && cached.stamp === item.time) return cached.el;
    const holder = h("div", { class: "diag-chart", dataset: { check: item.check_id, subject: item.subject ?? "" } }, emptyState("diag.chart_loading"));
    charts.set(key, { stamp: item.time, el: holder });
    const unit = item.result.unit || spec?.unit || "";
    socket
      .request<unknown>("diagnostics/history", {
        device_id: deviceId,
        check_id: item.check_id,
        subject: item.subject,
        limit: HISTORY_POINTS,
      })
      .then((value) => {
        const points = readHistory(value);
        const numeric = points.filter((p) => p.value !== null);
        if (numeric.length === 0) {
          replaceChildren(holder, emptyState("diag.chart_empty"));
          return;
        }
        const title = item.subject
          ? t("diag.chart_label_subject", { test: checkTitle(catalogue, item.check_id), subject: clip(item.subject, 80) })
          : t("diag.chart_label", { test: checkTitle(catalogue, item.check_id) });
        const chart = lineChart(
          points.map((p) => ({ time: p.time, value: p.value, kind: p.status })),
          {
            label: title,
            formatValue: (v) => `${formatScalar(v)}${unit ? ` ${unit}` : ""}`,
            formatTime: (s) => formatDateTime(s),
            lines: thresholdLines(item.result),
          },
        );
        chart.dataset["points"] = String(numeric.length);
        replaceChildren(holder, h("p", { class: "diag-chart-title" }, title), chart);
      })
      .catch((err: unknown) => {
        charts.delete(key);
        replaceChildren(holder, h("p", { class: "form-error" }, errorText(err)));
      });
    return holder;
  }

  function itemRow(item: LatestResult): HTMLTableRowElement {
    return h(
      "tr",
      { class: "diag-item", dataset: { subject: item.subject ?? "" } },
      h("td", { class: "diag-item-subject mono" }, clip(item.subject ?? "—", 200)),
      h("td", null, statusLight(catalogue, item.status)),
      h("td", { class: "num diag-value" }, valueText(item.result)),
      h("td", { class: "diag-summary" }, clip(summary(catalogue, item.result), 400)),
      h("td", null, failingSince(item.failing_since)),
    );
  }

  function checkBlock(checkId: string, items: LatestResult[], pending: boolean): HTMLElement {
    const spec = catalogue?.byId.get(checkId);
    const sorted = [...items].sort((a, b) => SEVERITY[b.status] - SEVERITY[a.status] || (a.subject ?? "").localeCompare(b.subject ?? ""));
    const head = sorted[0];
    const state: Status | "pending" = pending ? "pending" : worst(sorted.map((i) => i.status));
    const since = sorted.reduce<number | null>(
      (min, i) => (i.failing_since !== null && (min === null || i.failing_since < min) ? i.failing_since : min),
      null,
    );
    const value = head === undefined ? "" : sorted.length === 1 ? valueText(head.result) : t("diag.items", { count: sorted.length });
    const sentence = pending ? t("diag.running") : head ? clip(summary(catalogue, head.result), 400) : "";
    const details = h(
      "details",
      { class: ["diag-check", `diag-check-${state}`], dataset: { check: checkId, status: state } },
      h(
        "summary",
        { class: "diag-check-summary" },
        statusLight(catalogue, state),
        h("span", { class: "diag-check-title" }, spec ? text(spec.title) : checkId),
        h("span", { class: "diag-check-value" }, value),
        h("span", { class: "diag-check-sentence" }, sentence),
        failingSince(pending ? null : since),
      ),
    );
    details.open = openChecks.has(checkId);
    const body = h("div", { class: "diag-check-body" });
    details.append(body);

    const fill = (): void => {
      const parts: Child[] = [];
      if (sorted.length > 1 || (head && head.subject !== null)) {
        parts.push(
          h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "table diag-items" },
              h(
                "thead",
                null,
                h(
                  "tr",
                  null,
                  ["diag.col_item", "diag.col_status", "diag.col_value", "diag.col_summary", "diag.col_since"].map((key) =>
                    h("th", { attrs: { scope: "col" }, t: key }),
                  ),
                ),
              ),
              h("tbody", null, sorted.slice(0, MAX_ITEMS_SHOWN).map(itemRow)),
            ),
          ),
        );
      }
      if (spec) {
        parts.push(h("p", { class: "diag-explanation" }, text(spec.explanation)));
        if (sorted.some((i) => FAILING.includes(i.status))) {
          parts.push(h("div", { class: "diag-fix" }, h("strong", { t: "diag.fix" }), " ", text(spec.fix)));
        }
      }
      const kbKeys = [...new Set(sorted.map((i) => i.result.kb_key).filter((k): k is string => k !== null))];
      if (kbKeys.length > 0) {
        parts.push(
          h(
            "p",
            { class: "diag-kb" },
            h("span", { t: "diag.kb" }),
            " ",
            kbKeys.slice(0, 8).map((k) => h("code", { class: "diag-kb-key", dataset: { kb: k } }, clip(k, 96))),
          ),
        );
      }
      const details = sorted.filter((i) => i.result.detail).slice(0, 8);
      for (const item of details) {
        parts.push(h("pre", { class: "diag-detail mono" }, clip(`${item.subject ? `${item.subject}: ` : ""}${item.result.detail}`, 1200)));
      }
      if (head) {
        const thresholds = Object.entries(head.result.thresholds);
        if (thresholds.length > 0) {
          parts.push(
            h(
              "p",
              { class: "diag-thresholds muted" },
              h("span", { t: "diag.thresholds" }),
              " ",
              thresholds.map(([name, v]) => `${name} = ${formatScalar(v)}`).join(" · "),
            ),
          );
        }
        parts.push(h("p", { class: "diag-measured-at muted" }, t("diag.measured_at", { when: formatDateTime(head.time) })));
      }
      const numeric = sorted.filter((i) => typeof i.result.value === "number").slice(0, MAX_CHARTS);
      for (const item of numeric) parts.push(chartFor(item, spec));
      replaceChildren(body, parts);
    };
    if (details.open) fill();
    details.addEventListener("toggle", () => {
      if (details.open) {
        openChecks.add(checkId);
        fill();
      } else {
        openChecks.delete(checkId);
      }
    });
    return details;
  }

  function renderResults(): void {
    const byCheck = new Map<string, LatestResult[]>();
    for (const item of latest.values()) {
      const items = byCheck.get(item.check_id) ?? [];
      items.push(item);
      byCheck.set(item.check_id, items);
    }
    const pending = new Set<string>();
    if (run?.accepted) for (const id of run.accepted) if (!run.reported.has(id)) pending.add(id);

    const perStatus: Partial<Record<Status, number>> = {};
    for (const [, items] of byCheck) {
      const s = worst(items.map((i) => i.status));
      perStatus[s] = (perStatus[s] ?? 0) + 1;
    }
    replaceChildren(
      counts,
      (["fail", "warn", "error", "pass", "not_applicable"] as Status[])
        .filter((s) => perStatus[s])
        .map((s) => h("span", { class: ["diag-count", `diag-count-${s}`], dataset: { status: s } }, statusLight(catalogue, s), h("strong", null, String(perStatus[s])))),
    );

    if (!loaded) {
      replaceChildren(results, emptyState("diag.loading"));
      return;
    }
    if (byCheck.size === 0 && pending.size === 0) {
      replaceChildren(results, emptyState("diag.no_results"));
      return;
    }
    const known = catalogue?.groups ?? [];
    const ids = new Set([...byCheck.keys(), ...pending]);
    const groupOf = (id: string): string => catalogue?.byId.get(id)?.group ?? "other";
    const order = (id: string): number => catalogue?.checks.findIndex((c) => c.id === id) ?? 0;
    const sections: HTMLElement[] = [];
    for (const group of [...known.map((g) => g.id), "other"]) {
      const members = [...ids].filter((id) => groupOf(id) === group || (group === "other" && !known.some((g) => g.id === groupOf(id))));
      if (members.length === 0) continue;
      members.sort((a, b) => order(a) - order(b));
      const title = known.find((g) => g.id === group);
      sections.push(
        h(
          "section",
          { class: "diag-group", dataset: { group } },
          h("h3", { class: "diag-group-title" }, title ? text(title.title) : t("diag.group_other")),
          members.map((id) => checkBlock(id, byCheck.get(id) ?? [], pending.has(id) && !byCheck.has(id))),
        ),
      );
    }
    replaceChildren(results, sections);
  }

  let frame: number | null = null;
  function render(): void {
    if (frame !== null) return;
    frame = window.requestAnimationFrame(() => {
      frame = null;
      if (disposed) return;
      renderStatus();
      renderResults();
    });
  }

  async function reload(): Promise<void> {
    try {
      const [cat, value] = await Promise.all([
        loadCatalogue(socket),
        socket.request<unknown>("diagnostics/latest", { device_id: deviceId }),
      ]);
      if (disposed) return;
      if (catalogue === null) {
        catalogue = cat;
        fillSelects();
      }
      const body = readLatest(value);
      latest = new Map(body.results.map((r) => [keyOf(r.check_id, r.subject), r]));
      lastRun = body.last_run;
      loaded = true;
      if (!run) error = null;
    } catch (err) {
      if (disposed) return;
      error = errorText(err);
    }
    render();
  }

  function endRun(): void {
    if (!run) return;
    run.sub.close();
    run = null;
  }

  function runError(err: WsError): string {
    if (err.code === "busy") return t("diag.error_busy");
    if (err.code === "offline") return t("diag.error_offline");
    return errorText(err);
  }

  function startRun(fields: { groups?: string[]; checks?: string[] }): void {
    if (run || !online) return;
    error = null;
    const current = {
      sub: null as unknown as Subscription,
      id: null as string | null,
      accepted: null as Set<string> | null,
      reported: new Set<string>(),
      startedAt: Date.now() / 1000,
    };
    run = current;
    current.sub = socket.subscribe({
      type: "diagnostics/run",
      fields: { device_id: deviceId, ...fields },
      onResult(value) {
        if (run !== current) return;
        const started = readRunStarted(value);
        if (!started) return;
        current.id = started.run.id;
        current.accepted = new Set(started.accepted);
        render();
      },
      onEvent(value) {
        if (run !== current) return;
        const event = readRunEvent(value);
        if (!event) return;
        if (event.kind === "result") {
          const key = keyOf(event.result.check_id, event.result.subject);
          const previous = latest.get(key);
          latest.set(key, {
            check_id: event.result.check_id,
            subject: event.result.subject,
            status: event.result.status,
            time: event.time,
            failing_since: nextFailingSince(previous, event.result.status, event.time),
            result: event.result,
          });
          current.reported.add(event.result.check_id);
          render();
          return;
        }
        lastRun = event.run;
        endRun();
        void reload();
      },
      onError(err) {
        if (run !== current) return;
        error = runError(err);
        endRun();
        render();
      },
    });
    render();
  }

  // A subscription is re-sent after a reconnect: a run must not be, so a dropped connection ends the watch.
  const stopState = socket.onStateChange((state) => {
    if (state === "open") {
      if (!loaded || error !== null) void reload();
      return;
    }
    if (run) {
      endRun();
      error = t("diag.run_interrupted");
      render();
    }
  });
  const ticker = window.setInterval(() => {
    if (!run) void reload();
  }, REFRESH_MS);
  const stopLanguage = onLanguageChange(() => {
    charts.clear();
    fillSelects();
    render();
  });
  render();

  return {
    el,
    update(next) {
      if (next === online) return;
      online = next;
      render();
    },
    dispose() {
      disposed = true;
      endRun();
      stopState();
      stopLanguage();
      window.clearInterval(ticker);
      if (frame !== null) window.cancelAnimationFrame(frame);
    },
  };
}
