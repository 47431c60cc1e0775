/**
 * Building DOM safely. Every string from the API (job params, errors, function and queue names)
 * reaches the page through `textContent` or an attribute set with `setAttribute`; nothing here
 * parses HTML, so hostile data is shown as text and never runs.
 */

/** A child of {@link h}: a node, text (set as a text node), or nothing. */
export type Child = Node | string | number | null | undefined | false;

/** Attributes of {@link h}; `on*` functions become event listeners. */
export type Attrs = Record<
  string,
  string | number | boolean | undefined | ((event: Event) => void)
>;

/** Creates an element with attributes and children; strings become text nodes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

/** Appends children to a node (strings as text nodes). */
export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** A queue's name as people say it (`rrq:queue:emails` → `emails`). */
export function queueLabel(name: string | null | undefined): string {
  if (!name) return "—";
  return name.startsWith("rrq:queue:") ? name.slice("rrq:queue:".length) : name;
}

/** A link to a hash route; `parts` are encoded, so names with `/` or `#` stay one segment. */
export function link(text: Child, ...parts: string[]): HTMLAnchorElement {
  return h("a", { href: `#/${parts.map(encodeURIComponent).join("/")}` }, text);
}

/** Epoch ms or an ISO string, as a local date and time; "—" when absent. */
export function formatTime(value: number | string | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

/** A duration in ms, short (`850ms`, `12s`, `4m 10s`, `3h 2m`, `2d 5h`). */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h ${m % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** A count with thousands separators. */
export function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined ? "—" : Math.round(n).toLocaleString("en-US");
}

/** A status badge (the class comes from a fixed list, the text from the data). */
export function statusBadge(status: string | null | undefined): HTMLElement {
  const known = ["PENDING", "ACTIVE", "COMPLETED", "FAILED", "RETRYING", "CANCELLED"];
  const upper = (status ?? "").toUpperCase();
  const cls = known.includes(upper) ? upper.toLowerCase() : "unknown";
  return h("span", { class: `badge badge-${cls}` }, status ?? "unknown");
}

/** A table with a header row; each row is a list of cells. */
export function table(
  headers: string[],
  rows: Child[][],
  emptyText = "Nothing here.",
): HTMLElement {
  if (rows.length === 0) return h("p", { class: "muted empty" }, emptyText);
  return h(
    "table",
    { class: "grid" },
    h("thead", {}, h("tr", {}, ...headers.map((header) => h("th", {}, header)))),
    h("tbody", {}, ...rows.map((cells) => h("tr", {}, ...cells.map((cell) => h("td", {}, cell))))),
  );
}

/** A two-column key/value list; objects and arrays are shown as JSON text. */
export function keyValues(entries: Array<[string, unknown]>): HTMLElement {
  return h(
    "dl",
    { class: "kv" },
    ...entries.flatMap(([key, value]) => [
      h("dt", {}, key),
      h("dd", {}, value instanceof Node ? value : displayValue(value)),
    ]),
  );
}

/** A value as text: strings as they are, the rest as JSON. */
export function displayValue(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** A text field of a submitted form, trimmed ("" when absent). */
export function formText(data: FormData, key: string): string {
  const value = data.get(key);
  return typeof value === "string" ? value.trim() : "";
}

/** Pretty JSON of a stored JSON string (or the string itself when it is not JSON). */
export function prettyJson(text: string | undefined): string {
  if (text === undefined || text === "") return "—";
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** A card with a title and content. */
export function card(title: string, ...children: Child[]): HTMLElement {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

/** A big number with a label. */
export function stat(label: string, value: string, cls = ""): HTMLElement {
  return h(
    "div",
    { class: `stat ${cls}`.trim() },
    h("div", { class: "stat-value" }, value),
    h("div", { class: "stat-label" }, label),
  );
}

/** Shows a short message at the bottom of the page for a few seconds. */
export function toast(message: string, kind: "ok" | "error" = "ok"): void {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", { class: `toast toast-${kind}`, role: "status" }, message);
  box.appendChild(item);
  setTimeout(() => item.remove(), 6000);
}

/**
 * Asks for confirmation in an in-page dialog (never `window.confirm`: the dashboard opens no
 * browser dialogs). Resolves true when the operator confirms.
 */
export function confirmDialog(message: string, confirmLabel = "Confirm"): Promise<boolean> {
  return new Promise((resolve) => {
    const close = (answer: boolean) => {
      overlay.remove();
      resolve(answer);
    };
    const ok = h(
      "button",
      { class: "danger", "data-confirm": "yes", onclick: () => close(true) },
      confirmLabel,
    );
    const overlay = h(
      "div",
      { class: "overlay", role: "dialog", "aria-modal": "true" },
      h(
        "div",
        { class: "modal" },
        h("p", {}, message),
        h(
          "div",
          { class: "modal-actions" },
          h("button", { "data-confirm": "no", onclick: () => close(false) }, "Cancel"),
          ok,
        ),
      ),
    );
    document.body.appendChild(overlay);
    ok.focus();
  });
}

/** What an action button does. */
export interface ActionSpec {
  label: string;
  /** Asks first with this text (destructive and bulk actions). */
  confirm?: string;
  danger?: boolean;
  /** Identifies the button in tests (`data-action`). */
  name: string;
  run: () => Promise<unknown>;
  /** Called with the result after success (e.g. to reload the page). */
  done?: (result: unknown) => void;
}

/** A button that runs an API action, with an optional confirmation, and reports the outcome. */
export function actionButton(spec: ActionSpec): HTMLButtonElement {
  const button = h(
    "button",
    { class: spec.danger ? "danger" : "", "data-action": spec.name },
    spec.label,
  );
  button.addEventListener("click", () => {
    void (async () => {
      if (spec.confirm && !(await confirmDialog(spec.confirm, spec.label))) return;
      button.disabled = true;
      try {
        const result = await spec.run();
        toast(`${spec.label}: ${describeResult(result)}`);
        spec.done?.(result);
      } catch (error) {
        toast(`${spec.label} failed: ${(error as Error).message}`, "error");
      } finally {
        button.disabled = false;
      }
    })();
  });
  return button;
}

/** A one-line summary of an action's result object. */
export function describeResult(result: unknown): string {
  if (result === null || typeof result !== "object") return "done";
  const r = result as Record<string, unknown>;
  if (r.ok === false) return `refused (${displayValue(r.reason)})`;
  if (r.dryRun === true && typeof r.count === "number") return `${r.count} would be affected`;
  if (typeof r.jobId === "string") return `job ${r.jobId}`;
  if (Array.isArray(r.selected) && r.done === undefined) return `${r.selected.length} selected`;
  if (typeof r.done === "number") return `${r.done} done`;
  return "done";
}
