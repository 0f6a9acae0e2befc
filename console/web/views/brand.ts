// The Steun logo and name.

import { h, svg } from "../lib/dom";

export function logo(size = 28): SVGElement {
  // A speech bubble holding a check mark: help that arrives.
  return svg(
    "svg",
    { viewBox: "0 0 32 32", width: size, height: size, "aria-hidden": "true", class: "logo", focusable: "false" },
    svg("rect", { x: 2, y: 3, width: 28, height: 21, rx: 6, fill: "currentColor" }),
    svg("path", { d: "M9 24 L9 30 L16 24 Z", fill: "currentColor" }),
    svg("path", {
      d: "M10 13.5 L14.5 18 L22.5 9.5",
      fill: "none",
      stroke: "#fff",
      "stroke-width": 3,
      "stroke-linecap": "round",
      "stroke-linejoin": "round",
    }),
  );
}

export function brand(): HTMLElement {
  // The product name is a proper noun: it is the same in every language.
  return h("span", { class: "brand" }, logo(), h("span", { class: "brand-name" }, "Steun"));
}
