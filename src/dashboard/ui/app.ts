/**
 * The dashboard's entry point: loads the UI config, draws the navigation, routes the location
 * hash to a page and keeps the page live (Server-Sent Events for the overview, polling for the
 * other lists; a failed event stream falls back to polling).
 */
import { api, apiUrl, ApiError, type UiConfig } from "./api.js";
import { h } from "./dom.js";
import { cronPage } from "./pages/cron.js";
import { dlqPage } from "./pages/dlq.js";
import { jobPage, jobsPage } from "./pages/jobs.js";
import { overviewPage } from "./pages/overview.js";
import { queuePage, queuesPage } from "./pages/queues.js";
import { workersPage } from "./pages/workers.js";
import { parseHash, type Page, type PageContext } from "./route.js";

/** How a route stays current: pushed overview ticks, polling, or not at all (forms). */
type Live = "sse" | "poll" | "none";

interface Route {
  title: string;
  page: Page;
  live: Live;
}

const NAV: Array<[string, string]> = [
  ["", "Overview"],
  ["queues", "Queues"],
  ["jobs", "Jobs"],
  ["dlq", "DLQ"],
  ["workers", "Workers"],
  ["cron", "Cron"],
];

const POLL_MS = 5000;

function route(name: string, params: string[]): Route {
  switch (name) {
    case "":
      return { title: "Overview", page: overviewPage, live: "sse" };
    case "queues":
      return params.length > 0
        ? { title: "Queue", page: queuePage, live: "none" }
        : { title: "Queues", page: queuesPage, live: "poll" };
    case "jobs":
      return params.length > 0
        ? { title: "Job", page: jobPage, live: "none" }
        : { title: "Jobs", page: jobsPage, live: "none" };
    case "dlq":
      return { title: "DLQ", page: dlqPage, live: "none" };
    case "workers":
      return { title: "Workers", page: workersPage, live: "poll" };
    case "cron":
      return { title: "Cron", page: cronPage, live: "poll" };
    default:
      return { title: "Not found", page: () => Promise.resolve(notFound()), live: "none" };
  }
}

function notFound(): Node {
  return h("section", { class: "card" }, h("h2", {}, "Not found"), h("p", {}, "No such page."));
}

class Dashboard {
  private generation = 0;
  private pollTimer: ReturnType<typeof setInterval> | undefined;
  private events: EventSource | undefined;

  constructor(
    private readonly config: UiConfig,
    private readonly main: HTMLElement,
  ) {}

  start(): void {
    this.drawChrome();
    window.addEventListener("hashchange", () => void this.show());
    void this.show();
  }

  private drawChrome(): void {
    const nav = document.getElementById("nav");
    nav?.replaceChildren(
      ...NAV.map(([name, label]) =>
        h("a", { href: `#/${name}`, "data-nav": name || "overview" }, label),
      ),
    );
    const mode = document.getElementById("mode");
    if (mode) mode.textContent = this.config.readOnly ? "read-only" : "";
    document.body.classList.toggle("read-only", this.config.readOnly);
  }

  private markNav(name: string): void {
    for (const a of document.querySelectorAll<HTMLAnchorElement>("#nav a"))
      a.classList.toggle("active", a.dataset.nav === (name || "overview"));
  }

  /** Renders the page of the current hash; later calls win over slower earlier ones. */
  async show(data?: unknown, quiet = false): Promise<void> {
    const generation = ++this.generation;
    const location = parseHash(window.location.hash);
    const current = route(location.name, location.params);
    if (!quiet) {
      this.stopLive();
      this.markNav(location.name);
      document.title = `${current.title} · rrqkit`;
    }
    const ctx: PageContext = {
      config: this.config,
      params: location.params,
      query: location.query,
      reload: () => void this.show(undefined, true),
    };
    let node: Node;
    try {
      node = await current.page(ctx, data);
    } catch (error) {
      if (quiet) return; // a failed refresh keeps what is shown
      node = errorBox(error);
    }
    if (generation !== this.generation) return;
    const scroll = window.scrollY;
    this.main.replaceChildren(node);
    this.main.dataset.page = location.name || "overview";
    this.main.dataset.rendered = String(generation);
    if (quiet) window.scrollTo(0, scroll);
    if (!quiet) this.startLive(current.live);
  }

  private startLive(live: Live): void {
    if (live === "sse" && typeof EventSource === "function") {
      const events = new EventSource(apiUrl("events"), { withCredentials: true });
      this.events = events;
      events.addEventListener("tick", (event) => {
        if (this.busy()) return;
        try {
          void this.show(JSON.parse((event as MessageEvent<string>).data) as unknown, true);
        } catch {
          // a malformed tick is skipped
        }
      });
      events.addEventListener("open", () => this.setLive("live"));
      events.addEventListener("error", () => {
        // no event stream (a proxy that buffers, an old server): poll instead
        events.close();
        if (this.events === events) {
          this.events = undefined;
          this.startLive("poll");
        }
      });
    } else if (live === "poll" || live === "sse") {
      this.setLive("polling");
      this.pollTimer = setInterval(() => {
        if (!this.busy()) void this.show(undefined, true);
      }, POLL_MS);
    } else {
      this.setLive("");
    }
  }

  private stopLive(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.events?.close();
    this.events = undefined;
    this.setLive("");
  }

  private setLive(text: string): void {
    const badge = document.getElementById("live");
    if (badge) badge.textContent = text;
  }

  /** True while a confirmation is open or a form field has focus: refreshes would lose them. */
  private busy(): boolean {
    const focused = document.activeElement;
    return (
      document.querySelector(".overlay") !== null ||
      focused instanceof HTMLInputElement ||
      focused instanceof HTMLSelectElement
    );
  }
}

/** An error box for a page that could not load. */
export function errorBox(error: unknown): HTMLElement {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof ApiError ? ` (${error.status})` : "";
  return h(
    "section",
    { class: "card error-box", role: "alert" },
    h("h2", {}, `Could not load this page${code}`),
    h("p", {}, message),
  );
}

async function boot(): Promise<void> {
  const main = document.getElementById("main");
  if (!main) return;
  let config: UiConfig;
  try {
    config = await api.config();
  } catch (error) {
    main.replaceChildren(errorBox(error));
    return;
  }
  new Dashboard(config, main).start();
}

void boot();
