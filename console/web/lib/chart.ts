// A small line chart in SVG, built node by node with createElementNS: numbers become coordinates and text
// becomes text nodes, so nothing here can turn a value into markup. No chart library.

const SVG_NS = "http://www.w3.org/2000/svg";

export interface ChartPoint {
  time: number;
  value: number | null;
  /** A class for the point's marker (e.g. the result's status). */
  kind: string;
}

export interface ChartLine {
  value: number;
  kind: string;
  label: string;
}

export interface ChartOptions {
  /** What the chart shows, for screen readers. */
  label: string;
  formatValue: (value: number) => string;
  formatTime: (seconds: number) => string;
  /** Horizontal reference lines (thresholds). */
  lines?: ChartLine[];
  width?: number;
  height?: number;
}

function node<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceRange(min: number, max: number): [number, number] {
  if (min === max) {
    const pad = Math.abs(min) * 0.1 || 1;
    return [min - pad, max + pad];
  }
  const pad = (max - min) * 0.08;
  return [min - pad, max + pad];
}

/** A line chart of `points` (oldest first); gaps where a value is null. */
export function lineChart(points: readonly ChartPoint[], options: ChartOptions): SVGSVGElement {
  const width = options.width ?? 560;
  const height = options.height ?? 180;
  const left = 56;
  const right = 12;
  const top = 10;
  const bottom = 28;
  const plotW = width - left - right;
  const plotH = height - top - bottom;

  const svg = node("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    preserveAspectRatio: "xMidYMid meet",
  });
  svg.setAttribute("aria-label", options.label);
  svg.appendChild(node("title", {}, options.label));

  const values = points.map((p) => p.value).filter((v): v is number => v !== null && Number.isFinite(v));
  const lines = (options.lines ?? []).filter((line) => Number.isFinite(line.value));
  if (values.length === 0) return svg;
  const [yMin, yMax] = niceRange(Math.min(...values, ...lines.map((l) => l.value)), Math.max(...values, ...lines.map((l) => l.value)));
  const times = points.map((p) => p.time);
  const tMin = Math.min(...times);
  const tMax = Math.max(...times);
  const x = (t: number): number => (tMax === tMin ? left + plotW / 2 : left + ((t - tMin) / (tMax - tMin)) * plotW);
  const y = (v: number): number => top + (1 - (v - yMin) / (yMax - yMin)) * plotH;
  const round = (n: number): number => Math.round(n * 10) / 10;

  const axes = node("g", { class: "chart-axes" });
  axes.appendChild(node("line", { x1: left, y1: top, x2: left, y2: top + plotH }));
  axes.appendChild(node("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH }));
  axes.appendChild(node("text", { x: left - 6, y: top + 4, "text-anchor": "end" }, options.formatValue(yMax)));
  axes.appendChild(node("text", { x: left - 6, y: top + plotH, "text-anchor": "end" }, options.formatValue(yMin)));
  axes.appendChild(node("text", { x: left, y: height - 8, "text-anchor": "start" }, options.formatTime(tMin)));
  if (tMax !== tMin) {
    axes.appendChild(node("text", { x: left + plotW, y: height - 8, "text-anchor": "end" }, options.formatTime(tMax)));
  }
  svg.appendChild(axes);

  for (const line of lines) {
    const g = node("g", { class: `chart-threshold chart-threshold-${line.kind}` });
    g.appendChild(node("line", { x1: left, y1: round(y(line.value)), x2: left + plotW, y2: round(y(line.value)) }));
    g.appendChild(node("title", {}, `${line.label}: ${options.formatValue(line.value)}`));
    svg.appendChild(g);
  }

  // one polyline per run of known values: a null (could not measure) leaves a gap
  let segment: string[] = [];
  const flush = (): void => {
    if (segment.length > 1) svg.appendChild(node("polyline", { class: "chart-line", points: segment.join(" ") }));
    segment = [];
  };
  for (const point of points) {
    if (point.value === null || !Number.isFinite(point.value)) {
      flush();
      continue;
    }
    segment.push(`${round(x(point.time))},${round(y(point.value))}`);
  }
  flush();

  const markers = node("g", { class: "chart-points" });
  for (const point of points) {
    if (point.value === null || !Number.isFinite(point.value)) continue;
    const dot = node("circle", {
      class: `chart-point chart-point-${point.kind}`,
      cx: round(x(point.time)),
      cy: round(y(point.value)),
      r: 3.5,
    });
    dot.appendChild(node("title", {}, `${options.formatTime(point.time)}: ${options.formatValue(point.value)}`));
    markers.appendChild(dot);
  }
  svg.appendChild(markers);
  return svg;
}
