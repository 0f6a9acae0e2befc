// Building DOM nodes without ever parsing HTML: every string becomes a text node or an attribute value.
//
// Everything an agent reports is hostile. This module is the only place that creates elements, and it has no
// way to set innerHTML, outerHTML or insertAdjacentHTML: strings can only ever end up as text.

import { bindText, type Params } from "./i18n";

export type Child = Node | string | number | null | undefined | false | readonly Child[];

type Handler<K extends keyof HTMLElementEventMap> = (event: HTMLElementEventMap[K]) => void;

export interface Props {
  class?: string | readonly (string | false | null | undefined)[];
  id?: string;
  /** Translation key: the element's text follows the current language. */
  t?: string;
  tParams?: Params;
  /** Translation keys for attributes that people read (placeholder, aria-label, title). */
  tPlaceholder?: string;
  tLabel?: string;
  tTitle?: string;
  tAlt?: string;
  attrs?: Record<string, string | number | boolean | null | undefined>;
  dataset?: Record<string, string>;
  on?: { [K in keyof HTMLElementEventMap]?: Handler<K> };
}

const FORBIDDEN_ATTRIBUTES = new Set(["srcdoc", "style"]);

function setAttribute(el: Element, name: string, value: string | number | boolean | null | undefined): void {
  const lower = name.toLowerCase();
  // Event-handler attributes and srcdoc would turn a string into code or markup.
  if (lower.startsWith("on") || FORBIDDEN_ATTRIBUTES.has(lower)) {
    throw new Error(`refusing to set attribute ${name}`);
  }
  if (value === null || value === undefined || value === false) {
    el.removeAttribute(name);
  } else if (value === true) {
    el.setAttribute(name, "");
  } else {
    el.setAttribute(name, String(value));
  }
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) {
      append(parent, ...(child as readonly Child[]));
    } else if (child instanceof Node) {
      parent.appendChild(child);
    } else {
      parent.appendChild(document.createTextNode(String(child)));
    }
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) {
    if (props.class !== undefined) {
      const names = typeof props.class === "string" ? [props.class] : props.class;
      for (const name of names) if (name) el.classList.add(...name.split(" ").filter(Boolean));
    }
    if (props.id !== undefined) el.id = props.id;
    if (props.attrs) for (const [name, value] of Object.entries(props.attrs)) setAttribute(el, name, value);
    if (props.dataset) for (const [name, value] of Object.entries(props.dataset)) el.dataset[name] = value;
    if (props.t !== undefined) bindText(el, "text", props.t, props.tParams);
    if (props.tPlaceholder !== undefined) bindText(el, "placeholder", props.tPlaceholder);
    if (props.tLabel !== undefined) bindText(el, "aria-label", props.tLabel);
    if (props.tTitle !== undefined) bindText(el, "title", props.tTitle);
    if (props.tAlt !== undefined) bindText(el, "alt", props.tAlt);
    if (props.on) {
      for (const [name, handler] of Object.entries(props.on)) {
        el.addEventListener(name, handler as EventListener);
      }
    }
  }
  append(el, ...children);
  return el;
}

/** Replaces all children of `parent` (text only ever goes in as text nodes). */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** A small inline SVG built node by node (used for icons; never with data from the network). */
export function svg(
  tag: string,
  attrs: Record<string, string | number>,
  ...children: SVGElement[]
): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) setAttribute(el, name, value);
  for (const child of children) el.appendChild(child);
  return el;
}

/** Truncates text that comes from an agent before it reaches the page, so one field cannot flood the layout. */
export function clip(value: string, max = 256): string {
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

/** The route of a device page; ids are escaped even though the server restricts them to [A-Za-z0-9_-]. */
export function deviceHref(deviceId: string): string {
  return `#/devices/${encodeURIComponent(deviceId)}`;
}

export async function copyToClipboard(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
