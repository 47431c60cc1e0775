import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A small HTTP client for the dashboard server tests: keeps cookies like a browser (one jar per
 * client), sends the CSRF header on POSTs, and returns status, headers and parsed JSON.
 */
export class DashboardClient {
  readonly cookies = new Map<string, string>();

  constructor(
    readonly base: string,
    private readonly headers: Record<string, string> = {},
  ) {}

  private store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const eq = pair!.indexOf("=");
      this.cookies.set(pair!.slice(0, eq), decodeURIComponent(pair!.slice(eq + 1)));
    }
  }

  private cookieHeader(): Record<string, string> {
    if (this.cookies.size === 0) return {};
    return {
      cookie: [...this.cookies].map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("; "),
    };
  }

  /** A raw request relative to the base (no redirects followed). */
  async raw(path: string, init: RequestInit = {}): Promise<Response> {
    const res = await fetch(new URL(path, this.base), {
      redirect: "manual",
      ...init,
      headers: { ...this.headers, ...this.cookieHeader(), ...(init.headers as object) },
    });
    this.store(res);
    return res;
  }

  /** GET and parse JSON. */
  async get<T = Record<string, unknown>>(path: string): Promise<{ status: number; body: T }> {
    const res = await this.raw(path);
    return { status: res.status, body: (await res.json()) as T };
  }

  /** POST JSON with the CSRF header (fetching the cookie first when needed). */
  async post<T = Record<string, unknown>>(
    path: string,
    body: unknown = {},
    extraHeaders: Record<string, string> = {},
  ): Promise<{ status: number; body: T }> {
    if (!this.cookies.has("rrq_csrf")) await this.raw("api/config");
    const res = await this.raw(path, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-csrf-token": this.cookies.get("rrq_csrf") ?? "",
        ...extraHeaders,
      },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  }
}

/** A stand-in UI directory (index.html, app.js, style.css) for tests that do not build the UI. */
export function fakeUiDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "rrq-ui-"));
  writeFileSync(
    join(dir, "index.html"),
    '<!doctype html><html><head><script type="module" src="app.js"></script></head><body>rrq</body></html>\n',
  );
  writeFileSync(join(dir, "app.js"), "export const ui = 1;\n");
  writeFileSync(join(dir, "style.css"), "body { color: black; }\n");
  writeFileSync(join(dir, ".secret"), "hidden\n");
  return dir;
}
