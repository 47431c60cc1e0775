/**
 * Hash routes: `#/`, `#/queues`, `#/queues/<name>`, `#/jobs?function=…`, `#/jobs/<id>`, `#/dlq`,
 * `#/workers`, `#/cron`. Path segments are URI-encoded, so ids and names may hold any character.
 */
import type { UiConfig } from "./api.js";

/** What a page gets to render. */
export interface PageContext {
  readonly config: UiConfig;
  /** Decoded path segments after the page name (`#/jobs/<id>` → `[id]`). */
  readonly params: string[];
  readonly query: URLSearchParams;
  /** Renders the current page again (after an action). */
  reload(): void;
}

/** A page renders into a node; `data` is the live payload when the page takes pushed updates. */
export type Page = (ctx: PageContext, data?: unknown) => Promise<Node>;

/** A parsed location hash. */
export interface Location {
  readonly name: string;
  readonly params: string[];
  readonly query: URLSearchParams;
}

/** Parses `#/name/a/b?x=1`. Undecodable segments are kept as they are. */
export function parseHash(hash: string): Location {
  const raw = hash.replace(/^#\/?/, "");
  const [path = "", search = ""] = raw.split("?", 2);
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const segments = path
    .split("/")
    .filter((s) => s !== "")
    .map(decode);
  return {
    name: segments[0] ?? "",
    params: segments.slice(1),
    query: new URLSearchParams(search),
  };
}

/** A hash for a page with a query (empty values dropped). */
export function hashFor(name: string, query: Record<string, string | undefined> = {}): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value) search.set(key, value);
  const text = search.toString();
  return `#/${name}${text ? `?${text}` : ""}`;
}
