/**
 * Small charts drawn as inline SVG by code (no library, no inline styles: colours come from the
 * stylesheet through classes). Labels are text nodes.
 */

const SVG = "http://www.w3.org/2000/svg";

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  text?: string,
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** One line or bar series. */
export interface Series {
  name: string;
  /** A CSS class suffix: `series-<cls>` sets its colour. */
  cls: string;
  values: number[];
}

const WIDTH = 1000;
const HEIGHT = 200;
const PAD = { left: 44, right: 8, top: 10, bottom: 22 };

/** A round axis maximum; at least 4 so the four grid steps are whole counts. */
function niceMax(max: number): number {
  if (max <= 4) return 4;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 4, 5, 8, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

function frame(title: string, max: number, labels: string[]): SVGSVGElement {
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart",
    role: "img",
    "aria-label": title,
  });
  root.appendChild(svg("title", {}, title));
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.top + (plotH * i) / 4;
    root.appendChild(
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "gridline" }),
    );
    const exact = max - (max * i) / 4;
    const value = Number.isInteger(exact) ? exact : Number(exact.toFixed(1));
    root.appendChild(
      svg(
        "text",
        { x: PAD.left - 4, y: y + 4, class: "axis", "text-anchor": "end" },
        String(value),
      ),
    );
  }
  const plotW = WIDTH - PAD.left - PAD.right;
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((label, i) => {
    const last = i === labels.length - 1;
    if (i % every !== 0 && !(last && i % every >= every / 2)) return;
    const x = PAD.left + (labels.length <= 1 ? plotW / 2 : (plotW * i) / (labels.length - 1));
    root.appendChild(
      svg("text", { x, y: HEIGHT - 6, class: "axis", "text-anchor": "middle" }, label),
    );
  });
  return root;
}

/** A legend for a set of series. */
export function legend(series: Series[]): HTMLElement {
  const box = document.createElement("div");
  box.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    item.className = `legend-item series-${s.cls}`;
    item.textContent = s.name;
    box.appendChild(item);
  }
  return box;
}

/** A line chart of several series over the same x labels. */
export function lineChart(title: string, labels: string[], series: Series[]): SVGSVGElement {
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const root = frame(title, max, labels);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i: number) =>
    PAD.left + (labels.length <= 1 ? plotW / 2 : (plotW * i) / (labels.length - 1));
  const y = (v: number) => PAD.top + plotH - (plotH * v) / max;
  for (const s of series) {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    root.appendChild(
      svg("polyline", { points, class: `line series-${s.cls}`, "data-series": s.name }),
    );
  }
  return root;
}

/** A grouped bar chart: one group per label, one bar per series. */
export function barChart(title: string, labels: string[], series: Series[]): SVGSVGElement {
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const root = frame(title, max, []);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const group = plotW / Math.max(1, labels.length);
  const bar = (group * 0.8) / Math.max(1, series.length);
  const every = Math.max(1, Math.ceil(labels.length / 10));
  labels.forEach((label, i) => {
    series.forEach((s, k) => {
      const value = s.values[i] ?? 0;
      const height = (plotH * value) / max;
      const rect = svg("rect", {
        x: (PAD.left + i * group + group * 0.1 + k * bar).toFixed(1),
        y: (PAD.top + plotH - height).toFixed(1),
        width: Math.max(1, bar - 1).toFixed(1),
        height: height.toFixed(1),
        class: `bar series-${s.cls}`,
      });
      rect.appendChild(svg("title", {}, `${label} ${s.name}: ${value}`));
      root.appendChild(rect);
    });
    if (i % every === 0)
      root.appendChild(
        svg(
          "text",
          {
            x: PAD.left + i * group + group / 2,
            y: HEIGHT - 6,
            class: "axis",
            "text-anchor": "middle",
          },
          label,
        ),
      );
  });
  return root;
}

/** Horizontal bars, one per labelled value (queue depths, DLQ groups). */
export function hbarChart(title: string, rows: Array<[string, number]>): SVGSVGElement {
  const rowH = 22;
  const height = Math.max(1, rows.length) * rowH + 8;
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`,
    class: "chart hbar",
    role: "img",
    "aria-label": title,
  });
  root.appendChild(svg("title", {}, title));
  const max = Math.max(1, ...rows.map(([, v]) => v));
  const labelW = 220;
  rows.forEach(([label, value], i) => {
    const y = 4 + i * rowH;
    const shown = label.length > 28 ? `${label.slice(0, 27)}…` : label;
    const text = svg(
      "text",
      { x: labelW - 6, y: y + 15, class: "axis", "text-anchor": "end" },
      shown,
    );
    text.appendChild(svg("title", {}, label));
    root.appendChild(text);
    const width = ((WIDTH - labelW - 70) * value) / max;
    root.appendChild(
      svg("rect", {
        x: labelW,
        y: y + 3,
        width: Math.max(value > 0 ? 2 : 0, width).toFixed(1),
        height: rowH - 8,
        class: "bar series-depth",
      }),
    );
    root.appendChild(
      svg("text", { x: labelW + width + 6, y: y + 15, class: "axis" }, String(value)),
    );
  });
  return root;
}
