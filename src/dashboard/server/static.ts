import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The UI's files: index.html, the compiled browser code and CSS, served from one directory
 * (`dist/src/dashboard/ui/`, shipped in the package). Only files of the listed types inside that
 * directory are served; everything else is a 404.
 */

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".map": "application/json; charset=utf-8",
  ".woff2": "font/woff2",
};

/**
 * The built UI directory: beside this module when running from dist/ (`../ui/`); from source
 * (tsx, tests) the repository's `dist/src/dashboard/ui/`, which `npm run build` writes.
 */
export function defaultUiDir(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const sibling = resolve(here, "..", "ui");
  const isDist = here.split(sep).includes("dist");
  if (isDist) return sibling;
  return resolve(here, "..", "..", "..", "dist", "src", "dashboard", "ui");
}

/** Whether the UI has been built into `dir`. */
export const uiBuilt = (dir: string): boolean => existsSync(join(dir, "index.html"));

/**
 * Serves `path` (the request path below the dashboard's base, `/` = index.html) from `dir`.
 * Returns false when there is no such file (the caller answers 404).
 */
export async function serveStatic(
  res: ServerResponse,
  dir: string,
  path: string,
  head: boolean,
): Promise<boolean> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return false;
  }
  const relative = decoded === "/" || decoded === "" ? "index.html" : decoded.replace(/^\/+/, "");
  if (
    relative.includes("\0") ||
    relative.split(/[\\/]/).some((s) => s === ".." || s.startsWith("."))
  )
    return false;
  const type = TYPES[extname(relative).toLowerCase()];
  if (!type) return false;
  const root = resolve(dir);
  const file = resolve(root, relative);
  if (!file.startsWith(root + sep)) return false;
  try {
    if (!(await stat(file)).isFile()) return false;
  } catch {
    return false;
  }
  const body = await readFile(file);
  res.statusCode = 200;
  res.setHeader("Content-Type", type);
  res.setHeader("Content-Length", body.length);
  res.setHeader("Cache-Control", "no-cache");
  res.end(head ? undefined : body);
  return true;
}
