// Routine tests as the console sees them: readers for steun_protocol.diagnostics_console, the catalogue
// (fetched once, every language), and the rendering of result sentences from its templates.
//
// Results come from agents: every string is clipped, every list bounded, every value type-checked, and all
// of it ends up as text (never markup). Templates are `{name}` only, filled with plain values.

import { language } from "../lib/i18n";
import type { ConsoleSocket } from "../lib/ws";

type Json = Record<string, unknown>;

export type Status = "pass" | "warn" | "fail" | "error" | "not_applicable";
export const STATUSES: readonly Status[] = ["fail", "warn", "error", "pass", "not_applicable"];
export const SEVERITY: Record<Status, number> = { pass: 0, not_applicable: 0, error: 1, warn: 2, fail: 3 };
export type Scalar = string | number | boolean | null;

const SHORT = 256;
const MAX_ITEMS = 4096;

function obj(value: unknown): Json | null {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : null;
}

function str(value: unknown, max = SHORT): string {
  if (typeof value !== "string") return "";
  return value.length > max ? value.slice(0, max) : value;
}

function optStr(value: unknown, max = SHORT): string | null {
  return typeof value === "string" && value !== "" ? str(value, max) : null;
}

function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function list<T>(value: unknown, max: number, read: (item: unknown) => T | null): T[] {
  if (!Array.isArray(value)) return [];
  const out: T[] = [];
  for (const item of value.slice(0, max)) {
    const parsed = read(item);
    if (parsed !== null) out.push(parsed);
  }
  return out;
}

function status(value: unknown): Status | null {
  return typeof value === "string" && (STATUSES as readonly string[]).includes(value) ? (value as Status) : null;
}

function scalar(value: unknown): Scalar {
  if (typeof value === "string") return str(value);
  if (typeof value === "boolean") return value;
  return num(value);
}

function scalars(value: unknown, max = 16): Record<string, Scalar> {
  const o = obj(value);
  const out: Record<string, Scalar> = {};
  if (!o) return out;
  for (const [key, item] of Object.entries(o).slice(0, max)) out[str(key, 40)] = scalar(item);
  return out;
}

function numbers(value: unknown, max = 16): Record<string, number> {
  const o = obj(value);
  const out: Record<string, number> = {};
  if (!o) return out;
  for (const [key, item] of Object.entries(o).slice(0, max)) {
    const n = num(item);
    if (n !== null) out[str(key, 40)] = n;
  }
  return out;
}

export function worst(statuses: Iterable<Status>): Status {
  let result: Status = "pass";
  for (const s of statuses) if (SEVERITY[s] > SEVERITY[result]) result = s;
  return result;
}

// -- results --------------------------------------------------------------------------------------------------

export interface CheckResult {
  check_id: string;
  status: Status;
  summary_key: string;
  summary_params: Record<string, Scalar>;
  subject: string | null;
  value: Scalar;
  unit: string;
  measured: Record<string, Scalar>;
  thresholds: Record<string, number>;
  detail: string;
  kb_key: string | null;
  duration_ms: number | null;
}

export function readResult(value: unknown): CheckResult | null {
  const o = obj(value);
  const s = status(o?.["status"]);
  if (!o || !s || typeof o["check_id"] !== "string") return null;
  return {
    check_id: str(o["check_id"], 64),
    status: s,
    summary_key: str(o["summary_key"], 96),
    summary_params: scalars(o["summary_params"]),
    subject: optStr(o["subject"]),
    value: scalar(o["value"]),
    unit: str(o["unit"], 16),
    measured: scalars(o["measured"]),
    thresholds: numbers(o["thresholds"]),
    detail: str(o["detail"], 1024),
    kb_key: optStr(o["kb_key"], 96),
    duration_ms: num(o["duration_ms"]),
  };
}

export interface RunInfo {
  id: string;
  device_id: string;
  trigger: string;
  requested_by: string | null;
  started_at: number | null;
  finished_at: number | null;
  state: string;
  results: number;
  counts: Partial<Record<Status, number>>;
  timed_out: string[];
}

export function readRun(value: unknown): RunInfo | null {
  const o = obj(value);
  if (!o || typeof o["id"] !== "string") return null;
  const counts: Partial<Record<Status, number>> = {};
  const c = obj(o["counts"]);
  if (c) for (const s of STATUSES) counts[s] = num(c[s]) ?? 0;
  return {
    id: str(o["id"], 64),
    device_id: str(o["device_id"], 64),
    trigger: str(o["trigger"], 16),
    requested_by: optStr(o["requested_by"]),
    started_at: num(o["started_at"]),
    finished_at: num(o["finished_at"]),
    state: str(o["state"], 16),
    results: num(o["results"]) ?? 0,
    counts,
    timed_out: list(o["timed_out"], 256, (x) => (typeof x === "string" ? str(x, 64) : null)),
  };
}

export interface LatestResult {
  check_id: string;
  subject: string | null;
  status: Status;
  time: number;
  failing_since: number | null;
  result: CheckResult;
}

function readLatestResult(value: unknown): LatestResult | null {
  const o = obj(value);
  const result = readResult(o?.["result"]);
  const s = status(o?.["status"]);
  const time = num(o?.["time"]);
  if (!o || !result || !s || time === null) return null;
  return { check_id: result.check_id, subject: result.subject, status: s, time, failing_since: num(o["failing_since"]), result };
}

export interface Latest {
  results: LatestResult[];
  running: RunInfo | null;
  last_run: RunInfo | null;
}

export function readLatest(value: unknown): Latest {
  const o = obj(value);
  return {
    results: list(o?.["results"], MAX_ITEMS, readLatestResult),
    running: readRun(o?.["running"]),
    last_run: readRun(o?.["last_run"]),
  };
}

export interface RunStarted {
  run: RunInfo;
  accepted: string[];
  unknown: string[];
}

export function readRunStarted(value: unknown): RunStarted | null {
  const o = obj(value);
  const run = readRun(o?.["run"]);
  if (!o || !run) return null;
  const ids = (x: unknown): string | null => (typeof x === "string" ? str(x, 64) : null);
  return { run, accepted: list(o["accepted"], 256, ids), unknown: list(o["unknown"], 256, ids) };
}

export type RunEvent = { kind: "result"; time: number; result: CheckResult } | { kind: "done"; run: RunInfo };

export function readRunEvent(value: unknown): RunEvent | null {
  const o = obj(value);
  if (!o) return null;
  if (o["kind"] === "result") {
    const stored = obj(o["result"]);
    const result = readResult(stored?.["result"]);
    const time = num(stored?.["time"]);
    return result && time !== null ? { kind: "result", time, result } : null;
  }
  if (o["kind"] === "done") {
    const run = readRun(o["run"]);
    return run ? { kind: "done", run } : null;
  }
  return null;
}

export interface HistoryPoint {
  time: number;
  value: number | null;
  status: Status;
}

export function readHistory(value: unknown): HistoryPoint[] {
  const o = obj(value);
  return list(o?.["points"], 1000, (item) => {
    const p = obj(item);
    const time = num(p?.["time"]);
    const s = status(p?.["status"]);
    return p && time !== null && s ? { time, value: num(p["value"]), status: s } : null;
  });
}

export interface DeviceStatus {
  device_id: string;
  worst: Status;
  counts: Partial<Record<Status, number>>;
  time: number | null;
}

export function readDeviceStatus(value: unknown): DeviceStatus | null {
  const o = obj(value);
  const w = status(o?.["worst"]);
  if (!o || !w || typeof o["device_id"] !== "string") return null;
  const counts: Partial<Record<Status, number>> = {};
  const c = obj(o["counts"]);
  if (c) for (const s of STATUSES) if (num(c[s]) !== null) counts[s] = num(c[s]) ?? 0;
  return { device_id: str(o["device_id"], 64), worst: w, counts, time: num(o["time"]) };
}

export function readStatusList(value: unknown): DeviceStatus[] {
  return list(obj(value)?.["devices"], 5000, readDeviceStatus);
}

export function readStatusEvent(value: unknown): DeviceStatus | null {
  return readDeviceStatus(obj(value)?.["device"]);
}

export interface FleetDevice {
  device_id: string;
  hostname: string;
  group: string;
  online: boolean;
  subject: string | null;
  status: Status;
  time: number | null;
  failing_since: number | null;
  result: CheckResult;
}

export interface TopFailure {
  check_id: string;
  devices: number;
  results: number;
  fail: number;
  warn: number;
  kb_key: string | null;
}

export interface FleetReport {
  failing: FleetDevice[];
  top: TopFailure[];
}

export function readFleet(value: unknown): FleetReport {
  const o = obj(value);
  return {
    failing: list(o?.["failing"], 1000, (item) => {
      const d = obj(item);
      const result = readResult(d?.["result"]);
      const s = status(d?.["status"]);
      if (!d || !result || !s || typeof d["device_id"] !== "string") return null;
      return {
        device_id: str(d["device_id"], 64),
        hostname: str(d["hostname"]),
        group: str(d["group"]),
        online: d["online"] === true,
        subject: optStr(d["subject"]),
        status: s,
        time: num(d["time"]),
        failing_since: num(d["failing_since"]),
        result,
      };
    }),
    top: list(o?.["top"], 100, (item) => {
      const d = obj(item);
      if (!d || typeof d["check_id"] !== "string") return null;
      return {
        check_id: str(d["check_id"], 64),
        devices: num(d["devices"]) ?? 0,
        results: num(d["results"]) ?? 0,
        fail: num(d["fail"]) ?? 0,
        warn: num(d["warn"]) ?? 0,
        kb_key: optStr(d["kb_key"], 96),
      };
    }),
  };
}

// -- the catalogue ------------------------------------------------------------------------------------------

export interface Text {
  en: string;
  nl: string;
  fr: string;
}

export interface ThresholdSpec {
  default: number;
  unit: string;
}

export interface CheckSpec {
  id: string;
  group: string;
  title: Text;
  measures: Text;
  explanation: Text;
  fix: Text;
  kb_key: string;
  unit: string;
  per: string;
  summaries: Record<string, Text>;
  thresholds: Record<string, ThresholdSpec>;
}

export interface Catalogue {
  groups: { id: string; title: Text }[];
  statuses: Partial<Record<Status, Text>>;
  common: Record<string, Text>;
  labels: Record<string, Text>;
  checks: CheckSpec[];
  byId: Map<string, CheckSpec>;
}

const TEXT_MAX = 4000;

function readText(value: unknown): Text {
  const o = obj(value);
  return { en: str(o?.["en"], TEXT_MAX), nl: str(o?.["nl"], TEXT_MAX), fr: str(o?.["fr"], TEXT_MAX) };
}

function readTexts(value: unknown): Record<string, Text> {
  const o = obj(value);
  const out: Record<string, Text> = {};
  if (o) for (const [key, item] of Object.entries(o).slice(0, 512)) out[str(key, 64)] = readText(item);
  return out;
}

export function readCatalogue(value: unknown): Catalogue | null {
  const c = obj(obj(value)?.["catalogue"]);
  if (!c) return null;
  const checks = list(c["checks"], 512, (item) => {
    const o = obj(item);
    if (!o || typeof o["id"] !== "string") return null;
    const thresholds: Record<string, ThresholdSpec> = {};
    const th = obj(o["thresholds"]);
    if (th) {
      for (const [name, spec] of Object.entries(th).slice(0, 16)) {
        const d = num(obj(spec)?.["default"]);
        if (d !== null) thresholds[str(name, 40)] = { default: d, unit: str(obj(spec)?.["unit"], 16) };
      }
    }
    return {
      id: str(o["id"], 64),
      group: str(o["group"], 32),
      title: readText(o["title"]),
      measures: readText(o["measures"]),
      explanation: readText(o["explanation"]),
      fix: readText(o["fix"]),
      kb_key: str(o["kb_key"], 96),
      unit: str(o["unit"], 16),
      per: str(o["per"], 32),
      summaries: readTexts(o["summaries"]),
      thresholds,
    } satisfies CheckSpec;
  });
  const statuses: Partial<Record<Status, Text>> = {};
  const st = obj(c["statuses"]);
  if (st) for (const s of STATUSES) if (st[s] !== undefined) statuses[s] = readText(st[s]);
  return {
    groups: list(c["groups"], 16, (item) => {
      const g = obj(item);
      return g && typeof g["id"] === "string" ? { id: str(g["id"], 32), title: readText(g["title"]) } : null;
    }),
    statuses,
    common: readTexts(c["common"]),
    labels: readTexts(c["labels"]),
    checks,
    byId: new Map(checks.map((check) => [check.id, check])),
  };
}

const catalogues = new WeakMap<ConsoleSocket, Promise<Catalogue>>();

/** The catalogue, asked for once per connection object (all three languages: switching needs no reload). */
export function loadCatalogue(socket: ConsoleSocket): Promise<Catalogue> {
  let pending = catalogues.get(socket);
  if (!pending) {
    pending = socket.request<unknown>("diagnostics/catalogue").then((value) => {
      const catalogue = readCatalogue(value);
      if (!catalogue) throw new Error("malformed catalogue");
      return catalogue;
    });
    pending.catch(() => catalogues.delete(socket));
    catalogues.set(socket, pending);
  }
  return pending;
}

export function text(value: Text | undefined): string {
  if (!value) return "";
  const lang = language();
  return value[lang] || value.en;
}

export function checkTitle(catalogue: Catalogue | null, checkId: string): string {
  const spec = catalogue?.byId.get(checkId);
  return spec ? text(spec.title) : checkId;
}

export function statusLabel(catalogue: Catalogue | null, s: Status): string {
  return text(catalogue?.statuses[s]) || s;
}

/** A parameter as a reader of the UI language expects it (the catalogue's own rule: decimal comma, one decimal). */
export function formatScalar(value: Scalar): string {
  const lang = language();
  if (value === null) return "—";
  if (typeof value === "boolean") {
    const words = { en: ["yes", "no"], nl: ["ja", "nee"], fr: ["oui", "non"] }[lang];
    return value ? words[0]! : words[1]!;
  }
  if (typeof value === "number") {
    let out = Math.abs(value) >= 100 || Number.isInteger(value) ? value.toFixed(0) : value.toFixed(1);
    if (out === "-0" || out === "-0.0") out = "0";
    return lang === "nl" || lang === "fr" ? out.replace(".", ",") : out;
  }
  return value;
}

/** A result's sentence in the UI language; an unknown key shows as itself, a missing parameter as "—". */
export function summary(catalogue: Catalogue | null, result: CheckResult): string {
  if (!catalogue) return result.summary_key;
  const dot = result.summary_key.lastIndexOf(".");
  const head = result.summary_key.slice(0, dot);
  const name = result.summary_key.slice(dot + 1);
  const template = head === "common" ? catalogue.common[name] : catalogue.byId.get(head)?.summaries[name];
  if (!template) return result.summary_key;
  return text(template).replace(/\{([a-z][a-z0-9_]*)\}/g, (_m, key: string) =>
    formatScalar(result.summary_params[key] ?? null),
  );
}

/** The headline value with its unit ("23.5 %", "—"). */
export function valueText(result: CheckResult): string {
  if (result.value === null) return "—";
  const unit = result.unit ? ` ${result.unit}` : "";
  return `${formatScalar(result.value)}${unit}`;
}
