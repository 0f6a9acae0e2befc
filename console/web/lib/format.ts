// Numbers, sizes, dates and durations in the conventions of the current language.

import { language, t } from "./i18n";

export function formatBytes(bytes: number | null): string {
  if (bytes === null || bytes < 0) return "—";
  const units = t("format.byte_units").split("|");
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  const number = new Intl.NumberFormat(language(), { maximumFractionDigits: digits }).format(value);
  return `${number} ${units[unit] ?? ""}`.trim();
}

export function formatPercent(value: number | null): string {
  if (value === null) return "—";
  return new Intl.NumberFormat(language(), { style: "percent", maximumFractionDigits: 0 }).format(value / 100);
}

export function formatNumber(value: number | null, maximumFractionDigits = 0): string {
  if (value === null) return "—";
  return new Intl.NumberFormat(language(), { maximumFractionDigits }).format(value);
}

/** A date and time from a Unix timestamp in seconds. */
export function formatDateTime(seconds: number | null): string {
  if (seconds === null) return "—";
  return new Intl.DateTimeFormat(language(), { dateStyle: "medium", timeStyle: "short" }).format(
    new Date(seconds * 1000),
  );
}

const RELATIVE_STEPS: [Intl.RelativeTimeFormatUnit, number][] = [
  ["second", 60],
  ["minute", 60],
  ["hour", 24],
  ["day", 30],
  ["month", 12],
  ["year", Number.POSITIVE_INFINITY],
];

/** "3 minutes ago" / "il y a 3 minutes" / "3 minuten geleden" from a Unix timestamp in seconds. */
export function formatRelative(seconds: number | null, now: number = Date.now() / 1000): string {
  if (seconds === null) return t("common.never");
  let delta = seconds - now;
  if (Math.abs(delta) < 10) return t("common.just_now");
  const rtf = new Intl.RelativeTimeFormat(language(), { numeric: "auto" });
  for (const [unit, size] of RELATIVE_STEPS) {
    if (Math.abs(delta) < size) return rtf.format(Math.round(delta), unit);
    delta /= size;
  }
  return rtf.format(Math.round(delta), "year");
}

/** "3 days 4 hours" style uptime, two most significant units. */
export function formatDuration(totalSeconds: number | null): string {
  if (totalSeconds === null || totalSeconds < 0) return "—";
  const parts: [Intl.NumberFormatOptions["unit"], number][] = [
    ["day", Math.floor(totalSeconds / 86_400)],
    ["hour", Math.floor((totalSeconds % 86_400) / 3600)],
    ["minute", Math.floor((totalSeconds % 3600) / 60)],
  ];
  const shown = parts.filter(([, value]) => value > 0).slice(0, 2);
  if (shown.length === 0) return t("common.less_than_a_minute");
  return shown
    .map(([unit, value]) =>
      new Intl.NumberFormat(language(), { style: "unit", unit, unitDisplay: "long" }).format(value),
    )
    .join(" ");
}
