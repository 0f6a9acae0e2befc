// Translations: English, Dutch and French, switchable at any moment without reloading the page.
//
// Elements that show translated text carry data-i18n* attributes, so a language switch rewrites them in
// place (form input and scroll position survive). Text that is computed (counts, relative times) is
// re-rendered by the views through onLanguageChange().

import en from "../i18n/en.json";
import fr from "../i18n/fr.json";
import nl from "../i18n/nl.json";

export type Language = "en" | "nl" | "fr";
export type Params = Record<string, string | number>;
type Catalogue = Record<string, string>;

const CATALOGUES: Record<Language, Catalogue> = { en, nl, fr };
export const LANGUAGES: readonly Language[] = ["en", "nl", "fr"];
// Each language is offered under its own name, as language pickers do everywhere.
export const LANGUAGE_NAMES: Record<Language, string> = { en: "English", nl: "Nederlands", fr: "Français" };

const STORAGE_KEY = "steun.language";
const listeners = new Set<(language: Language) => void>();
let current: Language = detectLanguage();

function isLanguage(value: unknown): value is Language {
  return typeof value === "string" && (LANGUAGES as readonly string[]).includes(value);
}

function detectLanguage(): Language {
  try {
    const stored = localStorage.getItem(STORAGE_KEY);
    if (isLanguage(stored)) return stored;
  } catch {
    // Storage can be disabled; fall back to the browser's preference.
  }
  const preferred = navigator.languages.length > 0 ? navigator.languages : [navigator.language];
  for (const tag of preferred) {
    const base = tag.toLowerCase().split("-")[0];
    if (isLanguage(base)) return base;
  }
  return "en";
}

export function language(): Language {
  return current;
}

export function setLanguage(next: Language): void {
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Not persisted; the switch still applies to this page.
  }
  if (next === current) return;
  current = next;
  document.documentElement.lang = next;
  translateTree(document.body);
  document.title = t("app.title");
  for (const listener of listeners) listener(next);
}

/** Calls `listener` after each language switch; returns the function that stops it. */
export function onLanguageChange(listener: (language: Language) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function lookup(key: string): string | undefined {
  return CATALOGUES[current][key] ?? CATALOGUES.en[key];
}

function formatNumber(value: number): string {
  return new Intl.NumberFormat(current).format(value);
}

function interpolate(template: string, params: Params | undefined): string {
  if (!params) return template;
  return template.replace(/\{([a-z_]+)\}/gi, (match, name: string) => {
    const value = params[name];
    if (value === undefined) return match;
    return typeof value === "number" ? formatNumber(value) : value;
  });
}

/**
 * The text for `key` in the current language. A key with `.one` / `.other` variants is chosen by the
 * plural rules of the language for `params.count`.
 */
export function t(key: string, params?: Params): string {
  let template = lookup(key);
  const count = params?.["count"];
  if (template === undefined && typeof count === "number") {
    const category = new Intl.PluralRules(current).select(count);
    template = lookup(`${key}.${category}`) ?? lookup(`${key}.other`);
  }
  if (template === undefined) {
    if (import.meta.env.DEV) console.warn(`missing translation: ${key}`);
    return key;
  }
  return interpolate(template, params);
}

export type BindTarget = "text" | "placeholder" | "aria-label" | "title" | "alt";

const DATA_ATTRIBUTE: Record<BindTarget, string> = {
  text: "data-i18n",
  placeholder: "data-i18n-placeholder",
  "aria-label": "data-i18n-aria-label",
  title: "data-i18n-title",
  alt: "data-i18n-alt",
};

function applyBinding(el: Element, target: BindTarget, key: string, params: Params | undefined): void {
  const text = t(key, params);
  if (target === "text") el.textContent = text;
  else el.setAttribute(target, text);
}

function readParams(el: Element): Params | undefined {
  const raw = el.getAttribute("data-i18n-params");
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as Params;
  } catch {
    return undefined;
  }
}

/** Shows the translation of `key` on `el` now and after every language switch. */
export function bindText(el: Element, target: BindTarget, key: string, params?: Params): void {
  el.setAttribute(DATA_ATTRIBUTE[target], key);
  if (target === "text") {
    if (params) el.setAttribute("data-i18n-params", JSON.stringify(params));
    else el.removeAttribute("data-i18n-params");
  }
  applyBinding(el, target, key, params);
}

export function translateTree(root: ParentNode): void {
  for (const [target, attribute] of Object.entries(DATA_ATTRIBUTE) as [BindTarget, string][]) {
    for (const el of root.querySelectorAll(`[${attribute}]`)) {
      const key = el.getAttribute(attribute);
      if (key) applyBinding(el, target, key, target === "text" ? readParams(el) : undefined);
    }
  }
}

export function initLanguage(): void {
  document.documentElement.lang = current;
  document.title = t("app.title");
}
